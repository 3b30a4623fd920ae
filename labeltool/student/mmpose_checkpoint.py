"""mmpose RTMPose checkpoints as student checkpoints: read safely, rename, infer the architecture.

mmpose saves ``{'meta', 'state_dict', 'message_hub', 'optimizer', ...}`` (published model-zoo
files keep ``meta`` and ``state_dict``); a bare state dict is accepted too. The student is
RTMPose's network (CSPNeXt + RTMCCHead), so its tensors map one to one onto mmpose's under other
names. The file is read with ``torch.load(weights_only=True)``: the objects mmpose keeps beside
the weights (mmengine's ``HistoryBuffer`` in ``message_hub``, numpy arrays in ``meta``) become
inert stand-ins that hold their pickled data and run nothing; the weights are plain tensors.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch

from labeltool.errors import UserError
from labeltool.student.checkpoint_checks import check_archive, check_tensors, expected_state
from labeltool.student.model import PRESETS, StudentConfig

# mmpose's RTMPose names by CSPNeXt (deepen, widen) factors.
RTMPOSE_SIZES = {(0.167, 0.375): "t", (0.33, 0.5): "s", (0.67, 0.75): "m", (1.0, 1.0): "l", (1.33, 1.25): "x"}
_STAGE_BLOCKS = (3, 6, 6, 3)
_DEFAULT_SPLIT_RATIO = 2.0

# (pattern, replacement) applied in order: mmpose / mmdet module names -> the student's.
_RENAMES = [
    (re.compile(r"^backbone\.stage(\d)\."), lambda m: f"backbone.stages.{int(m[1]) - 1}."),
    (re.compile(r"^(backbone\.stages\.\d\.\d)\.conv1\."), r"\1.reduce."),  # SPPBottleneck (not a block's conv1)
    (re.compile(r"^(backbone\.stages\.\d\.\d)\.conv2\."), r"\1.out."),
    (re.compile(r"\.main_conv\."), ".main."),
    (re.compile(r"\.short_conv\."), ".short."),
    (re.compile(r"\.final_conv\."), ".final."),
    (re.compile(r"\.conv2\.depthwise_conv\."), ".depthwise."),
    (re.compile(r"\.conv2\.pointwise_conv\."), ".pointwise."),
    (re.compile(r"\.conv\.(weight|bias)$"), r".0.\1"),  # ConvModule(conv, bn, act) -> Sequential
    (re.compile(r"\.bn\."), ".1."),
    (re.compile(r"^head\.final_layer\."), "head.final."),
    (re.compile(r"^head\.gau\.ln\."), "head.gau.norm."),
    (re.compile(r"^head\.gau\.res_scale\.scale$"), "head.gau.res_scale"),
]


class InertObject:
    """Stand-in for an object of a class wbt does not import: keeps the pickled arguments and state."""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        self.state = state


def read_weights_only(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)`` of ``path``; globals outside torch's allowlist become :class:`InertObject`.

    Raises whatever ``torch.load`` raises for a file that is not a readable torch file, and a
    :class:`UserError` for a zip bomb (:func:`check_archive`).
    """
    check_archive(path)
    stand_ins = []
    try:
        stand_ins = [(InertObject, name) for name in torch.serialization.get_unsafe_globals_in_checkpoint(path)]
    except Exception:  # not a zip checkpoint (legacy format): no stand-ins, torch.load decides
        pass
    with torch.serialization.safe_globals(stand_ins):
        try:  # memory-mapped: a file that turns out to be a student checkpoint costs no read of its tensors
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be mapped
            return torch.load(path, map_location="cpu", weights_only=True)


def is_student_checkpoint(obj: object) -> bool:
    return isinstance(obj, dict) and "config" in obj and "model" in obj


def mmpose_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    """The weights of an mmpose checkpoint (``obj['state_dict']``) or of a bare state dict; None otherwise."""
    state = obj.get("state_dict") if isinstance(obj, dict) and "state_dict" in obj else obj
    if not isinstance(state, dict) or not state:
        return None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return None
    return state


def student_key(mmpose_key: str) -> str:
    """The student's name of one mmpose RTMPose tensor (``backbone.stage1.1.main_conv.conv.weight`` ->
    ``backbone.stages.0.1.main.0.weight``)."""
    key = mmpose_key.removeprefix("module.")
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key)
    return key


