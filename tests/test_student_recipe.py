"""RTMPose recipe parity: schedule, LR scaling, stage-2 switch, blurs, part zoom, no-decay set, head
init, ExpMomentumEMA, bf16 autocast on the CPU, and DDP at world size 2 (gloo, two processes)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from labeltool.layouts import WHOLEBODY133
from labeltool.student.augment import AugmentConfig, _blur_some, augment_batch
from labeltool.student.model import Student, StudentConfig
from labeltool.student.train import EMA, Learner, TrainConfig, lr_lambda, param_groups, scaled_lr

TINY = StudentConfig(preset="tiny", num_keypoints=133, input_size=(64, 64))


def test_schedule_is_warmup_from_1e5_flat_to_half_then_cosine_to_5_percent():
    """rtmpose-m_8xb64-270e: LinearLR(start_factor=1e-5, end=1000 iters) and CosineAnnealingLR(eta_min=5 %,
    begin=max_epochs // 2, end=max_epochs, per iteration)."""
    steps_per_epoch, epochs = 100, 270
    f = lr_lambda(1000, (epochs // 2) * steps_per_epoch, epochs * steps_per_epoch, 0.05)
    assert f(0) == pytest.approx(1e-5)
    assert f(500) == pytest.approx(1e-5 + (1 - 1e-5) * 0.5)
    assert f(1000) == f(5000) == f(13500) == 1.0  # flat from the end of warm-up to epoch 135
    half = 13500 + (27000 - 13500) // 2
    assert f(half) == pytest.approx(0.05 + 0.95 * 0.5)
    assert f(27000) == pytest.approx(0.05)
    assert f(13501) < 1.0
    values = [f(s) for s in range(13500, 27001, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_lr_scales_linearly_with_the_total_batch():
    cfg = TrainConfig(lr=4e-3, batch_size=64)
    assert scaled_lr(cfg, world=8) == pytest.approx(4e-3)  # RTMPose's 8 x 64 = base batch 512
    assert scaled_lr(cfg, world=1) == pytest.approx(5e-4)
    cfg.batch_size = 256
    assert scaled_lr(cfg, world=8) == pytest.approx(1.6e-2)
    cfg.lr_base_batch = 0
    assert scaled_lr(cfg, world=8) == 4e-3


def test_stage_two_switches_for_the_last_epochs():
    cfg = TrainConfig(preset="tiny", input_size=(64, 64), epochs=10, stage2_epochs=3, device="cpu")
    learner = Learner(cfg, WHOLEBODY133, torch.device("cpu"), steps_per_epoch=2)
    switches = [learner.set_epoch(e) for e in range(10)]
    assert switches == [False] * 7 + [True, False, False]
    assert learner.stage == 2 and learner.augment == AugmentConfig.stage2()
    s2 = AugmentConfig.stage2()
    assert (s2.box_noise_prob, s2.scale_range, s2.rotate_max, s2.dropout_prob) == (0, (0.75, 1.25), 60.0, 0.5)
    assert AugmentConfig().dropout_prob == 1.0 and AugmentConfig().blur_prob == 0.1
    learner.set_epoch(0)  # a resumed run early in training goes back to stage 1
    assert learner.stage == 1 and learner.augment == AugmentConfig()


def test_blurs_touch_round_p_times_batch_samples_and_median_removes_salt():
    g = torch.Generator().manual_seed(0)
    images = torch.full((20, 3, 16, 12), 100.0)
    images[:, :, 8, 6] = 255.0  # one hot pixel per image
    out = _blur_some(images, 0.1, "median", (3, 5, 7), g)
    changed = (out != images).flatten(1).any(1)
    assert int(changed.sum()) == 2  # round(0.1 x 20) samples, each with its hot pixel removed
    assert torch.all(out[changed] == 100.0)
    box = _blur_some(images, 0.5, "mean", (3,), g)
    changed = (box != images).flatten(1).any(1)
    assert int(changed.sum()) == 10
    assert float(box[changed][0, 0, 8, 6]) == pytest.approx(100 + 155 / 9, rel=1e-5)  # 3x3 box mean


def _points_on_a_line(part_only: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch of blank crops whose 133 points lie on one horizontal line, x from 20 to 100, in one box."""
    b = len(part_only)
    kp = torch.zeros(b, 133, 2)
    kp[:, :, 0] = torch.linspace(20, 100, 133)
    kp[:, :, 1] = 80
    return {"crops": torch.zeros(b, 160, 120, 3, dtype=torch.uint8), "keypoints": kp,
            "weights": torch.ones(b, 133), "boxes": torch.tensor([[30.0, 40.0, 60.0, 80.0]]).repeat(b, 1),
            "part_only": part_only}


def _x_spread(keypoints: torch.Tensor) -> torch.Tensor:
    """Per sample, the x extent of its points."""
    return keypoints[:, :, 0].amax(1) - keypoints[:, :, 0].amin(1)


def test_part_only_sources_zoom_out():
    """A face-only / hand-only sample is cropped 1.5-2x wider (RTMW's part pipelines): its points draw together."""
    batch = _points_on_a_line(torch.tensor([True, False] * 4))
    cfg = AugmentConfig.none()
    plain = augment_batch(batch, WHOLEBODY133, (96, 128), cfg)[1]
    zoomed = augment_batch(batch, WHOLEBODY133, (96, 128), AugmentConfig(**{**cfg.__dict__, "part_zoom": (2.0, 2.0)}))[1]
    ratio = _x_spread(zoomed) / _x_spread(plain)
    assert torch.allclose(ratio[0::2], torch.tensor(0.5)) and torch.allclose(ratio[1::2], torch.tensor(1.0))


class HostTensorSpy(TorchFunctionMode):
    """Records every call that would copy between host and device on CUDA, run on the CPU: tensors built
    from host data (``torch.tensor``, ``as_tensor``, ``asarray``, ``from_numpy``), reads back to the host
    (``item``, ``bool``, ``tolist``, ...), moves with a device, and factories not given ``device=`` of the
    batch (on CUDA they would be built on the host and copied over)."""

    HOST_DATA = {"tensor", "as_tensor", "asarray", "new_tensor"}
    TO_HOST = {"__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy", "cpu", "__array__"}
    FACTORIES = {"arange", "zeros", "ones", "empty", "full", "eye", "rand", "randn", "randint", "randperm",
                 "linspace", "logspace"}

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in self.HOST_DATA or name in self.TO_HOST:
            self.calls.append(name)
        elif name in ("to", "cuda") and (kwargs.get("device") is not None or any(
                isinstance(a, (torch.device, str)) for a in args[1:])):
            self.calls.append(f"{name}(device)")
        elif name in self.FACTORIES and (kwargs.get("device") is None
                                         or torch.device(kwargs["device"]) != self.device):
            self.calls.append(f"{name} without device={self.device}")
        return func(*args, **kwargs)


def test_augmentation_and_targets_build_no_tensor_on_the_host(monkeypatch):
    """The step's augmentation + SimCC targets (what gpu_check times) create every tensor on the batch's device
    and read nothing back: on CUDA each host-built tensor is a blocking copy (issue 22 counted ~10 per step)."""
    g = torch.Generator().manual_seed(0)
    b = 20  # blurs touch round(0.1 x 20) = 2 samples each: both the kernel groups and the index_copy run
    kp = torch.rand(b, 133, 2, generator=g) * torch.tensor([100.0, 140.0]) + 10
    batch = {"crops": torch.randint(0, 255, (b, 160, 120, 3), dtype=torch.uint8, generator=g), "keypoints": kp,
             "weights": torch.ones(b, 133), "boxes": torch.tensor([[20.0, 20.0, 80.0, 120.0]]).repeat(b, 1),
             "part_only": torch.arange(b) % 4 == 0, "index": torch.arange(b)}
    cfg = TrainConfig(preset="tiny", input_size=(96, 128), device="cpu", lr_base_batch=0)
    learner = Learner(cfg, WHOLEBODY133, torch.device("cpu"), steps_per_epoch=10)
    learner.augment = AugmentConfig(half_body_prob=1.0, rotate_prob=1.0, blur_prob=0.1, median_blur_prob=0.1)
    learner.inputs(batch)  # first call: per-process device constants (flip index, lower-body mask) are made here
    spy = HostTensorSpy(torch.device("cpu"))
    real_from_numpy = torch.from_numpy

    def from_numpy(array):  # not a torch function: torch's mode cannot see it
        spy.calls.append("from_numpy")
        return real_from_numpy(array)

    monkeypatch.setattr(torch, "from_numpy", from_numpy)
    with spy:
        images, tx, ty, weights = learner.inputs(batch)
    assert spy.calls == []
    assert images.shape == (b, 3, 128, 96) and tx.shape == (b, 133, 192) and ty.shape == (b, 133, 256)


def test_part_only_zoom_is_rtmws_1875_to_25():
    """RTMW's part datasets: RandomBBoxTransform scale 1.5-2.0, then CombinedDataset pads by 1.25 again."""
    batch = _points_on_a_line(torch.ones(400, dtype=torch.bool))
    none = AugmentConfig.none()
    plain = augment_batch(batch, WHOLEBODY133, (96, 128), none)[1]
    zoomed = augment_batch(batch, WHOLEBODY133, (96, 128), AugmentConfig(**{**none.__dict__, "part_zoom":
                                                                             AugmentConfig().part_zoom}),
                           torch.Generator().manual_seed(0))[1]
    zoom = _x_spread(plain) / _x_spread(zoomed)
    assert float(zoom.min()) >= 1.875 - 1e-4 and float(zoom.max()) <= 2.5 + 1e-4
    assert float(zoom.mean()) == pytest.approx(2.1875, abs=0.02)  # the truncated normal's mean: the middle


def test_half_body_prefers_the_upper_body_with_p_07():
    """mmpose's RandomHalfBody(upper_prioritized_prob=0.7) when both halves have enough points."""
    from labeltool.student.augment import _half_body, lower_body_mask

    b = 4000
    lower = torch.as_tensor(lower_body_mask(WHOLEBODY133))
    kp = torch.zeros(b, 133, 2)
    kp[:, :, 1] = torch.where(lower, 200.0, 50.0)  # upper points at y 50, lower at y 200
    kp[:, :, 0] = torch.linspace(0, 60, 133)
    center = torch.full((b, 2), 100.0)
    size = torch.full((b, 2), 200.0)
    cfg = AugmentConfig(half_body_prob=1.0)
    c, _ = _half_body(kp, torch.ones(b, 133), center, size, WHOLEBODY133, 0.75, cfg, torch.Generator().manual_seed(0))
    upper = float((c[:, 1] == 50.0).float().mean())
    assert float(((c[:, 1] == 50.0) | (c[:, 1] == 200.0)).float().mean()) == 1.0
    assert upper == pytest.approx(0.7, abs=0.025)  # binomial sd at 4000 draws: 0.007


def test_cosine_ends_at_mmposes_absolute_eta_min():
    """eta_min = base_lr x 0.05 = 2e-4 whatever the batch: auto_scale_lr scales the optimizer's LR only."""
    cfg = TrainConfig(preset="tiny", input_size=(64, 64), device="cpu", batch_size=128, epochs=4, warmup_steps=1)
    learner = Learner(cfg, WHOLEBODY133, torch.device("cpu"), steps_per_epoch=5)
    assert learner.lr == pytest.approx(4e-3 * 128 / 512)
    factor = learner.scheduler.lr_lambdas[0]
    assert learner.lr * factor(20) == pytest.approx(2e-4)
    assert learner.lr * factor(10) == pytest.approx(learner.lr)  # flat to half of training
    small = Learner(TrainConfig(preset="tiny", input_size=(64, 64), device="cpu", batch_size=8, epochs=4,
                                warmup_steps=1), WHOLEBODY133, torch.device("cpu"), steps_per_epoch=5)
    assert small.scheduler.lr_lambdas[0](20) == pytest.approx(1.0)  # 6.25e-5 < 2e-4: never raised toward it


def test_channel_attention_weights_in_float32_under_autocast():
    from labeltool.student.model import ChannelAttention

    torch.manual_seed(0)
    att = ChannelAttention(16)
    x = (torch.randn(2, 16, 8, 6) * 3).bfloat16()
    seen = []
    att.fc.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].dtype, output.dtype)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = att(x)
    assert seen == [(torch.float32, torch.float32)]  # autocast would run the 1x1 conv in bf16
    with torch.no_grad():
        weight = torch.nn.functional.hardsigmoid(att.fc(x.float().mean(dim=(2, 3), keepdim=True)))
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, x * weight.bfloat16())


def test_no_decay_set_is_mmengines_norms_and_biases():
    model = Student(TINY)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no = {names[id(p)] for p in no_decay["params"]}
    yes = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(no) + len(yes) == len(names)
    bn = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    bn_params = {f"{m}.weight" for m in bn} | {f"{m}.bias" for m in bn}
    assert bn_params <= no
    assert all(n.endswith(".bias") for n in no - bn_params)
    assert "backbone.stages.0.1.attention.fc.bias" in no  # a conv bias
    # not norms by type and not named 'bias': decayed, as mmengine's DefaultOptimWrapperConstructor does
    assert {"head.gau.gamma", "head.gau.beta", "head.gau.res_scale", "head.mlp.0.g", "head.gau.norm.g"} <= yes


@torch.no_grad()
def test_head_init_is_mmposes():
    torch.manual_seed(0)
    head = Student(StudentConfig(preset="m", num_keypoints=133)).head
    assert float(head.final.weight.std()) == pytest.approx(0.001, rel=0.02)
    assert float(head.final.bias.abs().max()) == 0.0
    for linear in (head.mlp[1], head.gau.uv, head.gau.o, head.cls_x, head.cls_y):
        assert float(linear.weight.std()) == pytest.approx(0.01, rel=0.05)
    assert float(head.gau.beta.abs().max()) == 0.0  # ours, not mmpose's torch.rand (see model.py and the docs)


def test_ema_is_mmengines_exp_momentum_ema():
    torch.manual_seed(0)
    student = Student(TINY)
    ema = EMA(student, momentum=2e-4, gamma=2000)
    reference = {k: v.clone() for k, v in student.state_dict().items()}
    for steps in range(3):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(1.0)
        ema.update(student)
        for k, v in student.state_dict().items():
            if not v.dtype.is_floating_point:
                continue
            if steps == 0:
                reference[k] = v.clone()  # mmengine: the first update copies
            else:
                m = (1 - 2e-4) * math.exp(-(1 + steps) / 2000) + 2e-4
                reference[k] = reference[k] + m * (v - reference[k])
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, reference[k], atol=1e-5), k
    assert ema.steps == 3


def test_bf16_autocast_step_on_the_cpu():
    """The bf16 autocast path (on by default on CUDA) run on the CPU: bf16 outputs, finite loss near fp32's.

    oneDNN is switched off: its CPU bf16 convolution backward gave a non-finite gradient in the
    head's 7x7 conv in about 1 run in 3 (same seed, same inputs), which never happens with it off
    (12 of 12 finite). wbt enables bf16 autocast only on CUDA, where oneDNN is not used."""
    cfg = TrainConfig(preset="tiny", input_size=(64, 64), device="cpu", augment=False, lr_base_batch=0, ema=True)
    losses = {}
    for amp in (False, True):
        learner = Learner(cfg, WHOLEBODY133, torch.device("cpu"), steps_per_epoch=10)
        learner.amp = amp
        g = torch.Generator().manual_seed(0)
        images = torch.rand(4, 3, 64, 64, generator=g) * 255
        kp = torch.rand(4, 133, 2, generator=g) * 63
        tx, ty, w = learner.codec.encode(kp, torch.ones(4, 133))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out_x, _ = learner.net(images)
        assert out_x.dtype == (torch.bfloat16 if amp else torch.float32)
        with torch.backends.mkldnn.flags(enabled=False):
            losses[amp] = [float(learner.optimise(images, tx, ty, w)) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses[True])
    assert np.allclose(losses[True], losses[False], rtol=0.05), losses


# --------------------------------------------------------------------------- validation


def _val_gt(realdata: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    """The real sample's GT with person 0's box pushed 40 px past the left edge of its image."""
    gt, images = _data(realdata)
    data = json.loads(Path(gt).read_text())
    ann = data["annotations"][0]
    ann["bbox"] = [ann["bbox"][0] - 40 - ann["bbox"][0], ann["bbox"][1], ann["bbox"][2] + 40, ann["bbox"][3]]
    path = tmp_path / "val.json"
    path.write_text(json.dumps(data))
    return path, Path(images), data


def test_validation_clips_gt_boxes_to_the_image(realdata, tmp_path):
    """mmpose's CocoWholeBodyDataset clips GT box corners into [0, w - 1] x [0, h - 1] before cropping."""
    from labeltool.student.train import _Validation

    path, images, data = _val_gt(realdata, tmp_path)
    val = _Validation(TrainConfig(val=str(path), val_images=str(images), workers=0), WHOLEBODY133)
    ann = data["annotations"][0]
    size = {im["id"]: (im["width"], im["height"]) for im in data["images"]}[ann["image_id"]]
    row = int(np.nonzero((val.image_ids == ann["image_id"]) & (val.bboxes[:, 1] == ann["bbox"][1]))[0][0])
    x1 = min(ann["bbox"][0] + ann["bbox"][2], size[0] - 1)
    assert val.bboxes[row].tolist() == pytest.approx([0.0, ann["bbox"][1], x1, ann["bbox"][3]])


def test_validation_on_detections_with_oks_nms(realdata, tmp_path, monkeypatch):
    """--val-dets: detector boxes (here every GT box twice, the copy scored lower), poses
    rescored by box score x keypoint scores and OKS-NMS 0.9 per image, as mmpose's whole-body configs."""
    import labeltool.eval
    from labeltool.errors import UserError
    from labeltool.student.train import _Validation

    gt, images = _data(realdata)
    data = json.loads(Path(gt).read_text())
    persons = [a for a in data["annotations"] if not a.get("iscrowd") and a["bbox"][2] > 0]
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in persons]
    dets += [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.5} for a in persons]
    dets.append({"image_id": persons[0]["image_id"], "category_id": 2, "bbox": [0, 0, 10, 10], "score": 1.0})
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    cfg = TrainConfig(val=gt, val_images=images, val_dets=str(path), workers=0, preset="tiny", input_size=(64, 64),
                      val_flip=False)
    val = _Validation(cfg, WHOLEBODY133)
    assert len(val.bboxes) == 2 * len(persons) and sorted(set(val.box_scores)) == [0.5, 0.9]
    seen = {}
    real_evaluate = labeltool.eval.evaluate

    def spy(gt_ds, predictions, *a, **k):
        seen["predictions"] = predictions
        return real_evaluate(gt_ds, predictions, *a, **k)

    monkeypatch.setattr(labeltool.eval, "evaluate", spy)
    torch.manual_seed(0)
    result = val.run(Student(StudentConfig(preset="tiny", input_size=(64, 64))).eval(), torch.device("cpu"))
    assert "AP_wholebody" in result
    kept = seen["predictions"]
    assert len(kept.image_ids) == len(persons)  # every copy suppressed (the same pose: OKS 1 > 0.9)
    dets[0]["image_id"] = 999999
    path.write_text(json.dumps(dets))
    with pytest.raises(UserError, match="image_id 999999 is not an image of"):
        _Validation(cfg, WHOLEBODY133)


# --------------------------------------------------------------------------- DDP, world size 2


def _data(realdata: Path) -> tuple[str, str]:
    d = realdata / "coco_wholebody"
    return str(d / "test_coco_wholebody.json"), str(d)


@pytest.mark.slow
def test_torchrun_world_size_two_checkpoints_and_resumes_exactly(realdata, tmp_path):
    """Two gloo processes: each rank's RNG state is in the checkpoint, ranks saw different augmentation,
    validation is sharded and gathered, and 1 + 1 epochs with --resume equal 2 straight epochs."""
    gt, images = _data(realdata)
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.is_file():
        pytest.skip(f"{torchrun} not found (torch installs it beside the interpreter)")
    args = ["train-student", "--train", gt, "--images", images, "--preset", "tiny", "--input-size", "64x64",
            "--epochs", "2", "--batch-size", "3", "--workers", "0", "--device", "cpu", "--seed", "4", "--lr", "2e-3",
            "--lr-base-batch", "0", "--warmup-steps", "2", "--stage2-epochs", "1", "--val", gt, "--val-images", images,
            "--val-every", "1", "--no-val-flip"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out: Path, *extra: str) -> None:
        proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "labeltool.student",
                               *args, "--out", str(out), *extra], capture_output=True, text=True, env=env,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    run(tmp_path / "straight")
    run(tmp_path / "halves", "--stop-after", "1")
    run(tmp_path / "halves", "--resume")
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "halves" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    rng = a["rng"]
    assert isinstance(rng, list) and len(rng) == 2
    assert not torch.equal(rng[0]["augment"], rng[1]["augment"])  # each rank its own augmentation stream
    assert not torch.equal(rng[0]["torch"], rng[1]["torch"])
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    # 12 persons, 3 per batch, 2 ranks: 2 steps per rank per epoch
    assert a["scheduler"]["last_epoch"] == 4
    assert [r["stage"] for r in a["history"]] == [1, 2]
    assert all("AP_wholebody" in r for r in a["history"])  # validated on both ranks' shares
    assert a["history"][-1]["AP_wholebody"] == b["history"][-1]["AP_wholebody"]


@pytest.mark.slow
def test_gpu_check_ddp_stage_on_the_cpu_with_gloo(realdata, tmp_path, monkeypatch):
    """benchmarks/gpu_check.py's DDP stage at batch 64 on the real sample (12 persons: the raw labels made no
    full batch), two gloo processes: it tiles the labels, so both ranks train full batches and validate."""
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).parents[1] / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    labels, images = _data(realdata)
    args = argparse.Namespace(persons=256, ddp_steps=2, workers=0, skip_compile=True, ddp_timeout=600,
                              ddp_input_size="64x64")
    result = gpu_check.ddp_check(Path(labels), Path(images), tmp_path, args, nproc=2, device="cpu")
    assert result["exit_code"] == 0, result.get("stderr_tail")
    assert result["persons"] == 264 and result["steps_per_epoch"] == 2  # 12 usable persons x 22 >= 256; 2 x 64 a step
    assert result["ok"] and result["rng_states"] == 2 and result["steps_done"] == 4
    assert result["stages"] == [1, 2] and result["validated"]
    assert "--compile" not in result["command"] and "torch.distributed.run" in result["command"]
