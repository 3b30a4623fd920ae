"""Hostile and real-world files: the datasets' files as distributed, resume, outputs over inputs, odd names.

Each test here failed on the code before it (a902c7c): a refusal of a real file, a silent mix
of inputs on resume, an input overwritten, a traceback, or a wrong number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_hostile_distill import NO_TEACHERS, assert_one_line, wbt, wbt_in_process

from labeltool.datasets import read_body_dataset
from labeltool.errors import UserError
from labeltool.io.pose import load_pose_dataset

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


# --------------------------------------------------------------------------- 4.6 names and MPII values


def test_superscript_digit_file_names_get_counted_ids(tmp_path):
    """'²'.isdigit() is true and int('²') fails: such names are not numbered, ids count 1, 2, ..."""
    from labeltool.io.paths import list_images

    for name in ("1.jpg", "².jpg"):
        cv2.imwrite(str(tmp_path / name), np.full((6, 8, 3), 90, np.uint8))
    assert list_images(tmp_path) == [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "².jpg"}]
    mpii = [{"image": name, "joints": [[5.0, 5.0]] * 16, "joints_vis": [1] * 16} for name in ("7.jpg", "².jpg")]
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps(mpii))
    assert [im["id"] for im in read_body_dataset(path).native.images] == [1, 2]


def test_non_utf8_file_name_is_one_line(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    cv2.imwrite(str(images / "1.jpg"), np.full((60, 80, 3), 90, np.uint8))
    os.rename(images / "1.jpg", bytes(images) + b"/\xff\xfe.jpg")
    out = tmp_path / "out"
    result = wbt_in_process("distill", "--images", images, "--out", out, "--teachers", NO_TEACHERS, "--workers", "1")
    assert_one_line(result, 2, "file name is not UTF-8", "b'\\xff\\xfe.jpg'")
    assert not (out / "shards").exists()


@pytest.mark.parametrize(
    "joint, what",
    [([1e300, 5.0], "joints"), (["12", 5.0], "joints"), ([True, 5.0], "joints"), ([None, 5.0], "joints")],
)
def test_mpii_joints_are_numbers_checked_on_read(tmp_path, joint, what):
    person = {"image": "1.jpg", "joints": [joint] + [[5.0, 5.0]] * 15, "joints_vis": [1] * 16}
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([person]))
    with pytest.raises(UserError, match=f"person #0: '{what}' must be 16"):
        read_body_dataset(path)


def test_mpii_negative_scale_is_refused(tmp_path):
    person = {"image": "1.jpg", "joints": [[-1.0, -1.0]] * 16, "joints_vis": [0] * 16, "center": [50, 50], "scale": -2.0}
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([person]))
    with pytest.raises(UserError, match="'scale' must be > 0"):
        read_body_dataset(path)


# --------------------------------------------------------------------------- 4.7 usage errors, nme / pck


@pytest.mark.parametrize(
    "args, fragment",
    [(["eval", "--protocol", "foo", "--gt", "x.json", "--pred", "y.json"], "'--protocol': 'foo' is not one of"),
     (["distill", "--workers", "x", "--out", "o"], "'--workers': 'x' is not a valid integer"),
     (["nope"], "No such command 'nope'"), (["--bogus"], "No such option '--bogus'"),
     (["render", "--bogus"], "No such option '--bogus'"), (["eval"], "Missing option '--gt'")],
)  # fmt: skip
def test_click_usage_errors_are_one_line(args, fragment):
    assert_one_line(wbt_in_process(*args), 2, fragment)


def hand_files(folder: Path, gt_points: np.ndarray, pred_points: np.ndarray, box=(0, 0, 100, 80)) -> tuple[Path, Path]:
    """A 21-point hand GT (one instance) and its one result."""
    gt = {"images": [{"id": 1, "file_name": "1.jpg"}],
          "annotations": [{"id": 1, "image_id": 1, "bbox": list(box), "keypoints": gt_points.reshape(-1).tolist()}]}  # fmt: skip
    pred = [{"image_id": 1, "keypoints": pred_points.reshape(-1).tolist(), "score": 1.0}]
    gt_path, pred_path = folder / "gt.json", folder / "pred.json"
    gt_path.write_text(json.dumps(gt))
    pred_path.write_text(json.dumps(pred))
    return gt_path, pred_path


def _hand(k: int = 21, v: float = 2.0) -> np.ndarray:
    pts = np.zeros((k, 3))
    pts[:, 0], pts[:, 1], pts[:, 2] = np.arange(k) * 3.0 + 10, np.arange(k) * 2.0 + 5, v
    return pts


def test_pck_refuses_huge_values_negative_boxes_and_bad_thresholds(tmp_path):
    pred = _hand()
    pred[3, 0] = 1e300
    gt, res = hand_files(tmp_path, _hand(), pred)
    assert_one_line(wbt_in_process("eval", "--protocol", "pck", "--gt", gt, "--pred", res), 2, str(res), "beyond")
    gt, res = hand_files(tmp_path, _hand(), _hand(), box=(0, 0, -100, 80))
    assert_one_line(wbt_in_process("eval", "--protocol", "pck", "--gt", gt, "--pred", res), 2, "negative width")
    gt, res = hand_files(tmp_path, _hand(), _hand())
    for thr in ("nan", "-1", "0"):
        line = assert_one_line(wbt_in_process("eval", "--protocol", "pck", "--gt", gt, "--pred", res, "--thr", thr), 2)
        assert "--thr" in line and "> 0" in line


def test_undefined_metrics_are_shown_as_undefined_not_zero(tmp_path):
    gt, res = hand_files(tmp_path, _hand(v=0.0), _hand())  # no GT point is labelled: nothing to measure
    result = wbt_in_process("eval", "--protocol", "pck", "--gt", gt, "--pred", res, "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["results"][0]["metrics"] == {"PCK@0.2": None, "AUC@30px": None, "EPE": None}
    table = wbt_in_process("eval", "--protocol", "pck", "--gt", gt, "--pred", res).stdout.splitlines()[-1].split()
    assert table[1:] == ["-", "-", "-"], table
    # faces whose outer eye corners are 1e-35 px apart: no usable normaliser, no 'inf', no numpy warning
    face = _hand(68)
    face[45, :2] = face[36, :2] + [1e-35, 0]
    gt, res = hand_files(tmp_path, face, face + [[1.0, 0.0, 0.0]])
    result = wbt_in_process("eval", "--protocol", "nme", "--gt", gt, "--pred", res, "--format", "json")
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr
    metrics = json.loads(result.stdout)["results"][0]["metrics"]
    assert metrics["NME outer-eye-corners"] is None and "Infinity" not in result.stdout
    assert metrics["NME bbox"] == pytest.approx(1 / np.sqrt(100 * 80), rel=1e-6)


def test_negative_gt_area_is_handled_as_xtcocotools_silently(realdata, tmp_path):
    """A negative 'area' puts the person outside every area range, as in xtcocotools; no numpy warning."""
    import warnings

    from test_eval_parity import assert_parity, perturbed_results

    from labeltool.layouts import WHOLEBODY133

    doc = json.loads((realdata / "coco_wholebody" / "test_coco_wholebody.json").read_text())
    results = perturbed_results(doc, 3.0, seed=1)
    doc["annotations"][0]["area"] = -500.0
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_parity(path, doc, results, WHOLEBODY133)


# --------------------------------------------------------------------------- 4.3 outputs never replace inputs


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def wholebody_folder(tmp_path) -> tuple[Path, Path]:
    """D/ with an image and D/wholebody133.json (as a previous distill left it), and a results file."""
    folder = tmp_path / "D"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), np.full((60, 80, 3), 90, np.uint8))
    kpts = [0] * 51
    kpts[0:3], kpts[15:18], kpts[18:21] = [40, 30, 2], [30, 40, 2], [50, 40, 2]
    doc = {"images": [{"id": 1, "file_name": "1.png", "width": 80, "height": 60}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000.0,
                            "iscrowd": 0, "keypoints": kpts, "foot_kpts": [0] * 18, "face_kpts": [0] * 204,
                            "lefthand_kpts": [0] * 63, "righthand_kpts": [0] * 63}],
           "categories": [{"id": 1, "name": "person"}]}  # fmt: skip
    (folder / "wholebody133.json").write_text(json.dumps(doc))
    parts = {k: [0] * n for k, n in (("foot_kpts", 18), ("face_kpts", 204), ("lefthand_kpts", 63), ("righthand_kpts", 63))}
    pred = [{"image_id": 1, "category_id": 1, "keypoints": kpts, "score": 1, **parts}]
    (folder / "pred.json").write_text(json.dumps(pred))
    return folder, folder / "wholebody133.json"


def test_outputs_that_would_replace_inputs_are_refused(wholebody_folder, tmp_path):
    folder, gt = wholebody_folder
    before = {p.name: _sha(p) for p in folder.iterdir()}
    pred = folder / "pred.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(gt.read_bytes())
    cases = [
        (["distill", "--ann", gt, "--images", folder, "--out", folder, "--teachers", NO_TEACHERS],
         "would replace the input --ann"),
        (["distill", "--ann", elsewhere, "--images", folder, "--out", folder, "--teachers", NO_TEACHERS],
         "--out is the input --images folder"),
        (["distill", "--ann", gt, "--images", tmp_path, "--out", folder, "--teachers", NO_TEACHERS],
         "would replace the input --ann"),
        (["render", gt, "--images", folder, "--out", folder], "--out is the input --images folder"),
        (["eval", "--gt", gt, "--pred", pred, "--out", gt], "would replace the input --gt"),
        (["eval", "--gt", gt, "--pred", pred, "--out", pred], "would replace the input results"),
        (["convert", gt, gt, "--to", "136"], "OUT would replace the input IN"),
        (["predict", "--model", tmp_path / "m.pt", "--images", folder, "--gt", gt, "--out", gt],
         "would replace the input --gt"),
        (["review", "export", gt, "--to", "cvat", "--images", folder, "--out", folder], "is the input --images folder"),
        (["report", gt, "--images", folder, "--out", gt], "would replace the input LABELS"),
    ]  # fmt: skip
    for args, fragment in cases:
        assert_one_line(wbt_in_process(*args), 2, fragment)
    # through a symlink or a hard link too
    (tmp_path / "link.json").symlink_to(gt)
    os.link(gt, tmp_path / "hard.json")
    for other in (tmp_path / "link.json", tmp_path / "hard.json"):
        assert_one_line(wbt_in_process("eval", "--gt", gt, "--pred", pred, "--out", other), 2, "would replace")
    assert {p.name: _sha(p) for p in folder.iterdir()} == before  # nothing replaced, nothing added


def test_outputs_beside_inputs_still_work(wholebody_folder, tmp_path):
    folder, gt = wholebody_folder
    out = folder / "eval.txt"
    result = wbt_in_process("eval", "--gt", gt, "--pred", folder / "pred.json", "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("COCO-WholeBody protocol")
    result = wbt_in_process("distill", "--ann", gt, "--images", folder, "--out", folder / "run", "--teachers",
                            NO_TEACHERS, "--workers", "1", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "run" / "wholebody133.json").read_text())["annotations"][0]["keypoints"][:3] == [40, 30, 2]


# --------------------------------------------------------------------------- 4.2 resume never mixes inputs


def _keep_stat(path: Path, change) -> None:
    """Change a file's content keeping its size and modification time (what a size + mtime check misses)."""
    st = path.stat()
    change(path)
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_resume_refuses_an_annotation_edited_keeping_size_and_mtime(tmp_path):
    from test_hostile_distill import distill_args, write_dataset

    ann, images = write_dataset(tmp_path / "data", [f"{i}.jpg" for i in range(1, 9)])
    out = tmp_path / "out"
    assert wbt(*distill_args(ann, images, out, "--workers", 1)).returncode == 0
    before = (out / "wholebody133.json").read_bytes()
    _keep_stat(ann, lambda p: p.write_text(p.read_text().replace("[40, 30, 2", "[41, 30, 2", 1)))
    line = assert_one_line(wbt(*distill_args(ann, images, out, "--workers", 1)), 2, str(ann), "--ann changed", "sha256")
    assert "--overwrite" in line
    assert (out / "wholebody133.json").read_bytes() == before  # the outputs of the first run stay as they were
    result = wbt(*distill_args(ann, images, out, "--workers", 1, "--overwrite"))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "wholebody133.json").read_text())["annotations"][0]["keypoints"][:3] == [41, 30, 2]


