"""Body keypoint datasets as data: CrowdPose, AI Challenger, MPII, OCHuman, PoseTrack18, Human-Art, Halpe, COCO.

Each dataset is one entry of ``labeltool/data/body_datasets.json`` (a :class:`BodyFormat`):
its keypoint names in order (mmpose's dataset_info), the json shape its files have, which
of its points are COCO-17 points, which are extra points COCO-17 lacks, and what in a
file's content says it is this dataset. Nothing below branches on a dataset's name.

Adding a dataset: one entry in the json table; if its files have a json shape none of
:data:`READERS` reads, one reader function here (parsed json -> a :class:`PoseDataset` in the
dataset's own layout).

Used by ``wbt distill --ann`` (:mod:`labeltool.distill.inputs`) and ``wbt convert``, so
the mapping to COCO-17 lives in one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from labeltool.convert import convert_dataset
from labeltool.errors import UserError
from labeltool.io import pose
from labeltool.io.jsonfile import MAX_ABS_VALUE, is_number, read_json
from labeltool.io.paths import ids_from_file_names
from labeltool.io.pose import PoseDataset, has_wholebody_part_keys, pose_dataset_from_json, tight_box
from labeltool.layouts import COCO17, LAYOUTS, Layout

BUILTIN_LAYOUTS = {layout.name: layout for layout in LAYOUTS.values()}
MPII_PIXEL_STD = 200.0  # mmpose's MpiiDataset: 'scale' is the box side / 200
MPII_CENTER_SHIFT = 15.0  # ... and moves the centre down by 15 / 200 of the box side ("to avoid cropping limbs")
BOX_MARGIN = 0.1  # a box from points: their extent grown by this share of it per side
_NAME_SYNONYMS = {"head": "head_top", "top_head": "head_top", "headtop": "head_top"}


@dataclass(frozen=True)
class BodyFormat:
    """One dataset's keypoints, its json shape and its relation to COCO-17 (see the module docstring)."""

    name: str
    title: str
    mmpose: str  # where mmpose defines it (docs cite this)
    shape: str  # the json shape: a key of READERS
    layout: Layout  # the dataset's own points
    keypoints_key: str  # coco shape: the annotation key of the flat point list
    coco17: np.ndarray  # (17,) the dataset's index of each COCO-17 point, -1 where it has none
    extra: np.ndarray  # (E,) the dataset's indices of the extra points kept
    face_from: tuple[int, int, float, float] | None  # (top, bottom) indices into extra, centre, side factor
    to_halpe136: dict[str, int]  # Halpe-136 point name -> the dataset's index
    detect: dict

    @property
    def extra_names(self) -> tuple[str, ...]:
        return tuple(self.layout.names[i] for i in self.extra)

    @property
    def missing(self) -> np.ndarray:
        """(17,) bool: COCO-17 points the dataset has no point for (the body teacher predicts them)."""
        return self.coco17 < 0

    @property
    def is_coco17_order(self) -> bool:
        """The first 17 points are COCO's, in COCO's order (their values are copied as ground truth unmoved)."""
        return bool((self.coco17 == np.arange(17)).all())

    def coco17_points(self, native: np.ndarray) -> np.ndarray:
        """(N, K, 3) points of this dataset -> (N, 17, 3) COCO-17; zeros where it has no such point."""
        out = np.zeros((len(native), 17, 3), dtype=np.float64)
        have = self.coco17 >= 0
        out[:, have] = native[:, self.coco17[have]]
        return out

    def extra_points(self, native: np.ndarray) -> np.ndarray:
        """(N, E) x 3 extra points of (N, K, 3) points of this dataset."""
        return np.ascontiguousarray(native[:, self.extra], dtype=np.float64)

    def describe(self) -> dict:
        """For summary.json: the format, where mmpose defines it, and how its points map."""
        return {
            "format": self.name,
            "title": self.title,
            "definition": f"mmpose {self.mmpose}",
            "keypoints": len(self.layout.names),
            "to_coco17": {
                COCO17.names[k]: self.layout.names[i] for k, i in enumerate(self.coco17.tolist()) if i >= 0
            },
            "coco17_from_body_teacher": [COCO17.names[k] for k in np.nonzero(self.missing)[0]],
            "extra_points": list(self.extra_names),
        }


