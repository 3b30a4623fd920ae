"""Crop proposals for the part teachers, computed from COCO-17 body keypoints.

Every function is vectorised over a batch of persons: ``body`` is (N, 17, 3) (x, y, v;
any v > 0 means the point is labelled / detected) and the result is ``(boxes, valid)``:
boxes (N, 4) as float ``[x0, y0, x1, y1]`` in image pixels and a validity mask (N,).
A part is not proposed (valid False, box all zeros) when the points it is built from are
missing. Boxes are square: every teacher crops a square around them.

The size factors were tuned on the COCO-WholeBody sample in ``../shared/realdata`` so
that >= 95% of the labelled face / hand / foot points fall inside the boxes
(``benchmarks/proposal_coverage.py`` prints coverage and IoU with the GT part boxes).
"""

from __future__ import annotations

import numpy as np

from labeltool.layouts import (
    L_ANKLE,
    L_EAR,
    L_ELBOW,
    L_EYE,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NOSE,
    R_ANKLE,
    R_EAR,
    R_ELBOW,
    R_EYE,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
)

SIDES = ("left", "right")

# Face: the box side is the largest of these head measures times its factor.
FACE_EAR_FACTOR = 1.25  # ear-to-ear distance
FACE_EYE_FACTOR = 2.6  # eye-to-eye distance
FACE_NOSE_EYE_FACTOR = 3.0  # nose to the nearest eye
FACE_NOSE_EAR_FACTOR = 1.5  # nose to the farthest ear (profile faces)
FACE_SHOULDER_FACTOR = 0.55  # shoulder width, used when the head gives no size
FACE_DOWN_SHIFT = 0.1  # head points sit above the face centre: move down by this share of the side
# Hand: centre pushed past the wrist along the forearm; side from forearm / upper arm.
HAND_SHIFT = 0.3  # fraction of the forearm vector past the wrist
HAND_FOREARM_FACTOR = 1.05
HAND_UPPERARM_FACTOR = 0.75
HAND_SHOULDER_FACTOR = 0.9  # shoulder width, when the elbow is missing (box centred on the wrist)
# Foot: centre pushed past the ankle along the shin; side from the shin length.
FOOT_SHIFT = 0.1
FOOT_SHIN_FACTOR = 0.9
FOOT_THIGH_FACTOR = 0.7