def test_resume_refuses_an_image_replaced_under_the_same_name(tmp_path):
    from test_hostile_distill import distill_args, write_dataset

    ann, images = write_dataset(tmp_path / "data", [f"{i}.jpg" for i in range(1, 9)])
    out = tmp_path / "out"
    # a first run stops after 4 of 8 images (shards of 4): one shard done, one to do
    assert wbt(*distill_args(ann, images, out, "--workers", 1, "--limit", 4)).returncode == 0

    def other_image(p: Path) -> None:  # another photo, same name, same byte count
        data = bytearray(p.read_bytes())
        data[-100] ^= 0xFF  # inside the entropy-coded data: the JPEG still decodes
        p.write_bytes(bytes(data))

    _keep_stat(images / "3.jpg", other_image)
    shard = out / "shards" / "shard-000000.parquet"
    shard_bytes = shard.read_bytes()
    run_limit = distill_args(ann, images, out, "--workers", 1, "--limit", 4)
    assert_one_line(wbt(*run_limit), 2, str(images / "3.jpg"), "image id 3 was replaced", "shard-000000.parquet")
    (images / "4.jpg").unlink()
    assert_one_line(wbt(*run_limit), 2, str(images / "3.jpg"))  # the first difference, in shard order
    assert shard.read_bytes() == shard_bytes  # nothing relabelled
    run = json.loads((out / "shards" / "run.json").read_text())
    assert run["input_digests"]["--ann"]["sha256"] == _sha(ann)


