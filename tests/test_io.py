"""labeltool.io: COCO / COCO-WholeBody / Halpe files and results: real-file round trips, flat layouts, float visibilities, validation."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest

from labeltool.errors import UserError
from labeltool.io.boxes import person_boxes
from labeltool.io.jsonfile import read_json
from labeltool.io.paths import check_images_exist, resolve_coco_split
from labeltool.io.pose import (
    flat_document,
    load_part_dataset,
    load_pose_dataset,
    wholebody_document,
    write_pose_dataset,
)
from labeltool.io.results import read_results, results_dataset
from labeltool.layouts import COCO17, HALPE26, HALPE136, WHOLEBODY133


@pytest.fixture(scope="module")
def wholebody_path(realdata):
    return realdata / "coco_wholebody" / "test_coco_wholebody.json"


@pytest.fixture(scope="module")
def wholebody_json(wholebody_path):
    return json.loads(wholebody_path.read_text())


def _coco17_document(wholebody: dict) -> dict:
    """A COCO person_keypoints-style file: the real file with the part keys removed."""
    doc = copy.deepcopy(wholebody)
    for ann in doc["annotations"]:
        for key in list(ann):
            if key.startswith(("foot", "face", "lefthand", "righthand")):
                del ann[key]
    return doc


def test_wholebody_round_trip_keeps_everything(wholebody_path, wholebody_json, tmp_path):
    ds = load_pose_dataset(wholebody_path)
    assert ds.layout is WHOLEBODY133 and ds.keypoints.shape == (14, 133, 3)
    out = tmp_path / "back.json"
    write_pose_dataset(ds, out)
    back = json.loads(out.read_text())
    assert back == wholebody_json  # every id, image, category, info, license, box, flag and number
    assert [a["id"] for a in back["annotations"]] == [a["id"] for a in wholebody_json["annotations"]]
    assert back["images"] == wholebody_json["images"] and back["categories"] == wholebody_json["categories"]
    # The arrays hold each part at its 133 index.
    for i, ann in enumerate(wholebody_json["annotations"]):
        for part, key in [("body", "keypoints"), ("foot", "foot_kpts"), ("face", "face_kpts"),
                          ("lefthand", "lefthand_kpts"), ("righthand", "righthand_kpts")]:  # fmt: skip
            np.testing.assert_array_equal(ds.keypoints[i, WHOLEBODY133.parts[part]].reshape(-1), ann[key])
        np.testing.assert_array_equal(ds.bboxes[i], ann["bbox"])
        assert ds.areas[i] == ann["area"] and ds.image_ids[i] == ann["image_id"] and ds.ann_ids[i] == ann["id"]


def test_float_visibilities_are_read_and_kept(wholebody_path, wholebody_json):
    ds = load_pose_dataset(wholebody_path)
    # The real file has float visibilities in right hands (e.g. 0.046) and 1.0 in faces.
    vis = ds.keypoints[:, WHOLEBODY133.parts["righthand"], 2]
    fractional = vis[(vis > 0) & (vis < 1)]
    assert len(fractional) >= 4
    assert 0.04602484405040741 in fractional.tolist()
    doc = wholebody_document(ds)
    for ann, orig in zip(doc["annotations"], wholebody_json["annotations"]):
        assert ann["righthand_kpts"] == orig["righthand_kpts"]
        # any v > 0 counts as labelled, floats included
        assert ann["righthand_valid"] == any(v > 0 for v in orig["righthand_kpts"][2::3])


def test_float_visibility_in_flat_file(tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 7, "image_id": 1, "bbox": [0, 0, 5, 5], "keypoints": [1.5, 2.5, 0.25] + [0, 0, 0] * 16}],
    }
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    ds = load_pose_dataset(path)
    assert ds.layout is COCO17
    assert ds.keypoints[0, 0].tolist() == [1.5, 2.5, 0.25]
    assert ds.areas[0] == 25.0 * 0.53  # no area: mmpose's estimate, 0.53 x the bbox area
    assert flat_document(ds)["annotations"][0]["num_keypoints"] == 1


def test_coco17_round_trip(wholebody_json, tmp_path):
    doc = _coco17_document(wholebody_json)
    src = tmp_path / "person_keypoints.json"
    src.write_text(json.dumps(doc))
    ds = load_pose_dataset(src)
    assert ds.layout is COCO17 and ds.keypoints.shape == (14, 17, 3)
    out = tmp_path / "back.json"
    write_pose_dataset(ds, out)
    assert json.loads(out.read_text()) == doc  # including segmentation, num_keypoints, category skeleton


@pytest.mark.parametrize("layout", [HALPE136, HALPE26], ids=["136", "26"])
def test_halpe_flat_round_trip(layout, tmp_path):
    rng = np.random.default_rng(0)
    anns = []
    for i in range(5):
        pts = np.zeros((layout.num_keypoints, 3))
        on = rng.random(layout.num_keypoints) < 0.7
        pts[on, :2] = rng.uniform(0, 500, size=(on.sum(), 2)).round(2)
        pts[on, 2] = rng.choice([1, 2, 0.37], size=on.sum())
        anns.append({
            "id": 100 + i, "image_id": 1 + i % 2, "category_id": 1, "bbox": [1.0, 2.0, 30.5, 40.0], "area": 999.5,
            "iscrowd": 0, "keypoints": pts.reshape(-1).tolist(), "num_keypoints": int(on.sum()), "extra_field": [i],
        })  # fmt: skip
    doc = {
        "info": {"description": "halpe sample"},
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": anns,
        "categories": [{"supercategory": "person", "id": 1, "name": "person",
                        "keypoints": list(layout.names), "skeleton": (layout.skeleton + 1).tolist()}],
    }  # fmt: skip
    src = tmp_path / "halpe.json"
    src.write_text(json.dumps(doc))
    ds = load_pose_dataset(src)
    assert ds.layout is layout
    np.testing.assert_array_equal(ds.keypoints[2].reshape(-1), anns[2]["keypoints"])
    out = tmp_path / "back.json"
    write_pose_dataset(ds, out)
    assert json.loads(out.read_text()) == doc


def test_persons_by_image_and_subset(wholebody_path):
    ds = load_pose_dataset(wholebody_path)
    groups = ds.persons_by_image()
    assert {k: len(v) for k, v in groups.items()} == {785: 1, 40083: 3, 196141: 5, 197388: 5}
    sub = ds.subset(groups[40083])
    assert sub.ann_ids.tolist() == [198196, 230195, 1202706]
    np.testing.assert_array_equal(sub.keypoints, ds.keypoints[1:4])


def test_results_flat_and_wholebody(wholebody_path, wholebody_json, tmp_path):
    """The one results reader detects flat / split points without a layout; render's dataset keeps the fields."""
    gt = load_pose_dataset(wholebody_path)
    gt_images = np.array([im["id"] for im in gt.images])
    flat = [{"image_id": 785, "category_id": 1, "keypoints": gt.keypoints[0].reshape(-1).tolist(), "score": 0.9}]
    split = [{"image_id": 785, "category_id": 1, "score": 0.8,
              **{k: wholebody_json["annotations"][0][k]
                 for k in ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")}}]  # fmt: skip
    for results in (flat, split):
        path = tmp_path / "results.json"
        path.write_text(json.dumps(results))
        res = results_dataset(read_results(path, image_ids=gt_images), gt.images, gt.categories)
        assert res.layout is WHOLEBODY133
        np.testing.assert_array_equal(res.keypoints[0], gt.keypoints[0])
        assert res.annotations[0]["score"] == results[0]["score"]
    path.write_text(json.dumps([{"image_id": 5, "keypoints": [0] * 51, "score": 1}]))
    with pytest.raises(UserError, match="detection #0 has image_id 5, which is not an image of GT"):
        read_results(path, image_ids=gt_images)


def test_resolve_coco_split(tmp_path, monkeypatch):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    ann = root / "annotations" / "person_keypoints_val2017.json"
    ann.write_text("{}")
    assert resolve_coco_split("val2017", root) == (ann, root / "val2017")
    monkeypatch.setenv("COCO_ROOT", str(root))
    assert resolve_coco_split("val2017") == (ann, root / "val2017")
    with pytest.raises(UserError, match="person_keypoints_train2017.json"):
        resolve_coco_split("train2017")
    (root / "annotations" / "person_keypoints_train2017.json").write_text("{}")
    with pytest.raises(UserError, match="train2017.*image directory not found"):
        resolve_coco_split("train2017")
    monkeypatch.delenv("COCO_ROOT")
    with pytest.raises(UserError, match="--root or \\$COCO_ROOT"):
        resolve_coco_split("val2017")
    with pytest.raises(UserError, match="COCO root directory not found"):
        resolve_coco_split("val2017", tmp_path / "nowhere")


def test_check_images_exist(wholebody_path, realdata, tmp_path):
    ds = load_pose_dataset(wholebody_path)
    check_images_exist(ds, realdata / "coco_wholebody")
    (tmp_path / "000000000785.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="000000040083.jpg: image file not found"):
        check_images_exist(ds, tmp_path)


def _base_doc() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 1, 1], "keypoints": [0] * 51}],
    }


