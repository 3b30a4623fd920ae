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

from labeltool.coco import MAX_ABS_VALUE, _first_out_of_range, read_json
from labeltool.errors import UserError
from labeltool.eval.predictions import read_results_json

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
    """Read a COCO-style GT of one part (any point count, one flat ``keypoints`` list per
    annotation) and a results list, paired one to one (see the module docstring)."""
    gt_name = str(gt_path)
    doc = read_json(gt_path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise UserError(f"{gt_name}: expected a json object with an 'annotations' list")
    anns = doc["annotations"]
    if not anns:
        raise UserError(f"{gt_name}: no annotations to evaluate")
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise UserError(f"{gt_name}: annotations[{i}] is not an object")
        for key in ("id", "image_id", "keypoints", "bbox"):
            if key not in ann:
                raise UserError(f"{gt_name}: annotation {ann.get('id', f'#{i}')} is missing '{key}'")
    k = _count(anns[0]["keypoints"], gt_name, f"annotation {anns[0]['id']}")
    if num_keypoints and k not in num_keypoints:
        raise UserError(f"{gt_name}: {k} keypoints per annotation; this protocol takes {' or '.join(map(str, num_keypoints))}")
    gt = _rows([a["keypoints"] for a in anns], 3 * k, gt_name, [f"annotation {a['id']}" for a in anns]).reshape(-1, k, 3)
    boxes = _rows([a["bbox"] for a in anns], 4, gt_name, [f"annotation {a['id']}: 'bbox'" for a in anns])
    negative = np.nonzero((boxes[:, 2:] < 0).any(axis=1))[0]
    if len(negative):
        raise UserError(f"{gt_name}: annotation {anns[negative[0]]['id']}: 'bbox' has a negative width or height")
    ann_ids = np.asarray([a["id"] for a in anns])
    image_ids = np.asarray([a["image_id"] for a in anns])

    name = str(results) if isinstance(results, (str, os.PathLike)) else "results"
    dets = read_results_json(results) if isinstance(results, (str, os.PathLike)) else results
    if not isinstance(dets, list) or not all(isinstance(d, dict) for d in dets):
        raise UserError(f"{name}: expected a json list of result objects")
    by_ann = bool(dets) and all("ann_id" in d for d in dets)
    key = "ann_id" if by_ann else "image_id"
    gt_keys = ann_ids if by_ann else image_ids
    if not by_ann:
        ids, counts = np.unique(image_ids, return_counts=True)
        if (counts > 1).any():
            raise UserError(
                f"{gt_name}: image {ids[counts > 1][0]} has {counts[counts > 1][0]} annotations; "
                f"give every result in {name} the 'ann_id' it predicts"
            )
    index = {v: i for i, v in enumerate(gt_keys.tolist())}
    pred = np.full((len(anns), k, 3), np.nan)
    for j, det in enumerate(dets):
        if key not in det:
            raise UserError(f"{name}: result #{j} is missing '{key}'")
        i = index.get(det[key]) if isinstance(det[key], (int, float)) and not isinstance(det[key], bool) else None
        if i is None:
            raise UserError(f"{name}: result #{j}: {key} {det[key]!r} is not an annotated {key[:-3]} of {gt_name}")
        if not np.isnan(pred[i, 0, 0]):
            raise UserError(f"{name}: result #{j}: a second result for {key} {det[key]!r}")
        if "keypoints" not in det:
            raise UserError(f"{name}: result #{j} is missing 'keypoints'")
        pred[i] = _rows([det["keypoints"]], 3 * k, name, [f"result #{j}"]).reshape(k, 3)
    missing = np.nonzero(np.isnan(pred[:, 0, 0]))[0]
    if len(missing):
        raise UserError(f"{name}: no result for {key} {gt_keys[missing[0]]} of {gt_name} ({len(missing)} missing)")
    return PointSet(gt=gt, boxes=boxes, ann_ids=ann_ids, pred=pred, path=name)


def _count(values, name: str, where: str) -> int:
    if not isinstance(values, list) or not values or len(values) % 3:
        raise UserError(f"{name}: {where}: 'keypoints' must be a non-empty list of x, y, v triples")
    return len(values) // 3


def _rows(rows: list, width: int, name: str, where: list[str]) -> np.ndarray:
    """(len(rows), width) float64; a row of another length or with a non-number names itself."""
    for row, w in zip(rows, where):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise UserError(f"{name}: {w} has {got}, expected {width}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise UserError(f"{name}: {w} must hold numbers only")
    arr = np.asarray(rows, dtype=np.float64)
    bad = _first_out_of_range(arr)
    if bad is not None:
        raise UserError(f"{name}: {where[bad]} contains NaN, infinity or a value beyond ±{MAX_ABS_VALUE:g}")
    return arr
