"""Layout conversion (133 <-> 136 <-> 26 <-> 17) and the OpenPose export."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from labeltool.coco import load_pose_dataset
from labeltool.convert import (
    BODY25_NAMES,
    convert_dataset,
    convert_keypoints,
    converted_document,
    derive_halpe_extras,
    keypoints_133_to_136,
    keypoints_136_to_133,
    openpose_documents,
    openpose_person,
    write_openpose,
)
from labeltool.errors import UserError
from labeltool.layouts import COCO17, HALPE26, HALPE136, WHOLEBODY133

# OpenPose's own BODY_25 names (poseParameters.cpp), in output order.
OPENPOSE_BODY25 = [
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
    "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel",
    "RBigToe", "RSmallToe", "RHeel",
]  # fmt: skip


def _from_openpose_name(name: str) -> str:
    """'RShoulder' -> 'right_shoulder', 'LBigToe' -> 'left_big_toe', 'MidHip' -> 'hip' (Halpe's name)."""
    if name == "MidHip":
        return "hip"
    side = {"R": "right_", "L": "left_"}.get(name[0], "") if name[1].isupper() else ""
    rest = name[1:] if side else name
    return side + "_".join(w.lower() for w in re.findall(r"[A-Z][a-z]*", rest))


@pytest.fixture(scope="module")
def real(realdata):
    return load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")


def test_133_136_133_is_exact_on_the_real_file(real):
    k136 = keypoints_133_to_136(real.keypoints)
    back = keypoints_136_to_133(k136)
    np.testing.assert_array_equal(back, real.keypoints)
    # through the datasets and json documents: part boxes, flags and every other field kept
    there = convert_dataset(real, HALPE136)
    doc136 = converted_document(there)
    assert all("face_box" in a and len(a["keypoints"]) == 136 * 3 for a in doc136["annotations"])
    again = convert_dataset(there, WHOLEBODY133)
    original = json.loads(open(real.path).read())
    assert converted_document(again) == original


def test_halpe_feet_are_reordered(real):
    k136 = keypoints_133_to_136(real.keypoints)
    for name in ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"):
        np.testing.assert_array_equal(k136[:, HALPE136.index(name)], real.keypoints[:, WHOLEBODY133.index(name)])
    # the positions differ between the layouts: Halpe 21 is the right big toe, 133's 21 the right small toe
    assert HALPE136.names[21] == "right_big_toe" and WHOLEBODY133.names[21] == "right_small_toe"
    labelled = real.keypoints[:, 20, 2] > 0
    assert labelled.sum() == 4
    np.testing.assert_array_equal(k136[labelled, 21], real.keypoints[labelled, 20])


def test_shared_points_by_name_for_every_pair(real):
    """Every conversion moves each point to the index of the same name, for all 16 layout pairs."""
    layouts = [COCO17, HALPE26, WHOLEBODY133, HALPE136]
    for src in layouts:
        pts = convert_keypoints(real.keypoints, WHOLEBODY133, src)
        for dst in layouts:
            out = convert_keypoints(pts, src, dst)
            assert out.shape == (len(real), dst.num_keypoints, 3)
            for j, name in enumerate(dst.names):
                if name in src.names:
                    np.testing.assert_array_equal(out[:, j], pts[:, src.index(name)], err_msg=f"{src.name}->{dst.name}")


def test_derived_points_known_answers():
    k = np.zeros((3, 133, 3))
    idx = WHOLEBODY133.index
    # person 0: everything needed, mixed visibilities
    k[0, idx("left_shoulder")] = [30, 50, 2]
    k[0, idx("right_shoulder")] = [10, 54, 1]
    k[0, idx("left_hip")] = [28, 100, 2]
    k[0, idx("right_hip")] = [12, 100, 2]
    k[0, idx("left_eye")] = [24, 20, 2]
    k[0, idx("right_eye")] = [16, 22, 0.5]
    k[0, WHOLEBODY133.parts["face"][8]] = [20, 35, 1.0]  # chin
    # person 1: one shoulder and no chin -> neck and head unlabelled, hip derived
    k[1, idx("left_shoulder")] = [30, 50, 2]
    k[1, idx("left_hip")] = [28, 100, 2]
    k[1, idx("right_hip")] = [12, 90, 1]
    k[1, idx("left_eye")] = [24, 20, 2]
    k[1, idx("right_eye")] = [16, 22, 2]
    head, neck, hip = derive_halpe_extras(k).transpose(1, 0, 2)
    np.testing.assert_allclose(neck[0], [20, 52, 1])
    np.testing.assert_allclose(hip[0], [20, 100, 2])
    # eye centre (20, 21), chin (20, 35): head top (20, 7); v = min(2, 0.5, 1.0)
    np.testing.assert_allclose(head[0], [20, 7, 0.5])
    np.testing.assert_array_equal(neck[1], [0, 0, 0])
    np.testing.assert_array_equal(head[1], [0, 0, 0])
    np.testing.assert_allclose(hip[1], [20, 95, 1])
    np.testing.assert_array_equal(derive_halpe_extras(k)[2], np.zeros((3, 3)))
    k136 = keypoints_133_to_136(k)
    np.testing.assert_allclose(k136[0, HALPE136.index("head")], [20, 7, 0.5])
    # dropped going back
    assert keypoints_136_to_133(k136).shape == (3, 133, 3)


def test_derived_counts_on_the_real_file(real):
    k136 = keypoints_133_to_136(real.keypoints)
    v = real.keypoints[:, :, 2] > 0
    both_shoulders = v[:, 5] & v[:, 6]
    np.testing.assert_array_equal(k136[:, HALPE136.index("neck"), 2] > 0, both_shoulders)
    np.testing.assert_array_equal(k136[:, HALPE136.index("hip"), 2] > 0, v[:, 11] & v[:, 12])
    head = k136[:, HALPE136.index("head")]
    has_head = head[:, 2] > 0
    assert has_head.sum() == 4  # the four labelled faces
    # the head top lies above the eyes, inside the person's box grown by half its height upwards
    eyes_y = (real.keypoints[has_head, 1, 1] + real.keypoints[has_head, 2, 1]) / 2
    assert (head[has_head, 1] < eyes_y).all()
    box = real.bboxes[has_head]
    assert (head[has_head, 1] > box[:, 1] - box[:, 3] / 2).all()
    assert ((head[has_head, 0] > box[:, 0]) & (head[has_head, 0] < box[:, 0] + box[:, 2])).all()


def test_136_points_are_kept_from_a_halpe_source():
    k = np.zeros((1, 136, 3))
    k[0, 17] = [5, 6, 2]  # head labelled in the source
    k[0, 5] = [1, 1, 2]  # one shoulder only
    out = convert_keypoints(k, HALPE136, HALPE26)
    np.testing.assert_array_equal(out, k[:, :26])
    out = convert_keypoints(out, HALPE26, HALPE136)
    np.testing.assert_array_equal(out, k)
    np.testing.assert_array_equal(convert_keypoints(k, HALPE136, WHOLEBODY133)[0, 17:], np.zeros((116, 3)))


def test_coco17_pads_and_truncates(real):
    body = real.keypoints[:, :17]
    k133 = convert_keypoints(body, COCO17, WHOLEBODY133)
    np.testing.assert_array_equal(k133[:, :17], body)
    assert not k133[:, 17:].any()
    np.testing.assert_array_equal(convert_keypoints(real.keypoints, WHOLEBODY133, COCO17), body)
    h26 = convert_keypoints(body, COCO17, HALPE26)
    np.testing.assert_array_equal(h26[:, 18], keypoints_133_to_136(k133)[:, 18])  # neck derived from body
    with pytest.raises(ValueError, match="expected"):
        convert_keypoints(body, WHOLEBODY133, HALPE136)


def test_body25_mapping_by_openpose_names():
    assert len(BODY25_NAMES) == 25
    assert list(BODY25_NAMES) == [_from_openpose_name(n) for n in OPENPOSE_BODY25]
    assert all(name in HALPE136.names for name in BODY25_NAMES)


def test_openpose_person_values(real):
    k136 = keypoints_133_to_136(real.keypoints)
    i = 0  # person 442619: body, feet, face and right hand labelled
    person = openpose_person(k136[i])
    assert set(person) == {
        "person_id", "pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
        "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d",
    }  # fmt: skip
    pose = np.array(person["pose_keypoints_2d"]).reshape(25, 3)
    face = np.array(person["face_keypoints_2d"]).reshape(70, 3)
    left = np.array(person["hand_left_keypoints_2d"]).reshape(21, 3)
    right = np.array(person["hand_right_keypoints_2d"]).reshape(21, 3)
    for j, op_name in enumerate(OPENPOSE_BODY25):
        src = k136[i, HALPE136.index(_from_openpose_name(op_name))]
        expected = [src[0], src[1], min(src[2], 1.0)] if src[2] > 0 else [0, 0, 0]
        np.testing.assert_allclose(pose[j], expected, err_msg=op_name)
    assert pose[1, 2] == 1 and pose[8, 2] == 1  # neck and mid hip derived
    f68 = real.keypoints[i, WHOLEBODY133.parts["face"]]
    np.testing.assert_allclose(face[:68, :2], f68[:, :2])
    np.testing.assert_allclose(face[68, :2], f68[36:42, :2].mean(axis=0))  # right pupil
    np.testing.assert_allclose(face[69, :2], f68[42:48, :2].mean(axis=0))  # left pupil
    assert not left.any()  # left hand unlabelled: all zeros
    rh = real.keypoints[i, WHOLEBODY133.parts["righthand"]]
    np.testing.assert_allclose(right[:, 2], np.clip(rh[:, 2], 0, 1))
    assert person["pose_keypoints_3d"] == [] and person["person_id"] == [-1]


def test_openpose_confidence_rule():
    k = np.zeros((136, 3))
    k[0] = [10, 20, 2]  # COCO "visible" -> 1
    k[3] = [11, 21, 1]  # COCO "occluded" -> 1
    k[4] = [12, 22, 0.25]  # a float confidence is kept
    k[5] = [13, 23, 0]  # unlabelled -> (0, 0, 0)
    pose = np.array(openpose_person(k)["pose_keypoints_2d"]).reshape(25, 3)
    np.testing.assert_array_equal(pose[0], [10, 20, 1])
    np.testing.assert_array_equal(pose[BODY25_NAMES.index("left_ear")], [11, 21, 1])
    np.testing.assert_array_equal(pose[BODY25_NAMES.index("right_ear")], [12, 22, 0.25])
    np.testing.assert_array_equal(pose[BODY25_NAMES.index("left_shoulder")], [0, 0, 0])


def test_write_openpose_files(real, tmp_path):
    paths = write_openpose(real, tmp_path / "op")
    assert sorted(p.name for p in paths) == [
        "000000000785_keypoints.json", "000000040083_keypoints.json",
        "000000196141_keypoints.json", "000000197388_keypoints.json",
    ]  # fmt: skip
    doc = json.loads((tmp_path / "op" / "000000196141_keypoints.json").read_text())
    assert doc["version"] == 1.3 and len(doc["people"]) == 5
    assert all(len(p["pose_keypoints_2d"]) == 75 and len(p["face_keypoints_2d"]) == 210 for p in doc["people"])
    # crowd regions are not people
    crowd = convert_dataset(real, WHOLEBODY133)
    crowd.iscrowd = crowd.iscrowd.copy()
    crowd.iscrowd[0] = 1
    assert openpose_documents(crowd)["000000000785_keypoints.json"]["people"] == []
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        write_openpose(real, tmp_path / "file")
