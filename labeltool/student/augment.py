"""Batch augmentation of source crops on the batch's device (GPU when training on CUDA).

One affine per sample (flip, box noise or half-body box, scale, rotation) is built as a 3x3
matrix from source-crop pixels to model-input pixels; the image goes through
``grid_sample`` (bilinear, zeros outside, pixel centres at integers as ``cv2.warpAffine``),
the keypoints through the same matrix, and flipped samples swap left/right points with the
layout's ``flip_index``. Then colour (brightness, contrast, saturation), box and median blur and
one coarse dropout hole, as RTMPose's pipeline has; face-only and hand-only sources zoom out a
further 1.875-2.5x as RTMW's part pipelines do (scale 1.5-2.0, then padded again by 1.25). Parameter ranges follow mmpose's ``RandomFlip``,
``RandomHalfBody`` and ``RandomBBoxTransform`` as RTMPose configures them.

Box noise, in the spirit of AlphaPose's pose-guided proposal generator: each edge of the
person box moves by a Laplace-distributed fraction of the box size (heavy-tailed, like a real
detector's misses: mostly a little, sometimes a limb cut off or a neighbour let in) before
the crop is fitted to it, so the student learns to cope with imperfect detector boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from labeltool.layouts import Layout

_LOWER_WORDS = ("hip", "knee", "ankle", "toe", "heel")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation probabilities and ranges (0 probability switches a step off)."""

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_upper_prob: float = 0.7  # RandomHalfBody(upper_prioritized_prob=0.7): upper body when both qualify
    half_body_padding: float = 1.5
    half_body_min_points: int = 9
    box_noise_prob: float = 0.5
    box_noise_scale: float = 0.05  # Laplace scale of each edge's move, as a fraction of the box side
    box_noise_max: float = 0.3
    scale_range: tuple[float, float] = (0.6, 1.4)  # crop size factor (> 1 zooms out)
    rotate_prob: float = 0.6
    rotate_max: float = 80.0  # degrees (truncated normal times this)
    colour_prob: float = 1.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    blur_prob: float = 0.1  # Albumentation Blur(p=0.1): box blur, kernel 3, 5 or 7
    median_blur_prob: float = 0.1  # MedianBlur(p=0.1), kernel 3, 5 or 7
    blur_kernels: tuple[int, ...] = (3, 5, 7)  # albumentations' blur_limit=7
    dropout_prob: float = 1.0  # CoarseDropout(max_holes=1, 0.2-0.4 of each side, p=1.0) in stage 1
    dropout_size: tuple[float, float] = (0.2, 0.4)  # hole side as a fraction of the input side
    # RTMW face / hand sources: RandomBBoxTransform scale 1.5-2.0 on a box that CombinedDataset's pipeline then
    # pads again by GetBBoxCenterScale's 1.25, so 1.875-2.5x the part box's usual crop
    part_zoom: tuple[float, float] = (1.875, 2.5)

    @staticmethod
    def none() -> AugmentConfig:
        """No augmentation: the nominal crop, as at test time."""
        return AugmentConfig(flip_prob=0, half_body_prob=0, box_noise_prob=0, scale_range=(1.0, 1.0), rotate_prob=0,
                             colour_prob=0, blur_prob=0, median_blur_prob=0, dropout_prob=0, part_zoom=(1.0, 1.0))

    @staticmethod
    def stage2() -> AugmentConfig:
        """RTMPose's ``train_pipeline_stage2``: RandomBBoxTransform(shift_factor=0., scale_factor=[0.75, 1.25],
        rotate_factor=60) (no shift: no box noise here), CoarseDropout p=0.5; flip, half body, colour and
        blurs as in stage 1."""
        return AugmentConfig(box_noise_prob=0, scale_range=(0.75, 1.25), rotate_max=60.0, dropout_prob=0.5)


def lower_body_mask(layout: Layout) -> np.ndarray:
    """(K,) True for the lower-body points (hips, knees, ankles, feet), by name."""
    return np.array([any(w in n for w in _LOWER_WORDS) for n in layout.names])


