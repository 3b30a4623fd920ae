"""Hostile use of the student's commands (issue 19 section 4): a run's folder reused or shared, bad configs.

Each case ends with exit code 2, one line ``wbt: error: ...`` naming the file, no traceback, and the
user's files untouched. Training cases use the tiny preset on the real COCO-WholeBody sample
(../shared/realdata; skipped when absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_wbt

from labeltool.io.atomic import RunLock
from labeltool.student.model import Student, StudentConfig

TRAIN = ["--preset", "tiny", "--input-size", "64x64", "--epochs", "1", "--batch-size", "6", "--workers", "0",
         "--device", "cpu", "--lr-base-batch", "0", "--warmup-steps", "1", "--no-augment"]


def _train_args(realdata: Path, out: Path) -> list[str]:
    d = realdata / "coco_wholebody"
    return ["train-student", "--train", str(d / "test_coco_wholebody.json"), "--images", str(d), "--out", str(out),
            *TRAIN]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --------------------------------------------------------------------------- 4.4: one run per folder


def test_fresh_run_into_a_folder_holding_a_run_is_refused(realdata, tmp_path):
    """Without --resume a second run replaced the first run's last.pt (and appended to nothing: logs of two runs)."""
    out = tmp_path / "run"
    assert run_wbt(*_train_args(realdata, out))[0] == 0
    before = _files(out)
    code, _, err = run_wbt(*_train_args(realdata, out), "--seed", "1")
    assert_one_line_error(code, err, f"{out}: --out is not empty", "last.pt", "--resume", "--overwrite")
    assert _files(out) == before


def test_fresh_run_into_a_folder_of_other_files_is_refused(realdata, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not yours to mix with")
    code, _, err = run_wbt(*_train_args(realdata, out))
    assert_one_line_error(code, err, f"{out}: --out is not empty", "holiday.jpg")
    assert _files(out) == {"holiday.jpg": b"not yours to mix with"}


def test_overwrite_starts_afresh(realdata, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run_wbt(*_train_args(realdata, out), "--seed", "1")
    assert code == 0
    assert "training from scratch: mmpose's recipe starts from a pretrained CSPNeXt" in stdout  # issue 22.3: the hint
    first = torch.load(out / "last.pt", weights_only=True)
    assert run_wbt(*_train_args(realdata, out), "--seed", "2", "--overwrite")[0] == 0
    second = torch.load(out / "last.pt", weights_only=True)
    assert first["args"]["seed"] == 1 and second["args"]["seed"] == 2 and second["epoch"] == 1
    assert len(second["history"]) == 1  # a new log, not the first run's continued


def test_resume_with_overwrite_is_refused(realdata, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_wbt(*_train_args(realdata, out), "--resume", "--overwrite")
    assert_one_line_error(code, err, "--resume", "--overwrite")
    assert not out.exists()


def test_two_runs_into_one_folder_at_once_are_refused(realdata, tmp_path):
    """The folder is locked as wbt distill locks its --out (one lock implementation, labeltool.io.atomic.RunLock)."""
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out, "train-student")  # as if another wbt train-student were running there
    try:
        code, _, err = run_wbt(*_train_args(realdata, out))
    finally:
        lock.release()
    assert_one_line_error(code, err, f"{out}: another wbt train-student is running with this --out")
    assert not (out / "last.pt").exists()


def test_a_refused_run_leaves_no_folder(tmp_path):
    out = tmp_path / "new_run"
    code, _, err = run_wbt("train-student", "--train", tmp_path / "missing.json", "--images", tmp_path, "--out", out,
                        *TRAIN)
    assert code == 2 and "missing.json" in err
    assert not out.exists()


# --------------------------------------------------------------------------- 4.6: bad student configs


def _checkpoint(tmp_path: Path, **changes) -> Path:
    """A real tiny student checkpoint whose stored config is then edited by ``changes``."""
    cfg = StudentConfig(preset="tiny", input_size=(64, 64))
    config = {**cfg.to_dict(), "input_size": [64, 64], **changes}
    path = tmp_path / "student.pt"
    torch.save({"config": config, "model": Student(cfg).state_dict()}, path)
    return path


@pytest.mark.parametrize("changes, fragment", [
    ({"input_size": [0, 0]}, "input_size [0, 0]"),
    ({"input_size": [64]}, "input_size [64]"),
    ({"input_size": [100000, 64]}, "input_size [100000, 64]"),
    ({"preset": "xxl"}, "unknown preset 'xxl'"),
    ({"dropout": 0.5}, "unknown keys 'dropout'"),
    ({"num_keypoints": "133"}, "num_keypoints '133'"),
    ({"hidden": 0}, "hidden 0"),
    ({"widen": -1.0}, "widen -1.0"),
])
def test_bad_student_config_is_one_line(tmp_path, changes, fragment):
    ckpt = _checkpoint(tmp_path, **changes)
    target = tmp_path / "out.onnx"
    code, _, err = run_wbt("export", "--model", ckpt, "--onnx", target, "--no-check")
    assert_one_line_error(code, err, f"{ckpt}: bad student 'config'", fragment)
    assert not target.exists()


def test_bad_student_config_is_refused_by_predict_and_init(realdata, tmp_path):
    ckpt = _checkpoint(tmp_path, preset="xxl")
    d = realdata / "coco_wholebody"
    out = tmp_path / "pred.json"
    code, _, err = run_wbt("predict", "--model", ckpt, "--images", d, "--gt", d / "test_coco_wholebody.json",
                        "--out", out, "--device", "cpu", "--workers", "0")
    assert_one_line_error(code, err, f"{ckpt}: bad student 'config'", "unknown preset 'xxl'")
    assert not out.exists()
    run = tmp_path / "run"
    code, _, err = run_wbt(*_train_args(realdata, run), "--init", ckpt)
    assert_one_line_error(code, err, f"{ckpt}: bad student 'config'", "unknown preset 'xxl'")
    assert not run.exists()


def test_a_good_config_still_exports(tmp_path):
    ckpt = _checkpoint(tmp_path)
    code, out, err = run_wbt("export", "--model", ckpt, "--onnx", tmp_path / "ok.onnx", "--no-check")
    assert code == 0, err
    assert (tmp_path / "ok.onnx").stat().st_size > 0