def _normalise(name: str) -> str:
    name = name.strip().lower().replace("-", "_").replace(" ", "_")
    return _NAME_SYNONYMS.get(name, name)


def _flip_index(names: tuple[str, ...]) -> np.ndarray:
    flip = np.arange(len(names))
    for i, n in enumerate(names):
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if n.startswith(a) and n.replace(a, b, 1) in names:
                flip[i] = names.index(n.replace(a, b, 1))
    return flip


def _format(name: str, raw: dict) -> BodyFormat:
    if "layout" in raw:
        layout = BUILTIN_LAYOUTS[raw["layout"]]
    else:
        names = tuple(raw["names"])
        layout = Layout(
            name=name,
            names=names,
            parts={"body": np.arange(len(names))},
            flip_index=_flip_index(names),
            skeleton=np.zeros((0, 2), dtype=np.int64),
            sigmas=np.asarray(raw["sigmas"], dtype=np.float64),
        )
    names = layout.names
    coco17 = np.array([names.index(n) if n in names else -1 for n in COCO17.names], dtype=np.int64)
    if "extra" in raw:
        extra = np.array([names.index(n) for n in raw["extra"]], dtype=np.int64)
    else:
        extra = np.array([i for i, n in enumerate(names) if n not in COCO17.names], dtype=np.int64)
    extra_names = [names[i] for i in extra]
    face = raw.get("face_from")
    face_from = None
    if face:
        face_from = (extra_names.index(face["top"]), extra_names.index(face["bottom"]), face["center"], face["side"])
    return BodyFormat(
        name=name,
        title=raw["title"],
        mmpose=raw["mmpose"],
        shape=raw["shape"],
        layout=layout,
        keypoints_key=raw.get("keypoints_key", "keypoints"),
        coco17=coco17,
        extra=extra,
        face_from=face_from,
        to_halpe136={h: names.index(n) for h, n in raw.get("to_halpe136", {}).items()},
        detect=raw["detect"],
    )


@cache
def formats() -> dict[str, BodyFormat]:
    """Every dataset format, by name (the ``--format`` choices)."""
    raw = json.loads(resources.files("labeltool").joinpath("data/body_datasets.json").read_text())
    return {name: _format(name, entry) for name, entry in raw.items() if not name.startswith("_")}


def format_names() -> str:
    """The ``--format`` choices for help texts, from the table (no hand-kept list of names)."""
    return ", ".join(formats())


def format_titles() -> str:
    """The datasets' titles for help texts, from the table."""
    return ", ".join(dict.fromkeys(f.title for f in formats().values()))


def get_format(name: str) -> BodyFormat:
    if name not in formats():
        raise UserError(f"--format {name}: unknown dataset format (known: {', '.join(formats())})")
    return formats()[name]


# --------------------------------------------------------------------------- one dataset in memory


@dataclass
class BodyDataset:
    """A file of one dataset: its persons in the dataset's own layout (``native``) and its format."""

    format: BodyFormat
    native: PoseDataset

    @property
    def extra(self) -> np.ndarray:
        """(N, E, 3) the extra points (names: ``format.extra_names``)."""
        return self.format.extra_points(self.native.keypoints)

    def coco17(self) -> PoseDataset:
        """The persons with their COCO-17 points (copied by name; zeros where the dataset has none)."""
        return replace(self.native, layout=COCO17, keypoints=self.format.coco17_points(self.native.keypoints))

    def to_layout(self, dst: Layout) -> PoseDataset:
        """The persons in a 17 / 26 / 133 / 136 layout (``wbt convert``).

        Built-in layouts convert as :func:`labeltool.convert.convert_dataset`; other
        datasets go through their COCO-17 points, and into a Halpe layout also their own
        points that are Halpe's head / neck / hip (``to_halpe136``), which then win over a
        neck or hip derived from the shoulders or hips.
        """
        if self.native.layout.name in BUILTIN_LAYOUTS:
            return convert_dataset(self.native, dst)
        out = convert_dataset(self.coco17(), dst)
        native = self.native.keypoints
        for halpe_name, i in self.format.to_halpe136.items():
            if halpe_name in dst.names:
                j = dst.index(halpe_name)
                labelled = native[:, i, 2] > 0
                out.keypoints[labelled, j] = native[labelled, i]
        return out

    def to_layout_in_parts(self, dst: Layout, size: int | None = None) -> Iterator[PoseDataset]:
        """:meth:`to_layout`, ``size`` persons at a time (default :data:`labeltool.io.pose.WRITE_CHUNK`).

        For :func:`labeltool.io.pose.write_pose_dataset`: the converted arrays (and the padded and
        index-mapped temporaries, 3.2 GB each for 10^6 persons of 136 points) exist one part at a time.
        """
        size = size or pose.WRITE_CHUNK
        n = len(self.native)
        for start in range(0, max(n, 1), size):
            part = self.native.subset(np.arange(start, min(n, start + size)))
            yield replace(self, native=part).to_layout(dst)


