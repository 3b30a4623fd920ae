"""Load, validate and write COCO person-keypoint, COCO-WholeBody and Halpe json files.

Every format is read into one in-memory form, :class:`PoseDataset`: per person the ids,
bbox, area, iscrowd and a (K, 3) keypoint array (x, y, visibility; visibility may be a
float, any v > 0 means labelled). Fields the format does not model (segmentation, part
boxes, custom keys) and every image / category / top-level entry are kept, so a file
read and written back loses nothing.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from labeltool.errors import UserError
from labeltool.layouts import (
    COCO17,
    HALPE26,
    HALPE136,
    PART_NAMES,
    WHOLEBODY133,
    WHOLEBODY_BOX_KEYS,
    WHOLEBODY_KPT_KEYS,
    WHOLEBODY_VALID_KEYS,
    Layout,
    layout_for,
)

try:  # orjson parses large files several times faster and with less memory
    import orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    orjson = None

REQUIRED_ANN_KEYS = ("id", "image_id", "bbox")
# Coordinates, sizes and scores beyond this are a broken file, not an image (and would overflow on write).
MAX_ABS_VALUE = 1e7
REQUIRED_IMAGE_KEYS = ("id", "file_name")
# Keys that the keypoint arrays replace; everything else in an annotation is kept verbatim.
KEYPOINT_KEYS = frozenset(WHOLEBODY_KPT_KEYS.values()) | frozenset(WHOLEBODY_VALID_KEYS.values())
_WHOLEBODY_PART_KEYS = frozenset(WHOLEBODY_KPT_KEYS.values()) - {"keypoints"}


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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a big tree of JSON objects.

    Parsed JSON has no reference cycles, but its millions of new containers trigger repeated
    full collections that walk all of them: pausing halves the load time of a 240 MB file.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# First bytes of binary formats users pass by mistake: named instead of "invalid JSON".
_BINARY_MAGIC = {
    b"PAR1": "a parquet file",
    b"PK\x03\x04": "a zip file",
    b"\x1f\x8b": "a gzip file",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x93NUMPY": "a numpy .npy file",
    b"\x80": "a pickle file",
    b"%PDF": "a PDF file",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
}
_JSON_FIRST_BYTES = b'{["-0123456789tfn"'
_NON_JSON_CONSTANTS = ("NaN", "-Infinity", "Infinity")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a json file; a missing file or bad json is a one-line :class:`UserError`.

    The first bytes are checked before the file is read whole, so a large binary or junk
    file is refused at once (and named: a parquet file, a zip...).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a json file")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file, expected a json file")
    check_json_start(path)
    data = path.read_bytes()
    try:
        with _gc_paused():
            return orjson.loads(data) if orjson is not None else json.loads(data)
    except RecursionError:  # only the json fallback recurses; orjson stops at depth 1024
        raise UserError(f"{path}: invalid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: {_json_error(err, data)}") from None


def check_json_start(path: Path) -> None:
    """Refuse a file whose first bytes cannot start a JSON document, naming known binary formats.

    Reads 64 bytes: a 1 GB binary or junk file is refused without being read whole.
    """
    with open(path, "rb") as f:
        head = f.read(64)
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise UserError(f"{path}: is {what}, expected JSON" + (" (save it as UTF-8)" if "UTF-16" in what else ""))
    if head.startswith(b"\xef\xbb\xbf"):
        raise UserError(f"{path}: starts with a byte-order mark (BOM); save it as UTF-8 without BOM")
    first = head.lstrip(b" \t\r\n")[:1]
    if not first:
        if len(head) < 64:
            raise UserError(f"{path}: is empty, expected JSON")
        return  # long leading whitespace: let the parser decide
    if first not in _JSON_FIRST_BYTES:
        if b"\x00" in head or not _is_text(head):
            raise UserError(f"{path}: is a binary file, expected JSON")
        raise UserError(f"{path}: not JSON (starts with {head.strip()[:20].decode('utf-8', 'replace')!r})")


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start > len(head) - 4  # a multi-byte character cut by the 64-byte window
    return True


def _json_error(err: Exception, data: bytes) -> str:
    """What is wrong with ``data``, with line and column, naming NaN / Infinity (valid in Python, not in JSON)."""
    if isinstance(err, json.JSONDecodeError) and err.pos is not None:
        if "depth" in err.msg or "recursion" in err.msg:
            return "invalid JSON: nested too deeply"
        if "UTF-8" in err.msg or not err.doc:
            return _utf8_error(data) or f"invalid JSON: {err.msg}"
        near = err.doc[max(0, err.pos - 1) : err.pos + 9]
        constant = next((c for c in _NON_JSON_CONSTANTS if c in near), None)
        what = f"{constant} is not a JSON number (write null or a finite number)" if constant else err.msg
        return f"invalid JSON at line {err.lineno} column {err.colno}: {what}"
    return _utf8_error(data) or "invalid JSON"


def _utf8_error(data: bytes) -> str | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not UTF-8 text ({err.reason} at byte {err.start})"
    return None


def detect_format(annotations: list[dict], path: str = "") -> str:
    """'wholebody' (split part keys), or 'flat' (one keypoints list of 17/26/133/136 points)."""
    for ann in annotations:
        if isinstance(ann, dict) and not _WHOLEBODY_PART_KEYS.isdisjoint(ann):
            return "wholebody"
    return "flat"


def load_pose_dataset(path: str | os.PathLike, layout: Layout | None = None) -> PoseDataset:
    """Load a COCO / COCO-WholeBody / Halpe keypoint file, validated.

    The layout is detected from the keys and the keypoint count unless ``layout`` is given.
    Raises :class:`UserError` naming the file and the problem for any malformed input.
    """
    with _gc_paused():
        return _load_pose_dataset(str(path), layout)


def _load_pose_dataset(path: str, layout: Layout | None) -> PoseDataset:
    return pose_dataset_from_json(read_json(path), path, layout)


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

    fmt = detect_format(anns, path)
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
    bad = _first_out_of_range(keypoints)
    if bad is not None:
        raise UserError(
            f"{path}: annotation {ann_ids[bad]}: keypoints contain null, NaN or infinity, "
            f"or a value beyond ±{MAX_ABS_VALUE:g}"
        )

    try:
        bboxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(n, 4)
        ok = _first_out_of_range(bboxes) is None and _all_numbers(a["bbox"] for a in anns)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        for ann in anns:
            box = ann["bbox"]
            if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
                raise UserError(
                    f"{path}: annotation {ann['id']}: 'bbox' must be 4 numbers [x, y, w, h] within ±{MAX_ABS_VALUE:g}"
                )
    try:
        # PoseTrack18's files write iscrowd as a JSON boolean: True/False are 1/0 here (never as coordinates)
        iscrowd = np.array([a.get("iscrowd", 0) for a in anns], dtype=np.int64)
        category_ids = np.array([a.get("category_id", 1) for a in anns], dtype=np.int64)
        ok = _all_numbers([[a.get("area", 0), a.get("category_id", 1)] for a in anns])
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
        if _is_number(width) and _is_number(height) and width > 0 and height > 0:
            x1, x2 = np.clip([x1, x2], 0, width - 1)
            y1, y2 = np.clip([y1, y2], 0, height - 1)
        areas[i] = max((x2 - x1) * (y2 - y1) * AREA_FROM_BOX, 1.0)
    return areas


def _is_number(v: Any) -> bool:
    """A JSON number (not a bool or a string) that is finite and within ±MAX_ABS_VALUE."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_ABS_VALUE


