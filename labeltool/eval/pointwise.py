"""What the per-instance protocols (NME for faces, PCK / AUC / EPE for hands) share.

Part datasets (300W, WFLW, COFW, FreiHAND, OneHand10K, RHD, Panoptic) are evaluated one
prediction per labelled instance (top-down, on the GT box), not by detection matching. So a
results file pairs with the GT one to one: by ``ann_id`` when every result gives it, else by
``image_id`` (one instance per image, as these datasets have). The distances are mmpose's
``_calc_distances`` (``mmpose/evaluation/functional/keypoint_eval.py``), array for array.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from labeltool.errors import UserError
from labeltool.io.pose import load_part_dataset
from labeltool.io.results import read_results

MIN_NORM = 1e-6  # pixels: a normaliser below this counts as 0 (the instance does not count)


@dataclass
class PointSet:
    """GT instances and their predictions, in GT file order."""

    gt: np.ndarray  # (N, K, 3) x, y, visibility
    boxes: np.ndarray  # (N, 4) GT boxes x y w h
    ann_ids: np.ndarray  # (N,)
    pred: np.ndarray  # (N, K, 2|3) predicted x, y (score unused)
    path: str = ""

    @property
    def mask(self) -> np.ndarray:
        """(N, K) points that count: GT visibility > 0 (mmpose's ``keypoints_visible``)."""
        return self.gt[:, :, 2] > 0


@dataclass
class MetricReport:
    """One method's numbers under a per-instance protocol: ``metrics[name]`` with ``units[name]``
    ("fraction", shown in %, or "px")."""

    protocol: str
    title: str
    metrics: dict[str, float | None]  # None: undefined (no point counts), shown as '-' and json null
    units: dict[str, str]
    name: str = ""
    num_instances: int = 0
    num_points: int = 0  # points that count (GT visibility > 0)
    num_keypoints: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return dict(self.metrics)


def normalized_distances(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm_factor: np.ndarray) -> np.ndarray:
    """mmpose's ``_calc_distances``: (K, N) float32 distances ``|(pred - gt) / norm|``, -1 where
    the point does not count (masked, or its instance has a zero norm; a negative norm becomes 1e6).

    pred, gt: (N, K, D); mask: (N, K); norm_factor: (N, D) per axis, or (N,) for both axes.
    Keypoint-major (K, N) as mmpose returns it, since the sums over it follow that order.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    n, k, d = pred.shape
    norm = np.array(norm_factor, copy=True)
    if norm.ndim == 1:
        norm = np.tile(norm[:, None], (1, d))
    use = np.asarray(mask).copy() > 0
    # mmpose drops an instance whose norm is 0; one below MIN_NORM (a broken GT: eye corners 1e-30 px
    # apart) is dropped too, where mmpose would overflow float32 into inf
    use[np.where((np.abs(norm) < MIN_NORM).sum(1))[0], :] = False
    out = np.full((n, k), -1, dtype=np.float32)
    norm[np.where(norm <= 0)] = 1e6
    out[use] = np.linalg.norm(((pred - gt) / norm[:, None, :])[use], axis=-1)
    return out.T


def per_instance_mean(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm_factor: np.ndarray) -> np.ndarray:
    """(N,) each instance's mean normalised distance over its counted points (NaN where none counts)."""
    d = normalized_distances(pred, gt, mask, norm_factor).T
    valid = d != -1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, d, 0).sum(axis=1, dtype=np.float64) / valid.sum(axis=1)


def mean_valid(distances: np.ndarray) -> float | None:
    """mmpose's mean of the distances that count: ``sum / max(1, count)`` over the (K, N) array;
    None (undefined) where none counts, where mmpose returns 0, which reads as a perfect result."""
    valid = distances[distances != -1]
    return float(valid.sum() / len(valid)) if len(valid) else None


# --------------------------------------------------------------------------- reading


def load_point_set(gt_path: str | os.PathLike, results: str | os.PathLike | list, num_keypoints: tuple[int, ...] = ()):
    """Read a COCO-style GT of one part (:func:`labeltool.io.pose.load_part_dataset`: any point count,
    one flat ``keypoints`` list per annotation) and a results list (:func:`labeltool.io.results.read_results`),
    paired one to one (see the module docstring)."""
    gt_name = str(gt_path)
    truth = load_part_dataset(gt_path, num_keypoints)
    if not len(truth):
        raise UserError(f"{gt_name}: no annotations to evaluate")
    k = truth.layout.num_keypoints
    negative = np.nonzero((truth.bboxes[:, 2:] < 0).any(axis=1))[0]
    if len(negative):
        raise UserError(f"{gt_name}: annotation {truth.ann_ids[negative[0]]}: 'bbox' has a negative width or height")

    res = read_results(results, k, required=())
    name = res.path
    by_ann = res.ann_ids is not None
    key = "ann_id" if by_ann else "image_id"
    gt_keys = truth.ann_ids if by_ann else truth.image_ids
    if not by_ann:
        ids, counts = np.unique(truth.image_ids, return_counts=True)
        if (counts > 1).any():
            raise UserError(
                f"{gt_name}: image {ids[counts > 1][0]} has {counts[counts > 1][0]} annotations; "
                f"give every result in {name} the 'ann_id' it predicts"
            )
    index = {v: i for i, v in enumerate(gt_keys.tolist())}
    pred = np.full((len(truth), k, 3), np.nan)
    for j, value in enumerate((res.ann_ids if by_ann else res.image_ids).tolist()):
        i = index.get(value)
        if i is None:
            raise UserError(f"{name}: detection #{j}: {key} {value!r} is not an annotated {key[:-3]} of {gt_name}")
        if not np.isnan(pred[i, 0, 0]):
            raise UserError(f"{name}: detection #{j}: a second result for {key} {value!r}")
        pred[i] = res.keypoints[j]
    missing = np.nonzero(np.isnan(pred[:, 0, 0]))[0]
    if len(missing):
        raise UserError(f"{name}: no result for {key} {gt_keys[missing[0]]} of {gt_name} ({len(missing)} missing)")
    return PointSet(gt=truth.keypoints, boxes=truth.bboxes, ann_ids=truth.ann_ids, pred=pred, path=name)
