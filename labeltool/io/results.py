"""Keypoint results (predictions) files: the one reader, to arrays.

A results file is a json list of ``{image_id, category_id, keypoints, score}``. ``keypoints``
is either one flat list of K x 3 values, or, for COCO-WholeBody, the split keys ``keypoints``
(17 x 3), ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``, ``righthand_kpts`` (a missing part
key means the part was not predicted). Optional part scores ``foot_score``, ``face_score``,
``lefthand_score``, ``righthand_score``, ``wholebody_score``; an optional ``bbox``; for the
per-instance protocols an ``ann_id`` naming the GT instance predicted.

``wbt eval`` (:mod:`labeltool.eval.predictions`), its per-instance protocols
(:mod:`labeltool.eval.pointwise`) and ``wbt render`` read results through
:func:`read_results`; every problem is a one-line :class:`UserError` naming the file and the
detection.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from labeltool.errors import UserError
from labeltool.io.jsonfile import MAX_ABS_VALUE, read_json
from labeltool.io.pose import KEYPOINT_KEYS, PoseDataset, has_wholebody_part_keys, tight_box
from labeltool.layouts import WHOLEBODY133, WHOLEBODY_KPT_KEYS, Layout, layout_for

FLAT_COUNTS = (17, 26, 133, 136)  # point counts a flat results file may have when no layout is given
SCORED_PARTS = ("foot", "face", "lefthand", "righthand", "wholebody")  # parts with their own '<part>_score'


@dataclass
class Results:
    """A results file as arrays, in file order. Optional numbers are NaN where a detection lacks them."""

    keypoints: np.ndarray  # (D, K, 3) float64: x, y, per-point score
    image_ids: np.ndarray  # (D,) int64 (-1 where absent, only when every detection has 'ann_id')
    category_ids: np.ndarray  # (D,) int64
    scores: np.ndarray  # (D,) float64
    part_scores: dict[str, np.ndarray] = field(default_factory=dict)  # '<part>_score' -> (D,), NaN = absent
    bboxes: np.ndarray | None = None  # (D, 4) x y w h when the first detection has a box (xtcocotools' rule)
    ann_ids: np.ndarray | None = None  # (D,) int64 when every detection names its GT instance
    entries: list[dict] = field(default_factory=list)  # the parsed detections (their other fields)
    layout: Layout | None = None  # None for a flat file read by point count
    path: str = ""

    def __len__(self) -> int:
        return len(self.scores)


def read_results(
    source: str | os.PathLike | list,
    layout: Layout | int | None = None,
    image_ids: np.ndarray | None = None,
    gt_name: str = "GT",
    required: tuple[str, ...] = ("image_id", "score"),
    default_category: int | None = 1,
) -> Results:
    """Read and check a results file (or an already parsed list).

    ``layout``: the ground truth's (the split COCO-WholeBody keys are read for 133 points), a
    point count (flat lists of that many points), or None (split keys, else a flat list of 17,
    26, 133 or 136 points). ``image_ids``: the ground truth's images; a detection on another is
    an error, as in xtcocotools. ``required``: keys every detection must have; ``image_id`` is
    required anyway unless every detection gives ``ann_id``. A missing ``category_id`` is
    ``default_category`` (None: required).
    """
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        dets = read_json(source, allow_nan=True)  # NaN / Infinity parse, to be named per detection below
    else:
        name = "results"
        dets = source
    if not isinstance(dets, list):
        raise UserError(f"{name}: expected a json list of detections, got {_type_name(dets)}")
    for i, det in enumerate(dets):
        if not isinstance(det, dict):
            raise UserError(f"{name}: detection #{i} is {_type_name(det)}, expected an object")
    d = len(dets)
    given = layout
    split = has_wholebody_part_keys(dets) and (layout is None or layout is WHOLEBODY133)
    if split:
        layout = WHOLEBODY133
    elif layout is None and d:
        layout = _flat_layout(dets, name)
    k = layout if isinstance(layout, int) else layout.num_keypoints if layout is not None else 0
    layout_obj = layout if isinstance(layout, Layout) else None

    ann_ids = _int_column(dets, "ann_id", name) if d and all("ann_id" in det for det in dets) else None
    if ann_ids is None or "image_id" in required:
        image = _int_column(dets, "image_id", name)
    else:
        image = _int_column(dets, "image_id", name, default=-1)
    if image_ids is not None:
        missing = np.setdiff1d(np.unique(image), image_ids)
        if len(missing):
            i = int(np.nonzero(image == missing[0])[0][0])
            raise UserError(
                f"{name}: detection #{i} has image_id {int(missing[0])}, which is not an image of {gt_name}"
            )
    category = _int_column(dets, "category_id", name, default=default_category)
    scores = _float_column(dets, "score", name, required="score" in required)
    part_scores = {}
    for part in SCORED_PARTS:
        key = f"{part}_score"
        if any(key in det for det in dets):
            part_scores[key] = _float_column(dets, key, name, required=False)

    if split:
        keypoints = np.zeros((d, k, 3))
        for part, key in WHOLEBODY_KPT_KEYS.items():
            idx = WHOLEBODY133.parts[part]
            hint = " (with the COCO-WholeBody part keys, 'keypoints' holds the 17 body points)" if part == "body" else ""
            keypoints[:, idx] = _points_column(dets, key, len(idx), name, required=part == "body", hint=hint)
    else:
        hint = f" for the {layout_obj.name} layout of the ground truth" if isinstance(given, Layout) else ""
        keypoints = _points_column(dets, "keypoints", k, name, required=True, hint=hint)
    _check_finite(keypoints, name, "keypoints")

    bboxes = None
    first_box = dets[0].get("bbox") if d else None
    if first_box is not None and first_box != []:
        # xtcocotools' loadRes: when the first result has a box, every result's area is its box area
        bboxes = _points_column(dets, "bbox", None, name, required=True, width=4)
        _check_finite(bboxes, name, "'bbox'")
    return Results(
        keypoints=keypoints,
        image_ids=image,
        category_ids=category,
        scores=scores,
        part_scores=part_scores,
        bboxes=bboxes,
        ann_ids=ann_ids,
        entries=dets,
        layout=layout_obj,
        path=name,
    )


def results_dataset(results: Results, images: list[dict], categories: list[dict] | None = None) -> PoseDataset:
    """A :class:`PoseDataset` of ``results`` for ``wbt render`` (``images``: the ground truth's, for the file names).

    Annotation ids are 1..N in file order; ``bbox`` is the result's own when given, else the
    tight box of its points; ``score`` and the other fields are kept.
    """
    n = len(results)
    layout = results.layout or layout_for(results.keypoints.shape[1])
    if results.bboxes is not None:
        bboxes = results.bboxes
    else:
        bboxes = np.array([tight_box(kp) for kp in results.keypoints], dtype=np.float64).reshape(n, 4)
    annotations = []
    for i, det in enumerate(results.entries):
        annotations.append({key: v for key, v in det.items() if key not in KEYPOINT_KEYS} | {"id": i + 1})
    return PoseDataset(
        layout=layout,
        keypoints=results.keypoints,
        ann_ids=np.arange(1, n + 1, dtype=np.int64),
        image_ids=results.image_ids,
        category_ids=results.category_ids,
        bboxes=bboxes,
        areas=bboxes[:, 2] * bboxes[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        annotations=annotations,
        images=images,
        categories=categories or [],
        path=results.path,
    )


def _flat_layout(dets: list[dict], name: str) -> Layout:
    """The layout of a flat results file, from its first detection's point count."""
    values = dets[0].get("keypoints")
    if not isinstance(values, list):
        raise UserError(f"{name}: detection #0 is missing 'keypoints'")
    if len(values) % 3 or len(values) // 3 not in FLAT_COUNTS:
        raise UserError(f"{name}: detection #0: 'keypoints' has {len(values)} values; expected 3 x 17, 26, 133 or 136")
    return layout_for(len(values) // 3)


def _check_finite(values: np.ndarray, name: str, what: str) -> None:
    """Refuse NaN (also a JSON null), infinity, or a value beyond ±MAX_ABS_VALUE, naming the detection."""
    if not len(values):
        return
    flat = values.reshape(len(values), -1)
    if not np.isfinite(flat).all():
        i = int(np.nonzero(~np.isfinite(flat).all(axis=1))[0][0])
        raise UserError(f"{name}: detection #{i}: {what} contain NaN, infinity or null")
    if (np.abs(flat) > MAX_ABS_VALUE).any():
        i = int(np.nonzero((np.abs(flat) > MAX_ABS_VALUE).any(axis=1))[0][0])
        raise UserError(f"{name}: detection #{i}: {what} hold a value beyond ±{MAX_ABS_VALUE:g}")


def _type_name(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(obj), type(obj).__name__)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_column(dets: list[dict], key: str, name: str, default: int | None = None) -> np.ndarray:
    """``key`` of every detection as int64 (an integral float counts); absent -> ``default`` (None: required)."""
    values = [det.get(key, default) for det in dets]
    for i, v in enumerate(values):
        if v is None and key not in dets[i]:
            raise UserError(f"{name}: detection #{i} is missing '{key}'")
        if not (isinstance(v, int) and not isinstance(v, bool)) and not (isinstance(v, float) and v.is_integer()):
            raise UserError(f"{name}: detection #{i}: '{key}' must be an integer, got {v!r}")
        if not -(2**63) <= v < 2**63:
            raise UserError(f"{name}: detection #{i}: '{key}' must be an integer (64-bit), got {v!r}")
    return np.asarray(values, dtype=np.int64).reshape(len(dets))


def _float_column(dets: list[dict], key: str, name: str, required: bool) -> np.ndarray:
    """``key`` of every detection; an optional key that is absent reads as NaN."""
    values = [det.get(key, math.nan) for det in dets]
    for i, v in enumerate(values):
        if key not in dets[i]:
            if required:
                raise UserError(f"{name}: detection #{i} is missing '{key}'")
        elif not _is_real(v) or not math.isfinite(v):
            raise UserError(f"{name}: detection #{i}: '{key}' must be a finite number, got {v!r}")
    return np.asarray(values, dtype=np.float64).reshape(len(dets))


def _points_column(
    dets: list[dict],
    key: str,
    num: int | None,
    name: str,
    required: bool,
    hint: str = "",
    width: int = 3,
) -> np.ndarray:
    """(D, num, 3) from the list ``key`` of every detection (or (D, width) when ``num`` is None)."""
    size = width if num is None else 3 * num
    if not dets:
        return np.zeros((0, size) if num is None else (0, num, 3))
    zeros = [0.0] * size
    rows: list = []
    try:
        rows = [det[key] for det in dets] if required else [det.get(key, zeros) for det in dets]
        arr = np.array(rows, dtype=np.float64)
        # numpy reads "1.5" and true as numbers: refuse them (null stays NaN, reported by the caller)
        ok = arr.shape == (len(dets), size) and set(map(type, chain.from_iterable(rows))) <= {int, float, type(None)}
    except KeyError:
        i = next(i for i, det in enumerate(dets) if key not in det)
        raise UserError(f"{name}: detection #{i} is missing '{key}'") from None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != size:
                got = f"{len(row)} values" if isinstance(row, list) else _type_name(row)
                want = f"{size} values" if num is None else f"{size} values ({num} x 3)"
                raise UserError(f"{name}: detection #{i}: '{key}' has {got}, expected {want}{hint}")
            if not all(_is_real(v) or v is None for v in row):
                raise UserError(f"{name}: detection #{i}: '{key}' must hold numbers only")
        raise UserError(f"{name}: '{key}' could not be read as numbers")  # pragma: no cover
    return arr if num is None else arr.reshape(len(dets), num, 3)
