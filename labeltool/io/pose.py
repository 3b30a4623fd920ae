"""Keypoint label files: COCO person keypoints, COCO-WholeBody and Halpe json, read, validated and written.

Every format is read into one in-memory form, :class:`PoseDataset`: per person the ids,
bbox, area, iscrowd and a (K, 3) keypoint array (x, y, visibility; visibility may be a
float, any v > 0 means labelled). Fields the format does not model (segmentation, part
boxes, custom keys) and every image / category / top-level entry are kept, so a file
read and written back loses nothing. Part-only files (a face or hand dataset: one flat list
of any number of points) are read by :func:`load_part_dataset`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from labeltool.errors import UserError
from labeltool.io.atomic import JsonDocumentWriter, new_outputs_removed_on_error
from labeltool.io.jsonfile import (
    MAX_ABS_VALUE,
    all_numbers,
    first_out_of_range,
    gc_paused,
    is_number,
    read_json,
)
from labeltool.layouts import (
    COCO17,
    PART_NAMES,
    WHOLEBODY133,
    WHOLEBODY_BOX_KEYS,
    WHOLEBODY_KPT_KEYS,
    WHOLEBODY_VALID_KEYS,
    Layout,
    layout_for,
)

REQUIRED_ANN_KEYS = ("id", "image_id", "bbox")
REQUIRED_IMAGE_KEYS = ("id", "file_name")
# Keys that the keypoint arrays replace; everything else in an annotation is kept verbatim.
KEYPOINT_KEYS = frozenset(WHOLEBODY_KPT_KEYS.values()) | frozenset(WHOLEBODY_VALID_KEYS.values())
WHOLEBODY_PART_KEYS = frozenset(WHOLEBODY_KPT_KEYS.values()) - {"keypoints"}


@dataclass
class PoseDataset:
    """People of one keypoint file, as arrays. ``annotations[i]`` keeps person i's other fields."""

    layout: Layout
    keypoints: np.ndarray  # (N, K, 3) float64
    ann_ids: np.ndarray  # (N,) int64
    image_ids: np.ndarray  # (N,) int64
    category_ids: np.ndarray  # (N,) int64
    bboxes: np.ndarray  # (N, 4) float64, x y w h
    areas: np.ndarray  # (N,) float64
    iscrowd: np.ndarray  # (N,) int64
    annotations: list[dict]  # per person, the original fields minus the keypoint keys
    images: list[dict]
    categories: list[dict]
    extra: dict = field(default_factory=dict)  # other top-level keys (info, licenses, ...)
    path: str = ""

    def __len__(self) -> int:
        return len(self.ann_ids)

    def image_index(self) -> dict[int, dict]:
        """Image id -> image entry."""
        return {int(im["id"]): im for im in self.images}

    def persons_by_image(self) -> dict[int, np.ndarray]:
        """Image id -> indices of its persons, in file order."""
        order = np.argsort(self.image_ids, kind="stable")
        ids, starts = np.unique(self.image_ids[order], return_index=True)
        groups = np.split(order, starts[1:])
        return {int(i): g for i, g in zip(ids, groups)}

    def subset(self, index: np.ndarray) -> PoseDataset:
        """A dataset with the persons at ``index`` (images and categories kept whole)."""
        index = np.asarray(index, dtype=np.int64)
        return PoseDataset(
            layout=self.layout,
            keypoints=self.keypoints[index],
            ann_ids=self.ann_ids[index],
            image_ids=self.image_ids[index],
            category_ids=self.category_ids[index],
            bboxes=self.bboxes[index],
            areas=self.areas[index],
            iscrowd=self.iscrowd[index],
            annotations=[self.annotations[i] for i in index],
            images=self.images,
            categories=self.categories,
            extra=self.extra,
            path=self.path,
        )


# --------------------------------------------------------------------------- reading


def has_wholebody_part_keys(records: list) -> bool:
    """Whether any record has a COCO-WholeBody part key (``foot_kpts``, ``face_kpts``...): split, not flat, points."""
    return any(isinstance(r, dict) and not WHOLEBODY_PART_KEYS.isdisjoint(r) for r in records)


def load_pose_dataset(path: str | os.PathLike, layout: Layout | None = None) -> PoseDataset:
    """Load a COCO / COCO-WholeBody / Halpe keypoint file, validated.

    The layout is detected from the keys and the keypoint count unless ``layout`` is given.
    Raises :class:`UserError` naming the file and the problem for any malformed input.
    """
    with gc_paused():
        return pose_dataset_from_json(read_json(path), str(path), layout)