def _mutate(fn):
    doc = _base_doc()
    fn(doc)
    return doc


BAD = {
    "missing annotations": (lambda d: d.pop("annotations"), "missing top-level key 'annotations'"),
    "top level list": (None, "expected a json object"),
    "wrong keypoint length": (lambda d: d["annotations"][0].update(keypoints=[0] * 50), "'keypoints' has 50 values"),
    "length of a known layout, other rows not": (
        lambda d: d["annotations"].append({"id": 2, "image_id": 1, "bbox": [0, 0, 1, 1], "keypoints": [0] * 399}),
        "annotation 2: 'keypoints' has 399 values, expected 51",
    ),
    "missing bbox": (lambda d: d["annotations"][0].pop("bbox"), "annotation 1 is missing required key 'bbox'"),
    "missing keypoints": (lambda d: d["annotations"][0].pop("keypoints"), "missing required key 'keypoints'"),
    "missing image file_name": (lambda d: d["images"][0].pop("file_name"), "images\\[0\\] is missing required key"),
    "bad bbox": (lambda d: d["annotations"][0].update(bbox=[0, 0, "a", 1]), "'bbox' must be 4 numbers"),
    "string in keypoints": (lambda d: d["annotations"][0].update(keypoints=["x"] * 51), "'keypoints' must be numbers"),
    "null in keypoints": (lambda d: d["annotations"][0].update(keypoints=[None] * 51), "null, NaN or infinity"),
    "duplicate annotation id": (
        lambda d: d["annotations"].append(dict(d["annotations"][0])),
        "duplicate annotation id 1",
    ),
    "duplicate image id": (lambda d: d["images"].append({"id": 1, "file_name": "b.jpg"}), "duplicate image id 1"),
    "unknown image id": (lambda d: d["annotations"][0].update(image_id=9), "refers to image id 9"),
    "string id": (lambda d: d["annotations"][0].update(id="x"), "'id' must be an integer"),
    "wholebody part length": (
        lambda d: d["annotations"][0].update(face_kpts=[0] * 10),
        "'face_kpts' has 10 values, expected 204",
    ),
    "annotation not an object": (lambda d: d["annotations"].append(3), "annotations\\[1\\] is not an object"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_user_error(case, tmp_path):
    fn, message = BAD[case]
    doc = [] if fn is None else _mutate(fn)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=message) as err:
        load_pose_dataset(path)
    text = str(err.value)
    assert text.startswith(str(path)) and "\n" not in text


def test_invalid_json_says_where(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [],\n  "annotations": [1, 2,,]}')
    with pytest.raises(UserError, match=r"broken.json: invalid JSON at line 2 column 24"):
        read_json(path)
    with pytest.raises(UserError, match="file not found"):
        read_json(tmp_path / "absent.json")
    with pytest.raises(UserError, match="is a directory"):
        read_json(tmp_path)


def test_one_results_reader_for_eval_pointwise_and_render(realdata, tmp_path):
    """wbt eval, its per-instance protocols and wbt render read results alike: one message per mistake."""
    from labeltool.eval.pointwise import load_point_set
    from labeltool.eval.predictions import load_predictions

    hand_gt = realdata / "hand_onehand10k" / "test_onehand10k.json"
    doc = json.loads(hand_gt.read_text())
    results = [{"image_id": a["image_id"], "keypoints": list(a["keypoints"]), "score": 1.0} for a in doc["annotations"]]
    points = load_point_set(hand_gt, results)
    np.testing.assert_array_equal(points.pred, points.gt)
    results[1]["keypoints"][4] = math.nan
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))  # json.dumps writes the NaN literal
    want = f"{path}: detection #1: keypoints contain NaN, infinity or null"
    with pytest.raises(UserError, match=re.escape(want)):
        load_point_set(hand_gt, path)
    with pytest.raises(UserError, match=re.escape(want)):
        read_results(path, 21)
    flat133 = [{"image_id": 1, "keypoints": [1.0] * 399, "score": "high"}]
    path.write_text(json.dumps(flat133))
    with pytest.raises(UserError, match="detection #0: 'score' must be a finite number, got 'high'"):
        read_results(path, required=("image_id",))  # render: score optional, but a number when given
    with pytest.raises(UserError, match="detection #0: 'score' must be a finite number"):
        load_predictions(path, WHOLEBODY133, np.array([1]), np.array([1]))


