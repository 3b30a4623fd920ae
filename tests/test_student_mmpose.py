"""mmpose RTMPose checkpoints in the student: key names, architecture inference, safe reading, and
(slow) equality with mmpose's own model built in mmpose's own environment.

The slow tests run ``tests/mmpose_rtmpose_reference.py`` in the mmpose venv that ``install.sh
--test`` makes at ``~/.cache/wbt/mmpose-venv`` (mmpose 1.3.2 on mmcv-lite, CPU torch, no
torchvision; or point ``WBT_MMPOSE_PYTHON`` at another interpreter), and skip when it is absent.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import labeltool.student.codec
from conftest import REALDATA  # WBT_SHARED or ../shared, as every test
from labeltool.cli import main
from labeltool.errors import UserError
from labeltool.eval.predictions import load_predictions
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import WHOLEBODY133
from labeltool.student.checkpoint import load_checkpoint, model_from_checkpoint
from labeltool.student.mmpose_checkpoint import InertObject, convert_mmpose_state, read_weights_only, student_key
from labeltool.student.model import Student, StudentConfig, count_parameters

REPO = Path(__file__).resolve().parents[1]
MMPOSE_PYTHON = Path(os.environ.get("WBT_MMPOSE_PYTHON", Path.home() / ".cache" / "wbt" / "mmpose-venv" / "bin"
                                    / "python"))
RTMPOSE_M_WHOLEBODY_PARAMETERS = 17_953_039  # mmpose's count (measured by the author and by this test)

# Real names from mmpose 1.3.2's RTMPose-m state dict -> the student's.
KNOWN_NAMES = {
    "backbone.stem.0.conv.weight": "backbone.stem.0.0.weight",
    "backbone.stem.2.bn.running_var": "backbone.stem.2.1.running_var",
    "backbone.stage1.0.bn.num_batches_tracked": "backbone.stages.0.0.1.num_batches_tracked",
    "backbone.stage1.1.main_conv.conv.weight": "backbone.stages.0.1.main.0.weight",
    "backbone.stage2.1.short_conv.bn.bias": "backbone.stages.1.1.short.1.bias",
    "backbone.stage3.1.final_conv.bn.weight": "backbone.stages.2.1.final.1.weight",
    "backbone.stage1.1.blocks.1.conv1.conv.weight": "backbone.stages.0.1.blocks.1.conv1.0.weight",
    "backbone.stage2.1.blocks.0.conv2.depthwise_conv.conv.weight": "backbone.stages.1.1.blocks.0.depthwise.0.weight",
    "backbone.stage2.1.blocks.0.conv2.pointwise_conv.bn.running_mean":
        "backbone.stages.1.1.blocks.0.pointwise.1.running_mean",
    "backbone.stage1.1.attention.fc.bias": "backbone.stages.0.1.attention.fc.bias",
    "backbone.stage4.1.conv1.conv.weight": "backbone.stages.3.1.reduce.0.weight",
    "backbone.stage4.1.conv2.bn.weight": "backbone.stages.3.1.out.1.weight",
    "backbone.stage4.2.blocks.0.conv1.bn.weight": "backbone.stages.3.2.blocks.0.conv1.1.weight",
    "head.final_layer.weight": "head.final.weight",
    "head.mlp.0.g": "head.mlp.0.g",
    "head.mlp.1.weight": "head.mlp.1.weight",
    "head.gau.ln.g": "head.gau.norm.g",
    "head.gau.res_scale.scale": "head.gau.res_scale",
    "head.gau.uv.weight": "head.gau.uv.weight",
    "head.cls_y.weight": "head.cls_y.weight",
}


def test_mmpose_names_map_onto_the_student():
    for mmpose_name, ours in KNOWN_NAMES.items():
        assert student_key(mmpose_name) == ours, mmpose_name
    assert student_key("module.head.cls_x.weight") == "head.cls_x.weight"


def _as_mmpose(state: dict) -> dict:
    """A student state dict under mmpose's names (the inverse of student_key, for the known layer kinds)."""
    inverse = {}
    for key, value in state.items():
        k = re.sub(r"^backbone\.stages\.(\d)\.", lambda m: f"backbone.stage{int(m[1]) + 1}.", key)
        k = re.sub(r"\.reduce\.", ".conv1.", k)
        k = re.sub(r"\.out\.", ".conv2.", k)
        for ours, theirs in ((".main.", ".main_conv."), (".short.", ".short_conv."), (".final.", ".final_conv."),
                             (".depthwise.", ".conv2.depthwise_conv."), (".pointwise.", ".conv2.pointwise_conv.")):
            k = k.replace(ours, theirs) if k.startswith("backbone.") else k
        k = re.sub(r"\.0\.(weight)$", r".conv.\1", k) if k.startswith("backbone.") else k
        k = re.sub(r"\.1\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r".bn.\1", k) \
            if k.startswith("backbone.") else k
        k = {"head.final.weight": "head.final_layer.weight", "head.final.bias": "head.final_layer.bias",
             "head.gau.norm.g": "head.gau.ln.g", "head.gau.res_scale": "head.gau.res_scale.scale"}.get(k, k)
        inverse[k] = value
    assert {student_key(k) for k in inverse} == set(state)
    return inverse


@pytest.mark.parametrize("preset,keypoints,size", [("s", 26, (192, 256)), ("tiny", 136, (288, 384)),
                                                   ("tiny", 17, (192, 256))])
def test_architecture_is_read_from_the_weights(preset, keypoints, size, tmp_path):
    config = StudentConfig(preset=preset, num_keypoints=keypoints, input_size=size)
    model = Student(config).eval()
    state = {k: v for k, v in _as_mmpose(model.state_dict()).items() if "num_batches_tracked" not in k}
    path = tmp_path / "published.pth"
    torch.save({"meta": {"cfg": "codec = dict(simcc_split_ratio=2.0)"}, "state_dict": state}, path)
    ckpt = load_checkpoint(path)
    assert StudentConfig.from_dict(ckpt["config"]) == config
    assert ckpt["incomplete"] is None and f"{keypoints}" in ckpt["origin"]
    loaded = model_from_checkpoint(ckpt)
    images = torch.rand(2, 3, size[1], size[0]) * 255
    with torch.no_grad():
        for a, b in zip(loaded(images), model(images)):
            assert torch.equal(a, b)


def test_other_architectures_are_refused_naming_what_is_missing(tmp_path):
    vitpose = {"backbone.patch_embed.projection.weight": torch.zeros(768, 3, 16, 16),
               "head.deconv_layers.0.weight": torch.zeros(768, 256, 4, 4)}
    with pytest.raises(UserError, match=r"no CSPNeXt backbone \(backbone.stem.0.conv.weight missing"):
        convert_mmpose_state(vitpose, tmp_path / "vitpose.pth")
    state = _as_mmpose(Student(StudentConfig(preset="tiny", num_keypoints=17)).state_dict())
    state["head.gau.w"] = torch.zeros(10)  # a GAU with relative position bias
    with pytest.raises(UserError, match=r"tensors the student does not have: head.gau.w"):
        convert_mmpose_state(state, tmp_path / "relbias.pth")
    state.pop("head.gau.w")
    state.pop("head.gau.uv.weight")
    with pytest.raises(UserError, match=r"tensors the file lacks: head.gau.uv.weight"):
        convert_mmpose_state(state, tmp_path / "partial.pth")


class _Exploit:
    """Unpickling this would run code (exec writes a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


class MetaThing:
    def __init__(self):
        self.values = [1, 2, 3]


def test_foreign_objects_are_read_as_inert_stand_ins(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "mmpose-like.pth"
    state = _as_mmpose(Student(StudentConfig(preset="tiny", num_keypoints=17)).state_dict())
    torch.save({"meta": {"hub": MetaThing(), "evil": _Exploit(marker)}, "state_dict": state}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what torch alone says
    obj = read_weights_only(path)
    assert not marker.exists()  # nothing from the file ran
    assert isinstance(obj["meta"]["hub"], InertObject) and obj["meta"]["hub"].state == {"values": [1, 2, 3]}
    assert isinstance(obj["meta"]["evil"], InertObject)
    assert load_checkpoint(path)["origin"].startswith("mmpose RTMPose-t body-17")
    assert not marker.exists()


# --------------------------------------------------------------------------- against mmpose itself (slow)


def _sample_persons(coco_wholebody: Path) -> list[dict]:
    """The persons ``wbt predict --gt`` takes from the real sample, in its order, as image file and x1 y1 x2 y2,
    each box clipped as mmpose's CocoDataset.parse_data_info clips it (corners into [0, img_w - 1] x
    [0, img_h - 1]; written out here, not wbt's helper): two of the 14 boxes reach x = 639.2 and 640."""
    ds = load_pose_dataset(str(coco_wholebody / "test_coco_wholebody.json"))
    keep = (ds.iscrowd == 0) & (ds.bboxes[:, 2] > 0) & (ds.bboxes[:, 3] > 0)
    images = {int(im["id"]): im for im in ds.images}
    persons = []
    for i, (x, y, w, h) in zip(ds.image_ids[keep], ds.bboxes[keep]):
        im = images[int(i)]
        img_w, img_h = im["width"], im["height"]
        x1, y1 = np.clip(x, 0, img_w - 1), np.clip(y, 0, img_h - 1)
        x2, y2 = np.clip(x + w, 0, img_w - 1), np.clip(y + h, 0, img_h - 1)
        persons.append({"file": str(coco_wholebody / im["file_name"]),
                        "bbox_xyxy": [float(x1), float(y1), float(x2), float(y2)]})
    return persons


@pytest.fixture(scope="module")
def mmpose_reference(tmp_path_factory) -> Path:
    if not MMPOSE_PYTHON.is_file():
        pytest.skip(f"mmpose venv not found at {MMPOSE_PYTHON} (install.sh --test makes it)")
    out = tmp_path_factory.mktemp("mmpose")
    args = [str(out)]
    if REALDATA.is_dir():  # also mmpose's own top-down inference on the real sample's boxes
        (out / "persons.json").write_text(json.dumps({"persons": _sample_persons(REALDATA / "coco_wholebody")}))
        args.append(str(out / "persons.json"))
    run = subprocess.run([str(MMPOSE_PYTHON), str(REPO / "tests" / "mmpose_rtmpose_reference.py"), *args],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RTMPose-m whole-body built" in run.stdout
    return out


@pytest.mark.slow
def test_rtmpose_m_wholebody_gives_mmposes_logits(mmpose_reference):
    ckpt = load_checkpoint(mmpose_reference / "rtmpose-m.pth")  # a full training checkpoint, meta and all
    assert ckpt["origin"] == "mmpose RTMPose-m whole-body-133, input 192x256"
    model = model_from_checkpoint(ckpt)
    reference = torch.load(mmpose_reference / "reference.pt", weights_only=True)
    images = torch.load(mmpose_reference / "images.pt", weights_only=True)
    assert count_parameters(model) == reference["parameters"] == RTMPOSE_M_WHOLEBODY_PARAMETERS
    with torch.no_grad():
        ours = model(images)
    for axis, got in zip(("simcc_x", "simcc_y"), ours):
        want = reference[axis]
        assert got.shape == want.shape
        assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max()), axis  # measured: 0.0
        assert torch.equal(got.argmax(-1), want.argmax(-1)), axis
    # RTMDet's batch norm eps (what the student had) moves the same weights' outputs: the check can fail
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-3
    with torch.no_grad():
        old_x, _ = model(images)
    assert float((old_x - reference["simcc_x"]).abs().max()) > 0.1  # measured 4.65, 19 % of arg-maxes moved


@pytest.mark.slow
def test_predict_and_export_take_an_mmpose_checkpoint(mmpose_reference, realdata, tmp_path):
    gt = realdata / "coco_wholebody" / "test_coco_wholebody.json"
    out = tmp_path / "results.json"
    run = CliRunner().invoke(main, ["predict", "--model", str(mmpose_reference / "rtmpose-m.pth"), "--images",
                                    str(realdata / "coco_wholebody"), "--gt", str(gt), "--out", str(out),
                                    "--workers", "0", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    assert "wrote 14 poses" in run.output
    run = CliRunner().invoke(main, ["export", "--model", str(mmpose_reference / "rtmpose-m.pth"), "--onnx",
                                    str(tmp_path / "m.onnx"), "--no-check"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "m.onnx").stat().st_size > 60_000_000


def _predict_sample(ckpt: Path, coco_wholebody: Path, out: Path) -> np.ndarray:
    """``wbt predict --model ckpt --gt`` on the real sample (flip test on, as mmpose's config): (N, 133, 3)."""
    run = CliRunner().invoke(main, ["predict", "--model", str(ckpt), "--images", str(coco_wholebody), "--gt",
                                    str(coco_wholebody / "test_coco_wholebody.json"), "--out", str(out),
                                    "--workers", "0", "--device", "cpu", "--flip"])
    assert run.exit_code == 0, run.output
    gt = load_pose_dataset(coco_wholebody / "test_coco_wholebody.json")
    return load_predictions(out, WHOLEBODY133, gt.image_ids, gt.category_ids).keypoints  # in file order


@pytest.mark.slow
def test_predict_gives_mmposes_topdown_keypoints(mmpose_reference, realdata, tmp_path, monkeypatch):
    """mmpose's own top-down inference (val pipeline, TopdownAffine, RTMCCHead flip test, SimCC decode, mapping
    to the image) and ``wbt predict`` with the same weights on the same 14 real boxes agree: wbt's crop,
    flip mapping and inverse mapping are mmpose's. With wbt's sub-bin refinement replaced by mmpose's plain
    arg-max the points are mmpose's: a half-pixel crop or flip offset would move every point.

    Not all of them to 0.01 px: mmpose builds its warp matrix in float32 (cv2.getAffineTransform), which
    changes ~20-50 crop pixels by one grey level, and this random-weight network has near-tied arg-maxes
    that such changes flip (measured: 36 of 1862 points)."""
    theirs = json.loads((mmpose_reference / "topdown.json").read_text())
    assert theirs["flip_test"]
    mmpose_xy = np.asarray(theirs["keypoints"])
    ckpt = mmpose_reference / "rtmpose-m.pth"
    d = realdata / "coco_wholebody"
    refined = np.linalg.norm(_predict_sample(ckpt, d, tmp_path / "refined.json")[..., :2] - mmpose_xy, axis=-1)
    monkeypatch.setattr(labeltool.student.codec, "_refined_argmax", lambda logits: logits.argmax(-1).float())
    ours = _predict_sample(ckpt, d, tmp_path / "argmax.json")
    dist = np.linalg.norm(ours[..., :2] - mmpose_xy, axis=-1)
    score_diff = np.abs(ours[..., 2] - np.asarray(theirs["scores"]))
    print(f"wbt predict vs mmpose top-down, {dist.size} points: arg-max decode median {np.median(dist):.5f} px, "
          f"{(dist <= 0.01).mean():.1%} within 0.01 px; wbt's refined decode median {np.median(refined):.3f} px")
    assert dist.shape == (14, 133)
    assert np.median(dist) <= 0.001  # measured 0.0004 px
    assert (dist <= 0.01).mean() >= 0.97  # measured 98.1 %
    assert np.median(score_diff) <= 1e-3
    assert np.median(refined) <= 0.15  # measured 0.053 px: the refinement moves points by under half a bin


@pytest.mark.slow
def test_body17_checkpoint_initialises_a_wholebody_student(mmpose_reference, realdata, tmp_path):
    """A bare state dict of RTMPose-t body-17: the backbone loads, the 17-point keypoint layer starts fresh."""
    d = realdata / "coco_wholebody"
    run = CliRunner().invoke(main, [
        "train-student", "--train", str(d / "test_coco_wholebody.json"), "--images", str(d), "--out",
        str(tmp_path / "run"), "--preset", "tiny", "--init", str(mmpose_reference / "rtmpose-t-body17.pth"),
        "--epochs", "1", "--max-steps-per-epoch", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu",
        "--no-augment", "--no-ema"])
    assert run.exit_code == 0, run.output
    line = next(s for s in run.output.splitlines() if s.startswith("--init"))
    assert line.endswith("rtmpose-t-body17.pth: mmpose RTMPose-t body-17, input 192x256: backbone loaded; head: "
                         "keypoint layer starts fresh (17 keypoints in the file, 133 here), its 10 other tensors "
                         "loaded"), line
    body17 = torch.load(mmpose_reference / "rtmpose-t-body17.pth", weights_only=True)
    trained = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"]
    # one step of AdamW at warm-up lr moves each weight by ~lr: the stem is still the file's
    assert torch.allclose(trained["backbone.stem.0.0.weight"], body17["backbone.stem.0.conv.weight"], atol=1e-3)


@pytest.mark.slow
def test_rtmw_is_refused_as_a_model_but_lends_its_backbone(mmpose_reference, realdata, tmp_path):
    d = realdata / "coco_wholebody"
    rtmw = str(mmpose_reference / "rtmw-m.pth")
    run = CliRunner().invoke(main, ["export", "--model", rtmw, "--onnx", str(tmp_path / "rtmw.onnx")])
    assert run.exit_code == 2
    assert "its neck (neck.bottom_up_blocks, neck.downsamples, neck.reduce_layers, neck.top_down_blocks; RTMW's " \
           "CSPNeXtPAFPN) is not part of the student; only its CSPNeXt backbone can load" in run.output
    assert "Traceback" not in run.output and not (tmp_path / "rtmw.onnx").exists()
    run = CliRunner().invoke(main, [
        "train-student", "--train", str(d / "test_coco_wholebody.json"), "--images", str(d), "--out",
        str(tmp_path / "run"), "--preset", "m", "--init", rtmw, "--epochs", "1", "--max-steps-per-epoch", "1",
        "--batch-size", "2", "--workers", "0", "--device", "cpu", "--no-augment", "--no-ema"])
    assert run.exit_code == 0, run.output
    assert (f"--init {rtmw}: mmpose checkpoint with a neck (RTMW-style), its CSPNeXt backbone as in RTMPose-m: "
            "backbone loaded; head starts fresh") in run.output