def pose_dataset_from_json(
    data: Any, path: str, layout: Layout | None = None, keypoints_key: str = "keypoints"
) -> PoseDataset:
    """:func:`load_pose_dataset` of an already parsed file; ``keypoints_key``: the flat key holding the points.

    (:mod:`labeltool.datasets` reads the body datasets of other layouts through this, with
    their own :class:`Layout`, e.g. Human-Art's ``keypoints_21``.)
    """
    path = str(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a json object with 'images' and 'annotations', got {type(data).__name__}")
    for key in ("images", "annotations"):
        if key not in data:
            raise UserError(f"{path}: missing top-level key '{key}'")
        if not isinstance(data[key], list):
            raise UserError(f"{path}: '{key}' must be a list")
    images = data["images"]
    anns = data["annotations"]
    categories = data.get("categories", [])
    extra = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            raise UserError(f"{path}: images[{i}] is not an object")
        for key in REQUIRED_IMAGE_KEYS:
            if key not in im:
                raise UserError(f"{path}: images[{i}] is missing required key '{key}'")
        if not isinstance(im["file_name"], str) or not im["file_name"]:
            raise UserError(f"{path}: images[{i}]: 'file_name' must be a non-empty string, got {im['file_name']!r}")
    image_ids = [im["id"] for im in images]
    if len(set(image_ids)) != len(image_ids):
        seen: set = set()
        dup = next(i for i in image_ids if i in seen or seen.add(i))
        raise UserError(f"{path}: duplicate image id {dup}")

    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise UserError(f"{path}: annotations[{i}] is not an object")
        for key in REQUIRED_ANN_KEYS:
            if key not in ann:
                raise UserError(f"{path}: annotation {ann.get('id', f'#{i}')} is missing required key '{key}'")
    ann_ids = _int_array([a["id"] for a in anns], anns, "id", path)
    if len(np.unique(ann_ids)) != len(ann_ids):
        raise UserError(f"{path}: duplicate annotation id {_first_duplicate(ann_ids)}")
    ann_image_ids = _int_array([a["image_id"] for a in anns], anns, "image_id", path)
    known = _int_array(image_ids, images, "id", path, where="image")
    unknown = np.nonzero(~np.isin(ann_image_ids, known))[0]
    if len(unknown):
        i = int(unknown[0])
        raise UserError(
            f"{path}: annotation {ann_ids[i]} refers to image id {ann_image_ids[i]}, which is not in 'images'"
        )

    fmt = "wholebody" if has_wholebody_part_keys(anns) else "flat"
    if layout is None:
        layout = WHOLEBODY133 if fmt == "wholebody" else _layout_from_flat(anns, path)
    num = layout.num_keypoints
    n = len(anns)
    if fmt == "wholebody":
        if layout is not WHOLEBODY133:
            raise UserError(f"{path}: COCO-WholeBody part keys found, but a {num}-point layout was asked for")
        keypoints = np.zeros((n, num, 3), dtype=np.float64)
        for part in PART_NAMES:
            idx = WHOLEBODY133.parts[part]
            # an absent part key means the part is not labelled; the body key is required
            keypoints[:, idx] = _gather(anns, WHOLEBODY_KPT_KEYS[part], len(idx), path, required=part == "body")
    else:
        keypoints = _gather(anns, keypoints_key, num, path, required=True)
    bad = first_out_of_range(keypoints)
    if bad is not None:
        raise UserError(
            f"{path}: annotation {ann_ids[bad]}: keypoints contain null, NaN or infinity, "
            f"or a value beyond ±{MAX_ABS_VALUE:g}"
        )

    try:
        bboxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(n, 4)
        ok = first_out_of_range(bboxes) is None and all_numbers(a["bbox"] for a in anns)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        for ann in anns:
            box = ann["bbox"]
            if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)):
                raise UserError(
                    f"{path}: annotation {ann['id']}: 'bbox' must be 4 numbers [x, y, w, h] within ±{MAX_ABS_VALUE:g}"
                )
    try:
        # PoseTrack18's files write iscrowd as a JSON boolean: True/False are 1/0 here (never as coordinates)
        iscrowd = np.array([a.get("iscrowd", 0) for a in anns], dtype=np.int64)
        category_ids = np.array([a.get("category_id", 1) for a in anns], dtype=np.int64)
        ok = all_numbers([[a.get("area", 0), a.get("category_id", 1)] for a in anns])
        ok = ok and set(map(type, (a.get("iscrowd", 0) for a in anns))) <= {int, float, bool}
        areas = _areas(anns, bboxes, images) if ok else None
        ok = ok and bool((np.abs(areas) <= MAX_ABS_VALUE**2).all())
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise UserError(
            f"{path}: 'area' and 'category_id' must be numbers and 'iscrowd' a number or a boolean in every annotation"
        )

    # The parsed dicts become the per-person records: drop the keys the arrays replace (no copies).
    drop = KEYPOINT_KEYS | {keypoints_key}
    for ann in anns:
        for key in drop.intersection(ann):
            del ann[key]
    return PoseDataset(
        layout=layout,
        keypoints=keypoints,
        ann_ids=ann_ids,
        image_ids=ann_image_ids,
        category_ids=category_ids,
        bboxes=bboxes,
        areas=areas,
        iscrowd=iscrowd,
        annotations=anns,
        images=images,
        categories=categories,
        extra=extra,
        path=path,
    )