# --------------------------------------------------------------------------- readers, one per json shape


def _read_coco(data: Any, path: str, fmt: BodyFormat) -> PoseDataset:
    """COCO-style object (``images``, ``annotations``, points under ``fmt.keypoints_key``): CrowdPose, AIC,
    OCHuman, PoseTrack18 (nested ``file_name``, ``vid_id``, ``frame_id``, ``ignore_regions_*`` kept on the
    image entries), Human-Art, Halpe, COCO. A person of a non-COCO dataset without a box gets one from its points."""
    if fmt.layout.name not in BUILTIN_LAYOUTS:
        _boxes_from_points(data, fmt)
    ds = pose_dataset_from_json(data, path, fmt.layout, fmt.keypoints_key)
    if fmt.keypoints_key != "keypoints":
        for ann in ds.annotations:
            ann.pop("keypoints", None)  # Human-Art's 17-point copy of the same points
    return ds


def _boxes_from_points(data: Any, fmt: BodyFormat) -> None:
    """Persons of a body dataset without a ``bbox`` (mmpose skips them) get one from their labelled points.

    COCO's own files always have boxes; this is for the other datasets' (a PoseTrack person
    with points but no box). Malformed points are left for the loader to report.
    """
    anns = data.get("annotations") if isinstance(data, dict) else None
    for ann in anns if isinstance(anns, list) else []:
        if not isinstance(ann, dict) or "bbox" in ann:
            continue
        values = ann.get(fmt.keypoints_key)
        if isinstance(values, list) and len(values) == 3 * fmt.layout.num_keypoints and all(map(is_number, values)):
            ann["bbox"] = box_from_points(np.array(values, dtype=np.float64).reshape(-1, 3), BOX_MARGIN).tolist()


