"""CVAT round trip: "COCO Keypoints 1.0" with one skeleton holding every whole-body point.

CVAT has no whole-body format, so the export is a person-keypoints COCO file whose one
category lists all 133 (or 136) point names, and each annotation keeps the person box and
its flat keypoints together, as CVAT's own COCO Keypoints export does. ``cvat_labels.json``
is the skeleton for CVAT's raw label editor: the points (sublabels), its edges, and a
text attribute ``wbt_id`` that carries each person's annotation id through CVAT.

What CVAT does to the file (its importer is datumaro's ``coco_person_keypoints``):
coordinates are rounded to 0.01 px, visibility is an integer 0/1/2, boxes are dropped on
import and recomputed on export from the labelled points, and image / annotation ids are
renumbered. So the import restores, from a reference (``--ref``: the labels the export was
made from), the image ids by file name, each person's box, area and other fields by
``wbt_id``, and the exact value of every point the reviewer left where it was (within
:data:`UNCHANGED_PX`) with the same visibility flag.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.io.atomic import write_json_atomic
from labeltool.io.jsonfile import MAX_ABS_VALUE, read_json
from labeltool.io.pose import PoseDataset, tight_box
from labeltool.layouts import HALPE136, WHOLEBODY133, Layout

ID_ATTRIBUTE = "wbt_id"
CATEGORY_NAME = "person"
UNCHANGED_PX = 0.01  # CVAT keeps 2 decimals: a point within this of the reference was not moved
EXPORT_NAME = "person_keypoints_default.json"  # CVAT's name for the default subset
UNKNOWN_VISIBILITY = -1.0  # a labelled point whose tool says nothing about its visibility


def cvat_visibility(v: np.ndarray) -> np.ndarray:
    """COCO visibility as CVAT stores it: 0 absent, 1 hidden, 2 visible; other labelled values -> 1 or 2."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0, 0, np.where(v >= 2, 2, 1)).astype(np.int64)


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


# --------------------------------------------------------------------------- export


def _template_positions(layout: Layout) -> np.ndarray:
    """Node positions of the skeleton drawing in CVAT's label editor (a 100 x 100 canvas)."""
    body = np.array(
        [[50, 12], [52, 10], [48, 10], [55, 11], [45, 11], [60, 22], [40, 22], [66, 36], [34, 36], [70, 50],
         [30, 50], [57, 52], [43, 52], [58, 70], [42, 70], [58, 88], [42, 88]], dtype=np.float64)  # fmt: skip
    pos = np.zeros((layout.num_keypoints, 2))
    pos[:17] = body
    extra = {"head": (50, 3), "neck": (50, 20), "hip": (50, 52)}
    for name, xy in extra.items():
        if name in layout.names:
            pos[layout.index(name)] = xy
    for side, ankle, sign in (("left", body[15], 1), ("right", body[16], -1)):
        for k, (dx, dy) in zip(("big_toe", "small_toe", "heel"), ((6, 6), (4, 7), (-1, 5))):
            pos[layout.index(f"{side}_{k}")] = ankle + (sign * dx, dy)
    face = layout.parts["face"]
    t = np.linspace(0, 2 * np.pi, len(face), endpoint=False)
    pos[face] = np.stack([50 + 4 * np.cos(t), 11 + 4 * np.sin(t)], axis=1)
    for part, wrist, sign in (("lefthand", body[9], 1), ("righthand", body[10], -1)):
        idx = layout.parts[part]
        pos[idx[0]] = wrist + (sign * 1, 2)
        for finger in range(5):
            angle = np.deg2rad(-40 + 20 * finger)
            for j in range(4):
                r = 2 + 1.5 * j
                pos[idx[1 + 4 * finger + j]] = wrist + (sign * (1 + r * np.sin(angle)), 2 + r * np.cos(angle))
    return np.round(pos, 2)


