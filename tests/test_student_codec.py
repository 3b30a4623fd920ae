"""Student codec, model and pose NMS: known answers and round trips (no data files needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeltool.layouts import COCO17, WHOLEBODY133
from labeltool.student.codec import SimCCCodec, default_sigma, flip_simcc
from labeltool.student.model import Student, StudentConfig, count_flops, count_parameters
from labeltool.student.nms import oks_nms, parametric_pose_nms


@pytest.mark.parametrize("size", [(192, 256), (288, 384)])
def test_simcc_round_trip_gives_the_nearest_bin(size):
    """mmpose's SimCCLabel centres a target on round(x * split_ratio), so a label decodes to that bin exactly."""
    codec = SimCCCodec(size)
    g = torch.Generator().manual_seed(1)
    w, h = size
    pts = 1 + torch.rand(64, 133, 2, generator=g) * torch.tensor([w - 3.0, h - 3.0])  # the edge bins fit a parabola
    tx, ty, weights = codec.encode(pts, torch.ones(64, 133))
    assert weights.min() == 1
    decoded, scores = codec.decode(tx, ty)
    assert torch.equal(decoded, torch.round(pts * 2) / 2)
    assert (decoded - pts).abs().max() <= 0.25
    assert scores.min() == 1.0  # a label decodes as fully confident (its peak lies on a bin)


def test_targets_are_mmposes_rounded_gaussians():
    """SimCCLabel._generate_gaussian with _map_coordinates: exp(-(k - round(2 x))^2 / (2 sigma^2)), half to even."""
    codec = SimCCCodec((192, 256))
    pts = torch.tensor([[[10.2, 20.3], [10.25, 10.75]]])
    tx, ty, _ = codec.encode(pts, torch.ones(1, 2))
    assert tx.argmax(-1).tolist() == [[20, 20]]  # 20.4 -> 20; 20.5 -> 20 (half to even, as np.around)
    assert ty.argmax(-1).tolist() == [[41, 22]]  # 40.6 -> 41; 21.5 -> 22
    k = torch.arange(384.0)
    assert torch.allclose(tx[0, 0], torch.exp(-((k - 20) ** 2) / (2 * 4.9**2)))


def test_decode_refines_an_off_bin_peak():
    """Network outputs peak between bins; the parabola vertex finds the peak (a plain arg-max is 0.2 px off)."""
    codec = SimCCCodec((192, 256))
    kx, ky = torch.arange(384.0), torch.arange(512.0)
    simcc_x = torch.exp(-((kx - 20.4) ** 2) / (2 * 4.9**2))[None, None]
    simcc_y = torch.exp(-((ky - 40.6) ** 2) / (2 * 5.66**2))[None, None]
    decoded, _ = codec.decode(simcc_x, simcc_y)
    assert abs(float(simcc_x.argmax(-1)) / 2 - 10.2) == pytest.approx(0.2, abs=1e-5)
    assert torch.allclose(decoded, torch.tensor([[[10.2, 20.3]]]), atol=0.01)


def test_decode_is_invariant_to_logit_shift_and_scale():
    codec = SimCCCodec((192, 256))
    pts = torch.tensor([[[50.3, 100.7], [3.6, 250.1]]])
    tx, ty, _ = codec.encode(pts, torch.ones(1, 2))
    a, _ = codec.decode(tx, ty)
    b, _ = codec.decode(3 * tx - 7, 3 * ty + 2)
    assert torch.allclose(a, b, atol=1e-4)


def test_default_sigmas_are_rtmposes():
    assert default_sigma((192, 256)) == (4.9, 5.66)
    assert default_sigma((288, 384)) == (6.93, 7.99)


def test_loss_is_zero_at_the_target_and_ignores_weight_zero_points():
    codec = SimCCCodec((192, 256))
    pts = torch.tensor([[[40.0, 60.0], [100.0, 30.0]]])
    tx, ty, w = codec.encode(pts, torch.ones(1, 2))
    assert float(codec.loss(tx, ty, tx, ty, w)) == pytest.approx(0.0, abs=1e-7)
    wrong_x = tx.clone()
    wrong_x[0, 1] = tx[0, 0]  # point 1 predicted at point 0's place
    assert float(codec.loss(wrong_x, ty, tx, ty, w)) > 1e-4
    assert float(codec.loss(wrong_x, ty, tx, ty, torch.tensor([[1.0, 0.0]]))) == pytest.approx(0.0, abs=1e-7)


