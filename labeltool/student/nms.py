"""Pose NMS for top-down predictions on detector boxes: mmpose's OKS-NMS and AlphaPose's parametric NMS.

Both take the poses of one image, (N, K, 3) x y score arrays, and return the indices kept
(best first); the parametric one also returns merged poses.
"""

from __future__ import annotations

import numpy as np

from labeltool.eval import compute_oks


def oks_nms(poses: np.ndarray, scores: np.ndarray, sigmas: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """mmpose's ``oks_nms``: greedily keep the best-scored pose, drop every other whose OKS with it
    exceeds ``threshold``. The OKS area is the kept pose's keypoint extent (as mmpose's top-down
    metric stores it), all points count (mmpose's default ``vis_thr=None``)."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    lo, hi = poses[..., :2].min(axis=1), poses[..., :2].max(axis=1)
    areas = np.prod(hi - lo, axis=1)
    refs = poses.copy()
    refs[..., 2] = 1.0  # every point of the reference counts
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        if not len(rest):
            break
        # mmpose divides by the mean of the two areas; compute_oks takes one area per pair
        pair_area = (areas[i] + areas[rest]) / 2
        oks = compute_oks(poses[rest, :, :2], refs[i][None].repeat(len(rest), 0), pair_area, sigmas)
        order = rest[oks <= threshold]
    return np.asarray(keep, dtype=np.int64)


# AlphaPose's parametric pose NMS constants (pPose_nms.py), tuned for its body keypoints.
ALPHAPOSE_PARAMS = {"delta1": 1.0, "mu": 1.7, "delta2": 2.65, "gamma": 22.48, "score_thr": 0.3, "match_thr": 5,
                    "alpha": 0.1}


def parametric_pose_nms(poses: np.ndarray, boxes: np.ndarray, body: np.ndarray, *, delta1: float = 1.0,
                        mu: float = 1.7, delta2: float = 2.65, gamma: float = 22.48, score_thr: float = 0.3,
                        match_thr: int = 5, alpha: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """AlphaPose's parametric pose NMS (Fang et al., RMPE): returns (kept indices, merged poses (M, K, 3)).

    The picked pose (highest mean keypoint score) removes every remaining pose whose parametric
    similarity (a soft count of near-identical confident points plus a spatial term) exceeds
    ``gamma`` or which has at least ``match_thr`` points within ``min(alpha * box side, 7)`` px;
    the picked pose is then merged, per point, with the removed ones lying within
    ``min(alpha * box side, 15)`` px, weighted by their scores. A merged pose whose best point
    scores under ``score_thr`` is dropped. The published constants were tuned on the body
    points, so similarity and matching use the ``body`` indices only; merging uses all points.
    boxes: (N, 4) x y w h.
    """
    n = len(poses)
    ref_dists = alpha * np.maximum(boxes[:, 2], boxes[:, 3])
    human_scores = poses[..., 2].mean(axis=1)
    alive = np.ones(n, dtype=bool)
    kept, merged = [], []
    xy, sc = poses[..., :2], poses[..., 2]
    while alive.any():
        ids = np.nonzero(alive)[0]
        pick = ids[np.argmax(human_scores[ids])]
        ref = ref_dists[pick]
        dist = np.linalg.norm(xy[pick][None, body] - xy[ids][:, body], axis=-1)  # (m, B)
        close = dist <= 1
        score_sim = np.where(close, np.tanh(sc[pick, body] / delta1)[None] * np.tanh(sc[ids][:, body] / delta1), 0)
        simi = score_sim.sum(axis=1) + mu * np.exp(-dist / delta2).sum(axis=1)
        matches = (dist / min(ref, 7) <= 1).sum(axis=1) if ref > 0 else np.zeros(len(ids), dtype=np.int64)
        delete = ids[(simi > gamma) | (matches >= match_thr)]
        if not len(delete) or pick not in delete:
            delete = np.union1d(delete, [pick])
        alive[delete] = False
        pose = _merge(poses[pick], poses[delete], min(ref, 15))
        if pose[:, 2].max() < score_thr:
            continue
        kept.append(pick)
        merged.append(pose)
    k = poses.shape[1]
    return np.asarray(kept, dtype=np.int64), (np.stack(merged) if merged else np.zeros((0, k, 3)))


def _merge(ref_pose: np.ndarray, cluster: np.ndarray, ref_dist: float) -> np.ndarray:
    """AlphaPose's ``p_merge_fast``: score-weighted mean of the cluster's points near the reference's."""
    dist = np.linalg.norm(ref_pose[None, :, :2] - cluster[..., :2], axis=-1)
    masked = cluster[..., 2] * (dist <= ref_dist)
    total = masked.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    normed = masked / safe
    out = ref_pose.copy()
    has = total > 0
    out[has, :2] = (cluster[..., :2] * normed[..., None]).sum(axis=0)[has]
    out[has, 2] = (masked * normed).sum(axis=0)[has]
    return out
