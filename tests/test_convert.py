"""Layout conversion (133 <-> 136 <-> 26 <-> 17) and the OpenPose export."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main as cli
from labeltool.convert import (
    BODY25_NAMES,
    convert_dataset,
    convert_keypoints,
    convert_points,
    openpose_documents,
    openpose_person,
    write_openpose,
)
from labeltool.errors import UserError
from labeltool.halpe import to_halpe136, to_wholebody133
from labeltool.io.pose import load_pose_dataset, pose_document
from labeltool.layouts import COCO17, HALPE26, HALPE136, WHOLEBODY133


def keypoints_133_to_136(kpts: np.ndarray) -> np.ndarray:
    return to_halpe136(kpts)[0]


def keypoints_136_to_133(kpts: np.ndarray) -> np.ndarray:
    return to_wholebody133(kpts)[0]

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
    doc136 = pose_document(there)
    assert all("face_box" in a and len(a["keypoints"]) == 136 * 3 for a in doc136["annotations"])
    again = convert_dataset(there, WHOLEBODY133)
    original = json.loads(open(real.path).read())
    assert pose_document(again) == original


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
    # person 0: everything labelled, face included, mixed visibilities
    k[0, idx("left_shoulder")] = [30, 50, 2]
    k[0, idx("right_shoulder")] = [10, 54, 1]
    k[0, idx("left_hip")] = [28, 100, 2]
    k[0, idx("right_hip")] = [12, 100, 2]
    k[0, idx("left_eye")] = [24, 20, 2]
    k[0, idx("right_eye")] = [16, 22, 0.5]
    k[0, WHOLEBODY133.parts["face"]] = [20, 35, 1.0]
    # person 1: one shoulder -> neck unlabelled, hip derived
    k[1, idx("left_shoulder")] = [30, 50, 2]
    k[1, idx("left_hip")] = [28, 100, 2]
    k[1, idx("right_hip")] = [12, 90, 1]
    conf = np.zeros((3, 133), dtype=np.float32)
    conf[0, [idx("left_shoulder"), idx("right_shoulder")]] = [0.5, 0.25]
    conf[1, [idx("left_hip"), idx("right_hip")]] = [1.0, 0.75]
    k136, c136 = to_halpe136(k, conf)
    head, neck, hip = (k136[:, HALPE136.index(name)] for name in ("head", "neck", "hip"))
    np.testing.assert_allclose(neck[0], [20, 52, 1])
    np.testing.assert_allclose(hip[0], [20, 100, 2])
    np.testing.assert_array_equal(head, np.zeros((3, 3)))  # the top of the head is never guessed
    np.testing.assert_array_equal(neck[1], [0, 0, 0])
    np.testing.assert_allclose(hip[1], [20, 95, 1])
    assert not k136[2].any()
    # confidences: copied by the index map, a derived point gets the lower of its sources'
    np.testing.assert_array_equal(c136[0, HALPE136.index("neck")], 0.25)
    np.testing.assert_array_equal(c136[1, HALPE136.index("hip")], 0.75)
    assert c136[1, HALPE136.index("neck")] == 0 and c136.dtype == np.float32
    # dropped going back
    back, back_conf = to_wholebody133(k136, c136)
    np.testing.assert_array_equal(back, k)
    np.testing.assert_array_equal(back_conf, conf)


def test_convert_points_carries_confidence_through_every_pair(real):
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.1, 1, (len(real), 133)).astype(np.float32)
    k136, c136 = convert_points(real.keypoints, conf, WHOLEBODY133, HALPE136)
    np.testing.assert_array_equal(k136, keypoints_133_to_136(real.keypoints))
    np.testing.assert_array_equal(c136, to_halpe136(real.keypoints, conf)[1])
    k17, c17 = convert_points(real.keypoints, conf, WHOLEBODY133, COCO17)
    np.testing.assert_array_equal(c17, conf[:, :17])
    k26, c26 = convert_points(k17, c17, COCO17, HALPE26)
    np.testing.assert_array_equal(c26[:, 18], c136[:, 18])  # neck from the shoulders, both ways
    assert convert_points(real.keypoints, None, WHOLEBODY133, HALPE136)[1] is None


def test_derived_counts_on_the_real_file(real):
    k136 = keypoints_133_to_136(real.keypoints)
    v = real.keypoints[:, :, 2] > 0
    both_shoulders = v[:, 5] & v[:, 6]
    np.testing.assert_array_equal(k136[:, HALPE136.index("neck"), 2] > 0, both_shoulders)
    np.testing.assert_array_equal(k136[:, HALPE136.index("hip"), 2] > 0, v[:, 11] & v[:, 12])
    assert both_shoulders.sum() == 12 and not k136[:, HALPE136.index("head")].any()


def test_convert_cli_to_136_leaves_the_head_top_unlabelled(realdata, tmp_path):
    out = tmp_path / "val136.json"
    result = CliRunner().invoke(cli, ["convert", str(realdata / "coco_wholebody" / "test_coco_wholebody.json"),
                                      str(out), "--to", "136"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "derived neck 12, hip 12 (head top unlabelled)" in result.output
    anns = json.loads(out.read_text())["annotations"]
    assert all(a["keypoints"][17 * 3 : 18 * 3] == [0, 0, 0] for a in anns)
    assert all("face_box" in a for a in anns)


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
