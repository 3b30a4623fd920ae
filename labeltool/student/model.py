"""The student network: a CSPNeXt backbone and an RTMPose-style SimCC head, in plain PyTorch.

Architecture as RTMPose (Jiang et al. 2023) describes it: CSPNeXt (stem of three 3x3 convs,
four stages of a strided conv + a CSP layer of CSPNeXt blocks with channel attention, SPPF on
the last stage; conv + BN + SiLU everywhere), output stride 32; head = 7x7 conv to one map per
keypoint, flattened, ScaleNorm + linear to 256 features per keypoint, an optional gated
attention unit (GAU) across keypoints, and two linear classifiers onto the x and y bins.
Width and depth are plain multipliers; presets ``tiny``, ``s``, ``m`` use RTMPose's t/s/m
factors. The network takes RGB float images in 0..255 (B, 3, H, W) and normalises them
itself, so an exported model needs no separate preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from labeltool.io.jsonfile import is_number

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# Batch norm as mmpose's RTMPose configs build it (torch's defaults), so published RTMPose weights give
# the same keypoints here: with RTMDet's eps 1e-3 RTMPose-m whole-body logits moved by up to 0.28.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

# Preset name -> (deepen, widen), RTMPose's t / s / m factors.
PRESETS = {"tiny": (0.167, 0.375), "s": (0.33, 0.5), "m": (0.67, 0.75)}

# CSPNeXt P5 stages: (in channels, out channels, blocks, add identity, SPPF) before the factors.
_STAGES = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False),
           (512, 1024, 3, False, True))


@dataclass(frozen=True)
class StudentConfig:
    """Everything needed to rebuild a student (stored in every checkpoint)."""

    preset: str = "m"
    num_keypoints: int = 133
    input_size: tuple[int, int] = (192, 256)  # width, height
    split_ratio: float = 2.0
    deepen: float | None = None  # None: the preset's
    widen: float | None = None
    use_gau: bool = True
    hidden: int = 256

    def factors(self) -> tuple[float, float]:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        d, w = PRESETS[self.preset]
        return (self.deepen if self.deepen is not None else d, self.widen if self.widen is not None else w)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> StudentConfig:
        """The config a checkpoint stores, checked: a ``ValueError`` naming the first bad entry (unknown key,
        unknown preset, input size not positive multiples of 32, ...), never a model built from nonsense."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a dict of settings, got {type(d).__name__}")
        known = {f.name: f for f in fields(StudentConfig)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(f"unknown keys {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
        missing = [k for k in ("preset", "num_keypoints", "input_size") if k not in d]
        if missing:
            raise ValueError(f"missing {', '.join(map(repr, missing))}")
        d = dict(d)
        preset, size, k = d["preset"], d["input_size"], d["num_keypoints"]
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        if not _is_int(k) or k not in (17, 26, 133, 136):
            raise ValueError(f"num_keypoints {k!r}: expected 17, 26, 133 or 136")
        if (not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(v) for v in size)
                or not all(32 <= v <= MAX_INPUT_SIDE and v % 32 == 0 for v in size)):
            raise ValueError(f"input_size {size!r}: expected [width, height], multiples of 32 from 32 to "
                             f"{MAX_INPUT_SIDE}")
        d["input_size"] = tuple(size)
        ratio = d.get("split_ratio", 2.0)
        if not is_number(ratio) or not 0.25 <= ratio <= 16:
            raise ValueError(f"split_ratio {ratio!r}: expected a number from 0.25 to 16 (RTMPose: 2.0)")
        for key in ("deepen", "widen"):
            value = d.get(key)
            if value is not None and (not is_number(value) or not 0 < value <= 4):
                raise ValueError(f"{key} {value!r}: expected a number in (0, 4] or null (the preset's)")
        hidden = d.get("hidden", 256)
        if not _is_int(hidden) or not 1 <= hidden <= 4096:
            raise ValueError(f"hidden {hidden!r}: expected an integer from 1 to 4096")
        if not isinstance(d.get("use_gau", True), bool):
            raise ValueError(f"use_gau {d['use_gau']!r}: expected true or false")
        return StudentConfig(**d)


MAX_INPUT_SIDE = 2048  # RTMW-x uses 288x384; a larger side only costs memory


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, momentum=BN_MOMENTUM, eps=BN_EPS),
            nn.SiLU(inplace=True) if act else nn.Identity(),
        )


class CSPNeXtBlock(nn.Module):
    """3x3 conv, then depthwise-separable 5x5 conv, with an identity shortcut."""

    def __init__(self, channels: int, add_identity: bool):
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3)
        self.depthwise = ConvBNAct(channels, channels, 5, groups=channels)
        self.pointwise = ConvBNAct(channels, channels, 1)
        self.add_identity = add_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(self.conv1(x)))
        return x + y if self.add_identity else y


class ChannelAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the attention weights in float32 under autocast (mmpose's csp_layer switches autocast off around its
        # global pool): a mean over up to 48x64 values and a C x C conv on one pixel cost nothing in float32
        with torch.autocast(x.device.type, enabled=False):
            weight = F.hardsigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True, dtype=torch.float32)))
        return x * weight.to(x.dtype)


class CSPLayer(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, add_identity: bool):
        super().__init__()
        mid = cout // 2
        self.main = ConvBNAct(cin, mid, 1)
        self.short = ConvBNAct(cin, mid, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, add_identity) for _ in range(blocks)])
        self.attention = ChannelAttention(2 * mid)
        self.final = ConvBNAct(2 * mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.blocks(self.main(x)), self.short(x)], dim=1)
        return self.final(self.attention(y))