def load_mmpose_checkpoint(path: str | os.PathLike) -> dict | None:
    """A student checkpoint made from the mmpose checkpoint at ``path``, or None when the file is not one.

    The result has the entries ``wbt predict`` / ``export`` / ``train-student --init`` read
    (``config``, ``model``, ``ema`` None) plus ``origin`` (one line: what the file holds) and
    ``incomplete`` (None, or why only part of it fits the student: e.g. RTMW's neck). A
    checkpoint of an architecture the student does not implement is a :class:`UserError` naming
    what is missing.
    """
    path = Path(path)
    try:
        obj = read_weights_only(path)
    except Exception:
        return None  # the student checkpoint loader reports unreadable files
    if is_student_checkpoint(obj):
        return None
    state = mmpose_state_dict(obj)
    if state is None:
        return None
    return convert_mmpose_state(state, path, _split_ratio(obj, path))


def convert_mmpose_state(state: dict[str, torch.Tensor], path: Path, split_ratio: float = _DEFAULT_SPLIT_RATIO) -> dict:
    """The student checkpoint of mmpose weights ``state`` (see :func:`load_mmpose_checkpoint`)."""
    check_tensors(state, path)
    renamed = {student_key(k): v for k, v in state.items() if not k.startswith("data_preprocessor.")}
    if "backbone.stem.0.0.weight" not in renamed:
        raise UserError(f"{path}: not an RTMPose checkpoint the student can load: no CSPNeXt backbone "
                        f"(backbone.stem.0.conv.weight missing; keys start {_first_keys(state)})")
    deepen, widen = _backbone_factors(renamed, path)
    size = RTMPOSE_SIZES.get((deepen, widen))
    preset = next((name for name, factors in PRESETS.items() if factors == (deepen, widen)), None)
    neck = sorted({k.split(".")[0] + "." + k.split(".")[1] for k in renamed if k.startswith("neck.")})
    has_rtmcc_head = "head.final.weight" in renamed and "head.cls_x.weight" in renamed
    name = f"RTMPose-{size}" if size else f"CSPNeXt (deepen {deepen}, widen {widen})"
    if neck or not has_rtmcc_head:
        config = StudentConfig(preset=preset or "m", deepen=None if preset else deepen,
                               widen=None if preset else widen)
        why = (f"its neck ({', '.join(neck)}; RTMW's CSPNeXtPAFPN) is not part of the student" if neck
               else "it has no RTMCC head (head.final_layer / head.cls_x)")
        backbone = {k: v for k, v in renamed.items() if k.startswith("backbone.")}
        origin = (f"mmpose checkpoint with a neck (RTMW-style), its CSPNeXt backbone as in {name}" if neck
                  else f"mmpose {name} backbone")
        return _checkpoint(config, backbone, origin, path,
                           incomplete=f"{path}: {why}; only its CSPNeXt backbone can load "
                                      f"(wbt train-student --init), not a whole model")
    config = _head_config(renamed, preset, deepen, widen, split_ratio, path)
    expected = expected_state(config)
    unknown = [k for k in renamed if k not in expected]
    wrong = [k for k in renamed if k in expected and expected[k].shape != renamed[k].shape]
    missing = [k for k in expected if k not in renamed and not k.endswith("num_batches_tracked")]
    if unknown or wrong or missing:
        parts = []
        if unknown:
            parts.append(f"tensors the student does not have: {_some(unknown)}")
        if wrong:
            parts.append(f"tensors of other shapes: {_some([f'{k} {tuple(renamed[k].shape)}' for k in wrong])}")
        if missing:
            parts.append(f"tensors the file lacks: {_some(missing)}")
        raise UserError(f"{path}: an mmpose {name} checkpoint of another head or architecture: {'; '.join(parts)}")
    for key, tensor in expected.items():
        if key.endswith("num_batches_tracked") and key not in renamed:
            renamed[key] = torch.zeros(tensor.shape, dtype=tensor.dtype)  # published checkpoints drop them
    w, h = config.input_size
    layout = {17: "body-17", 26: "Halpe-26", 133: "whole-body-133", 136: "Halpe-136"}.get(config.num_keypoints,
                                                                                           f"{config.num_keypoints}-point")
    return _checkpoint(config, renamed, f"mmpose {name} {layout}, input {w}x{h}", path)


def init_message(path: str, ckpt: dict, model: torch.nn.Module) -> str | None:
    """The one line ``train-student --init`` prints: what loaded and what starts fresh (None: everything loaded)."""
    state = ckpt.get("ema") or ckpt["model"]
    own = model.state_dict()
    fresh = [k for k in own if k not in state or state[k].shape != own[k].shape]
    if not fresh:
        return None
    origin = ckpt.get("origin")
    if origin is None:
        return f"--init {path}: {len(fresh)} tensors did not fit this model and start fresh"
    fresh_head = [k for k in fresh if k.startswith("head.")]
    fresh_backbone = [k for k in fresh if k.startswith("backbone.")]
    n_head = sum(1 for k in own if k.startswith("head."))
    backbone = ("backbone loaded" if not fresh_backbone
                else f"backbone: {len(fresh_backbone)} tensors do not fit and start fresh")
    if len(fresh_head) == n_head:
        head = "head starts fresh"
    elif "head.final.weight" in fresh_head and "head.final.weight" in state:
        head = (f"head: keypoint layer starts fresh ({state['head.final.weight'].shape[0]} keypoints in the file, "
                f"{own['head.final.weight'].shape[0]} here), its {n_head - len(fresh_head)} other tensors loaded")
    else:
        head = f"head: {len(fresh_head)} of {n_head} tensors start fresh"
    return f"--init {path}: {origin}: {backbone}; {head}"


