"""`wbt convert` and `wbt render` through the real command line: outputs, and one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from labeltool.cli import main

WBT = Path(sys.executable).parent / "wbt"


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def wholebody(realdata):
    return realdata / "coco_wholebody" / "test_coco_wholebody.json"


def test_help_lists_the_commands():
    result = _run("--help")
    assert result.exit_code == 0
    assert "convert" in result.output and "render" in result.output
    assert "--to" in _run("convert", "--help").output


def test_convert_round_trip_through_files(wholebody, tmp_path):
    r = _run("convert", wholebody, tmp_path / "h.json", "--to", "136")
    assert r.exit_code == 0, r.output
    assert "derived neck 12, hip 12 (head top unlabelled)" in r.output
    halpe = json.loads((tmp_path / "h.json").read_text())
    assert len(halpe["annotations"][0]["keypoints"]) == 136 * 3
    assert halpe["categories"][0]["keypoints"][17:20] == ["head", "neck", "hip"]
    assert _run("convert", tmp_path / "h.json", tmp_path / "w.json", "--to", "133").exit_code == 0
    assert json.loads((tmp_path / "w.json").read_text()) == json.loads(wholebody.read_text())
    assert _run("convert", tmp_path / "h.json", tmp_path / "h26.json", "--to", "halpe26").exit_code == 0
    h26 = json.loads((tmp_path / "h26.json").read_text())
    assert [a["keypoints"] for a in h26["annotations"]] == [a["keypoints"][:78] for a in halpe["annotations"]]
    r = _run("convert", wholebody, tmp_path / "op", "--to", "openpose")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "op").glob("*_keypoints.json"))) == 4


def test_render_labels_and_results(wholebody, realdata, tmp_path):
    r = _run(
        "render", wholebody, "--images", realdata / "coco_wholebody", "--out", tmp_path / "r", "--sheet", "--boxes"
    )
    assert r.exit_code == 0, r.output
    assert _files(tmp_path / "r") == [
        "000000000785.png", "000000040083.png", "000000196141.png", "000000197388.png", "contact_sheet.png",
    ]  # fmt: skip
    gt = json.loads(wholebody.read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
               for a in gt["annotations"] if a["num_keypoints"] > 0]  # fmt: skip
    (tmp_path / "res.json").write_text(json.dumps(results))
    args = ["render", tmp_path / "res.json", "--images", realdata / "coco_wholebody", "--out", tmp_path / "p"]
    r = _run(*args)
    assert r.exit_code == 2 and "give --gt" in r.stderr
    r = _run(*args, "--gt", wholebody, "--sheet", "--no-overlays")
    assert r.exit_code == 0, r.output
    assert _files(tmp_path / "p") == ["contact_sheet.png"]
    assert "(12 persons)" in r.output


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 9, 9]}]}


def _doc(**ann) -> str:
    doc = json.loads(json.dumps(GOOD))
    doc["annotations"][0].update(ann)
    return json.dumps(doc)


BAD_FILES = {
    "invalid json": ('{"images": [],\n "annotations": [}', "invalid JSON at line 2 column 18"),
    "wrong keypoint length": (_doc(keypoints=[0] * 48), "'keypoints' has 48 values"),
    "missing required key": (_doc(), "annotation 1 is missing required key 'keypoints'"),
    "duplicate ids": (
        json.dumps({**GOOD, "annotations": [dict(GOOD["annotations"][0], keypoints=[0] * 51)] * 2}),
        "duplicate annotation id 1",
    ),
}


def _assert_one_line_error(result, path_text: str, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wbt: error: ") and path_text in lines[0] and message in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
@pytest.mark.parametrize("target", ["136", "openpose"])
def test_convert_bad_input(case, target, tmp_path):
    text, message = BAD_FILES[case]
    src = _write(tmp_path / "in.json", text)
    result = _run("convert", src, tmp_path / "out", "--to", target)
    _assert_one_line_error(result, str(src), message)
    assert _files(tmp_path) == ["in.json"]  # nothing written


def test_convert_missing_file(tmp_path):
    result = _run("convert", tmp_path / "nope.json", tmp_path / "out.json", "--to", "133")
    _assert_one_line_error(result, str(tmp_path / "nope.json"), "file not found")
    assert _files(tmp_path) == []


def test_render_absent_image(wholebody, tmp_path):
    (tmp_path / "imgs").mkdir()
    result = _run("render", wholebody, "--images", tmp_path / "imgs", "--out", tmp_path / "out")
    _assert_one_line_error(result, str(tmp_path / "imgs" / "000000000785.jpg"), "image file not found")
    assert _files(tmp_path) == ["imgs"]


@pytest.mark.skipif(not WBT.exists(), reason=f"console script {WBT} not installed (pip install -e .)")
def test_console_script_prints_one_line_without_traceback(tmp_path):
    src = _write(tmp_path / "in.json", BAD_FILES["invalid json"][0])
    for args in ([src, tmp_path / "o.json"], [tmp_path / "absent.json", tmp_path / "o.json"]):
        proc = subprocess.run([str(WBT), "convert", *map(str, args), "--to", "136"], capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("wbt: error: ")
        assert str(args[0]) in proc.stderr
    assert _files(tmp_path) == ["in.json"]