def cvat_labels_spec(layout: Layout) -> list[dict]:
    """CVAT's raw label JSON for one skeleton label holding every point of ``layout``."""
    pos = _template_positions(layout)
    edges = "".join(
        f'<line x1="{pos[a, 0]}" y1="{pos[a, 1]}" x2="{pos[b, 0]}" y2="{pos[b, 1]}" '
        f'data-type="edge" data-node-from="{a + 1}" data-node-to="{b + 1}"></line>'
        for a, b in layout.skeleton.tolist()
    )
    nodes = "".join(
        f'<circle r="0.75" cx="{pos[k, 0]}" cy="{pos[k, 1]}" data-type="element node" '
        f'data-element-id="{k + 1}" data-node-id="{k + 1}" data-label-name="{name}"></circle>'
        for k, name in enumerate(layout.names)
    )
    return [
        {
            "name": CATEGORY_NAME,
            "type": "skeleton",
            "attributes": [
                {"name": ID_ATTRIBUTE, "mutable": False, "input_type": "text", "default_value": "", "values": [""]}
            ],
            "sublabels": [{"name": name, "type": "points", "attributes": []} for name in layout.names],
            "svg": edges + nodes,
        }
    ]


def cvat_document(ds: PoseDataset, order: np.ndarray | None = None) -> dict:
    """The COCO Keypoints json for CVAT: one category with every point, box and keypoints per annotation.

    ``order`` selects and orders the persons (default: all, in file order); only their images are listed.
    """
    order = np.arange(len(ds)) if order is None else np.asarray(order, dtype=np.int64)
    layout = ds.layout
    keep_images = {int(ds.image_ids[i]) for i in order}
    images = [im for im in ds.images if int(im["id"]) in keep_images]
    annotations = []
    for i in order:
        pts = ds.keypoints[i]
        vis = cvat_visibility(pts[:, 2])
        flat = np.where(vis[:, None] > 0, pts[:, :2], 0.0)
        keypoints = np.concatenate([flat, vis[:, None]], axis=1).reshape(-1)
        annotations.append(
            {
                "id": int(ds.ann_ids[i]),
                "image_id": int(ds.image_ids[i]),
                "category_id": 1,
                "segmentation": [],
                "area": float(ds.areas[i]),
                "bbox": [float(v) for v in ds.bboxes[i]],
                "iscrowd": int(ds.iscrowd[i]),
                "attributes": {"occluded": False, ID_ATTRIBUTE: str(int(ds.ann_ids[i]))},
                "keypoints": [_number(v) for v in keypoints.tolist()],
                "num_keypoints": int((vis > 0).sum()),
            }
        )
    category = {
        "id": 1,
        "name": CATEGORY_NAME,
        "supercategory": "",
        "keypoints": list(layout.names),
        "skeleton": (layout.skeleton + 1).tolist(),
    }
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"description": f"wbt review export ({layout.name})"},
        "categories": [category],
        "images": images,
        "annotations": annotations,
    }


def export_cvat(ds: PoseDataset, out_dir: str | os.PathLike, order: np.ndarray | None = None) -> list[Path]:
    """Write ``annotations/person_keypoints_default.json`` and ``cvat_labels.json`` under ``out_dir``."""
    out_dir = Path(out_dir)
    ann_path = out_dir / "annotations" / EXPORT_NAME
    labels_path = out_dir / "cvat_labels.json"
    write_json_atomic(cvat_document(ds, order), ann_path)
    write_json_atomic(cvat_labels_spec(ds.layout), labels_path)
    return [ann_path, labels_path]


# --------------------------------------------------------------------------- import