def test_part_dataset_reads_any_point_count(realdata):
    hand = realdata / "hand_onehand10k" / "test_onehand10k.json"
    ds = load_part_dataset(hand, (21,))
    doc = json.loads(hand.read_text())
    assert ds.keypoints.shape == (4, 21, 3) and ds.ann_ids.tolist() == [a["id"] for a in doc["annotations"]]
    np.testing.assert_array_equal(ds.keypoints[0].reshape(-1), doc["annotations"][0]["keypoints"])
    with pytest.raises(UserError, match="21 keypoints per annotation; this protocol takes 68 or 98"):
        load_part_dataset(hand, (68, 98))


def test_person_boxes_keep_scored_persons(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
        {"image_id": 1, "category_id": 2, "bbox": [1, 2, 30, 40], "score": 0.9},  # not a person
        {"image_id": 2, "bbox": [5, 5, 10, 0], "score": 0.9},  # empty box
        {"image_id": 3, "bbox": [5, 5, 10, 10], "score": 0.1},  # under the threshold
        {"image_id": 4, "bbox": [5, 5, 10, 10]},  # no score: 1
    ]))
    ids, boxes, scores = person_boxes(path, score_thr=0.5)
    assert ids.tolist() == [1, 4] and scores.tolist() == [0.9, 1.0]
    np.testing.assert_array_equal(boxes, [[1, 2, 30, 40], [5, 5, 10, 10]])
    path.write_text(json.dumps([{"file_name": "a.jpg", "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(UserError, match="entry 0 is missing required key 'image_id'"):
        person_boxes(path)


def test_convert_does_not_import_datasets():
    """labeltool.datasets uses labeltool.convert, never the other way round (no module cycle)."""
    import ast
    import inspect

    import labeltool.convert

    tree = ast.parse(inspect.getsource(labeltool.convert))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "labeltool.datasets" not in modules