def test_images_of_the_shards_are_recorded_with_their_sha256(tmp_path):
    from test_hostile_distill import distill_args, write_dataset

    from labeltool.distill.shards import read_shard_meta

    ann, images = write_dataset(tmp_path / "data", ["1.jpg", "2.jpg", "gone.jpg"])
    (images / "gone.jpg").unlink()
    out = tmp_path / "out"
    assert wbt(*distill_args(ann, images, out, "--workers", 1)).returncode == 0
    meta = read_shard_meta(out / "shards" / "shard-000000.parquet").images
    assert [(im["id"], im["digest"]) for im in meta] == [(1, _sha(images / "1.jpg")), (2, _sha(images / "2.jpg")), (3, None)]
    # the missing image appearing later is a change too: its label would come from a file the run never saw
    cv2.imwrite(str(images / "gone.jpg"), np.full((60, 80, 3), 90, np.uint8))
    assert_one_line(wbt(*distill_args(ann, images, out, "--workers", 1)), 2, "gone.jpg", "was not readable then")


def test_onnx_external_data_is_part_of_the_model_record(tmp_path):
    """run.json records the weights an .onnx keeps in an external-data file: a changed file is another run."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from labeltool.teachers.base import TeacherSpec
    from labeltool.teachers.onnx import describe_onnx, external_data_files

    weights = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(1, 4096), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])], [weights])  # fmt: skip
    path = tmp_path / "face.onnx"
    onnx.save_model(helper.make_model(graph), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="face.onnx.data", size_threshold=0)  # fmt: skip
    assert external_data_files(path) == [tmp_path / "face.onnx.data"]
    spec = TeacherSpec(part="face", backend="onnx", arg=str(path))
    files = describe_onnx(spec)["files"]
    assert [f["name"] for f in files] == ["face.onnx", "face.onnx.data"]
    assert files[1]["sha256"] == _sha(tmp_path / "face.onnx.data")


def test_format_contradicting_the_files_point_names_is_one_line(tmp_path):
    """--format aic on a file whose category names CrowdPose's points would swap left and right silently."""
    crowd_names = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                   "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck"]  # fmt: skip
    doc = {"categories": [{"id": 1, "name": "person", "keypoints": crowd_names}],
           "images": [{"file_name": "106848.jpg", "id": 106848, "height": 425, "width": 640, "crowdIndex": 0.33}],
           "annotations": [{"num_keypoints": 2, "iscrowd": 0, "keypoints": [208, 108, 2, 278, 158, 2] + [0] * 36,
                            "image_id": 106848, "bbox": [106.01, 13.43, 273.15, 352.42], "category_id": 1, "id": 1}]}  # fmt: skip
    path = tmp_path / "crowdpose_test.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="--format aic, but its category names the points as CrowdPose's"):
        read_body_dataset(path, "aic")
    assert_one_line(wbt_in_process("convert", path, tmp_path / "o.json", "--to", "17", "--format", "aic"), 2,
                    "give --format crowdpose")  # fmt: skip
    body = read_body_dataset(path, "crowdpose")
    np.testing.assert_array_equal(body.coco17().keypoints[0, 5], [208, 108, 2])  # left shoulder stays left
    doc["categories"][0]["keypoints"] = [f"p{i}" for i in range(14)]  # names of no known dataset: --format decides
    path.write_text(json.dumps(doc))
    assert read_body_dataset(path, "aic").format.name == "aic"
