"""Face landmarks: the normalised mean error (NME), as mmpose's ``NME`` metric and ``keypoint_nme``.

NME = mean over every labelled point of all faces of ``|pred - gt| / d``, where ``d`` is, per face:

* ``outer-eye-corners`` (default; 300W's inter-ocular distance, mmpose's ``keypoint_distance``
  mode): between the outer eye corners, points 36 and 45 of 68 (WFLW-98: 60 and 72; COFW-29: 8, 9);
* ``inter-pupil``: between the eye centres, the means of points 36-41 and 42-47 of 68 (WFLW-98:
  points 96 and 97, its pupils);
* ``bbox``: ``sqrt(w * h)`` of the GT box (mmpose's ``use_norm_item`` mode with a box size).

The arithmetic is mmpose's: float32 distances, summed keypoint-major, over ``max(1, count)``.
"""

from __future__ import annotations

import os

import numpy as np

from labeltool.errors import UserError
from labeltool.eval.pointwise import (
    MetricReport,
    PointSet,
    load_point_set,
    mean_valid,
    normalized_distances,
    per_instance_mean,
)

NORMALIZATIONS = ("outer-eye-corners", "inter-pupil", "bbox")
_EYE_CORNERS = {68: (36, 45), 98: (60, 72), 29: (8, 9)}  # mmpose NME.DEFAULT_KEYPOINT_INDICES
_PUPILS = {68: (np.arange(36, 42), np.arange(42, 48)), 98: (np.array([96]), np.array([97]))}


def keypoint_nme(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, normalize_factor: np.ndarray) -> float:
    """mmpose's ``keypoint_nme``: pred, gt (N, K, 2); mask (N, K); normalize_factor (N, 2) or (N,)."""
    return mean_valid(normalized_distances(pred, gt, mask, normalize_factor))


def normalize_factor(gt: np.ndarray, boxes: np.ndarray, normalization: str = "outer-eye-corners") -> np.ndarray:
    """(N,) per-face normaliser ``d`` (see the module docstring) from GT points (N, K, 2|3), boxes (N, 4)."""
    k = gt.shape[1]
    xy = np.asarray(gt)[:, :, :2]
    if normalization == "outer-eye-corners":
        if k not in _EYE_CORNERS:
            raise UserError(f"outer-eye-corners normalisation needs 68, 98 or 29 face points, not {k}")
        a, b = _EYE_CORNERS[k]
        return np.linalg.norm(xy[:, a, :] - xy[:, b, :], axis=1)
    if normalization == "inter-pupil":
        if k not in _PUPILS:
            raise UserError(f"inter-pupil normalisation needs 68 or 98 face points, not {k}")
        a, b = _PUPILS[k]
        return np.linalg.norm(xy[:, a].mean(axis=1) - xy[:, b].mean(axis=1), axis=1)
    if normalization == "bbox":
        boxes = np.asarray(boxes, dtype=np.float64)
        return np.sqrt(boxes[:, 2] * boxes[:, 3])
    raise UserError(f"unknown NME normalisation '{normalization}' (choose from {', '.join(NORMALIZATIONS)})")


def per_face_nme(points: PointSet, normalization: str = "outer-eye-corners") -> np.ndarray:
    """(N,) each face's own NME (mean over its labelled points); NaN for a face with none."""
    factor = normalize_factor(points.gt, points.boxes, normalization)
    return per_instance_mean(points.pred[:, :, :2], points.gt[:, :, :2], points.mask, factor)


def evaluate_nme(
    gt: str | os.PathLike | PointSet,
    results: str | os.PathLike | list | None = None,
    *,
    normalizations: tuple[str, ...] = NORMALIZATIONS,
    name: str = "",
) -> MetricReport:
    """NME of a results file (one prediction per GT face) under each named normalisation."""
    points = gt if isinstance(gt, PointSet) else load_point_set(gt, results, num_keypoints=(68, 98, 29))
    k = points.gt.shape[1]
    metrics = {}
    for norm in normalizations:
        if norm == "inter-pupil" and k not in _PUPILS:
            continue
        factor = normalize_factor(points.gt, points.boxes, norm)
        metrics[f"NME {norm}"] = keypoint_nme(points.pred[:, :, :2], points.gt[:, :, :2], points.mask, factor)
    return MetricReport(
        protocol="nme",
        title=f"NME ({k}-point faces; mmpose's keypoint_nme)",
        metrics=metrics,
        units=dict.fromkeys(metrics, "fraction"),
        name=name or points.path,
        num_instances=len(points.gt),
        num_points=int(points.mask.sum()),
        num_keypoints=k,
    )
