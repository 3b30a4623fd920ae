"""Crop proposals: known answers on hand-made bodies, batch = row by row, coverage on real COCO-WholeBody GT."""

from __future__ import annotations

import numpy as np
import pytest

from labeltool import proposals as P
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import WHOLEBODY133


def _body(points: dict[int, tuple[float, float]]) -> np.ndarray:
    body = np.zeros((1, 17, 3))
    for k, (x, y) in points.items():
        body[0, k] = (x, y, 2)
    return body


def test_hand_box_known_answer():
    # Upper arm 100 px (shoulder -> elbow), forearm 100 px straight down.
    body = _body({P.L_SHOULDER: (0, -100), P.L_ELBOW: (0, 0), P.L_WRIST: (0, 100)})
    boxes, valid = P.hand_boxes_from_body(body, "left")
    side = max(P.HAND_FOREARM_FACTOR * 100, P.HAND_UPPERARM_FACTOR * 100)
    cy = 100 + P.HAND_SHIFT * 100
    assert valid.tolist() == [True]
    np.testing.assert_allclose(boxes[0], [-side / 2, cy - side / 2, side / 2, cy + side / 2])
    # The right arm is absent: no right hand box.
    boxes, valid = P.hand_boxes_from_body(body, "right")
    assert valid.tolist() == [False] and not boxes.any()


def test_hand_box_without_elbow_uses_shoulders():
    body = _body({P.L_SHOULDER: (100, 0), P.R_SHOULDER: (0, 0), P.L_WRIST: (150, 200)})
    boxes, valid = P.hand_boxes_from_body(body, "left")
    half = P.HAND_SHOULDER_FACTOR * 100 / 2
    assert valid[0]
    np.testing.assert_allclose(boxes[0], [150 - half, 200 - half, 150 + half, 200 + half])


def test_face_box_known_answer_and_shoulder_fallback():
    body = _body({P.NOSE: (50, 50), P.L_EYE: (60, 40), P.R_EYE: (40, 40), P.L_EAR: (75, 45), P.R_EAR: (25, 45)})
    boxes, valid = P.face_boxes_from_body(body)
    ear, eye = 50.0, 20.0
    nose_eye, nose_ear = np.hypot(10, 10), np.hypot(25, 5)
    side = max(P.FACE_EAR_FACTOR * ear, P.FACE_EYE_FACTOR * eye, P.FACE_NOSE_EYE_FACTOR * nose_eye,
               P.FACE_NOSE_EAR_FACTOR * nose_ear)  # fmt: skip
    cx, cy = 50.0, (50 + 40 + 40 + 45 + 45) / 5 + P.FACE_DOWN_SHIFT * side
    assert valid[0]
    np.testing.assert_allclose(boxes[0], [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    # Only the nose: size from the shoulders.
    body = _body({P.NOSE: (50, 50), P.L_SHOULDER: (100, 120), P.R_SHOULDER: (0, 120)})
    boxes, valid = P.face_boxes_from_body(body)
    assert valid[0]
    np.testing.assert_allclose(boxes[0, 2] - boxes[0, 0], P.FACE_SHOULDER_FACTOR * 100)
    # No head point at all: no face.
    _, valid = P.face_boxes_from_body(_body({P.L_SHOULDER: (100, 120), P.R_SHOULDER: (0, 120)}))
    assert not valid[0]


def test_foot_box_needs_knee_and_ankle():
    body = _body({P.R_KNEE: (0, 0), P.R_ANKLE: (0, 200)})
    boxes, valid = P.foot_boxes_from_body(body, "right")
    side = P.FOOT_SHIN_FACTOR * 200
    cy = 200 + P.FOOT_SHIFT * 200
    np.testing.assert_allclose(boxes[0], [-side / 2, cy - side / 2, side / 2, cy + side / 2])
    assert valid[0]
    _, valid = P.foot_boxes_from_body(body, "left")
    assert not valid[0]
    with pytest.raises(ValueError):
        P.foot_boxes_from_body(body, "middle")


def test_batch_equals_row_by_row():
    rng = np.random.default_rng(0)
    body = np.concatenate([rng.uniform(0, 500, (40, 17, 2)), rng.integers(0, 3, (40, 17, 1))], axis=2)
    for fn in (P.face_boxes_from_body, lambda b: P.hand_boxes_from_body(b, "left"),
               lambda b: P.foot_boxes_from_body(b, "right"), P.person_boxes_from_body):  # fmt: skip
        boxes, valid = fn(body)
        for i in range(len(body)):
            b1, v1 = fn(body[i : i + 1])
            assert v1[0] == valid[i]
            np.testing.assert_allclose(b1[0], boxes[i])
        assert not boxes[~valid].any()


def test_box_helpers():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(P.box_iou(a, b), [50 / 150, 0.0])
    np.testing.assert_allclose(P.xyxy_to_xywh(P.xywh_to_xyxy([[1, 2, 3, 4]])), [[1, 2, 3, 4]])
    pts = np.array([[[5, 5, 1], [11, 5, 1]]], dtype=float)
    assert P.points_in_boxes(pts, a[:1]).tolist() == [[True, False]]


def test_coverage_on_real_coco_wholebody(realdata):
    ds = load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")
    body = ds.keypoints[:, :17]
    parts = WHOLEBODY133.parts
    checks = [("face", P.face_boxes_from_body(body), ds.keypoints[:, parts["face"]])]
    for side in ("left", "right"):
        checks.append((side, P.hand_boxes_from_body(body, side), ds.keypoints[:, parts[f"{side}hand"]]))
    foot = ds.keypoints[:, parts["foot"]]
    checks.append(("lfoot", P.foot_boxes_from_body(body, "left"), foot[:, :3]))
    checks.append(("rfoot", P.foot_boxes_from_body(body, "right"), foot[:, 3:]))
    for name, (boxes, valid), pts in checks:
        labelled = pts[:, :, 2] > 0
        inside = P.points_in_boxes(pts, boxes) & labelled & valid[:, None]
        coverage = inside.sum() / labelled.sum()
        assert coverage >= 0.95, (name, coverage)
        # Not needlessly large: median box side / the labelled points' extent. A foot's direction
        # is unknown from knee -> ankle, so its box spans every way the foot can point.
        has = labelled.any(axis=1) & valid
        extent = np.array([np.ptp(pts[i, labelled[i], :2], axis=0).max() for i in np.nonzero(has)[0]])
        ratio = np.median((boxes[has, 2] - boxes[has, 0]) / np.maximum(extent, 1))
        assert ratio < (3.5 if name.endswith("foot") else 2.0), (name, ratio)
