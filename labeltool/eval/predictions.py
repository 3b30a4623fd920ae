"""Keypoint results (predictions) files: read, validate, and hold as arrays.

A results file is a json list of ``{image_id, category_id, keypoints, score}``. ``keypoints``
is either one flat list of K x 3 values in the ground truth's layout, or, for COCO-WholeBody,
the split keys ``keypoints`` (17 x 3), ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``,
``righthand_kpts`` (a missing part key means the part was not predicted). Optional part
scores ``foot_score``, ``face_score``, ``lefthand_score``, ``righthand_score``,
``wholebody_score`` rank a detection within that part; without them ``score`` is used.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from labeltool.coco import MAX_ABS_VALUE, check_json_start, read_json
from labeltool.errors import UserError
from labeltool.layouts import WHOLEBODY133, WHOLEBODY_KPT_KEYS, Layout

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    orjson = None


def part_score_key(part: str) -> str:
    """The results key that ranks detections for ``part`` (xtcocotools ranks body by ``score``)."""
    return "score" if part == "body" else f"{part}_score"


@dataclass
class Predictions:
    """Detections as arrays. ``part_scores[key]`` is NaN where a detection lacks that key."""

    keypoints: np.ndarray  # (D, K, 3) float64: x, y, per-point score
    image_ids: np.ndarray  # (D,) int64
    category_ids: np.ndarray  # (D,) int64
    scores: np.ndarray  # (D,) float64
    part_scores: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (D,) float64, NaN = absent
    bbox_areas: np.ndarray | None = None  # (D,) when the file gives boxes (xtcocotools then uses them)
    path: str = ""

    def __len__(self) -> int:
        return len(self.scores)

    def ranking_scores(self, part: str) -> np.ndarray:
        """Per-detection score that ranks it for ``part``: the part score, else ``score``."""
        key = part_score_key(part)
        if key not in self.part_scores:
            return self.scores
        s = self.part_scores[key]
        return np.where(np.isnan(s), self.scores, s)

    def areas(self, layout: Layout, all_points: bool = False) -> np.ndarray:
        """Area used for the medium / large ranges: the box area when boxes were given, else the
        extent of the body points (all of them, scored or not), as xtcocotools' ``loadRes``
        (``all_points``: the extent of every point, as halpecocotools' ``loadRes`` of flat results)."""
        if self.bbox_areas is not None:
            return self.bbox_areas
        body = self.keypoints[:, :, :2] if all_points else self.keypoints[:, layout.parts["body"], :2]
        lo = body.min(axis=1)
        hi = body.max(axis=1)
        return (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1])