def _read_mpii(data: Any, path: str, fmt: BodyFormat) -> PoseDataset:
    """mmpose's MPII json: a list of ``{image, joints (K x 2), joints_vis (K), center, scale}``.

    As mmpose's ``MpiiDataset``: coordinates are MATLAB's 1-based ones, so 1 is subtracted;
    the image id is the file name's number. A labelled joint (``joints_vis`` > 0) gets
    visibility 2. The person box is the labelled joints' extent grown by ``BOX_MARGIN`` per
    side; with fewer than two labelled joints, mmpose's box from ``center`` / ``scale``.
    """
    if not isinstance(data, list):
        raise UserError(f"{path}: expected MPII's json list of persons, got {type(data).__name__}")
    num = fmt.layout.num_keypoints
    n = len(data)
    keypoints = np.zeros((n, num, 3), dtype=np.float64)
    bboxes = np.zeros((n, 4), dtype=np.float64)
    images: dict[str, int] = {}
    image_ids = np.zeros(n, dtype=np.int64)
    annotations = []
    for i, person in enumerate(data):
        where = f"{path}: person #{i}"
        if not isinstance(person, dict):
            raise UserError(f"{where} is not an object")
        for key in ("image", "joints", "joints_vis"):
            if key not in person:
                raise UserError(f"{where} is missing required key '{key}'")
        if not isinstance(person["image"], str) or not person["image"]:
            raise UserError(f"{where}: 'image' must be a file name")
        joints, vis = person["joints"], person["joints_vis"]
        # numbers only: numpy would take "12" or true as a coordinate; 1e300 would fail at write after the work
        shape_ok = isinstance(joints, list) and len(joints) == num and isinstance(vis, list) and len(vis) == num
        shape_ok = shape_ok and all(isinstance(j, list) and len(j) == 2 for j in joints)
        if not (shape_ok and all(is_number(v) for j in joints for v in j)):
            raise UserError(
                f"{where}: 'joints' must be {num} [x, y] pairs of numbers within ±{MAX_ABS_VALUE:g} (not strings, "
                "booleans, null or infinity)"
            )
        if not all(is_number(v) or isinstance(v, bool) for v in vis):
            raise UserError(f"{where}: 'joints_vis' must be {num} numbers (0: not labelled)")
        joints = np.array(joints, dtype=np.float64)
        vis = np.array(vis, dtype=np.float64)
        on = vis > 0
        keypoints[i, on, :2] = joints[on] - 1.0  # MATLAB's 1-based pixels
        keypoints[i, on, 2] = 2.0
        bboxes[i] = _mpii_box(keypoints[i], person, where)
        images.setdefault(person["image"], len(images))
        annotations.append({k: v for k, v in person.items() if k not in ("image", "joints", "joints_vis")})
    numbered = ids_from_file_names(list(images))
    ids = {name: numbered[k] if numbered else k + 1 for name, k in images.items()}
    for i, person in enumerate(data):
        image_ids[i] = ids[person["image"]]
    return PoseDataset(
        layout=fmt.layout,
        keypoints=keypoints,
        ann_ids=np.arange(1, n + 1, dtype=np.int64),
        image_ids=image_ids,
        category_ids=np.ones(n, dtype=np.int64),
        bboxes=bboxes,
        areas=bboxes[:, 2] * bboxes[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        annotations=annotations,
        images=[{"id": ids[name], "file_name": name} for name in images],
        categories=[],
        extra={},
        path=path,
    )


def _mpii_box(points: np.ndarray, person: dict, where: str) -> np.ndarray:
    if (points[:, 2] > 0).sum() >= 2:
        return box_from_points(points, BOX_MARGIN)
    center, scale = person.get("center"), person.get("scale")
    if not (isinstance(center, list) and len(center) == 2 and all(map(is_number, center)) and is_number(scale)):
        return np.zeros(4)
    if scale <= 0:  # a negative scale would give a negative box
        raise UserError(f"{where}: 'scale' must be > 0 (the box side / 200), got {scale!r}")
    if center[0] == -1:
        return np.zeros(4)
    side = float(scale) * MPII_PIXEL_STD
    cx, cy = center[0] - 1.0, center[1] + MPII_CENTER_SHIFT * float(scale) - 1.0
    return np.array([cx - side / 2, cy - side / 2, side, side])


def box_from_points(points: np.ndarray, margin: float) -> np.ndarray:
    """[x, y, w, h] of the labelled points (K, 3) grown by ``margin`` of their extent per side (x, y >= 0)."""
    x, y, w, h = tight_box(points)
    x0, y0 = max(x - margin * w, 0.0), max(y - margin * h, 0.0)
    return np.array([x0, y0, x + w + margin * w - x0, y + h + margin * h - y0])


READERS: dict[str, Callable[[Any, str, BodyFormat], PoseDataset]] = {"coco": _read_coco, "mpii": _read_mpii}


# --------------------------------------------------------------------------- detection


def _annotations(data: Any) -> list:
    """The file's annotation list ([] when it has none)."""
    anns = data.get("annotations") if isinstance(data, dict) else None
    return anns if isinstance(anns, list) else []


def _first(items: Any, key: str | None = None) -> dict:
    """The first object of a list (with ``key``, the first holding a non-empty list under it); {} when none."""
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and (key is None or (isinstance(item.get(key), list) and item[key])):
                return item
    return {}


def _named_by_category(data: dict, candidates: list[BodyFormat]) -> list[BodyFormat]:
    """The ``candidates`` whose point names (normalised) are the ones the file's category lists, in order;
    [] when the category names no points of their count."""
    names = _first(data.get("categories"), "keypoints").get("keypoints")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return []
    names = list(map(_normalise, names))
    return [f for f in candidates if [_normalise(n) for n in f.layout.names[: len(names)]] == names
            and f.detect["count"] == len(names)]  # fmt: skip


def _check_named_format(data: Any, path: str, fmt: BodyFormat) -> None:
    """``--format X`` on a file whose category names its points as another dataset's is a contradiction.

    AI Challenger and CrowdPose both have 14 points, in other orders: read as the wrong one, left
    and right (and head / neck) swap silently. Names that match no known dataset say nothing.
    """
    if fmt.shape != "coco" or not isinstance(data, dict):
        return
    same_count = [f for f in formats().values() if f.shape == "coco" and f.detect["count"] == fmt.detect["count"]]
    named = _named_by_category(data, same_count)
    if named and fmt not in named:
        raise UserError(
            f"{path}: --format {fmt.name}, but its category names the points as {named[0].title}'s "
            f"({', '.join(named[0].layout.names[:3])}, ...): they would map to the wrong joints; "
            f"give --format {named[0].name}, or fix the names"
        )


def detect_format(data: Any, path: str) -> BodyFormat:
    """Which dataset a parsed file is, from its content (see ``detect`` in body_datasets.json).

    A json list with ``joints`` is MPII. A COCO-style object: COCO-WholeBody part keys, or
    the number of points, narrowed by the category's keypoint names when it lists them, then
    by keys only one dataset's files have (PoseTrack's ``vid_id``, Human-Art's
    ``keypoints_21``, CrowdPose's ``crowdIndex``). Ambiguous content is a :class:`UserError`
    asking for ``--format``, never a guess.
    """
    known = formats()
    if isinstance(data, list):
        person = _first(data)
        if "joints" in person:
            return next(f for f in known.values() if f.shape == "mpii")
        if "bbox" in person and "image_id" in person:
            raise UserError(f"{path}: a list of detections, not keypoint annotations; give it as --boxes with --images")
        raise UserError(f"{path}: a json list, but not MPII's (objects with 'image', 'joints', 'joints_vis')")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a json object with 'images' and 'annotations', got {type(data).__name__}")
    if has_wholebody_part_keys(_annotations(data)[:100]):
        return known["coco_wholebody"]
    kpts = _first(data.get("annotations"), "keypoints").get("keypoints")
    if kpts is None:
        return known["coco17"]  # no person has points: nothing depends on the layout
    count = len(kpts) // 3 if len(kpts) % 3 == 0 else -1
    candidates = [f for f in known.values() if f.shape == "coco" and f.detect["count"] == count]
    if not candidates:
        counts = sorted({f"{f.detect['count']} ({f.title})" for f in known.values()})
        raise UserError(f"{path}: 'keypoints' has {len(kpts)} values; wbt reads 3 x {', '.join(counts)}")
    candidates = _named_by_category(data, candidates) or candidates
    image, ann = _first(data.get("images")), _first(data.get("annotations"), "keypoints")
    hinted = [
        f
        for f in candidates
        if (f.detect.get("image_keys") or f.detect.get("annotation_keys"))
        and all(k in image for k in f.detect.get("image_keys", []))
        and all(k in ann for k in f.detect.get("annotation_keys", []))
    ]
    if len(hinted) == 1:
        return hinted[0]
    if len(candidates) == 1:
        return candidates[0]
    default = [f for f in candidates if f.detect.get("default")]
    if len(default) == 1 and not hinted:
        return default[0]
    choices = " | ".join(f.name for f in candidates)
    raise UserError(f"{path}: {count}-point keypoints could be {', '.join(f.title for f in candidates)}; "
                    f"name the dataset with --format {choices}")  # fmt: skip


def read_body_dataset(path: str | os.PathLike, format_name: str | None = None) -> BodyDataset:
    """Read a keypoint file of any known dataset: its format from ``format_name`` or detected from the content."""
    path = str(path)
    data = read_json(path)
    fmt = get_format(format_name) if format_name else detect_format(data, path)
    if format_name:
        _check_named_format(data, path, fmt)
    if fmt.shape == "coco" and not isinstance(data, dict):
        raise UserError(f"{path}: --format {fmt.name} files are json objects with 'images' and 'annotations'")
    return BodyDataset(fmt, READERS[fmt.shape](data, path, fmt))


__all__ = [
    "BodyDataset",
    "BodyFormat",
    "READERS",
    "box_from_points",
    "detect_format",
    "formats",
    "get_format",
    "read_body_dataset",
]
