"""Body datasets (labeltool.datasets): detection from content, mapping to COCO-17 by name, extra points, convert.

The files are the real COCO-WholeBody sample written as each dataset's files are
(tests/datasets_fixtures.py, names copied from mmpose); the slow distill runs on them are in
test_distill_datasets.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from datasets_fixtures import COCO, NAMES, write_dataset

from labeltool.cli import main
from labeltool.datasets import detect_format, formats, read_body_dataset
from labeltool.distill.body import AnnotatedBody, ImageTask, teacher_agrees
from labeltool.distill.work import _face_requests
from labeltool.errors import UserError
from labeltool.label_codes import SOURCE_GT, SOURCE_MAPPED
from labeltool.layouts import HALPE136
from labeltool.merge.rules import MergeRules
from labeltool.proposals import face_boxes_from_head
from labeltool.teachers.base import PartPrediction

FORMATS = ("crowdpose", "aic", "mpii", "posetrack18", "humanart")


@pytest.fixture(scope="module")
def files(realdata, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("datasets")
    return {name: write_dataset(name, realdata / "coco_wholebody", tmp / name) for name in FORMATS}


def _by_person(doc: dict, name: str) -> list[dict]:
    """The source annotations in the order the dataset file holds its persons."""
    return [a for a in doc["annotations"] if not (name == "mpii" and a["iscrowd"])]


@pytest.mark.parametrize("name", FORMATS)
def test_detected_from_content_and_mapped_by_name(files, name):
    ann, _, doc = files[name]
    body = read_body_dataset(ann)
    assert body.format.name == name
    src = _by_person(doc, name)
    ds17 = body.coco17()
    assert len(ds17) == len(src)
    names = NAMES[name]
    for i, a in enumerate(src):
        gt = np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)
        for k, coco_name in enumerate(COCO):
            if coco_name in names:  # the same joint: copied exactly (MPII: x, y exact, labelled as v 2)
                if name == "mpii":
                    assert (ds17.keypoints[i, k, 2] > 0) == (gt[k, 2] > 0)
                    if gt[k, 2] > 0:
                        np.testing.assert_array_equal(ds17.keypoints[i, k, :2], gt[k, :2])
                else:
                    np.testing.assert_array_equal(ds17.keypoints[i, k], gt[k])
            else:  # a point the dataset has not: unlabelled, never another point moved in
                assert not ds17.keypoints[i, k].any()
    # extra points: the dataset's non-COCO points, in its order, values as written
    extra_names = [n for n in names if n not in COCO]
    assert body.format.extra_names == tuple(extra_names)
    raw = json.loads(ann.read_text())
    for i in range(len(src)):
        if name == "mpii":
            joints = np.array(raw[i]["joints"]) - 1.0
            vis = np.array(raw[i]["joints_vis"]) > 0
            for e, n in enumerate(extra_names):
                j = names.index(n)
                assert (body.extra[i, e, 2] > 0) == vis[j]
                if vis[j]:
                    np.testing.assert_array_equal(body.extra[i, e, :2], joints[j])
        else:
            key = "keypoints_21" if name == "humanart" else "keypoints"
            pts = np.array(raw["annotations"][i][key], dtype=np.float64).reshape(-1, 3)
            np.testing.assert_array_equal(body.extra[i], pts[[names.index(n) for n in extra_names]])


def test_posetrack_head_points_never_become_eyes(files):
    """PoseTrack's points 1 and 2 are head_bottom and head_top, not COCO's eyes (the bug this fixes)."""
    ann, _, doc = files["posetrack18"]
    body = read_body_dataset(ann)
    ds17 = body.coco17()
    assert not ds17.keypoints[:, 1:3].any()  # eyes: none
    labelled = body.extra[:, :, 2] > 0
    assert labelled.any()  # head tops / bottoms are there, as extra points
    raw = np.array([a["keypoints"] for a in json.loads(ann.read_text())["annotations"]]).reshape(-1, 17, 3)
    np.testing.assert_array_equal(body.extra, raw[:, 1:3])
    assert json.loads(ann.read_text())["images"][0]["file_name"].startswith("images/val/000001_test/")
    assert body.native.images[0]["vid_id"] == "000001"  # the image entries are kept whole


def test_mpii_is_one_based_and_gets_boxes_from_its_points(files):
    ann, _, doc = files["mpii"]
    body = read_body_dataset(ann)
    raw = json.loads(ann.read_text())
    i = next(k for k, p in enumerate(raw) if sum(p["joints_vis"]) >= 2)
    on = np.array(raw[i]["joints_vis"]) > 0
    np.testing.assert_array_equal(body.native.keypoints[i, on, :2], np.array(raw[i]["joints"])[on] - 1.0)
    xy = body.native.keypoints[i, on, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    x, y, w, h = body.native.bboxes[i]
    assert x <= lo[0] and y <= lo[1] and x + w >= hi[0] and y + h >= hi[1]
    np.testing.assert_allclose(w, (hi[0] - lo[0]) * 1.2 - max(0, 0.1 * (hi[0] - lo[0]) - lo[0]), rtol=1e-9)
    # image ids are the file names' numbers, as mmpose's MpiiDataset
    assert {im["id"] for im in body.native.images} == {im["id"] for im in doc["images"]}
    # no labelled joint: mmpose's box from center / scale (side 200 x scale, centre moved down 15 x scale, 0-based)
    lone = [{"image": "000000000785.jpg", "joints": [[-1, -1]] * 16, "joints_vis": [0] * 16, "center": [101, 201],
             "scale": 2.0}]  # fmt: skip
    path = ann.parent / "lone.json"
    path.write_text(json.dumps(lone))
    np.testing.assert_allclose(read_body_dataset(path).native.bboxes[0], [100 - 200, 200 + 30 - 200, 400, 400])


def test_ambiguous_content_asks_for_format_and_format_wins(files, tmp_path):
    ann, _, _ = files["crowdpose"]
    data = json.loads(ann.read_text())
    for im in data["images"]:
        del im["crowdIndex"]
    for cat in data["categories"]:  # neither CrowdPose's crowdIndex nor its point names: 14 points of what?
        del cat["keypoints"]
    plain = tmp_path / "fourteen.json"
    plain.write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        read_body_dataset(plain)
    assert str(err.value).startswith(f"{plain}: 14-point keypoints could be") and "--format crowdpose | aic" in str(err.value)
    assert read_body_dataset(plain, "crowdpose").format.name == "crowdpose"
    with pytest.raises(UserError, match="expected 51 \\(17 x 3\\)"):
        read_body_dataset(plain, "posetrack18")
    with pytest.raises(UserError, match="unknown dataset format"):
        read_body_dataset(plain, "nope")
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9, "category_id": 1}]))
    with pytest.raises(UserError, match="a list of detections.*--boxes"):
        read_body_dataset(dets)
    assert detect_format({"images": [], "annotations": []}, "x").name == "coco17"


def test_every_format_lists_mmpose_and_maps_only_same_names():
    for fmt in formats().values():
        assert fmt.mmpose.startswith("configs/_base_/datasets/")
        for k, i in enumerate(fmt.coco17.tolist()):
            assert i < 0 or fmt.layout.names[i] == COCO[k]
        assert not set(fmt.extra_names) & set(COCO)


def test_convert_reads_the_datasets_through_the_same_mapping(files, tmp_path):
    ann, _, doc = files["crowdpose"]
    out17, out136 = tmp_path / "c17.json", tmp_path / "c136.json"
    for out, to in ((out17, "17"), (out136, "136")):
        r = CliRunner().invoke(main, ["convert", str(ann), str(out), "--to", to])
        assert r.exit_code == 0, r.output
    body = read_body_dataset(ann)
    got17 = np.array([a["keypoints"] for a in json.loads(out17.read_text())["annotations"]]).reshape(-1, 17, 3)
    np.testing.assert_array_equal(got17, body.coco17().keypoints)
    got136 = np.array([a["keypoints"] for a in json.loads(out136.read_text())["annotations"]]).reshape(-1, 136, 3)
    head, neck = HALPE136.index("head"), HALPE136.index("neck")
    np.testing.assert_array_equal(got136[:, head], body.extra[:, 0])  # CrowdPose's top_head is Halpe's head
    np.testing.assert_array_equal(got136[:, neck], body.extra[:, 1])  # its own neck, not the shoulder midpoint
    np.testing.assert_array_equal(got136[:, :17], got17)
    # a PoseTrack file to 17: no eyes
    r = CliRunner().invoke(main, ["convert", str(files["posetrack18"][0]), str(tmp_path / "p17.json"), "--to", "17"])
    assert r.exit_code == 0 and "posetrack18 -> coco17" in r.output, r.output
    p17 = np.array([a["keypoints"] for a in json.loads((tmp_path / "p17.json").read_text())["annotations"]])
    assert not p17.reshape(-1, 17, 3)[:, 1:3].any()


# ------------------------------------------------------------------ partial ground truth + body teacher


class FakeBodyTeacher:
    """A body teacher that answers given points (P, 17, 3) for any boxes."""

    def __init__(self, points):
        self.points = np.asarray(points, dtype=np.float64)

    def predict(self, image, boxes, body=None, sides=None):
        return PartPrediction(self.points[: len(boxes)])


def _person(offset=0.0):
    gt = np.zeros((1, 17, 3))
    gt[0, 5:17, :2] = np.arange(24).reshape(12, 2) * 10 + 50 + offset
    gt[0, 5:17, 2] = 2
    return gt


def test_partial_gt_fills_only_missing_points_from_the_teacher():
    fmt = formats()["crowdpose"]
    gt = _person()
    gt[0, 9, 2] = 0  # an unlabelled left wrist: CrowdPose has the point, so it stays unlabelled
    gt[0, 9, :2] = 0
    teacher_pts = np.zeros((1, 17, 3))
    teacher_pts[0, :, :2] = _person(offset=2.0)[0, :, :2]  # 2 px off everywhere: agrees
    teacher_pts[0, :5, :2] = [[60, 20], [65, 15], [55, 15], [70, 18], [50, 18]]
    teacher_pts[0, :, 2] = 0.9
    teacher_pts[0, 4, 2] = 0.3  # below body_min_conf: not taken
    task = ImageTask(1, "x.jpg", np.array([7]), gt, np.array([[40.0, 0, 300, 300]]), np.array([9e4]))
    source = AnnotatedBody(fmt)
    assert source.needs_teacher and "nose, left_eye" in source.description
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    body, conf, src = source.body(image, task, FakeBodyTeacher(teacher_pts), 9, MergeRules())
    np.testing.assert_array_equal(body[0, 5:], gt[0, 5:])  # ground truth (and its unlabelled wrist) untouched
    assert (src[0, 5:] == SOURCE_MAPPED).all() and (conf[0, 5:] == (gt[0, 5:, 2] > 0)).all()
    np.testing.assert_array_equal(body[0, :4, :2], teacher_pts[0, :4, :2])
    assert (src[0, :4] == 9).all() and np.allclose(conf[0, :4], 0.9) and (body[0, :4, 2] == 2).all()
    assert not body[0, 4].any() and src[0, 4] != 9  # the low-confidence ear is left out
    # the teacher on a neighbour (its points far from the labelled ones): nothing filled
    far = teacher_pts.copy()
    far[0, 5:, :2] += 120
    body, conf, src = source.body(image, task, FakeBodyTeacher(far), 9, MergeRules())
    assert not body[0, :5].any() and not (src == 9).any()
    # COCO-17 input: no teacher call, source gt
    body, conf, src = AnnotatedBody(formats()["coco17"]).body(image, task, None, 9, MergeRules())
    assert (src == SOURCE_GT).all() and not AnnotatedBody(formats()["coco17"]).needs_teacher


def test_teacher_agreement_is_relative_to_the_person_size():
    gt = _person()
    near, far = gt.copy(), gt.copy()
    near[0, :, :2] += 21  # diagonal of the labelled points 311 px: 21 x sqrt 2 = 29.7 px < 31.1
    far[0, :, :2] += 23  # 32.5 px > 31.1
    assert teacher_agrees(near, gt, 0.1).tolist() == [True]
    assert teacher_agrees(far, gt, 0.1).tolist() == [False]


def test_face_proposal_from_head_top_and_neck_where_the_body_has_no_head():
    top = np.array([[100.0, 50, 2], [0, 0, 0]])
    neck = np.array([[100.0, 150, 2], [100, 150, 2]])
    boxes, ok = face_boxes_from_head(top, neck, 0.5, 0.8)
    assert ok.tolist() == [True, False]
    np.testing.assert_allclose(boxes[0], [60, 60, 140, 140])  # centre (100, 100), side 0.8 x 100
    body = np.zeros((2, 17, 3))
    body[1, 0:5] = [[300, 300, 2], [310, 290, 2], [290, 290, 2], [320, 295, 2], [280, 295, 2]]
    req = _face_requests(body, ("face",), (boxes, ok))[0]
    assert req.ok.tolist() == [True, True]
    np.testing.assert_allclose(req.boxes[0], boxes[0])  # person 0: no head points -> from head top and neck
    assert req.boxes[1][0] > 200  # person 1: its own head points, as before
    task = ImageTask(1, "x", np.array([1, 2]), body, np.zeros((2, 4)), np.zeros(2), extra=np.stack([top, neck], 1))
    hint = AnnotatedBody(formats()["crowdpose"]).face_boxes(task)
    np.testing.assert_allclose(hint[0], boxes)
    assert AnnotatedBody(formats()["coco17"]).face_boxes(task) is None


def test_published_detection_files_still_read_as_boxes(realdata, tmp_path):
    """COCO's and CrowdPose's detector results (lists of {image_id, category_id, bbox, score}) stay --boxes input."""
    from labeltool.distill.inputs import from_boxes

    src = realdata / "coco_wholebody"
    gt = json.loads((src / "test_coco_wholebody.json").read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    dets.append({"image_id": 785, "category_id": 1, "bbox": [1.5, 2.5, 40, 60], "score": 0.3})  # CrowdPose's 0.1 floor
    (tmp_path / "det_for_crowd_test_0.1_0.5.json").write_text(json.dumps(dets))
    inp = from_boxes(src, tmp_path / "det_for_crowd_test_0.1_0.5.json", 0.5)
    assert len(inp.dataset) == len(gt["annotations"]) and inp.body.needs_teacher and inp.format is None
    assert sorted(map(tuple, inp.dataset.bboxes.tolist())) == sorted(tuple(a["bbox"]) for a in gt["annotations"])
    assert len(from_boxes(src, tmp_path / "det_for_crowd_test_0.1_0.5.json", 0.1).dataset) == len(dets)


def test_a_dataset_person_without_a_box_gets_one_from_its_points(files, tmp_path):
    ann, _, _ = files["posetrack18"]
    data = json.loads(ann.read_text())
    person = next(a for a in data["annotations"] if a["num_keypoints"] >= 2)
    del person["bbox"]
    path = tmp_path / "nobox.json"
    path.write_text(json.dumps(data))
    body = read_body_dataset(path)
    i = int(np.nonzero(body.native.ann_ids == person["id"])[0][0])
    pts = np.array(person["keypoints"], dtype=np.float64).reshape(17, 3)
    xy = pts[pts[:, 2] > 0, :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    pad_x, pad_y = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    np.testing.assert_allclose(body.native.bboxes[i], [x0 - pad_x, y0 - pad_y, x1 - x0 + 2 * pad_x, y1 - y0 + 2 * pad_y])


def test_distill_format_option_errors_are_one_line(files, tmp_path):
    ann, images, _ = files["crowdpose"]
    for args, message in (
        (["--ann", ann, "--images", images, "--format", "nope"], "--format nope: unknown dataset format (known: coco17"),
        (["--images", images, "--format", "crowdpose"], "--format goes with --ann"),
        (["--ann", ann, "--images", images, "--format", "mpii"], f"{ann}: expected MPII's json list of persons, got dict"),
    ):
        r = CliRunner().invoke(main, ["distill", *map(str, args), "--out", str(tmp_path / "out")])
        assert r.exit_code == 2 and r.stderr.startswith("wbt: error: ") and message in r.stderr, r.output
        assert r.stderr.count("\n") == 1
