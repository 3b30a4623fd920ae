"""Object keypoint similarity (OKS), the one vectorised function every part and every caller uses."""

from __future__ import annotations

import numpy as np

# COCOeval adds this to the area so a zero-area person does not divide by zero.
EPS = np.spacing(1)


def keypoint_vars(sigmas: np.ndarray, float32: bool = False) -> np.ndarray:
    """``(2 * sigma) ** 2`` per keypoint, as COCOeval computes it.

    ``float32=True`` reproduces mmpose, whose dataset meta holds the sigmas as float32: the
    product is then rounded to float32 before it enters the float64 OKS arithmetic.
    """
    s = np.asarray(sigmas, dtype=np.float32 if float32 else np.float64)
    return ((s * 2) ** 2).astype(np.float64)


def compute_oks(
    pred: np.ndarray,
    gt: np.ndarray,
    areas: np.ndarray | float,
    sigmas: np.ndarray,
    boxes: np.ndarray | None = None,
    *,
    sigmas_float32: bool = False,
    coords_float32: bool = False,
) -> np.ndarray:
    """OKS between predicted and ground-truth keypoints, broadcast over the leading axes.

    pred: (..., K, 2 or 3) predicted points (a third column, the score, is not used).
    gt: (..., K, 3) reference points; a point counts when its visibility is > 0.
    areas: (...) the reference person's area (COCO ``area``), used for every part.
    sigmas: (K,) per-keypoint OKS sigmas (e.g. ``layout.sigmas[layout.parts["face"]]``).
    boxes: (..., 4) reference ``[x, y, w, h]``; for a reference with no labelled point the
        distance is measured to the box grown by its width and height on every side (as
        COCOeval does for ignored persons). Without boxes such a reference gets OKS 0.

    The leading axes of ``pred`` and ``gt`` broadcast: ``compute_oks(p[:, None], g[None], a[None], s)``
    is the (D, G) matrix of D predictions against G references, and arrays with the same
    leading shape give one OKS per pair. Returns float64 of the broadcast leading shape.

    ``coords_float32=True`` reproduces halpecocotools, which reads both point sets as float32:
    the coordinate differences, their squares and sums (and the box distances) are float32,
    the rest float64.
    """
    dtype = np.float32 if coords_float32 else np.float64
    pred = np.asarray(pred, dtype=dtype)
    gt = np.asarray(gt, dtype=dtype)
    var = keypoint_vars(sigmas, sigmas_float32)
    visible = gt[..., 2] > 0
    labelled = visible.any(axis=-1)
    e = squared_distances(pred, gt)
    weight = visible
    if boxes is not None and not labelled.all():
        unlabelled = ~labelled[..., None]
        e = np.where(unlabelled, box_squared_distances(pred, boxes), e)
        weight = visible | unlabelled  # an unlabelled reference averages over all K points
    e = point_similarity(e, var, areas)
    e *= weight
    count = np.broadcast_to(weight, e.shape).sum(axis=-1)
    total = e.sum(axis=-1)
    return np.divide(total, count, out=np.zeros(np.shape(total)), where=count > 0)


def squared_distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(..., K) float64 ``dx ** 2 + dy ** 2``, computed in the points' dtype (float32 for Halpe)."""
    e = np.square(pred[..., 0] - gt[..., 0])
    e += np.square(pred[..., 1] - gt[..., 1])
    return e.astype(np.float64, copy=False)


def box_squared_distances(pred: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(..., K) squared distance of each point outside its reference box grown by its width and
    height on every side, ``[x - w, x + 2w] x [y - h, y + 2h]`` (COCOeval's ignore region); the
    bounds are rounded to the points' dtype, as COCOeval subtracts them from its arrays."""
    boxes = np.asarray(boxes, dtype=np.float64)
    x, y, w, h = (boxes[..., i, None] for i in range(4))
    x0, x1, y0, y1 = (v.astype(pred.dtype, copy=False) for v in (x - w, x + w * 2, y - h, y + h * 2))
    zero = np.zeros(())
    bx = np.maximum(zero, x0 - pred[..., 0]) + np.maximum(zero, pred[..., 0] - x1)
    by = np.maximum(zero, y0 - pred[..., 1]) + np.maximum(zero, pred[..., 1] - y1)
    return bx**2 + by**2


def point_similarity(e: np.ndarray, var: np.ndarray, areas: np.ndarray | float) -> np.ndarray:
    """Per-point ``exp(-d2 / var / (area + eps) / 2)``, in place on the float64 squared distances
    ``e`` (..., K), in COCOeval's order of operations; ``areas`` has e's leading shape."""
    e /= var
    e /= np.asarray(areas, dtype=np.float64)[..., None] + EPS
    e /= 2
    # a negative GT area (a broken file) overflows exp to inf, as in xtcocotools; that person is outside
    # every area range, so ignored as there: no numpy warning on the user's terminal
    with np.errstate(over="ignore"):
        return np.exp(np.negative(e, out=e), out=e)