def _checkpoint(config: StudentConfig, state: dict, origin: str, path: Path, incomplete: str | None = None) -> dict:
    return {"config": config.to_dict(), "model": state, "ema": None, "origin": origin, "incomplete": incomplete,
            "source": str(path)}


def _backbone_factors(state: dict[str, torch.Tensor], path: Path) -> tuple[float, float]:
    """CSPNeXt (deepen, widen) from the stem width and the blocks per stage."""
    widen = state["backbone.stem.0.0.weight"].shape[0] * 2 / 64
    blocks = []
    for stage in range(4):
        pattern = re.compile(rf"^backbone\.stages\.{stage}\.\d\.blocks\.(\d+)\.")
        found = {int(m[1]) for k in state if (m := pattern.match(k))}
        blocks.append(max(found) + 1 if found else 0)
    for (deepen, w) in list(PRESETS.values()) + list(RTMPOSE_SIZES):
        if w == widen and blocks == [max(round(b * deepen), 1) for b in _STAGE_BLOCKS]:
            return deepen, widen
    deepen = blocks[1] / _STAGE_BLOCKS[1]
    if blocks != [max(round(b * deepen), 1) for b in _STAGE_BLOCKS]:
        raise UserError(f"{path}: CSPNeXt with {blocks} blocks per stage is not a CSPNeXt P5 the student builds")
    return deepen, widen


def _head_config(state: dict[str, torch.Tensor], preset: str | None, deepen: float, widen: float,
                 split_ratio: float, path: Path) -> StudentConfig:
    final = state["head.final.weight"]
    if final.ndim != 4 or final.shape[-1] != 7:
        raise UserError(f"{path}: head.final_layer.weight is {tuple(final.shape)}; the student's is (K, C, 7, 7)")
    if final.shape[0] == 0:
        raise UserError(f"{path}: head.final_layer.weight {tuple(final.shape)} has 0 keypoints")
    if state["head.cls_x.weight"].ndim != 2 or state["head.cls_y.weight"].ndim != 2:
        raise UserError(f"{path}: head.cls_x / head.cls_y weights are {tuple(state['head.cls_x.weight'].shape)} and "
                        f"{tuple(state['head.cls_y.weight'].shape)}; expected (bins, hidden)")
    bins_x, hidden = state["head.cls_x.weight"].shape
    bins_y = state["head.cls_y.weight"].shape[0]
    input_size = (int(round(bins_x / split_ratio)), int(round(bins_y / split_ratio)))
    if min(input_size) < 32 or input_size[0] % 32 or input_size[1] % 32:
        raise UserError(f"{path}: SimCC bins {bins_x}x{bins_y} at split ratio {split_ratio} give input "
                        f"{input_size[0]}x{input_size[1]}, not multiples of 32 (at least 32)")
    return StudentConfig(preset=preset or "m", num_keypoints=int(final.shape[0]), input_size=input_size,
                         split_ratio=split_ratio, deepen=None if preset else deepen, widen=None if preset else widen,
                         use_gau=any(k.startswith("head.gau.") for k in state), hidden=int(hidden))


def _split_ratio(obj: object, path: str | os.PathLike) -> float:
    """simcc_split_ratio from the config text mmpose keeps in ``meta['cfg']`` (2.0 when absent).

    A value that is not a positive finite number is refused; its use is checked against the head's
    tensors (:func:`_head_config`, :func:`expected_state`) before anything is allocated.
    """
    meta = obj.get("meta") if isinstance(obj, dict) else None
    text = meta.get("cfg") if isinstance(meta, dict) else None
    found = re.search(r"simcc_split_ratio\s*=\s*([^,)\s]*)", text) if isinstance(text, str) else None
    if not found:
        return _DEFAULT_SPLIT_RATIO
    try:
        ratio = float(found[1])
    except ValueError:
        ratio = math.nan
    if not (math.isfinite(ratio) and ratio > 0):
        raise UserError(f"{path}: meta['cfg'] has simcc_split_ratio={found[1][:40]}; expected a positive number")
    return ratio


def _some(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _first_keys(state: dict) -> str:
    return _some(list(state), 3)