def _all_numbers(rows: Iterator[list]) -> bool:
    """Whether every value of the rows is an int or float (numpy would take strings and bools as numbers)."""
    return set(map(type, chain.from_iterable(rows))) <= {int, float}


def _first_out_of_range(values: np.ndarray) -> int | None:
    """Index of the first row with a NaN, an infinity or a value beyond ±MAX_ABS_VALUE, else None."""
    ok = np.abs(values.reshape(len(values), -1 if len(values) else 0)) <= MAX_ABS_VALUE  # NaN compares False
    if ok.all():
        return None
    return int(np.nonzero(~ok.all(axis=1))[0][0])


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
        if all(type(v) is list for v in values) and all(len(v) == width for v in values) and _all_numbers(values):
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


def load_results(path: str | os.PathLike, images: list[dict], categories: list[dict] | None = None) -> PoseDataset:
    """Load a COCO keypoint results (predictions) file as a :class:`PoseDataset`.

    A results file is a list of ``{image_id, category_id, keypoints, score}``; ``keypoints`` is a
    flat 17/26/133/136 x 3 list, or the body part of the COCO-WholeBody result keys (``foot_kpts``,
    ``face_kpts``, ``lefthand_kpts``, ``righthand_kpts``). ``images`` (the ground truth's image
    entries) give the file names. Annotation ids are 1..N in file order; ``bbox`` is the result's
    own when given, else the tight box of its points; ``score`` and other fields are kept.
    """
    path = str(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise UserError(
            f"{path}: expected a results list [{{image_id, keypoints, score}}, ...], got {type(data).__name__}"
        )
    for i, res in enumerate(data):
        if not isinstance(res, dict):
            raise UserError(f"{path}: results[{i}] is not an object")
        for key in ("image_id", "keypoints"):
            if key not in res:
                raise UserError(f"{path}: results[{i}] is missing required key '{key}'")
        res["id"] = i + 1
    image_ids = _int_array([r["image_id"] for r in data], data, "image_id", path, where="result")
    known = np.array([im["id"] for im in images], dtype=np.int64)
    unknown = np.nonzero(~np.isin(image_ids, known))[0]
    if len(unknown):
        raise UserError(
            f"{path}: result {unknown[0] + 1} refers to image id {image_ids[unknown[0]]}, which is not among the images"
        )
    if detect_format(data, path) == "wholebody":
        layout = WHOLEBODY133
        keypoints = np.zeros((len(data), 133, 3), dtype=np.float64)
        for part in PART_NAMES:
            idx = WHOLEBODY133.parts[part]
            keypoints[:, idx] = _gather(data, WHOLEBODY_KPT_KEYS[part], len(idx), path, required=part == "body")
    else:
        layout = _layout_from_flat(data, path)
        keypoints = _gather(data, "keypoints", layout.num_keypoints, path, required=True)
    bad = _first_out_of_range(keypoints)
    if bad is not None:
        raise UserError(
            f"{path}: result {bad + 1}: keypoints contain null, NaN or infinity, or a value beyond ±{MAX_ABS_VALUE:g}"
        )
    bboxes = np.zeros((len(data), 4), dtype=np.float64)
    for i, res in enumerate(data):
        box = res.get("bbox")
        ok = isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)
        bboxes[i] = box if ok else tight_box(keypoints[i])
        for key in KEYPOINT_KEYS.intersection(res):
            del res[key]
    return PoseDataset(
        layout=layout,
        keypoints=keypoints,
        ann_ids=np.arange(1, len(data) + 1, dtype=np.int64),
        image_ids=image_ids,
        category_ids=np.array([r.get("category_id", 1) for r in data], dtype=np.int64),
        bboxes=bboxes,
        areas=bboxes[:, 2] * bboxes[:, 3],
        iscrowd=np.zeros(len(data), dtype=np.int64),
        annotations=data,
        images=images,
        categories=categories or [],
        path=path,
    )


