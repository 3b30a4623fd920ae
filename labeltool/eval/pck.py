"""Hands: PCK, AUC and EPE as mmpose's ``PCKAccuracy`` / ``AUC`` / ``EPE`` metrics compute them.

* ``PCK@thr`` (default 0.2, mmpose's hand configs): a point is correct when its distance over the
  larger side of the GT box is ``< thr``; the accuracy of each keypoint over the instances, then
  the mean over keypoints with at least one labelled instance (``keypoint_pck_accuracy``);
* ``AUC`` (``keypoint_auc``, norm 30 px, 20 thresholds): the mean PCK at 0, 1.5, ..., 28.5 px;
* ``EPE`` (``keypoint_epe``): the mean pixel distance over the labelled points.

The arithmetic is mmpose's (float32 distances, strict ``<``, keypoint-major sums).
"""

from __future__ import annotations

import os

import numpy as np

from labeltool.errors import UserError
from labeltool.eval.pointwise import MetricReport, PointSet, load_point_set, mean_valid, normalized_distances


def _distance_acc(distances: np.ndarray, thr: float) -> float:
    valid = distances != -1
    n = valid.sum()
    return (distances[valid] < thr).sum() / n if n > 0 else -1


def keypoint_pck_accuracy(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, thr: float, norm_factor: np.ndarray
) -> tuple[np.ndarray, float, int]:
    """mmpose's ``keypoint_pck_accuracy``: (per-keypoint accuracy (K,), -1 where none counts;
    their mean over the keypoints that count; how many count)."""
    distances = normalized_distances(pred, gt, mask, norm_factor)
    acc = np.array([_distance_acc(d, thr) for d in distances])
    valid = acc[acc >= 0]
    return acc, (valid.mean() if len(valid) else 0), len(valid)


def check_threshold(thr: float) -> None:
    """A PCK threshold is a finite fraction > 0 of the box size (NaN or -1 would make every point wrong)."""
    if not (np.isfinite(thr) and thr > 0):
        raise UserError(f"--thr {thr:g}: the PCK threshold must be a number > 0 (a fraction of the GT box's larger side)")


def keypoint_auc(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm_factor: float = 30, num_thrs: int = 20) -> float:
    """mmpose's ``keypoint_auc``: mean PCK over thresholds i / num_thrs of ``norm_factor`` px."""
    norm = np.tile(np.array([[norm_factor, norm_factor]]), (pred.shape[0], 1))
    auc = 0
    for i in range(num_thrs):
        auc += 1.0 / num_thrs * keypoint_pck_accuracy(pred, gt, mask, 1.0 * i / num_thrs, norm)[1]
    return auc


def keypoint_epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """mmpose's ``keypoint_epe``: mean pixel distance over the points that count."""
    return mean_valid(normalized_distances(pred, gt, mask, np.ones((pred.shape[0], pred.shape[2]), dtype=np.float32)))


def bbox_size(boxes: np.ndarray) -> np.ndarray:
    """(N,) the larger side of each GT box x y w h, PCKAccuracy's ``bbox`` normaliser."""
    return np.max(np.asarray(boxes, dtype=np.float64)[:, 2:4], axis=1)


def pooled_pck(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, thr: float, norm_factor: np.ndarray) -> float:
    """The fraction of all counted points with distance / norm ``< thr`` (every point weighs the same;
    mmpose's PCK weighs every keypoint the same instead)."""
    d = normalized_distances(pred, gt, mask, norm_factor)
    valid = d != -1
    return float((d[valid] < thr).sum() / max(1, valid.sum()))


def evaluate_pck(
    gt: str | os.PathLike | PointSet,
    results: str | os.PathLike | list | None = None,
    *,
    thr: float = 0.2,
    auc_px: float = 30,
    num_thrs: int = 20,
    name: str = "",
) -> MetricReport:
    """PCK@thr of the GT box size, AUC over 0..auc_px px and EPE of a results file (one prediction per GT hand)."""
    check_threshold(thr)
    points = gt if isinstance(gt, PointSet) else load_point_set(gt, results)
    pred, ref, mask = points.pred[:, :, :2], points.gt[:, :, :2], points.mask
    _, pck, counted = keypoint_pck_accuracy(pred, ref, mask, thr, bbox_size(points.boxes))
    metrics = {  # undefined (None) when no point counts, where mmpose gives 0
        f"PCK@{thr:g}": float(pck) if counted else None,
        f"AUC@{auc_px:g}px": float(keypoint_auc(pred, ref, mask, auc_px, num_thrs)) if mask.any() else None,
        "EPE": keypoint_epe(pred, ref, mask),
    }
    return MetricReport(
        protocol="pck",
        title=f"PCK / AUC / EPE ({points.gt.shape[1]} points; mmpose's PCKAccuracy, AUC, EPE)",
        metrics=metrics,
        units={k: ("px" if k == "EPE" else "fraction") for k in metrics},
        name=name or points.path,
        num_instances=len(points.gt),
        num_points=int(mask.sum()),
        num_keypoints=points.gt.shape[1],
    )