class SPPF(nn.Module):
    """Spatial pyramid pooling with 5, 9 and 13 max pools (mmdet's SPPBottleneck)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cin // 2
        self.reduce = ConvBNAct(cin, mid, 1)
        self.out = ConvBNAct(4 * mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        pools = [F.max_pool2d(x, k, 1, k // 2) for k in (5, 9, 13)]
        return self.out(torch.cat([x, *pools], dim=1))


class CSPNeXt(nn.Module):
    """CSPNeXt backbone, output stride 32; ``out_channels`` of the last stage."""

    def __init__(self, deepen: float, widen: float):
        super().__init__()
        stem = int(_STAGES[0][0] * widen)
        self.stem = nn.Sequential(
            ConvBNAct(3, stem // 2, 3, 2), ConvBNAct(stem // 2, stem // 2, 3), ConvBNAct(stem // 2, stem, 3)
        )
        stages = []
        for cin, cout, blocks, add_identity, spp in _STAGES:
            cin, cout = int(cin * widen), int(cout * widen)
            layers: list[nn.Module] = [ConvBNAct(cin, cout, 3, 2)]
            if spp:
                layers.append(SPPF(cout, cout))
            layers.append(CSPLayer(cout, cout, max(round(blocks * deepen), 1), add_identity))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.out_channels = int(_STAGES[-1][1] * widen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ScaleNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class GAU(nn.Module):
    """Gated attention unit across keypoint tokens (RTMPose's RTMCCBlock, self-attention, no rel. bias)."""

    def __init__(self, dim: int, expansion: int = 2, s: int = 128):
        super().__init__()
        self.e = dim * expansion
        self.s = s
        self.norm = ScaleNorm(dim)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        # mmpose's RTMCCBlock draws gamma and beta from torch.rand: with beta in [0, 1] every query-key
        # pair starts near relu(s / 4 / sqrt(s))^2 ~ 8, a gain of ~1000 over 133 tokens, which made a
        # short run diverge here (tiny preset, 12 persons: loss 0.16 -> 8 -> 0.23, AP 0); xavier gamma
        # and zero beta start the attention near zero (loss 0.16 -> 0.044 in the same 40 steps)
        self.gamma = nn.Parameter(torch.empty(2, s))
        self.beta = nn.Parameter(torch.zeros(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.res_scale = nn.Parameter(torch.ones(dim))
        nn.init.xavier_uniform_(self.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.uv(self.norm(x)))
        u, v, base = torch.split(y, [self.e, self.e, self.s], dim=-1)
        base = base.unsqueeze(2) * self.gamma + self.beta  # (B, K, 2, s)
        q, k = base.unbind(dim=2)
        kernel = torch.square(F.relu(q @ k.transpose(1, 2) / math.sqrt(self.s)))
        return x * self.res_scale + self.o(u * (kernel @ v))


class SimCCHead(nn.Module):
    """RTMCC head: 7x7 conv to K maps, flatten, ScaleNorm + linear, GAU, x / y classifiers."""

    def __init__(self, cin: int, num_keypoints: int, feat_hw: tuple[int, int], bins: tuple[int, int],
                 hidden: int, use_gau: bool):
        super().__init__()
        self.final = nn.Conv2d(cin, num_keypoints, 7, padding=3)
        flat = feat_hw[0] * feat_hw[1]
        self.mlp = nn.Sequential(ScaleNorm(flat), nn.Linear(flat, hidden, bias=False))
        self.gau = GAU(hidden) if use_gau else nn.Identity()
        self.cls_x = nn.Linear(hidden, bins[0], bias=False)
        self.cls_y = nn.Linear(hidden, bins[1], bias=False)
        # mmpose RTMCCHead.default_init_cfg: Normal(std 0.001) convs, Normal(std 0.01) linears (the GAU's
        # too: mmengine applies it to every submodule), biases 0
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, std=0.001 if isinstance(module, nn.Conv2d) else 0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.final(feats).flatten(2)  # (B, K, h*w)
        x = self.gau(self.mlp(x))
        return self.cls_x(x), self.cls_y(x)


class Student(nn.Module):
    """Top-down whole-body model: RGB 0..255 (B, 3, H, W) -> SimCC logits (B, K, Wx), (B, K, Wy)."""

    def __init__(self, config: StudentConfig):
        super().__init__()
        w, h = config.input_size
        if w % 32 or h % 32:
            raise ValueError(f"input size {w}x{h} must be a multiple of 32 in both directions")
        self.config = config
        deepen, widen = config.factors()
        self.backbone = CSPNeXt(deepen, widen)
        bins = (int(round(w * config.split_ratio)), int(round(h * config.split_ratio)))
        self.head = SimCCHead(self.backbone.out_channels, config.num_keypoints, (h // 32, w // 32), bins,
                              config.hidden, config.use_gau)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images - self.mean) / self.std
        return self.head(self.backbone(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: Student, batch: int = 1) -> int:
    """Forward FLOPs (2 per multiply-add) of one batch, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    w, h = model.config.input_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(batch, 3, h, w, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def describe(config: StudentConfig) -> str:
    """One paragraph: preset, factors, input, outputs, parameters and GFLOPs."""
    model = Student(config)
    params = count_parameters(model)
    flops = count_flops(model)
    deepen, widen = config.factors()
    w, h = config.input_size
    return (
        f"student preset {config.preset} (deepen {deepen}, widen {widen}, GAU {'on' if config.use_gau else 'off'}), "
        f"input {w}x{h}, {config.num_keypoints} keypoints, SimCC bins {int(w * config.split_ratio)}x"
        f"{int(h * config.split_ratio)}\n"
        f"parameters: {params / 1e6:.2f} M\n"
        f"forward: {flops / 1e9:.2f} GFLOPs per image ({flops / 2e9:.2f} GMACs; RTMPose papers quote GMACs as 'GFLOPs')"
    )