# --------------------------------------------------------------------------- images


def resolve_inside(root: str | os.PathLike, name: Any) -> Path | None:
    """``root / name`` when the name stays inside ``root``, else None.

    A label file is user input: a ``file_name`` of ``../x.jpg`` or an absolute path must not
    make wbt read files elsewhere. A relative name without ``..`` is inside by construction;
    symlinks in the folder are followed (whoever owns the folder put them there: image folders
    are often links into a dataset store). A name with ``..`` is resolved as the system would
    open it (``..`` after a symlinked folder climbs from the link's target) and must land inside.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    parts = Path(name).parts
    if parts and not os.path.isabs(name) and ".." not in parts:
        return Path(root) / name
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, name))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        return None
    return Path(root) / name


def ids_from_file_names(names: list[str]) -> list[int] | None:
    """Image ids from file names as COCO's (000000000785.jpg -> 785), or None when not every name is numbered.

    A stem counts as a number when it is ASCII digits (``'²'.isdigit()`` is true but ``int('²')``
    fails) that fit a 64-bit id, and no two names give one id.
    """
    stems = [Path(name).stem for name in names]
    if not all(s.isascii() and s.isdigit() for s in stems):
        return None
    ids = [int(s) for s in stems]
    if len(set(ids)) != len(ids) or any(i >= 2**63 for i in ids):
        return None
    return ids


def check_utf8_name(folder: str | os.PathLike, name: str) -> None:
    """Refuse a file name that is not UTF-8 on disk: JSON label files (UTF-8) cannot name it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        raise UserError(
            f"{Path(folder) / raw.decode('utf-8', 'backslashreplace')}: file name is not UTF-8 "
            f"({raw!r}); rename it (the label files are UTF-8 JSON and cannot name it)"
        ) from None


def image_path(images_dir: str | os.PathLike, image: dict) -> Path:
    """Path of an image entry's file under ``images_dir`` (its ``file_name``); a name that
    resolves outside ``images_dir`` is a :class:`UserError` (see :func:`resolve_inside`)."""
    path = resolve_inside(images_dir, image["file_name"])
    if path is None and not (isinstance(image["file_name"], str) and image["file_name"]):
        raise UserError(f"image id {image.get('id')}: 'file_name' must be a non-empty string, got {image['file_name']!r}")
    if path is None:
        raise UserError(
            f"{image['file_name']!r}: file_name of image id {image.get('id')} is outside the image folder {images_dir}"
        )
    return path