def points_layout(num: int) -> Layout:
    """A layout of ``num`` unnamed points (one part, 'points'), for part-only files of any point count."""
    index = np.arange(num)
    return Layout(
        name=f"{num}-point",
        names=tuple(f"point_{i}" for i in index),
        parts={"points": index},
        flip_index=index,
        skeleton=np.zeros((0, 2), dtype=np.int64),
        sigmas=np.zeros(num),
    )


def load_part_dataset(
    path: str | os.PathLike, num_keypoints: tuple[int, ...] = (), taker: str = "this protocol"
) -> PoseDataset:
    """Load a part-only file (a face or hand dataset: COCO-style, one flat ``keypoints`` list per
    annotation, any point count), validated as :func:`load_pose_dataset`.

    The count is the first annotation's; ``num_keypoints`` are the counts ``taker`` (named in
    the error) accepts. Used by the per-instance eval protocols and the student's part sources.
    """
    path = str(path)
    data = read_json(path)
    anns = data.get("annotations") if isinstance(data, dict) else None
    first = next((a for a in anns if isinstance(a, dict)), None) if isinstance(anns, list) else None
    if first is None:  # no annotation (or a malformed file, reported by the loader)
        num = num_keypoints[0] if num_keypoints else 0
    else:
        values = first.get("keypoints")
        if not isinstance(values, list) or not values or len(values) % 3:
            raise UserError(
                f"{path}: annotation {first.get('id', '#0')}: 'keypoints' must be a non-empty list of x, y, v triples"
            )
        num = len(values) // 3
    if num_keypoints and num not in num_keypoints:
        raise UserError(f"{path}: {num} keypoints per annotation; {taker} takes {' or '.join(map(str, num_keypoints))}")
    with gc_paused():
        return pose_dataset_from_json(data, path, points_layout(num))


# mmpose's estimate of a person's segment area from its box, for files without 'area' (PoseTrack18, AIC,
# CrowdPose): BaseCocoStyleDataset.parse_data_info clips the box to the image and takes 0.53 of it, at least 1.
AREA_FROM_BOX = 0.53


def _areas(anns: list[dict], bboxes: np.ndarray, images: list[dict]) -> np.ndarray:
    """(N,) each person's 'area', or where absent mmpose's estimate from its box (:data:`AREA_FROM_BOX`).

    The box is clipped to the image as mmpose does when the image entry has its size.
    """
    areas = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
    missing = np.nonzero(np.isnan(areas))[0]
    if not len(missing):
        return areas
    sizes = {im["id"]: (im.get("width"), im.get("height")) for im in images}
    for i in missing.tolist():
        x, y, w, h = bboxes[i]
        x1, y1, x2, y2 = x, y, x + w, y + h
        width, height = sizes.get(anns[i]["image_id"], (None, None))
        if is_number(width) and is_number(height) and width > 0 and height > 0:
            x1, x2 = np.clip([x1, x2], 0, width - 1)
            y1, y2 = np.clip([y1, y2], 0, height - 1)
        areas[i] = max((x2 - x1) * (y2 - y1) * AREA_FROM_BOX, 1.0)
    return areas


def _first_duplicate(ids: np.ndarray) -> int:
    uniq, counts = np.unique(ids, return_counts=True)
    return int(uniq[counts > 1][0])