def predictions_from_arrays(
    keypoints: np.ndarray,
    image_ids: np.ndarray,
    scores: np.ndarray,
    category_ids: np.ndarray | None = None,
    part_scores: dict[str, np.ndarray] | None = None,
) -> Predictions:
    """Build :class:`Predictions` from arrays (e.g. a model's output), without a json detour.

    keypoints: (D, K, 3) x, y, score (or (D, K * 3)); image_ids, scores: (D,); category_ids
    default to 1; part_scores: e.g. {"face_score": (D,)}, NaN where a detection has none.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    n = len(keypoints)
    if keypoints.ndim == 2 and n:  # (D, K * 3) flat rows
        keypoints = keypoints.reshape(n, -1, 3)
    return Predictions(
        keypoints=keypoints,
        image_ids=np.asarray(image_ids, dtype=np.int64).reshape(n),
        category_ids=np.ones(n, np.int64) if category_ids is None else np.asarray(category_ids, np.int64).reshape(n),
        scores=np.asarray(scores, dtype=np.float64).reshape(n),
        part_scores={k: np.asarray(v, dtype=np.float64).reshape(n) for k, v in (part_scores or {}).items()},
    )


# --------------------------------------------------------------------------- reading


def read_results_json(path: str | os.PathLike) -> Any:
    """Parse a results file. Unlike strict json, NaN / Infinity parse, so they can be reported precisely."""
    p = Path(path)
    if p.is_file():
        check_json_start(p)
        data = p.read_bytes()
        if orjson is not None:
            try:
                return orjson.loads(data)
            except ValueError:
                pass
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
    return read_json(p)  # raises the one-line error for a missing file / bad json


def load_predictions(
    results: str | os.PathLike | list,
    layout: Layout,
    image_ids: np.ndarray,
    category_ids: np.ndarray,
    gt_name: str = "GT",
) -> Predictions:
    """Validate a results file (or an already parsed list) against the ground truth.

    ``image_ids`` / ``category_ids`` are those of the ground truth; a detection on another image
    is an error, as in xtcocotools. A missing ``category_id`` defaults to the ground truth's only
    category. Every problem raises a one-line :class:`UserError` naming the file and the detection.
    """
    if isinstance(results, (str, os.PathLike)):
        name = str(results)
        dets = read_results_json(results)
    else:
        name = "results"
        dets = results
    if not isinstance(dets, list):
        raise UserError(f"{name}: expected a json list of detections, got {_type_name(dets)}")
    d = len(dets)
    k = layout.num_keypoints
    for i, det in enumerate(dets):
        if not isinstance(det, dict):
            raise UserError(f"{name}: detection #{i} is {_type_name(det)}, expected an object")
    if d == 0:
        return Predictions(
            keypoints=np.zeros((0, k, 3)),
            image_ids=np.zeros(0, np.int64),
            category_ids=np.zeros(0, np.int64),
            scores=np.zeros(0),
            path=name,
        )
    split = layout is WHOLEBODY133 and any(
        key in dets[0] for key in WHOLEBODY_KPT_KEYS.values() if key != "keypoints"
    )

    image = _int_column(dets, "image_id", name)
    missing = np.setdiff1d(np.unique(image), image_ids)
    if len(missing):
        i = int(np.nonzero(image == missing[0])[0][0])
        raise UserError(f"{name}: detection #{i} has image_id {int(missing[0])}, which is not an image of {gt_name}")
    if len(np.unique(category_ids)) == 1:
        category = _int_column(dets, "category_id", name, default=int(category_ids[0]))
    else:
        category = _int_column(dets, "category_id", name)
    scores = _float_column(dets, "score", name, required=True)
    part_scores = {}
    for part in (*layout.parts, "wholebody"):
        key = part_score_key(part)
        if key != "score" and any(key in det for det in dets):
            part_scores[key] = _float_column(dets, key, name, required=False)

    if split:
        keypoints = np.zeros((d, k, 3))
        for part, key in WHOLEBODY_KPT_KEYS.items():
            idx = layout.parts[part]
            hint = " (with the COCO-WholeBody part keys, 'keypoints' holds the 17 body points)" if part == "body" else ""
            keypoints[:, idx] = _points_column(dets, key, len(idx), name, required=part == "body", hint=hint)
    else:
        hint = f" for the {layout.name} layout of the ground truth"
        keypoints = _points_column(dets, "keypoints", k, name, required=True, hint=hint)
    if not np.isfinite(keypoints).all():
        i = int(np.nonzero(~np.isfinite(keypoints).all(axis=(1, 2)))[0][0])
        raise UserError(f"{name}: detection #{i}: keypoints contain NaN, infinity or null")
    if (np.abs(keypoints) > MAX_ABS_VALUE).any():
        i = int(np.nonzero((np.abs(keypoints) > MAX_ABS_VALUE).any(axis=(1, 2)))[0][0])
        raise UserError(f"{name}: detection #{i}: keypoints hold a value beyond ±{MAX_ABS_VALUE:g}")

    bbox_areas = None
    first_box = dets[0].get("bbox")
    if first_box is not None and first_box != []:
        # xtcocotools' loadRes: when the first result has a box, every result's area is its box area
        boxes = _points_column(dets, "bbox", None, name, required=True, width=4)
        bbox_areas = boxes[:, 2] * boxes[:, 3]
    return Predictions(
        keypoints=keypoints,
        image_ids=image,
        category_ids=category,
        scores=scores,
        part_scores=part_scores,
        bbox_areas=bbox_areas,
        path=name,
    )


def _type_name(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(obj), type(obj).__name__)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_column(dets: list[dict], key: str, name: str, default: int | None = None) -> np.ndarray:
    values = [det.get(key, default) for det in dets]
    for i, v in enumerate(values):
        if v is None and key not in dets[i]:
            raise UserError(f"{name}: detection #{i} is missing '{key}'")
        if not (isinstance(v, int) and not isinstance(v, bool)) and not (isinstance(v, float) and v.is_integer()):
            raise UserError(f"{name}: detection #{i}: '{key}' must be an integer, got {v!r}")
    return np.asarray(values, dtype=np.int64)


def _float_column(dets: list[dict], key: str, name: str, required: bool) -> np.ndarray:
    """``key`` of every detection; an optional key that is absent reads as NaN."""
    values = [det.get(key, math.nan) for det in dets]
    for i, v in enumerate(values):
        if key not in dets[i]:
            if required:
                raise UserError(f"{name}: detection #{i} is missing '{key}'")
        elif not _is_real(v) or not math.isfinite(v):
            raise UserError(f"{name}: detection #{i}: '{key}' must be a finite number, got {v!r}")
    return np.asarray(values, dtype=np.float64)


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
    zeros = [0.0] * size
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
