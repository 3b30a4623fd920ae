"""`wbt teach`: bad input is one clear line and no output file; a real run writes COCO-style results."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main


def _run(args):
    return CliRunner().invoke(main, ["teach", *args])


def _boxes(tmp_path, content) -> str:
    path = tmp_path / "boxes.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", "invalid JSON"),
        ('{"annotations": []}', "expected a list of boxes or an object with 'images' and 'annotations'"),
        ([{"bbox": [0, 0, 10, 10]}], "entry 0 is missing required key 'image_id'"),
        ([{"image_id": 1, "bbox": [0, 0, 10]}], "'bbox' must be 4 numbers"),
        ([{"image_id": 1, "bbox": [0, 0, 0, 10]}], "positive width and height"),
        ([{"image_id": 1, "bbox": [0, 0, 5, 5], "side": "up"}], "'side' must be 'left' or 'right'"),
        ([{"image_id": 7, "bbox": [0, 0, 5, 5]}], "no image for image_id 7"),
    ],
)
def test_bad_boxes_file_is_one_line_and_no_output(tmp_path, content, message):
    path = _boxes(tmp_path, content)
    out = tmp_path / "out.json"
    result = _run(["--part", "face", "--images", str(tmp_path), "--boxes", path, "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.output and path in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"annotations": []}, "expected a list of boxes or an object with 'images' and 'annotations'"),
        ({"images": [{"id": 1}], "annotations": []}, "images[0] needs 'id' and 'file_name'"),
        ([{"image_id": 1, "bbox": [0, 0, "5", 5]}], "entry 0: 'bbox' must be 4 numbers [x, y, w, h]"),
        ([3], "entry 0 is not an object"),
    ],
)
def test_distill_and_teach_read_box_files_alike(tmp_path, content, message):
    """One reader (labeltool.io.boxes) behind `wbt teach --boxes` and `wbt distill --boxes`: the same line."""
    import cv2

    cv2.imwrite(str(tmp_path / "000000000001.jpg"), np.zeros((8, 8, 3), np.uint8))
    path = _boxes(tmp_path, content)
    teach = _run(["--part", "face", "--images", str(tmp_path), "--boxes", path, "--out", str(tmp_path / "o.json")])
    distill = CliRunner().invoke(main, ["distill", "--images", str(tmp_path), "--boxes", path, "--out", str(tmp_path / "o")])
    assert teach.exit_code == distill.exit_code == 2
    assert teach.output == distill.output == f"wbt: error: {path}: {message}\n"


def test_bad_options(tmp_path):
    path = _boxes(tmp_path, [])
    result = _run(["--part", "face", "--images", str(tmp_path / "nope"), "--boxes", path, "--out", "x.json"])
    assert result.exit_code == 2 and "image directory not found" in result.output
    result = _run(["--part", "hand", "--backend", "dlib", "--images", str(tmp_path), "--boxes", path, "--out", "x"])
    assert result.exit_code == 2 and "--backend: unknown hand backend 'dlib'" in result.output


def test_fan_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from labeltool.errors import UserError
    from labeltool.teachers.face import FanFaceModel

    with pytest.raises(UserError, match="FAN weights not found .* never downloads"):
        FanFaceModel()
    assert not (tmp_path / "torch").exists()  # nothing created, nothing downloaded


@pytest.mark.slow
def test_teach_face_on_real_300w(tmp_path, realdata):
    pytest.importorskip("mediapipe")
    out = tmp_path / "pred.json"
    folder = realdata / "face300w"
    result = _run(["--part", "face", "--images", str(folder), "--boxes", str(folder / "test_300w.json"),
                   "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 of 2 boxes got a prediction" in result.output
    preds = json.loads(out.read_text())
    gt = {a["id"]: a for a in json.loads((folder / "test_300w.json").read_text())["annotations"]}
    for p in preds:
        assert set(p) >= {"image_id", "category_id", "keypoints", "score", "bbox", "source_id"}
        pts = np.asarray(p["keypoints"]).reshape(68, 3)
        g = np.asarray(gt[p["source_id"]]["keypoints"]).reshape(68, 3)
        nme = np.linalg.norm(pts[:, :2] - g[:, :2], axis=1).mean() / np.linalg.norm(g[36, :2] - g[45, :2])
        assert nme < 0.08 and 0 < p["score"] <= 1


@pytest.mark.slow
def test_teach_hand_results_list_with_side(tmp_path, realdata):
    pytest.importorskip("ai_edge_litert")
    folder = realdata / "hand_panoptic"
    # A detection-style list naming the file, the box and the side (a right hand given as left).
    boxes = [{"image_id": 100587, "file_name": "005880453_01_r.jpg", "bbox": [733.4, 296.5, 75.6, 115.8],
              "side": "left"}]  # fmt: skip
    out = tmp_path / "hand.json"
    result = _run(["--part", "hand", "--images", str(folder), "--boxes", _boxes(tmp_path, boxes), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (p,) = json.loads(out.read_text())
    assert p["side"] == "left" and p["handedness_contradicts"] is True and p["right_prob"] > 0.8
    assert len(p["keypoints"]) == 63 and p["score"] > 0.5


@pytest.mark.parametrize(
    "content",
    [
        {"images": [{"id": 1, "file_name": "../secret.jpg"}], "annotations": [{"image_id": 1, "bbox": [0, 0, 5, 5]}]},
        [{"image_id": 1, "file_name": "../secret.jpg", "bbox": [0, 0, 5, 5]}],
    ],
)
def test_teach_never_reads_an_image_outside_the_image_folder(tmp_path, content):
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(tmp_path / "secret.jpg"), np.zeros((8, 8, 3), np.uint8))  # exists, beside --images
    path = _boxes(tmp_path, content)
    out = tmp_path / "out.json"
    result = _run(["--part", "face", "--images", str(images), "--boxes", path, "--out", str(out)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "'../secret.jpg'" in result.output and "outside the image folder" in result.output
    assert not out.exists()