def _int_array(values: list, records: list[dict], key: str, path: str, where: str = "annotation") -> np.ndarray:
    """(n,) int64 of ids; a non-integer id is a :class:`UserError` naming the record."""
    for i, v in enumerate(values):
        if type(v) is not int or not -(2**63) <= v < 2**63:
            name = records[i].get("id", f"#{i}") if key != "id" else f"#{i}"
            raise UserError(f"{path}: {where} {name}: '{key}' must be an integer (64-bit), got {v!r}")
    return np.array(values, dtype=np.int64)


def _layout_from_flat(anns: list[dict], path: str) -> Layout:
    for i, ann in enumerate(anns):
        kpts = ann.get("keypoints")
        if isinstance(kpts, list) and kpts:
            if len(kpts) % 3 or len(kpts) // 3 not in (17, 26, 133, 136):
                raise UserError(
                    f"{path}: annotation {ann.get('id', f'#{i}')}: 'keypoints' has {len(kpts)} values; "
                    "expected 3 x 17, 26, 133 or 136"
                )
            return layout_for(len(kpts) // 3)
    return COCO17


def _gather(anns: list[dict], key: str, num: int, path: str, required: bool) -> np.ndarray:
    """(n, num, 3) float64 from each annotation's flat list under ``key``; absent -> zeros unless required."""
    values = [a.get(key) for a in anns]
    n, width = len(values), 3 * num
    try:  # fast path: every row present, a list of the right length, all numbers
        if all(type(v) is list for v in values) and all(len(v) == width for v in values) and all_numbers(values):
            return np.fromiter(chain.from_iterable(values), dtype=np.float64, count=n * width).reshape(n, num, 3)
    except (TypeError, ValueError):
        pass  # the checks below name the culprit
    out = np.zeros((n, num, 3), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None and not required:
            continue  # absent part: not labelled
        if v is None:
            raise UserError(f"{path}: annotation {anns[i]['id']} is missing required key '{key}'")
        if type(v) is not list or len(v) != width:
            got = f"{len(v)} values" if isinstance(v, list) else f"a {type(v).__name__}"
            raise UserError(f"{path}: annotation {anns[i]['id']}: '{key}' has {got}, expected {width} ({num} x 3)")
        bad = next((x for x in v if type(x) not in (int, float) and x is not None), None)
        if bad is not None:
            raise UserError(f"{path}: annotation {anns[i]['id']}: '{key}' must be numbers, got {bad!r}")
        out[i] = np.array(v, dtype=np.float64).reshape(num, 3)  # null -> NaN, refused by the caller
    return out


# --------------------------------------------------------------------------- writing


def _numbers(a: np.ndarray) -> list:
    """Flat list with integral values written as ints (COCO writes 2, not 2.0)."""
    flat = a.reshape(-1)
    return [int(v) if v.is_integer() else float(v) for v in flat.tolist()]


def tight_box(points: np.ndarray) -> list[float]:
    """[x, y, w, h] of the labelled (v > 0) points, zeros when none is labelled."""
    vis = points[:, 2] > 0
    if not vis.any():
        return [0.0, 0.0, 0.0, 0.0]
    xy = points[vis, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _base_annotation(ds: PoseDataset, i: int) -> dict:
    ann = dict(ds.annotations[i])
    ann["id"] = int(ds.ann_ids[i])
    ann["image_id"] = int(ds.image_ids[i])
    ann["category_id"] = int(ds.category_ids[i])
    ann["bbox"] = [float(v) for v in ds.bboxes[i]]
    ann["area"] = float(ds.areas[i])
    ann["iscrowd"] = int(ds.iscrowd[i])
    return ann


def _document(ds: PoseDataset, annotations: list[dict], layout: Layout) -> dict:
    doc = dict(ds.extra)
    doc["images"] = ds.images
    doc["annotations"] = annotations
    doc["categories"] = [_category_for(c, layout) for c in ds.categories] or [_category_for({}, layout)]
    return doc


def _category_for(cat: dict, layout: Layout) -> dict:
    out = dict(cat)
    out.setdefault("supercategory", "person")
    out.setdefault("id", 1)
    out.setdefault("name", "person")
    # COCO-WholeBody keeps the 17 body names in its category; flat layouts list every point.
    names = layout.names[:17] if layout is WHOLEBODY133 else layout.names
    out["keypoints"] = list(names)
    links = layout.skeleton if layout is not WHOLEBODY133 else layout.skeleton[(layout.skeleton < 17).all(axis=1)]
    out["skeleton"] = (links + 1).tolist()  # COCO categories count from 1
    return out


def wholebody_document(ds: PoseDataset) -> dict:
    """The COCO-WholeBody json (split part keys, part boxes and validity flags) of a 133-point dataset."""
    if ds.layout is not WHOLEBODY133:
        raise ValueError(f"wholebody_document needs 133 points, got the {ds.layout.name} layout")
    anns = []
    for i in range(len(ds)):
        ann = _base_annotation(ds, i)
        pts = ds.keypoints[i]
        for part in PART_NAMES:
            ann[WHOLEBODY_KPT_KEYS[part]] = _numbers(pts[WHOLEBODY133.parts[part]])
        for part, key in WHOLEBODY_VALID_KEYS.items():
            ann[key] = bool((pts[WHOLEBODY133.parts[part], 2] > 0).any())
        for part, key in WHOLEBODY_BOX_KEYS.items():
            if not ann[WHOLEBODY_VALID_KEYS[part]]:
                ann[key] = [0.0, 0.0, 0.0, 0.0]
            elif key not in ann:
                ann[key] = tight_box(pts[WHOLEBODY133.parts[part]])
        ann["num_keypoints"] = int((pts[WHOLEBODY133.parts["body"], 2] > 0).sum())
        anns.append(ann)
    return _document(ds, anns, WHOLEBODY133)


def flat_document(ds: PoseDataset) -> dict:
    """The json with one flat ``keypoints`` list per person (COCO-17, Halpe-26/136, or flat 133).

    A layout with a face and hands (136) keeps the persons' ``face_box`` / ``lefthand_box`` /
    ``righthand_box`` when they have them, so that 133 -> 136 -> 133 loses nothing; layouts
    without those parts (17, 26) drop them.
    """
    part_boxes = all(part in ds.layout.parts for part in WHOLEBODY_BOX_KEYS)
    anns = []
    for i in range(len(ds)):
        ann = _base_annotation(ds, i)
        if not part_boxes:
            for key in WHOLEBODY_BOX_KEYS.values():
                ann.pop(key, None)
        ann["keypoints"] = _numbers(ds.keypoints[i])
        ann["num_keypoints"] = int((ds.keypoints[i, :, 2] > 0).sum())
        anns.append(ann)
    return _document(ds, anns, ds.layout)


def pose_document(ds: PoseDataset) -> dict:
    """The json of ``ds`` in its layout's native format: COCO-WholeBody keys for 133, one flat list otherwise."""
    return wholebody_document(ds) if ds.layout is WHOLEBODY133 else flat_document(ds)


WRITE_CHUNK = 10_000  # persons converted to json objects at a time by write_pose_dataset


def write_pose_dataset(ds: PoseDataset | Iterable[PoseDataset], path: str | os.PathLike) -> None:
    """Write ``ds`` in its layout's native format (COCO-WholeBody keys for 133), atomically.

    Streamed: :data:`WRITE_CHUNK` persons at a time become json objects and are written, so the
    output is never held whole in memory (10^6 persons of 136 points are 3 GB of json, 10 GB
    as Python lists). ``ds`` may be an iterable of datasets, the parts of one (one layout; the
    first part's images, categories and other keys head the file), e.g. converted chunk by chunk.
    The bytes are those of ``orjson.dumps(pose_document(ds))``.
    """
    parts = iter(_chunks(ds) if isinstance(ds, PoseDataset) else ds)
    first = next(parts)
    doc = pose_document(first.subset(np.zeros(0, dtype=np.int64)))
    head = {k: v for k, v in doc.items() if k not in ("annotations", "categories")}
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected an output file name")
    new_parents = new_outputs_removed_on_error(path.parent) if not path.parent.exists() else contextlib.nullcontext()
    with new_parents:
        writer = JsonDocumentWriter(path, head, "annotations", {"categories": doc["categories"]})
        try:
            for part in chain([first], parts):
                if part.layout is not first.layout:
                    raise ValueError(f"parts of one file in two layouts: {first.layout.name}, {part.layout.name}")
                writer.write(pose_document(part)["annotations"])
            writer.close()
        except BaseException:
            writer.abort()
            raise


def _chunks(ds: PoseDataset, size: int = WRITE_CHUNK) -> Iterator[PoseDataset]:
    """``ds`` in parts of ``size`` persons (one empty part for an empty dataset)."""
    for start in range(0, max(len(ds), 1), size):
        yield ds.subset(np.arange(start, min(len(ds), start + size)))
