"""Student checkpoints hold only tensors / numbers / strings / lists / dicts and load with
``weights_only=True``; a hostile, truncated or foreign file, a changed run under ``--resume`` and
impossible numbers are one line on stderr, exit 2, with nothing run and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from labeltool.cli import main


def _data(realdata: Path) -> tuple[str, str]:
    d = realdata / "coco_wholebody"
    return str(d / "test_coco_wholebody.json"), str(d)


TRAIN = ["--preset", "tiny", "--input-size", "64x64", "--epochs", "2", "--batch-size", "4", "--workers", "0",
         "--device", "cpu", "--seed", "1", "--lr", "2e-3", "--lr-base-batch", "0"]


@pytest.fixture(scope="module")
def run_dir(realdata, tmp_path_factory) -> Path:
    """One epoch of the tiny student (of a 2-epoch schedule), for the resume and loading checks."""
    gt, images = _data(realdata)
    out = tmp_path_factory.mktemp("ckpt") / "run"
    res = CliRunner().invoke(main, ["train-student", "--train", gt, "--images", images, "--out", str(out), *TRAIN,
                                    "--stop-after", "1"])
    assert res.exit_code == 0, res.output
    return out


class _RunsCode:
    """A pickled object that would create a file when unpickled (what a hostile checkpoint carries)."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _one_line_error(res, text: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("wbt: error: "), res.stderr
    assert "Traceback" not in res.output and text in res.stderr, res.stderr


def test_checkpoint_loads_with_weights_only_and_keeps_rng_states(run_dir):
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    rng = ckpt["rng"]
    assert rng["python"]["state"].dtype == torch.int64 and rng["python"]["state"].numel() == 625
    assert rng["numpy"]["key"] == "MT19937" and rng["numpy"]["state"].numel() == 624
    assert ckpt["epoch"] == 1 and ckpt["args"]["input_size"] == [64, 64]


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    from labeltool.student.checkpoint import rng_state, set_rng_state

    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    np.random.normal()  # a cached gaussian in numpy's state
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), np.random.random(), torch.rand(3))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), np.random.normal(), np.random.random(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


@pytest.mark.parametrize("command", ["predict", "export", "resume", "init"])
def test_a_checkpoint_carrying_code_is_refused_without_running_it(realdata, run_dir, tmp_path, command):
    gt, images = _data(realdata)
    marker = tmp_path / "code_ran"
    _RunsCode.marker = str(marker)
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    ckpt["history"] = [_RunsCode()]
    out = tmp_path / "run"
    out.mkdir()
    torch.save(ckpt, out / "last.pt")
    args = {
        "predict": ["predict", "--model", str(out / "last.pt"), "--images", images, "--gt", gt, "--out",
                    str(tmp_path / "r.json"), "--workers", "0", "--device", "cpu"],
        "export": ["export", "--model", str(out / "last.pt"), "--onnx", str(tmp_path / "m.onnx")],
        "resume": ["train-student", "--train", gt, "--images", images, "--out", str(out), *TRAIN, "--resume"],
        "init": ["train-student", "--train", gt, "--images", images, "--out", str(tmp_path / "o2"), *TRAIN,
                 "--init", str(out / "last.pt")],
    }[command]
    res = CliRunner().invoke(main, args)
    _one_line_error(res, "refused")
    assert not marker.exists()
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "m.onnx").exists()


def test_resume_from_a_truncated_checkpoint_is_one_line(realdata, run_dir, tmp_path):
    gt, images = _data(realdata)
    out = tmp_path / "run"
    out.mkdir()
    data = (run_dir / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 2])
    res = CliRunner().invoke(main, ["train-student", "--train", gt, "--images", images, "--out", str(out), *TRAIN,
                                    "--resume"])
    _one_line_error(res, "not a readable checkpoint")
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]


@pytest.mark.parametrize("change,named", [
    (["--lr", "1e-3"], "--lr (0.002 there, 0.001 now)"),
    (["--seed", "2"], "--seed (1 there, 2 now)"),
    (["--input-size", "96x128"], "--input-size (64x64 there, 96x128 now)"),
    (["--preset", "s"], "--preset (tiny there, s now)"),
    (["--keypoints", "136"], "--num-keypoints (133 there, 136 now)"),
    (["--train", "OTHER"], "--train ("),
])
def test_resume_refuses_a_changed_run(realdata, run_dir, tmp_path, change, named):
    gt, images = _data(realdata)
    if change[0] == "--train":  # the same labels under another name
        other = tmp_path / "other.json"
        other.write_text(Path(gt).read_text())
        change = ["--train", str(other)]
    digest = (run_dir / "last.pt").read_bytes()
    args = dict(zip(TRAIN[::2], TRAIN[1::2]))
    args.update(dict(zip(change[::2], change[1::2])))
    flat = [v for kv in args.items() for v in kv if kv[0] != "--train"]
    res = CliRunner().invoke(main, ["train-student", "--train", args.get("--train", gt), "--images", images,
                                    "--out", str(run_dir), *flat, "--resume"])
    _one_line_error(res, named)
    assert "--resume of a run started with other options" in res.stderr
    assert (run_dir / "last.pt").read_bytes() == digest


def test_resume_may_change_where_and_how_it_runs(realdata, run_dir, tmp_path):
    gt, images = _data(realdata)
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes((run_dir / "last.pt").read_bytes())
    res = CliRunner().invoke(main, ["train-student", "--train", gt, "--images", images, "--out", str(out), *TRAIN,
                                    "--resume", "--log-every", "7", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert len(json.loads((out / "log.json").read_text())) == 2


@pytest.mark.parametrize("args,message", [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "-1"], "--lr must be greater than 0"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number"),
    (["--clip-grad", "-5"], "--clip-grad must not be negative"),
    (["--epochs", "0"], "--epochs must be greater than 0"),
    (["--workers", "-1"], "--workers must not be negative"),
])
def test_train_numbers_are_checked_where_they_enter(realdata, tmp_path, args, message):
    gt, images = _data(realdata)
    res = CliRunner().invoke(main, ["train-student", "--train", gt, "--images", images, "--out",
                                    str(tmp_path / "o"), "--device", "cpu", *args])
    _one_line_error(res, message)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--workers", "-1"], "--workers must not be negative"),
    (["--nms-thr", "nan"], "--nms-thr must be a finite number"),
])
def test_predict_numbers_are_checked_where_they_enter(realdata, run_dir, tmp_path, args, message):
    gt, images = _data(realdata)
    res = CliRunner().invoke(main, ["predict", "--model", str(run_dir / "last.pt"), "--images", images, "--gt", gt,
                                    "--out", str(tmp_path / "r.json"), *args])
    _one_line_error(res, message)
    assert not (tmp_path / "r.json").exists()
