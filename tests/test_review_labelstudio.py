"""Label Studio round trip on files shaped as Label Studio exports them (JSON export format).

A task in Label Studio's JSON export (checked against a real Label Studio 1.23 server, see
test_review_labelstudio_server.py) carries the task ``data`` as imported, ``annotations``
(each with ``result``, ``was_cancelled``, ``created_at`` / ``updated_at``) and ``predictions``
as a list of prediction ids only.
"""

from __future__ import annotations

import copy
import json
import random
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.errors import UserError
from labeltool.io.pose import load_pose_dataset, write_pose_dataset
from labeltool.layouts import HALPE136, WHOLEBODY133
from labeltool.review.labelstudio import labelstudio_config, labelstudio_import, labelstudio_tasks


@pytest.fixture(scope="module")
def gt(realdata):
    return load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")


def as_exported(tasks: list[dict], annotations: dict[int, list] | None = None) -> list[dict]:
    """Tasks as Label Studio's JSON export writes them: ids, predictions by id, annotations given per task."""
    out = []
    for k, task in enumerate(tasks):
        results = (annotations or {}).get(k, [])
        out.append(
            {
                "id": k + 1,
                "annotations": [
                    {
                        "id": 100 + k * 10 + j,
                        "completed_by": 1,
                        "result": r,
                        "was_cancelled": False,
                        "ground_truth": False,
                        "created_at": f"2026-01-01T00:00:{j:02d}.000000Z",
                        "updated_at": f"2026-01-01T00:00:{j:02d}.000000Z",
                        "lead_time": 12.5,
                        "task": k + 1,
                    }
                    for j, r in enumerate(results)
                ],  # fmt: skip
                "drafts": [],
                "predictions": [k + 1],
                "data": task["data"],
                "meta": {},
                "created_at": "2026-01-01T00:00:00.000000Z",
                "updated_at": "2026-01-01T00:00:00.000000Z",
                "inner_id": k + 1,
                "total_annotations": len(results),
                "cancelled_annotations": 0,
                "total_predictions": 1,
                "project": 1,
            }
        )
    return out


def _by_id(ds):
    return ds.subset(np.argsort(ds.ann_ids))


def test_config_lists_every_point():
    for layout in (WHOLEBODY133, HALPE136):
        root = ET.fromstring(labelstudio_config(layout))
        kp = root.find("KeyPointLabels")
        assert kp.attrib["name"] == "keypoints" and kp.attrib["toName"] == "image"
        assert [lab.attrib["value"] for lab in kp] == list(layout.names)
        assert [int(lab.attrib["model_index"]) for lab in kp] == list(range(layout.num_keypoints))
        assert [lab.attrib["value"] for lab in root.find("RectangleLabels")] == ["person"]
        choices = root.find("Choices")
        assert choices.attrib["perRegion"] == "true" and [c.attrib["value"] for c in choices] == ["visible", "occluded"]


def test_tasks_are_percent_with_parents(gt):
    tasks = labelstudio_tasks(gt)
    assert len(tasks) == len(gt.images)
    task = next(t for t in tasks if t["data"]["wbt"]["image"]["id"] == 785)
    (pred,) = task["predictions"]
    rect = next(r for r in pred["result"] if r["id"] == "p442619")
    assert rect["value"]["x"] == pytest.approx(100 * 280.79 / 640) and rect["value"]["height"] == pytest.approx(
        100 * 346.68 / 425
    )
    points = [r for r in pred["result"] if r.get("parentID") == "p442619"]
    i = list(gt.ann_ids).index(442619)
    assert len(points) == int((gt.keypoints[i, :, 2] > 0).sum())
    nose = next(r for r in points if r["value"]["keypointlabels"] == ["nose"])
    assert (nose["value"]["x"], nose["value"]["y"]) == pytest.approx((100 * 367 / 640, 100 * 81 / 425))
    assert 0 <= pred["score"] <= 1