def test_flip_tta_is_mmposes_flip_vectors():
    """mmpose's flip_vectors: keypoints swapped by flip_index, x bins reversed (k -> 2W - 1 - k). Targets of the
    tensor-flipped crop (x -> W - 1 - x), flipped back, decode half a pixel right of the rounded point, as in
    mmpose's flip test."""
    layout = WHOLEBODY133
    codec = SimCCCodec((192, 256))
    w = 192
    g = torch.Generator().manual_seed(2)
    pts = 1 + torch.rand(8, 133, 2, generator=g) * torch.tensor([w - 3.0, 253.0])  # off the edge bins
    pts = torch.round(pts * 2) / 2  # on bins, so rounding the mirrored point is exact
    mirrored = pts[:, layout.flip_index].clone()
    mirrored[..., 0] = (w - 1) - mirrored[..., 0]
    tx, ty, _ = codec.encode(mirrored, torch.ones(8, 133))
    fx, fy = flip_simcc(tx, ty, layout.flip_index)
    assert torch.equal(fx, tx[:, layout.flip_index].flip(-1)) and torch.equal(fy, ty[:, layout.flip_index])
    decoded, _ = codec.decode(fx, fy)
    assert torch.equal(decoded, pts + torch.tensor([0.5, 0.0]))


def test_scores_are_mmposes_smaller_axis_maximum():
    """mmpose's get_simcc_maximum: score = min(max over x bins, max over y bins) of the raw outputs."""
    codec = SimCCCodec((192, 256))
    simcc_x = torch.zeros(1, 3, 384)
    simcc_y = torch.zeros(1, 3, 512)
    simcc_x[0, :, 100] = torch.tensor([0.9, 0.2, -0.5])
    simcc_y[0, :, 300] = torch.tensor([0.7, 0.6, -0.4])
    simcc_y[0, 2, 10] = -0.1  # all-negative y: its maximum is the zeros elsewhere
    kp, scores = codec.decode(simcc_x, simcc_y)
    assert scores[0].tolist() == pytest.approx([0.7, 0.2, 0.0])
    assert kp[0, 0].tolist() == pytest.approx([50.0, 150.0])


def test_a_point_keeps_supervision_while_its_3_sigma_gaussian_touches_the_bins():
    """mmpose SimCCLabel: weight 0 only when mu - 3 sigma >= W or mu + 3 sigma + 1 < 0 (in bins, the centre rounded)."""
    codec = SimCCCodec((192, 256))  # 384 x 512 bins, sigma 4.9 / 5.66 bins: radius 14.7 / 16.98 bins
    xs = torch.tensor([-7.6, -7.8, 199.2, 199.6])  # input pixels; bins = round(2 x), as mmpose
    pts = torch.stack([xs, torch.full_like(xs, 100.0)], dim=-1)[None]
    _, _, w = codec.encode(pts, torch.ones(1, 4))
    # -7.6 px -> bin -15: -15 + 14.7 + 1 = 0.7 >= 0 keeps it; -7.8 px -> bin -16: -0.3 < 0 drops it
    # 199.2 px -> bin 398: 398 - 14.7 = 383.3 < 384 keeps it; 199.6 px -> bin 399: 384.3 >= 384 drops it
    assert w[0].tolist() == [1.0, 0.0, 1.0, 0.0]


# --------------------------------------------------------------------------- model


def test_rtmpose_m_size_matches_the_published_figures():
    """CSPNeXt-m + RTMCC head with 17 outputs is RTMPose-m: 13.59 M parameters, 1.93 G multiply-adds."""
    model = Student(StudentConfig(preset="m", num_keypoints=17))
    assert count_parameters(model) / 1e6 == pytest.approx(13.59, abs=0.01)
    assert count_flops(model) / 2e9 == pytest.approx(1.93, abs=0.02)


@pytest.mark.parametrize("k,size", [(133, (192, 256)), (136, (288, 384))])
def test_model_output_shapes(k, size):
    model = Student(StudentConfig(preset="tiny", num_keypoints=k, input_size=size)).eval()
    w, h = size
    with torch.no_grad():
        x, y = model(torch.rand(2, 3, h, w) * 255)
    assert x.shape == (2, k, 2 * w) and y.shape == (2, k, 2 * h)


def test_model_rejects_sizes_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        Student(StudentConfig(preset="tiny", input_size=(190, 256)))