def check_images_exist(dataset: PoseDataset, images_dir: str | os.PathLike) -> None:
    """Raise a one-line :class:`UserError` for the first image file that is absent."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: image directory not found")
    for im in dataset.images:
        p = image_path(images_dir, im)
        if not p.is_file():
            raise UserError(f"{p}: image file not found (image id {im['id']} in {dataset.path or 'annotations'})")


def resolve_coco_split(split: str, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``--coco SPLIT``: (ROOT/annotations/person_keypoints_SPLIT.json, ROOT/SPLIT/).

    ROOT comes from ``root`` or ``$COCO_ROOT``.
    """
    root = root or os.environ.get("COCO_ROOT")
    if not root:
        raise UserError(f"--coco {split}: give the COCO root with --root or $COCO_ROOT")
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: COCO root directory not found")
    ann = root / "annotations" / f"person_keypoints_{split}.json"
    images = root / split
    if not ann.is_file():
        raise UserError(
            f"{ann}: annotation file not found (COCO layout: ROOT/annotations/person_keypoints_{split}.json)"
        )
    if not images.is_dir():
        raise UserError(f"{images}: image directory not found (COCO layout: ROOT/{split}/)")
    return ann, images


# --------------------------------------------------------------------------- writing


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write json to a temp file beside ``path`` then rename, so no reader sees half a file."""
    if orjson is not None:
        data = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    else:
        data = json.dumps(obj).encode()
    write_bytes_atomic(data, path)


class RunLock:
    """An exclusive lock on a run's output directory, so two runs of one command never write the same
    files (``.wbt-COMMAND.lock`` there, held until :meth:`release` or the process exits). With
    ``remove`` the lock file goes at :meth:`release` (no stray file in a user's folder); a run that
    opened the file just before then finds it gone after locking it and is refused as well."""

    def __init__(self, out_dir: str | os.PathLike, command: str = "distill", remove: bool = False):
        import fcntl

        self.path = Path(out_dir) / f".wbt-{command}.lock"
        self.remove = remove
        self.file = open(self.path, "a")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if remove and os.fstat(self.file.fileno()).st_ino != os.stat(self.path).st_ino:
                raise OSError("the lock file was replaced")
        except OSError:
            self.file.close()
            raise UserError(f"{out_dir}: another wbt {command} is running with this --out") from None

    def release(self) -> None:
        if self.remove:
            self.path.unlink(missing_ok=True)  # while still held
        self.file.close()


class AtomicFile:
    """A temp file beside ``path`` that becomes ``path`` on :meth:`commit` (fsync, rename) or vanishes on :meth:`abort`.

    The one way wbt writes a file: no reader ever sees half a file, and a failed write leaves
    neither a temp file nor a changed ``path``. The temp file is created like any new file
    (mode 0666 minus the umask, applied by the kernel), so the result has normal permissions
    without reading the process umask. Stream into ``.tmp`` (any writer that opens a path), or
    use ``with AtomicFile(path) as tmp:`` to commit on success and abort on an error.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:  # pragma: no cover - 32 random bits
                continue
        self.tmp = tmp

    def commit(self) -> None:
        """Flush the finished temp file to disk and rename it over ``path`` (the temp is removed on failure)."""
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temp file; ``path`` keeps whatever it held before."""
        with suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextmanager
def new_outputs_removed_on_error(folder: str | os.PathLike) -> Iterator[None]:
    """Files and folders the block creates in ``folder`` (and ``folder`` itself, and its parents,
    when the block creates them) are removed again if the block fails.

    A command that writes several files (OpenPose, review exports, render) leaves the output
    folder as it found it when a write fails half-way (a full disk); files it replaced are not
    restored, but each was replaced whole (:func:`write_bytes_atomic`).
    """
    folder = Path(folder)
    missing = []  # folder and its parents that do not exist yet, deepest first
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    before = set() if missing or not folder.is_dir() else set(folder.rglob("*"))
    try:
        yield
    except Exception:  # a failed write; after Ctrl-C the files written so far stay (each one whole)
        if folder.is_dir():
            created = sorted(set(folder.rglob("*")) - before, key=lambda q: len(q.parts), reverse=True)
            for q in created:  # deepest first: files, then the folders they were in
                with contextlib.suppress(OSError):
                    q.rmdir() if q.is_dir() and not q.is_symlink() else q.unlink()
        for q in missing:
            with contextlib.suppress(OSError):
                q.rmdir()
        raise


def _same_path(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder (links and hard links followed; by name when absent)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_not_input(
    out: str | os.PathLike,
    inputs: dict[str, str | os.PathLike | None],
    folder_files: tuple[str, ...] | None = None,
    option: str = "--out",
) -> None:
    """Refuse an output that is an input, or would replace one, before any work (a one-line :class:`UserError`).

    ``out`` is a file, or with ``folder_files`` a folder the command writes those files in (an
    empty tuple: files named after the inputs, as render's). ``inputs``: option -> path (None:
    not given). A folder output may not be an input folder (render into the image folder would
    write over its PNGs, distill would mix its outputs with the images), nor may any file it writes
    be an input file (``distill --ann D/wholebody133.json --out D``). Every command that writes
    calls this, so ``eval --out GT`` or ``predict --out GT`` never replace the user's file.
    """
    out = Path(out)
    targets = [out] if folder_files is None else [out / name for name in folder_files]
    for label, src in inputs.items():
        if src is None:
            continue
        src = Path(src)
        if folder_files is not None and _same_path(out, src):
            raise UserError(f"{out}: {option} is the input {label} folder; write the outputs to another folder")
        for target in targets:
            if _same_path(target, src):
                raise UserError(f"{target}: {option} would replace the input {label} {src}; give another {option}")


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` through an :class:`AtomicFile` (parents created).

    A failed write leaves no temp file and no parent folder it created. An ``OSError`` (full
    disk, read-only or unwritable folder) names ``path``, not the temp file, and the CLI prints
    it as one line.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected an output file name")
    # parent folders this write creates are removed again if it fails
    new_parents = new_outputs_removed_on_error(path.parent) if not path.parent.exists() else contextlib.nullcontext()
    with write_errors_name(path), new_parents, AtomicFile(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


@contextmanager
def write_errors_name(path: str | os.PathLike) -> Iterator[None]:
    """An ``OSError`` raised inside names ``path`` and the system's plain reason.

    A write to an open file (or pyarrow's writer) fails without a file name, and a failed
    temp file names the temp: the user wants to read ``OUT/labels.json: No space left on device``.
    """
    try:
        yield
    except OSError as err:
        if err.errno is None:
            raise
        raise OSError(err.errno, os.strerror(err.errno), str(path)) from err


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


class JsonDocumentWriter:
    """Writes ``{head..., "<list_key>": [items...], tail...}`` item by item to an :class:`AtomicFile`, renamed on close."""

    def __init__(self, path: Path, head: dict, list_key: str, tail: dict):
        self.path = Path(path)
        self.tail = tail
        with write_errors_name(self.path):  # a full disk names the output, not the temp file
            self.target = AtomicFile(self.path)
            try:
                self.file = open(self.target.tmp, "wb")  # noqa: SIM115 - closed by close() / abort()
            except BaseException:
                self.target.abort()
                raise
            self.file.write(b"{")
            for key, value in head.items():
                self.file.write(_dumps(key) + b":" + _dumps(value) + b",")
            self.file.write(_dumps(list_key) + b":[")
        self.first = True

    def write(self, items: list[dict]) -> None:
        with write_errors_name(self.path):
            for item in items:
                if not self.first:
                    self.file.write(b",")
                self.file.write(_dumps(item))
                self.first = False

    def finish(self) -> None:
        """Write the tail and close the temp file; :meth:`AtomicFile.commit` of ``target`` then renames it."""
        with write_errors_name(self.path):
            self.file.write(b"]")
            for key, value in self.tail.items():
                self.file.write(b"," + _dumps(key) + b":" + _dumps(value))
            self.file.write(b"}")
            self.file.close()

    def close(self) -> None:
        self.finish()
        with write_errors_name(self.path):
            self.target.commit()

    def abort(self) -> None:
        with suppress(OSError):  # closing flushes, which fails again on a full disk
            self.file.close()
        self.target.abort()


def _dumps(value) -> bytes:
    if orjson is None:  # pragma: no cover - orjson is a declared dependency
        return json.dumps(value).encode()
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


__all__ = [
    "COCO17",
    "HALPE26",
    "HALPE136",
    "WHOLEBODY133",
    "PoseDataset",
    "load_pose_dataset",
    "load_results",
    "read_json",
    "check_json_start",
    "write_pose_dataset",
    "JsonDocumentWriter",
    "write_json_atomic",
    "write_bytes_atomic",
    "AtomicFile",
    "check_output_not_input",
    "new_outputs_removed_on_error",
    "write_errors_name",
    "wholebody_document",
    "flat_document",
    "pose_document",
    "resolve_coco_split",
    "check_images_exist",
    "image_path",
    "resolve_inside",
    "tight_box",
]