_DEVICE_CONSTANTS: dict[tuple[str, str, torch.device], torch.Tensor] = {}


def _layout_constant(layout: Layout, what: str, device: torch.device) -> torch.Tensor:
    """The layout's flip index or lower-body mask on ``device``, copied there once per process and kept:
    a tensor built from host data inside the step is a blocking host-to-device copy on CUDA."""
    key = (layout.name, what, device)
    if key not in _DEVICE_CONSTANTS:
        host = layout.flip_index if what == "flip_index" else lower_body_mask(layout)
        _DEVICE_CONSTANTS[key] = torch.as_tensor(np.asarray(host), device=device)
    return _DEVICE_CONSTANTS[key]


def _truncnorm(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal truncated to [-1, 1] (inverse CDF), as mmpose's ``_truncnorm``."""
    lo = 0.5 * (1 + math.erf(-1 / math.sqrt(2)))
    u = lo + (1 - 2 * lo) * torch.rand(n, device=device, generator=generator)
    return math.sqrt(2) * torch.erfinv(2 * u - 1)


def _laplace(shape: tuple[int, ...], scale: float, device: torch.device, generator: torch.Generator | None):
    """Laplace(0, scale) samples by the inverse CDF."""
    u = torch.rand(shape, device=device, generator=generator).clamp(1e-6, 1 - 1e-6) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


def _fit_aspect(size: torch.Tensor, aspect: float) -> torch.Tensor:
    w, h = size[:, 0], size[:, 1]
    wide = w > aspect * h
    return torch.stack([torch.where(wide, w, h * aspect), torch.where(wide, w / aspect, h)], dim=1)


def augment_batch(batch: dict[str, torch.Tensor], layout: Layout, input_size: tuple[int, int],
                  config: AugmentConfig, generator: torch.Generator | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented model inputs from a batch of source crops (see :class:`CropSource.read_batch`).

    Returns images (B, 3, H, W) float 0..255, keypoints (B, K, 2) and weights (B, K) in input pixels.
    Random numbers come from ``generator`` (on the batch's device), else torch's global one.
    """
    crops = batch["crops"]
    device = crops.device
    kp = batch["keypoints"].float()
    weights = batch["weights"].float()
    boxes = batch["boxes"].float()
    b, cw = crops.shape[0], crops.shape[2]
    w_in, h_in = input_size
    aspect = w_in / h_in

    # flip (about the source crop's vertical mid-line)
    flip = torch.rand(b, device=device, generator=generator) < config.flip_prob
    flip_index = _layout_constant(layout, "flip_index", device)
    kp_flipped = kp[:, flip_index].clone()
    kp_flipped[..., 0] = (cw - 1) - kp_flipped[..., 0]
    kp = torch.where(flip[:, None, None], kp_flipped, kp)
    weights = torch.where(flip[:, None], weights[:, flip_index], weights)
    box_x = torch.where(flip, (cw - 1) - boxes[:, 0] - boxes[:, 2], boxes[:, 0])
    boxes = torch.stack([box_x, boxes[:, 1], boxes[:, 2], boxes[:, 3]], dim=1)

    # box noise: every edge moves by a Laplace fraction of its side
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    noisy = torch.rand(b, device=device, generator=generator) < config.box_noise_prob
    if config.box_noise_prob > 0:
        d = _laplace((b, 4), config.box_noise_scale, device, generator)
        d = d.clamp(-config.box_noise_max, config.box_noise_max) * noisy[:, None]
        bw, bh = x1 - x0, y1 - y0
        x0, x1 = x0 + d[:, 0] * bw, x1 + d[:, 1] * bw
        y0, y1 = y0 + d[:, 2] * bh, y1 + d[:, 3] * bh
        x1, y1 = torch.maximum(x1, x0 + 0.1 * bw), torch.maximum(y1, y0 + 0.1 * bh)
    center = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2], dim=1)
    size = _fit_aspect(torch.stack([x1 - x0, y1 - y0], dim=1), aspect) * 1.25

    # half body: the box of the upper or the lower body's labelled points
    if config.half_body_prob > 0:
        center, size = _half_body(kp, weights, center, size, layout, aspect, config, generator)

    # scale and rotation
    lo, hi = config.scale_range
    size = size * ((hi + lo) / 2 + (hi - lo) / 2 * _truncnorm(b, device, generator))[:, None]
    if "part_only" in batch and config.part_zoom != (1.0, 1.0):  # face / hand sources zoom out further
        lo, hi = config.part_zoom
        zoom = (hi + lo) / 2 + (hi - lo) / 2 * _truncnorm(b, device, generator)
        size = size * torch.where(batch["part_only"], zoom, 1.0)[:, None]
    rotate = torch.rand(b, device=device, generator=generator) < config.rotate_prob
    theta = torch.where(rotate, _truncnorm(b, device, generator) * config.rotate_max, 0.0) * (math.pi / 180)

    # crop -> input matrix: input = s * R * (x - center) + (W / 2, H / 2) (mmpose's centre), after the flip
    s = w_in / size[:, 0]
    cos, sin = torch.cos(theta) * s, torch.sin(theta) * s
    m = torch.zeros(b, 3, 3, device=device)
    m[:, 0, 0], m[:, 0, 1] = cos, -sin
    m[:, 1, 0], m[:, 1, 1] = sin, cos
    m[:, 0, 2] = w_in / 2 - (cos * center[:, 0] - sin * center[:, 1])
    m[:, 1, 2] = h_in / 2 - (sin * center[:, 0] + cos * center[:, 1])
    m[:, 2, 2] = 1
    kp = kp @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    flip_m = torch.eye(3, device=device).repeat(b, 1, 1)
    flip_m[:, 0, 0] = torch.where(flip, -1.0, 1.0)  # torch.where, not a boolean-mask write (a host sync on CUDA)
    flip_m[:, 0, 2] = torch.where(flip, float(cw - 1), 0.0)
    images = warp_batch(crops, m @ flip_m, (w_in, h_in))

    if config.colour_prob > 0:
        images = _colour(images, config, generator)
    if config.blur_prob > 0:
        images = _blur_some(images, config.blur_prob, "mean", config.blur_kernels, generator)
    if config.median_blur_prob > 0:
        images = _blur_some(images, config.median_blur_prob, "median", config.blur_kernels, generator)
    if config.dropout_prob > 0:
        images = _dropout(images, config, generator)
    return images, kp, weights


def warp_batch(crops: torch.Tensor, matrices: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """uint8 crops (B, h, w, 3) warped by (B, 3, 3) source -> output matrices: float (B, 3, H, W)."""
    b, ch, cw = crops.shape[:3]
    w_out, h_out = out_size
    device = crops.device
    a, b_, c, d = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 0], matrices[:, 1, 1]
    det = a * d - b_ * c
    lin = torch.stack([torch.stack([d, -b_], -1), torch.stack([-c, a], -1)], 1) / det[:, None, None]
    inv = torch.cat([lin, -(lin @ matrices[:, :2, 2:])], dim=2)  # (B, 2, 3): output -> source
    ys, xs = torch.meshgrid(torch.arange(h_out, device=device, dtype=torch.float32),
                            torch.arange(w_out, device=device, dtype=torch.float32), indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)  # (1, H*W, 3)
    src = grid @ inv.transpose(1, 2)  # (B, H*W, 2) in crop pixels
    src = torch.stack([src[..., 0] * (2 / (cw - 1)), src[..., 1] * (2 / (ch - 1))], dim=-1) - 1
    src = src.reshape(b, h_out, w_out, 2)
    images = crops.permute(0, 3, 1, 2).float()
    return F.grid_sample(images, src, mode="bilinear", padding_mode="zeros", align_corners=True)


def _half_body(kp, weights, center, size, layout, aspect, config, generator):
    b = kp.shape[0]
    device = kp.device
    lower = _layout_constant(layout, "lower_body", device)
    labelled = weights > 0
    n_upper = (labelled & ~lower).sum(1)
    n_lower = (labelled & lower).sum(1)
    eligible = (labelled.sum(1) >= config.half_body_min_points) & (torch.rand(b, device=device, generator=generator)
                                                                   < config.half_body_prob)
    pick_upper = (torch.rand(b, device=device, generator=generator) < config.half_body_upper_prob) & (n_upper >= 2)
    pick_upper = pick_upper | (n_lower < 3)
    chosen = labelled & torch.where(pick_upper[:, None], ~lower, lower)
    eligible = eligible & (chosen.sum(1) >= 2)
    lo = torch.where(chosen[..., None], kp, 1e9).amin(1)  # Python scalars: no tensor built on the host
    hi = torch.where(chosen[..., None], kp, -1e9).amax(1)
    mean = (kp * chosen[..., None]).sum(1) / chosen.sum(1, keepdim=True).clamp_min(1)
    hb_size = _fit_aspect((hi - lo).clamp_min(1.0), aspect) * config.half_body_padding
    center = torch.where(eligible[:, None], mean, center)
    size = torch.where(eligible[:, None], hb_size, size)
    return center, size


def _colour(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
    b = images.shape[0]
    device = images.device

    def factor(amount: float) -> torch.Tensor:
        on = torch.rand(b, 1, 1, 1, device=device, generator=generator) < config.colour_prob
        f = 1 + amount * (2 * torch.rand(b, 1, 1, 1, device=device, generator=generator) - 1)
        return torch.where(on, f, torch.ones_like(f))

    images = images * factor(config.brightness)
    gray = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
    mean = gray.mean(dim=(2, 3), keepdim=True)
    images = (images - mean) * factor(config.contrast) + mean
    gray = (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
    images = (images - gray) * factor(config.saturation) + gray
    return images.clamp(0, 255)


def _blur_some(images: torch.Tensor, prob: float, kind: str, kernels: tuple[int, ...],
               generator: torch.Generator | None) -> torch.Tensor:
    """Box ("mean") or median blur on round(prob x batch) random samples, kernels split evenly among them.

    A fixed count per batch (not a coin per sample) keeps every shape static: no host sync on CUDA,
    and the median's k x k unfold is only built for the chosen samples. Borders reflect (cv2's
    BORDER_REFLECT_101, as albumentations blurs)."""
    b = images.shape[0]
    m = int(round(prob * b))
    if m == 0:
        return images
    pick = torch.randperm(b, device=images.device, generator=generator)[:m]
    chosen = images[pick]
    parts = []
    n = len(kernels)  # contiguous groups as torch.tensor_split(range(m), n) cuts them: slices, no index tensor
    bounds = [i * (m // n) + min(i, m % n) for i in range(n + 1)]
    for k, start, stop in zip(kernels, bounds[:-1], bounds[1:]):
        if stop == start:
            continue
        x = F.pad(chosen[start:stop], (k // 2,) * 4, mode="reflect")
        if kind == "mean":
            parts.append(F.avg_pool2d(x, k, stride=1))
        else:
            windows = x.unfold(2, k, 1).unfold(3, k, 1)  # (m, 3, H, W, k, k)
            parts.append(windows.reshape(*windows.shape[:4], k * k).median(dim=-1).values)
    return images.index_copy(0, pick, torch.cat(parts))


def _dropout(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
    b, _, h, w = images.shape
    device = images.device
    lo, hi = config.dropout_size
    on = torch.rand(b, device=device, generator=generator) < config.dropout_prob
    hw = lo + (hi - lo) * torch.rand(b, 2, device=device, generator=generator)
    hole_w, hole_h = hw[:, 0] * w, hw[:, 1] * h
    x0 = torch.rand(b, device=device, generator=generator) * (w - hole_w)
    y0 = torch.rand(b, device=device, generator=generator) * (h - hole_h)
    xs = torch.arange(w, device=device)[None, :]
    ys = torch.arange(h, device=device)[None, :]
    in_x = (xs >= x0[:, None]) & (xs < (x0 + hole_w)[:, None])
    in_y = (ys >= y0[:, None]) & (ys < (y0 + hole_h)[:, None])
    hole = (in_y[:, :, None] & in_x[:, None, :]) & on[:, None, None]
    return images.masked_fill(hole[:, None], 0.0)