def test_describe_command_prints_params_and_flops():
    from click.testing import CliRunner

    from labeltool.cli import main

    result = CliRunner().invoke(main, ["train-student", "--describe", "--preset", "s", "--keypoints", "136"])
    assert result.exit_code == 0, result.output
    assert "136 keypoints" in result.output and "parameters:" in result.output and "GFLOPs" in result.output


# --------------------------------------------------------------------------- NMS


def _pose(cx: float, cy: float, score: float = 0.9, k: int = 17) -> np.ndarray:
    rng = np.random.default_rng(int(cx * 10 + cy))
    p = np.zeros((k, 3))
    p[:, 0] = cx + rng.uniform(-40, 40, k)
    p[:, 1] = cy + rng.uniform(-80, 80, k)
    p[:, 2] = score
    return p


def test_oks_nms_drops_near_duplicates_and_keeps_distinct_people():
    a = _pose(100, 200)
    dup = a.copy()
    dup[:, :2] += 1.5  # the same person, slightly shifted
    b = _pose(400, 200)
    poses = np.stack([dup, a, b])
    scores = np.array([0.5, 0.9, 0.8])
    keep = oks_nms(poses, scores, COCO17.sigmas, 0.9)
    assert keep.tolist() == [1, 2]
    # a looser threshold keeps the duplicate too when its OKS with the kept pose is below it
    assert len(oks_nms(poses, scores, COCO17.sigmas, 0.999)) == 3


def _mmpose_oks_nms(kpts: np.ndarray, scores: np.ndarray, sigmas: np.ndarray, thr: float) -> list[int]:
    """mmpose 1.x ``oks_nms`` / ``oks_iou`` written out loop by loop (areas: keypoint extents)."""
    areas = np.array([np.prod(k[:, :2].max(0) - k[:, :2].min(0)) for k in kpts])
    var = (sigmas * 2) ** 2
    order = scores.argsort()[::-1]
    keep = []
    while len(order) > 0:
        i = order[0]
        keep.append(int(i))
        ious = []
        for j in order[1:]:
            dx = kpts[j, :, 0] - kpts[i, :, 0]
            dy = kpts[j, :, 1] - kpts[i, :, 1]
            e = (dx**2 + dy**2) / var / ((areas[i] + areas[j]) / 2 + np.spacing(1)) / 2
            ious.append(np.sum(np.exp(-e)) / e.shape[0])
        inds = np.where(np.asarray(ious) <= thr)[0]
        order = order[inds + 1]
    return keep


def test_oks_nms_equals_mmpose_on_random_crowds():
    rng = np.random.default_rng(0)
    sig = WHOLEBODY133.sigmas
    for trial in range(5):
        people = [_pose(rng.uniform(0, 600), rng.uniform(0, 400), k=133) for _ in range(4)]
        poses = np.stack([p + np.c_[rng.normal(0, rng.choice([0.5, 3, 15]), (133, 2)), np.zeros(133)]
                          for p in people for _ in range(3)])
        scores = rng.uniform(0.2, 1.0, len(poses))
        for thr in (0.5, 0.9):
            assert oks_nms(poses, scores, sig, thr).tolist() == _mmpose_oks_nms(poses, scores, sig, thr), (trial, thr)


def test_parametric_nms_merges_duplicates_and_keeps_others():
    a = _pose(100, 200, 0.9)
    dup = a.copy()
    dup[:, 0] += 0.5
    dup[:, 2] = 0.6
    b = _pose(400, 200, 0.8)
    low = _pose(700, 200, 0.1)  # best point under the 0.3 score threshold: dropped
    poses = np.stack([a, dup, b, low])
    boxes = np.array([[60, 120, 80, 160], [60, 120, 80, 160], [360, 120, 80, 160], [660, 120, 80, 160]], float)
    keep, merged = parametric_pose_nms(poses, boxes, np.arange(17))
    assert keep.tolist() == [0, 2]
    # the merged pose is the score-weighted mean of a and its duplicate
    expected_x = (a[:, 0] * 0.9 + dup[:, 0] * 0.6) / 1.5
    assert np.allclose(merged[0, :, 0], expected_x)
    assert np.allclose(merged[1], b)


def test_student_imports_without_mediapipe():
    """The GPU machine has torch but not the teachers: every student module imports with mediapipe blocked."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['mediapipe'] = None\n"
            "import labeltool.student.cli, labeltool.student.train, labeltool.student.predict, labeltool.student.nms\n"
            "import labeltool.student.data, labeltool.student.augment, labeltool.student.model\n"
            "assert sys.modules['mediapipe'] is None\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
