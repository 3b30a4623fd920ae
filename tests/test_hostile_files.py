"""Hostile and real-world files: the datasets' files as distributed, resume, outputs over inputs, odd names.

Each test here failed on the code before it (a902c7c): a refusal of a real file, a silent mix
of inputs on resume, an input overwritten, a traceback, or a wrong number.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_hostile_distill import NO_TEACHERS, assert_one_line, wbt, wbt_in_process

from labeltool.coco import load_pose_dataset
from labeltool.datasets import read_body_dataset
from labeltool.errors import UserError

# --------------------------------------------------------------------------- §3 real field formats

# PoseTrack18 as distributed (mmpose tests/data/posetrack18/annotations/val/003418_mpii_test.json, cut from
# the official val file): 'iscrowd' a JSON boolean, no 'area', 'bbox_head', 'track_id', empty 'scores',
# frames with vid_id / frame_id / nframes / is_labeled / ignore regions, and frames nobody labelled.
POSETRACK_KEYPOINTS = [621, 471, 1, 542.2835693, 599.2855835, 1, 457.787323, 347.6607971, 1, 0, 0, 0, 0, 0, 0,
                       371, 737, 1, 753, 579, 1, 387, 981, 1, 1023, 353, 1, 0, 0, 0, 953, 141, 1, 968, 833, 1,
                       1152, 843, 1, 0, 0, 0, 1416, 429, 1, 0, 0, 0, 0, 0, 0]  # fmt: skip
POSETRACK_NAMES = ["nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                   "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                   "right_knee", "left_ankle", "right_ankle"]  # fmt: skip


def posetrack_file(folder: Path) -> tuple[Path, Path]:
    """folder/posetrack/images/val/003418_mpii_test/00000{0,1}.jpg (1920 x 1080) and the video's json."""
    root = folder / "posetrack"
    video = root / "images" / "val" / "003418_mpii_test"
    video.mkdir(parents=True)
    for frame in (0, 1):
        cv2.imwrite(str(video / f"{frame:06d}.jpg"), np.full((1080, 1920, 3), 90, np.uint8))

    def frame(k: int, labelled: bool) -> dict:
        return {"has_no_densepose": True, "is_labeled": labelled, "file_name": f"images/val/003418_mpii_test/{k:06d}.jpg",
                "nframes": 149, "frame_id": 10034180000 + k, "vid_id": "003418",
                "ignore_regions_y": [[639, 647, 635, 618]] if labelled else [],
                "ignore_regions_x": [[0, 1, 198, 258]] if labelled else [],
                "id": 10034180000 + k, "width": 1920, "height": 1080,
                "mask_file": f"mask/val/003418_mpii_test/{k:06d}.jpg"}  # fmt: skip

    doc = {
        "categories": [{"supercategory": "person", "id": 1, "name": "person", "keypoints": POSETRACK_NAMES,
                        "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13]]}],
        "images": [frame(0, True), frame(1, False)],
        "annotations": [{"bbox_head": [346, 337, 296, 237], "keypoints": POSETRACK_KEYPOINTS, "track_id": 0,
                         "image_id": 10034180000, "bbox": [214.25, 15.0, 1358.5, 1092.0], "scores": [],
                         "category_id": 1, "id": 1003418000000, "iscrowd": False, "num_keypoints": 11}],
    }  # fmt: skip
    ann = root / "annotations" / "val" / "003418_mpii_test.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(doc, indent=4))
    return ann, root


def test_posetrack18_as_distributed_is_read_with_mmpose_area(tmp_path):
    ann, _ = posetrack_file(tmp_path)
    body = read_body_dataset(ann)
    assert body.format.name == "posetrack18"
    ds = body.native
    assert ds.iscrowd.tolist() == [0] and ds.ann_ids.tolist() == [1003418000000]
    # no 'area': mmpose's estimate, the box clipped to the 1920 x 1080 frame, x 0.53
    np.testing.assert_allclose(ds.areas, [(1572.75 - 214.25) * (1079 - 15.0) * 0.53])
    assert ds.annotations[0]["track_id"] == 0 and ds.annotations[0]["bbox_head"] == [346, 337, 296, 237]
    assert [im["is_labeled"] for im in ds.images] == [True, False]
    np.testing.assert_array_equal(body.extra[0], [[542.2835693, 599.2855835, 1], [457.787323, 347.6607971, 1]])


def test_posetrack18_as_distributed_distils(tmp_path):
    ann, root = posetrack_file(tmp_path)
    out = tmp_path / "out"
    result = wbt("distill", "--ann", ann, "--images", root, "--out", out, "--teachers", NO_TEACHERS,
                 "--workers", "1", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "wholebody133.json").read_text())
    assert [im["id"] for im in doc["images"]] == [10034180000, 10034180001]  # the unlabelled frame is kept
    (person,) = doc["annotations"]
    assert person["iscrowd"] == 0 and person["track_id"] == 0
    assert person["area"] == pytest.approx((1572.75 - 214.25) * (1079 - 15.0) * 0.53)
    # nose and shoulders are PoseTrack's own points, copied exactly
    assert person["keypoints"][0:3] == [621, 471, 1] and person["keypoints"][15:21] == [371, 737, 1, 753, 579, 1]


@pytest.mark.parametrize(
    "field, value",
    [("keypoints", [True] + POSETRACK_KEYPOINTS[1:]), ("bbox", [True, 15.0, 1358.5, 1092.0]),
     ("area", False), ("iscrowd", "no"), ("iscrowd", None)],
)  # fmt: skip
def test_booleans_are_still_refused_as_coordinates(tmp_path, field, value):
    ann, _ = posetrack_file(tmp_path)
    doc = json.loads(ann.read_text())
    doc["annotations"][0][field] = value
    ann.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=str(ann)):
        read_body_dataset(ann)


