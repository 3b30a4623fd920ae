"""`wbt export --onnx` in rtmlib's convention: rtmlib 0.0.16's RTMPose runs the file with its defaults and
finds the keypoints `wbt predict` finds on the same boxes.

A tiny student is trained briefly on the real COCO-WholeBody sample (../shared/realdata); rtmlib
runs in its own venv (``~/.cache/wbt/rtmlib-venv`` from ``install.sh --test``, or
``WBT_RTMLIB_PYTHON``) through ``tests/rtmlib_pose.py``, and the test skips when it is absent.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.eval.predictions import load_predictions
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import WHOLEBODY133
from labeltool.student.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
RTMLIB_PYTHON = Path(os.environ.get("WBT_RTMLIB_PYTHON", Path.home() / ".cache" / "wbt" / "rtmlib-venv" / "bin"
                                    / "python"))
INPUT_SIZE = (192, 256)  # at 96x128 a briefly trained network jumps under half-pixel input changes


@pytest.fixture(scope="module")
def trained(realdata, tmp_path_factory):
    """30 steps of the tiny student at 192x256 on the 12 labelled persons of the real sample."""
    d = realdata / "coco_wholebody"
    gt, images = str(d / "test_coco_wholebody.json"), str(d)
    out = tmp_path_factory.mktemp("rtmlib_student")
    cfg = TrainConfig(train=gt, images=images, out=str(out), preset="tiny", input_size=INPUT_SIZE, epochs=30,
                      batch_size=12, lr=4e-3, lr_base_batch=0, warmup_steps=3, weight_decay=0.0, workers=0,
                      augment=False, ema=False, bn_momentum=0.5, device="cpu", progress=False)
    train(cfg)
    return out / "last.pt", gt, images


@pytest.mark.slow
def test_rtmlib_runs_the_export_and_agrees_with_wbt_predict(trained, tmp_path):
    if not RTMLIB_PYTHON.is_file():
        pytest.skip(f"rtmlib venv not found at {RTMLIB_PYTHON} (install.sh --test makes it)")
    ckpt, gt, images = trained
    onnx = tmp_path / "student.onnx"
    run = CliRunner().invoke(main, ["export", "--model", str(ckpt), "--onnx", str(onnx)])
    assert run.exit_code == 0, run.output
    assert "agrees with PyTorch" in run.output
    # the network alone (RGB 0..255 in, as the student is trained): what rtmlib got before this convention
    from labeltool.student.checkpoint import load_checkpoint, model_from_checkpoint

    bare = tmp_path / "bare.onnx"
    buffer = io.BytesIO()
    example = torch.zeros(1, 3, INPUT_SIZE[1], INPUT_SIZE[0])
    torch.onnx.export(model_from_checkpoint(load_checkpoint(ckpt)), (example,), buffer, input_names=["images"],
                      output_names=["simcc_x", "simcc_y"], opset_version=17, dynamo=False)
    bare.write_bytes(buffer.getvalue())

    results = tmp_path / "results.json"
    run = CliRunner().invoke(main, ["predict", "--model", str(ckpt), "--images", images, "--gt", gt, "--out",
                                    str(results), "--workers", "0", "--device", "cpu", "--no-flip"])  # rtmlib has no flip test
    assert run.exit_code == 0, run.output
    ds = load_pose_dataset(gt)
    ours = load_predictions(results, WHOLEBODY133, ds.image_ids, ds.category_ids).keypoints  # in file order
    keep = (ds.iscrowd == 0) & (ds.bboxes[:, 2] > 0) & (ds.bboxes[:, 3] > 0)  # the persons wbt predict takes
    files = {int(im["id"]): str(Path(images) / im["file_name"]) for im in ds.images}
    persons = [{"file": files[int(i)], "bbox_xyxy": [x, y, x + w, y + h]}
               for i, (x, y, w, h) in zip(ds.image_ids[keep], ds.bboxes[keep])]
    assert len(persons) == len(ours) == 14
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"models": [str(onnx), str(bare)], "input_size": list(INPUT_SIZE),
                                   "persons": persons}))
    run = subprocess.run([str(RTMLIB_PYTHON), str(REPO / "tests" / "rtmlib_pose.py"), str(request),
                          str(tmp_path / "rtmlib.json")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ""})
    assert run.returncode == 0, run.stderr[-3000:]
    theirs = json.loads((tmp_path / "rtmlib.json").read_text())

    def distances(model: Path) -> np.ndarray:
        xy = np.asarray(theirs[str(model)]["keypoints"])
        return np.linalg.norm(xy - ours[..., :2], axis=-1)

    exported, before = distances(onnx), distances(bare)
    heights = np.asarray([p["bbox_xyxy"][3] - p["bbox_xyxy"][1] for p in persons])
    print(f"rtmlib vs wbt predict, {exported.size} points of 14 persons (box heights {heights.min():.0f}-"
          f"{heights.max():.0f} px): median {np.median(exported):.3f} px, 90th percentile "
          f"{np.percentile(exported, 90):.3f} px, max {exported.max():.2f} px; the bare network: median "
          f"{np.median(before):.2f} px, {(before > 1).mean():.0%} of its points over 1 px away (the export: "
          f"{(exported > 1).mean():.1%})")
    assert np.median(exported) <= 0.5  # measured 0.17 px (90th percentile 0.40 px): rtmlib's plain arg-max
    assert (exported > 1).mean() <= 0.02  # measured 0.1 %
    # Channels and normalisation matter: without them rtmlib moves many points. How far depends on how this
    # 30-step network trained (the bare network's median was 30 px before issue 22's recipe changes, since then
    # 1.9 px on two threads, 0.4 px on one): the share of points moved over 1 px is the stable figure (48 % at least).
    assert (before > 1).mean() >= 0.2