def read_cvat_export(path: str | os.PathLike) -> tuple[dict, str]:
    """The COCO Keypoints json of a CVAT export: a ``.json``, or the ``.zip`` CVAT downloads."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        return read_json(path), str(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".json") and "person_keypoints" in Path(n).name)
            if not names:
                raise UserError(
                    f"{path}: no annotations/person_keypoints_*.json inside (not a CVAT COCO Keypoints export)"
                )
            if len(names) > 1:
                raise UserError(f"{path}: several subsets inside ({', '.join(names)}); unzip it and import one json")
            data = zf.read(names[0])
    except zipfile.BadZipFile:
        raise UserError(f"{path}: not a valid zip file") from None
    import json

    try:
        return json.loads(data), f"{path}:{names[0]}"
    except ValueError:
        raise UserError(f"{path}:{names[0]}: invalid JSON") from None


def _layout_of_category(cat: dict, where: str) -> tuple[Layout, np.ndarray]:
    names = cat.get("keypoints")
    if not isinstance(names, list) or not names:
        raise UserError(f"{where}: category '{cat.get('name')}' has no 'keypoints' names")
    for layout in (WHOLEBODY133, HALPE136):
        if len(names) == layout.num_keypoints and set(names) == set(layout.names):
            return layout, np.array([layout.index(n) for n in names], dtype=np.int64)
    missing = [n for n in WHOLEBODY133.names if n not in names][:3]
    raise UserError(
        f"{where}: category '{cat.get('name')}' has {len(names)} points that are neither the 133 COCO-WholeBody "
        f"nor the 136 Halpe names (e.g. missing {missing})"
    )


@dataclass
class ImportReport:
    """What an import did: persons kept, added, removed, and points restored from the reference."""

    persons: int = 0
    matched: int = 0
    added: int = 0
    removed: int = 0
    restored_points: int = 0
    tasks_without_annotation: int = 0

    def summary(self) -> str:
        text = f"{self.persons} persons ({self.matched} matched to the reference, {self.added} added"
        text += f", {self.removed} removed)" if self.removed else ")"
        if self.tasks_without_annotation:
            text += f"; {self.tasks_without_annotation} tasks had no annotation (taken as exported)"
        return text


def _box_iou(a: list[float], b: list[float]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def cvat_import(doc: dict, where: str, ref: PoseDataset | None = None) -> tuple[PoseDataset, ImportReport]:
    """A CVAT COCO Keypoints document -> a dataset in the layout its category names (133 or 136)."""
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("annotations"), list)
        or not isinstance(doc.get("images"), list)
    ):
        raise UserError(f"{where}: expected a COCO json object with 'images' and 'annotations' lists")
    cats = [c for c in doc.get("categories", []) if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        raise UserError(f"{where}: no category with 'keypoints' (export the task as 'COCO Keypoints 1.0')")
    if len(cats) > 1:
        names = [c.get("name") for c in cats]
        raise UserError(f"{where}: {len(cats)} skeleton categories {names}; the review export has one")
    cat = cats[0]
    layout, order = _layout_of_category(cat, where)
    images_by_id = {}
    for k, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise UserError(f"{where}: images[{k}] needs 'id' and 'file_name'")
        images_by_id[im["id"]] = im
    persons = []
    for k, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            raise UserError(f"{where}: annotations[{k}] is not an object")
        if ann.get("category_id") != cat.get("id"):
            continue
        aid = ann.get("id", f"#{k}")
        if ann.get("image_id") not in images_by_id:
            raise UserError(
                f"{where}: annotation {aid} refers to image id {ann.get('image_id')}, which is not in 'images'"
            )
        values = ann.get("keypoints")
        if not isinstance(values, list) or len(values) != 3 * layout.num_keypoints:
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise UserError(
                f"{where}: annotation {aid}: 'keypoints' has {got} values, expected {3 * layout.num_keypoints}"
            )
        try:
            raw = np.asarray(values, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise UserError(f"{where}: annotation {aid}: 'keypoints' must be numbers") from None
        if not np.isfinite(raw).all():
            raise UserError(f"{where}: annotation {aid}: keypoints contain NaN or infinity")
        pts = np.zeros((layout.num_keypoints, 3))
        pts[order] = raw
        pts[pts[:, 2] <= 0] = 0.0
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise UserError(f"{where}: annotation {aid}: 'bbox' must be 4 numbers [x, y, w, h]")
        attrs = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
        wbt_id = attrs.get(ID_ATTRIBUTE)
        try:
            wbt_id = int(wbt_id) if wbt_id not in (None, "") else None
        except (TypeError, ValueError):
            raise UserError(
                f"{where}: annotation {aid}: attribute '{ID_ATTRIBUTE}' is not an integer: {wbt_id!r}"
            ) from None
        persons.append(
            {
                "image": images_by_id[ann["image_id"]],
                "points": pts,
                "bbox": np.asarray(bbox, dtype=np.float64),
                "area": float(ann.get("area") or bbox[2] * bbox[3]),
                "iscrowd": int(ann.get("iscrowd", 0)),
                "wbt_id": wbt_id,
                "tool_id": ann.get("id"),
            }
        )
    return assemble_import(persons, doc["images"], layout, ref, where, restore=True)


def assemble_import(
    persons: list[dict], images: list[dict], layout: Layout, ref: PoseDataset | None, where: str, restore: bool
) -> tuple[PoseDataset, ImportReport]:
    """Persons read from a tool's export -> a dataset, with ids / boxes / exact values from ``ref`` when given.

    Each person dict holds: image (the tool's image entry), points (K, 3) whose visibility is
    0, 1, 2 or :data:`UNKNOWN_VISIBILITY` (labelled, flag not given: the reference's value, else 2),
    bbox, area, iscrowd, wbt_id (the original annotation id, or None) and tool_id.
    ``restore``: snap points within :data:`UNCHANGED_PX` of the reference back to its exact values.
    """
    for p in persons:  # a tool's numbers enter here: finite and in range, or a one-line error
        values = np.concatenate([np.ravel(p["points"]), np.ravel(p["bbox"])])
        if not (np.abs(values) <= MAX_ABS_VALUE).all():
            name = p["tool_id"] if p["tool_id"] is not None else p["wbt_id"]
            raise UserError(f"{where}: person {name}: a point or box value is not finite or beyond ±{MAX_ABS_VALUE:g}")
    report = ImportReport()
    if ref is not None and ref.layout is not layout:
        from labeltool.convert import convert_dataset

        ref = convert_dataset(ref, layout)
    ref_index = {int(a): i for i, a in enumerate(ref.ann_ids)} if ref is not None else {}
    ref_images = {}
    if ref is not None:
        for im in ref.images:
            ref_images.setdefault(im["file_name"], im)
            ref_images.setdefault(Path(im["file_name"]).name, im)
    # images: the reference's entry (matched by file name) or the tool's own
    out_images: dict[int, dict] = {}
    image_id_of: dict[int, int] = {}
    next_image_id = max([int(im["id"]) for im in ref.images], default=0) + 1 if ref is not None else None
    for im in images:
        match = ref_images.get(im["file_name"]) or ref_images.get(Path(im["file_name"]).name)
        if match is not None:  # the reference's entry; sizes from the tool when the reference has none
            new = {**{k: im[k] for k in ("width", "height") if k in im}, **match}
        elif ref is not None:
            new = {**im, "id": next_image_id}
            next_image_id += 1
        else:
            new = im
        image_id_of[id(im)] = int(new["id"])
        out_images.setdefault(int(new["id"]), new)
    # persons: matched by wbt_id, else by box overlap with an unmatched reference person of the image
    used: set[int] = set()
    for p in persons:
        p["image_id"] = image_id_of[id(p["image"])]
        r = ref_index.get(p["wbt_id"]) if p["wbt_id"] is not None else None
        if r is not None and int(ref.image_ids[r]) == p["image_id"] and r not in used:
            p["ref"] = r
            used.add(r)
        else:
            p["ref"] = None
    if ref is not None:
        by_image = ref.persons_by_image()
        for p in persons:
            if p["ref"] is not None or p["wbt_id"] is not None:
                continue
            best, best_iou = None, 0.5
            box = tight_box(p["points"])
            for r in by_image.get(p["image_id"], []):
                if int(r) in used:
                    continue
                iou = _box_iou(box, tight_box(ref.keypoints[r]))
                if iou > best_iou:
                    best, best_iou = int(r), iou
            if best is not None:
                p["ref"] = best
                used.add(best)
    taken_ids = set(ref_index) | {p["wbt_id"] for p in persons if p["wbt_id"] is not None}
    next_id = max(taken_ids, default=0) + 1
    n = len(persons)
    keypoints = np.zeros((n, layout.num_keypoints, 3))
    ann_ids = np.zeros(n, np.int64)
    bboxes = np.zeros((n, 4))
    areas = np.zeros(n)
    iscrowd = np.zeros(n, np.int64)
    category_ids = np.ones(n, np.int64)
    annotations = []
    for j, p in enumerate(persons):
        pts = p["points"].copy()
        r = p["ref"]
        unknown = pts[:, 2] == UNKNOWN_VISIBILITY
        if r is not None:
            ref_pts = ref.keypoints[r]
            labelled = pts[:, 2] != 0
            both = labelled & (ref_pts[:, 2] > 0)
            # the tools keep only 0/1/2 (or nothing): the original value stays where the flag is unchanged
            same_flag = both & ((cvat_visibility(ref_pts[:, 2]) == pts[:, 2]) | unknown)
            pts[same_flag, 2] = ref_pts[same_flag, 2]
            pts[unknown & ~same_flag, 2] = 2.0
            if restore:
                near = both & (np.hypot(*(pts[:, :2] - ref_pts[:, :2]).T) <= UNCHANGED_PX)
                pts[near, :2] = ref_pts[near, :2]
                report.restored_points += int(near.sum())
            ann_ids[j] = ref.ann_ids[r]
            bboxes[j] = ref.bboxes[r]
            areas[j] = ref.areas[r]
            iscrowd[j] = ref.iscrowd[r]
            category_ids[j] = ref.category_ids[r]
            annotations.append(dict(ref.annotations[r]))
            report.matched += 1
        else:
            if p["wbt_id"] is not None and p["wbt_id"] not in ref_index:
                ann_ids[j] = p["wbt_id"]
            else:
                ann_ids[j] = next_id
                next_id += 1
            bboxes[j] = p["bbox"]
            areas[j] = p["area"]
            iscrowd[j] = p["iscrowd"]
            pts[unknown, 2] = 2.0
            annotations.append({})
            report.added += 1
        keypoints[j] = pts
    report.persons = n
    if ref is not None:
        report.removed = len(ref) - len(used)
    order = np.lexsort((ann_ids, [p["image_id"] for p in persons])) if n else np.zeros(0, np.int64)
    categories = ref.categories if ref is not None else []
    extra = ref.extra if ref is not None else {}
    ds = PoseDataset(
        layout=layout,
        keypoints=keypoints[order],
        ann_ids=ann_ids[order],
        image_ids=np.array([persons[j]["image_id"] for j in order], dtype=np.int64),
        category_ids=category_ids[order],
        bboxes=bboxes[order],
        areas=areas[order],
        iscrowd=iscrowd[order],
        annotations=[annotations[j] for j in order],
        images=sorted(out_images.values(), key=lambda im: int(im["id"])),
        categories=categories,
        extra=extra,
        path=where,
    )
    if len(np.unique(ds.ann_ids)) != n:
        uniq, counts = np.unique(ds.ann_ids, return_counts=True)
        raise UserError(f"{where}: two persons carry the same {ID_ATTRIBUTE} {int(uniq[counts > 1][0])}")
    return ds, report