def test_aic_crowdpose_mpii_as_distributed(tmp_path):
    """mmpose's tests/data samples of AIC (no area, no iscrowd, 'Right Shoulder'), CrowdPose ('head'), MPII."""
    aic_names = ["Right Shoulder", "Right Elbow", "Right Wrist", "Left Shoulder", "Left Elbow", "Left Wrist",
                 "Right Hip", "Right Knee", "Right Ankle", "Left Hip", "Left Knee", "Left Ankle", "Head top", "Neck"]  # fmt: skip
    aic_kpts = [313, 201, 2, 312, 313, 1, 320, 424, 2, 406, 197, 1, 431, 286, 1, 459, 269, 2, 375, 447, 1, 0, 0, 0,
                0, 0, 0, 416, 441, 2, 0, 0, 0, 0, 0, 0, 395, 74, 2, 372, 170, 2]  # fmt: skip
    aic = {"info": {"description": "MMPose example aic dataset", "version": "1.0", "year": "2020"},
           "licenses": [{"url": "", "id": 1, "name": ""}],
           "categories": [{"supercategory": "person", "id": 1, "name": "person", "keypoints": aic_names}],
           "images": [{"url": "http://www.sinaimg.cn/x.jpg", "file_name": "054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg",
                       "height": 600, "width": 900, "id": 1}],
           "annotations": [{"bbox": [279, 55, 213, 544], "keypoints": aic_kpts, "num_keypoints": 10, "image_id": 1,
                            "category_id": 1, "id": 4}]}  # fmt: skip
    path = tmp_path / "aic.json"
    path.write_text(json.dumps(aic))
    body = read_body_dataset(path)
    assert body.format.name == "aic"
    np.testing.assert_allclose(body.native.areas, [213 * (599 - 55) * 0.53])  # clipped to the 600-pixel height
    assert body.native.iscrowd.tolist() == [0]
    np.testing.assert_array_equal(body.coco17().keypoints[0, 6], [313, 201, 2])  # right shoulder

    crowd = json.loads(json.dumps(aic))
    del crowd["info"], crowd["licenses"]
    crowd["categories"][0]["keypoints"] = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                                           "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                                           "right_knee", "left_ankle", "right_ankle", "head", "neck"]  # fmt: skip
    crowd["images"] = [{"file_name": "106848.jpg", "id": 106848, "height": 425, "width": 640, "crowdIndex": 0.33}]
    crowd["annotations"] = [{"num_keypoints": 5, "iscrowd": 0, "keypoints": aic_kpts, "image_id": 106848,
                             "bbox": [106.01, 13.43, 273.15, 352.42], "category_id": 1, "id": 123803}]  # fmt: skip
    path.write_text(json.dumps(crowd))
    body = read_body_dataset(path)
    assert body.format.name == "crowdpose"
    np.testing.assert_allclose(body.native.areas, [273.15 * 352.42 * 0.53])

    mpii = [{"joints_vis": [0] + [1] * 15, "joints": [[-1.0, -1.0]] + [[800.0 + k, 500.0 - k] for k in range(15)],
             "image": "005808361.jpg", "scale": 4.718488, "center": [966.0, 340.0]}]  # fmt: skip
    path.write_text(json.dumps(mpii))
    body = read_body_dataset(path)
    assert body.format.name == "mpii" and body.native.images == [{"id": 5808361, "file_name": "005808361.jpg"}]
    assert not body.native.keypoints[0, 0].any()  # the [-1, -1] joint is unlabelled
    np.testing.assert_array_equal(body.native.keypoints[0, 1], [800.0 - 1, 500.0 - 1, 2])


def test_coco_files_keep_their_own_area(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 50, 50], "area": 123.5, "iscrowd": 1,
                            "keypoints": [0] * 51}]}  # fmt: skip
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    ds = load_pose_dataset(path)
    assert ds.areas.tolist() == [123.5] and ds.iscrowd.tolist() == [1]