def _square(center: np.ndarray, side: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = side[:, None] / 2.0
    boxes = np.concatenate([center - half, center + half], axis=1)
    valid = valid & np.isfinite(boxes).all(axis=1) & (side > 1.0)
    boxes[~valid] = 0.0
    return boxes, valid


def _check(body: np.ndarray) -> np.ndarray:
    body = np.asarray(body, dtype=np.float64)
    if body.ndim != 3 or body.shape[1:] != (17, 3):
        raise ValueError(f"body keypoints must be (N, 17, 3), got {body.shape}")
    return body


def _dist(body: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance between points a and b, and whether both are present."""
    ok = (body[:, a, 2] > 0) & (body[:, b, 2] > 0)
    d = np.linalg.norm(body[:, a, :2] - body[:, b, :2], axis=1)
    return np.where(ok, d, 0.0), ok


def face_boxes_from_body(body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square face boxes from nose / eyes / ears (size from shoulders when the head gives none).

    The centre is the mean of the present head points moved down by ``FACE_DOWN_SHIFT``
    of the side (eyes and ears sit above the middle of the 68 face points); the side is the
    largest of several head measures. Proposed when at least one head point is present and
    some size measure (two head points, or both shoulders) exists.
    """
    body = _check(body)
    head = body[:, NOSE : R_EAR + 1]
    present = head[:, :, 2] > 0
    count = present.sum(axis=1)
    center = (head[:, :, :2] * present[:, :, None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    ear, _ = _dist(body, L_EAR, R_EAR)
    eye, _ = _dist(body, L_EYE, R_EYE)
    nose_eye = np.maximum(_dist(body, NOSE, L_EYE)[0], _dist(body, NOSE, R_EYE)[0])
    nose_ear = np.maximum(_dist(body, NOSE, L_EAR)[0], _dist(body, NOSE, R_EAR)[0])
    shoulder, _ = _dist(body, L_SHOULDER, R_SHOULDER)
    measures = [
        FACE_EAR_FACTOR * ear,
        FACE_EYE_FACTOR * eye,
        FACE_NOSE_EYE_FACTOR * nose_eye,
        FACE_NOSE_EAR_FACTOR * nose_ear,
    ]
    side = np.max(np.stack(measures), axis=0)
    side = np.where(side > 0, side, FACE_SHOULDER_FACTOR * shoulder)
    center[:, 1] += FACE_DOWN_SHIFT * side
    return _square(center, side, count > 0)


def face_boxes_from_head(
    top: np.ndarray, bottom: np.ndarray, center: float, side: float
) -> tuple[np.ndarray, np.ndarray]:
    """Square face boxes from two points on the head's axis that datasets without face points label.

    ``top`` and ``bottom`` (N, 3): e.g. the head top and the neck (CrowdPose, AI Challenger),
    the upper neck (MPII) or the head bottom (PoseTrack). The centre lies ``center`` of the way
    from top to bottom, the side is ``side`` times their distance (the factors per dataset are
    in labeltool/data/body_datasets.json). Proposed when both points are labelled.
    """
    top = np.asarray(top, dtype=np.float64).reshape(-1, 3)
    bottom = np.asarray(bottom, dtype=np.float64).reshape(-1, 3)
    ok = (top[:, 2] > 0) & (bottom[:, 2] > 0)
    centre = top[:, :2] + center * (bottom[:, :2] - top[:, :2])
    length = np.linalg.norm(bottom[:, :2] - top[:, :2], axis=1)
    return _square(centre, side * length, ok)


def hand_boxes_from_body(body: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Square boxes around the person's ``side`` ('left' or 'right') hand, from elbow -> wrist.

    The centre is the wrist pushed ``HAND_SHIFT`` of the forearm further along it; the box
    side is the larger of a forearm and an upper-arm multiple (a foreshortened forearm
    still gets a hand-sized box). Without the elbow the box is centred on the wrist and
    sized from the shoulder width. Needs the wrist, and the elbow or both shoulders.
    """
    body = _check(body)
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    shoulder, elbow, wrist = (L_SHOULDER, L_ELBOW, L_WRIST) if side == "left" else (R_SHOULDER, R_ELBOW, R_WRIST)
    forearm, ok = _dist(body, elbow, wrist)
    upper, _ = _dist(body, shoulder, elbow)
    shoulders, shoulders_ok = _dist(body, L_SHOULDER, R_SHOULDER)
    shift = np.where(ok[:, None], body[:, wrist, :2] - body[:, elbow, :2], 0.0)
    center = body[:, wrist, :2] + HAND_SHIFT * shift
    size = np.maximum(HAND_FOREARM_FACTOR * forearm, HAND_UPPERARM_FACTOR * upper)
    fallback = ~ok & (body[:, wrist, 2] > 0) & shoulders_ok
    size = np.where(fallback, HAND_SHOULDER_FACTOR * shoulders, size)
    return _square(center, size, ok | fallback)


def foot_boxes_from_body(body: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Square boxes around the person's ``side`` foot, from knee -> ankle.

    The centre is the ankle pushed ``FOOT_SHIFT`` of the shin further along it; the side
    is the larger of a shin and a thigh multiple. Needs the knee and the ankle.
    """
    body = _check(body)
    if side not in SIDES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    hip, knee, ankle = (L_HIP, L_KNEE, L_ANKLE) if side == "left" else (R_HIP, R_KNEE, R_ANKLE)
    shin, ok = _dist(body, knee, ankle)
    thigh, _ = _dist(body, hip, knee)
    center = body[:, ankle, :2] + FOOT_SHIFT * (body[:, ankle, :2] - body[:, knee, :2])
    size = np.maximum(FOOT_SHIN_FACTOR * shin, FOOT_THIGH_FACTOR * thigh)
    return _square(center, size, ok)


def person_boxes_from_body(body: np.ndarray, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (not square) around the present body points, grown by ``margin`` of their extent per side.

    Needs at least two present points.
    """
    body = _check(body)
    present = body[:, :, 2] > 0
    big = np.finfo(np.float64).max
    xy = body[:, :, :2]
    lo = np.where(present[:, :, None], xy, big).min(axis=1)
    hi = np.where(present[:, :, None], xy, -big).max(axis=1)
    ok = present.sum(axis=1) >= 2
    lo = np.where(ok[:, None], lo, 0.0)
    hi = np.where(ok[:, None], hi, 0.0)
    pad = margin * (hi - lo)
    boxes = np.concatenate([lo - pad, hi + pad], axis=1)
    ok &= ((hi - lo) > 0).any(axis=1)
    boxes[~ok] = 0.0
    return boxes, ok


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO [x, y, w, h] boxes (N, 4) -> [x0, y0, x1, y1]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] boxes (N, 4) -> COCO [x, y, w, h]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) [x0, y0, x1, y1] box arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, K) bool: whether point k of person n lies in box n. points (N, K, >=2), boxes (N, 4)."""
    x, y = points[:, :, 0], points[:, :, 1]
    return (
        (x >= boxes[:, None, 0]) & (x <= boxes[:, None, 2]) & (y >= boxes[:, None, 1]) & (y <= boxes[:, None, 3])
    )