def test_round_trip_no_edits(gt):
    """Nobody annotated (export has prediction ids only) and annotations equal to the predictions: same labels."""
    tasks = labelstudio_tasks(gt)
    back, report = labelstudio_import(as_exported(tasks), "export.json")
    assert report.tasks_without_annotation == len(tasks) and report.matched == len(gt)
    a, b = _by_id(gt), _by_id(back)
    assert a.ann_ids.tolist() == b.ann_ids.tolist() and a.image_ids.tolist() == b.image_ids.tolist()
    np.testing.assert_array_equal(b.keypoints, a.keypoints)
    np.testing.assert_array_equal(b.bboxes, a.bboxes)
    # every task annotated with its prediction unchanged (what "submit" without edits gives)
    annotated = {k: [copy.deepcopy(t["predictions"][0]["result"])] for k, t in enumerate(tasks)}
    back, report = labelstudio_import(as_exported(tasks, annotated), "export.json")
    assert report.tasks_without_annotation == 0 and report.matched == len(gt) and report.added == 0
    b = _by_id(back)
    np.testing.assert_allclose(b.bboxes, a.bboxes, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(b.keypoints[:, :, 2], a.keypoints[:, :, 2])  # float visibilities included
    np.testing.assert_allclose(b.keypoints[:, :, :2], a.keypoints[:, :, :2], atol=1e-6, rtol=0)


def test_edits_grouped_by_parent_not_order(gt):
    tasks = labelstudio_tasks(gt)
    k = next(k for k, t in enumerate(tasks) if t["data"]["wbt"]["image"]["id"] == 785)
    result = copy.deepcopy(tasks[k]["predictions"][0]["result"])
    nose = next(r for r in result if r["id"] == "p442619_k0")
    nose["value"]["x"] += 100 * 4.0 / 640  # moved 4 px right
    result = [r for r in result if r["id"] != "p442619_k9"]  # left wrist deleted
    result.append(  # the left ear marked occluded (a per-region choice)
        {"id": "p442619_k3", "type": "choices", "from_name": "visibility", "to_name": "image",
         "original_width": 640, "original_height": 425, "value": {"x": 0, "y": 0, "width": 0.4, "choices": ["occluded"]}}
    )  # fmt: skip
    new_person = [
        {"id": "Xa12bC", "type": "rectanglelabels", "from_name": "person", "to_name": "image", "original_width": 640,
         "original_height": 425, "image_rotation": 0,
         "value": {"x": 10, "y": 20, "width": 15, "height": 40, "rotation": 0, "rectanglelabels": ["person"]}},
        {"id": "Kp9", "type": "keypointlabels", "from_name": "keypoints", "to_name": "image", "original_width": 640,
         "original_height": 425, "parentID": "Xa12bC", "value": {"x": 12.5, "y": 25, "width": 0.4, "keypointlabels": ["nose"]}},
        {"id": "Kp10", "type": "keypointlabels", "from_name": "keypoints", "to_name": "image", "original_width": 640,
         "original_height": 425, "parentID": "Xa12bC", "value": {"x": 20, "y": 50, "width": 0.4, "keypointlabels": ["left_wrist"]}},
    ]  # fmt: skip
    result += new_person
    random.Random(0).shuffle(result)  # the order carries nothing
    older = copy.deepcopy(tasks[k]["predictions"][0]["result"])  # an older annotation, superseded
    back, report = labelstudio_import(as_exported(tasks, {k: [older, result]}), "export.json")
    assert report.added == 1 and report.matched == len(gt)
    i, j = list(back.ann_ids).index(442619), list(gt.ann_ids).index(442619)
    np.testing.assert_allclose(back.keypoints[i, 0], [371, 81, 2], atol=1e-9)
    assert back.keypoints[i, 9].tolist() == [0, 0, 0]
    assert back.keypoints[i, 3, 2] == 1
    same = np.ones(133, bool)
    same[[0, 3, 9]] = False
    np.testing.assert_array_equal(back.keypoints[i, same], gt.keypoints[j, same])
    k_new = [n for n, a in enumerate(back.ann_ids) if a not in set(gt.ann_ids.tolist())]
    assert len(k_new) == 1
    new = back.keypoints[k_new[0]]
    assert back.image_ids[k_new[0]] == 785
    np.testing.assert_allclose(new[0], [80, 106.25, 2])
    np.testing.assert_allclose(new[9], [128, 212.5, 2])
    assert int((new[:, 2] > 0).sum()) == 2
    np.testing.assert_allclose(back.bboxes[k_new[0]], [64, 85, 96, 170])


def test_point_without_parent(gt):
    tasks = labelstudio_tasks(gt)
    k = next(k for k, t in enumerate(tasks) if t["data"]["wbt"]["image"]["id"] == 785)
    result = copy.deepcopy(tasks[k]["predictions"][0]["result"])
    nose = next(r for r in result if r["id"] == "p442619_k0")
    del nose["parentID"]  # inside exactly one person rectangle: it belongs to that person
    back, _ = labelstudio_import(as_exported(tasks, {k: [result]}), "export.json")
    i = list(back.ann_ids).index(442619)
    assert back.keypoints[i, 0].tolist() == [367, 81, 2]
    nose["value"]["x"], nose["value"]["y"] = 1.0, 1.0  # outside every rectangle
    with pytest.raises(
        UserError, match=r"export.json: task 1: point 'nose' \(p442619_k0\) belongs to no person rectangle"
    ):
        labelstudio_import(as_exported(tasks, {k: [result]}), "export.json")


def test_cli_round_trip_and_errors(gt, realdata, tmp_path):
    images = realdata / "coco_wholebody"
    labels = tmp_path / "labels.json"
    bad = gt.subset(np.arange(len(gt)))
    bad.keypoints = gt.keypoints.copy()
    i = list(gt.ann_ids).index(230195)  # image 40083; its right shoulder and hip thrown far out of its box
    bad.keypoints[i, [6, 12], 0] += 400
    write_pose_dataset(bad, labels)
    out = tmp_path / "ls"
    runner = CliRunner()
    r = runner.invoke(main, ["review", "export", str(labels), "--to", "labelstudio",
                             "--images", str(images), "--out", str(out), "--top", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["wbt"]["image"]["id"] for t in tasks] == [40083]  # only the flagged person's image
    assert tasks[0]["predictions"][0]["score"] < 0.5
    export = tmp_path / "export.json"
    export.write_text(json.dumps(as_exported(tasks)))
    val = tmp_path / "val.json"
    r = runner.invoke(main, ["review", "import", str(export), "--to", "133", "--out", str(val)])
    assert r.exit_code == 0, r.output
    back = load_pose_dataset(val)
    exported_ids = sorted(p["id"] for t in tasks for p in t["data"]["wbt"]["persons"])
    assert sorted(back.ann_ids.tolist()) == exported_ids
    export.write_text(json.dumps([{"id": 1, "data": {"image": "x.jpg"}}]))
    r = runner.invoke(main, ["review", "import", str(export), "--out", str(tmp_path / "bad.json")])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"wbt: error: {export}: task 1 has no data.wbt (not made by wbt review export)"
    assert not (tmp_path / "bad.json").exists()


def test_round_trip_halpe136(gt):
    """Halpe-136 labels go out with 136 point names and come back as the same 136 points."""
    from labeltool.convert import convert_dataset

    halpe = convert_dataset(gt, HALPE136)
    tasks = labelstudio_tasks(halpe)
    names = {
        x["value"]["keypointlabels"][0]
        for t in tasks
        for x in t["predictions"][0]["result"]
        if x["type"] == "keypointlabels"
    }
    assert "neck" in names and names <= set(HALPE136.names)
    annotated = {k: [copy.deepcopy(t["predictions"][0]["result"])] for k, t in enumerate(tasks)}
    back, report = labelstudio_import(as_exported(tasks, annotated), "export.json")
    assert back.layout is HALPE136 and report.matched == len(gt)
    a, b = _by_id(halpe), _by_id(back)
    np.testing.assert_array_equal(b.keypoints, a.keypoints)
