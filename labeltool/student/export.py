"""`wbt export`: the student as an ONNX file that rtmlib's ``RTMPose`` (and mmdeploy's convention) runs as is.

The convention (rtmlib 0.0.16, ``RTMPose(onnx_model=FILE, model_input_size=(W, H))`` with its
defaults): the caller crops the person from the **BGR** image it holds, computes
``(crop - mean) / std`` with mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375)
applied to the channels in that (B, G, R) order, and feeds ``input`` (N, 3, H, W) float32;
the outputs ``simcc_x`` (N, K, 2W) and ``simcc_y`` (N, K, 2H) are raw SimCC logits, decoded by
arg-max / 2. The student was trained on RGB 0..255 and normalises itself, so the exported graph
first undoes the caller's normalisation and reorders the channels.

rtmlib (like mmpose) puts the box centre at crop pixel (W / 2, H / 2) and decodes bin ``k`` as
``k / 2``; so does wbt (``data.crop_matrices``, ``codec``), so the graph is the network with
rtmlib's input normalisation folded in, nothing else.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labeltool.errors import UserError
from labeltool.io.atomic import AtomicFile, new_outputs_removed_on_error, write_errors_name
from labeltool.student.model import Student
from labeltool.topdown import RTMLIB_MEAN, RTMLIB_STD, normalise_bgr  # rtmlib's defaults, on B, G, R in order


class RtmlibInput(nn.Module):
    """The student behind rtmlib's input and crop: ``(BGR - RTMLIB_MEAN) / RTMLIB_STD`` of a crop centred on
    (W / 2, H / 2) in, SimCC logits on that crop's grid out."""

    def __init__(self, student: Student):
        super().__init__()
        self.student = student
        self.register_buffer("mean", torch.tensor(RTMLIB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(RTMLIB_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, normalised_bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = (normalised_bgr * self.std + self.mean).flip(1)
        return self.student(rgb)


def export_onnx(model_path: str, out: str, use_ema: bool = True, check: bool = True, opset: int = 17) -> str:
    """Write the student at ``model_path`` (a student or mmpose checkpoint) as ONNX in rtmlib's convention
    (input ``input``, outputs ``simcc_x`` and ``simcc_y``, dynamic batch). With ``check``, runs the file with
    onnxruntime (if installed) against PyTorch on BGR crops and returns a line saying how close they agree."""
    from labeltool.student.checkpoint import load_checkpoint, model_from_checkpoint

    student = model_from_checkpoint(load_checkpoint(model_path), use_ema)
    model = RtmlibInput(student).eval()
    w, h = student.config.input_size
    rng = np.random.default_rng(0)
    example = torch.from_numpy(normalise_bgr(rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)))
    out_path = Path(out)
    if out_path.is_dir():
        raise UserError(f"{out_path}: is a directory, expected an output .onnx file name")
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), buffer, input_names=["input"], output_names=["simcc_x", "simcc_y"],
                          dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    # the file is written and checked under a temp name beside OUT and renamed only once the check passed:
    # a failed check leaves OUT as it was (an earlier good export is not replaced by a bad one)
    new_parents = (new_outputs_removed_on_error(out_path.parent) if not out_path.parent.exists()
                   else contextlib.nullcontext())
    with write_errors_name(out_path), new_parents, AtomicFile(out_path) as tmp:
        tmp.write_bytes(buffer.getvalue())
        if not check:
            return f"wrote {out_path} (not checked)"
        agreement = _check_onnx(tmp, model, out_path, rng, (w, h))
    if agreement is None:
        return f"wrote {out_path}; not checked: onnxruntime is not installed (pip install onnxruntime)"
    return f"wrote {out_path} (rtmlib convention: BGR crops, (x - mean) / std, {w}x{h}); {agreement}"


def _check_onnx(onnx_file: Path, model: nn.Module, out_path: Path, rng: np.random.Generator,
                size: tuple[int, int]) -> str | None:
    """Run ``onnx_file`` with onnxruntime against PyTorch on random BGR crops: the line saying how close they
    agree, None without onnxruntime; a :class:`UserError` naming ``out_path`` when they disagree."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    w, h = size
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    bgr = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    ox, oy = session.run(["simcc_x", "simcc_y"], {"input": normalise_bgr(bgr)})
    with torch.no_grad():
        tx, ty = model(torch.from_numpy(normalise_bgr(bgr)))
    if not all(np.isfinite(a).all() for a in (ox, oy, tx.numpy(), ty.numpy())):
        raise UserError(f"{out_path}: not written: the model gives non-finite outputs (NaN or Inf) on test crops; "
                        f"its weights are broken")
    err = max(float(np.abs(ox - tx.numpy()).max()), float(np.abs(oy - ty.numpy()).max()))
    scale = max(float(np.abs(tx.numpy()).max()), float(np.abs(ty.numpy()).max()))
    if not err <= 1e-3 * max(scale, 1.0):
        raise UserError(f"{out_path}: not written: onnxruntime output differs from PyTorch by {err:.3g} "
                        f"(max |output| {scale:.3g})")
    return f"onnxruntime {ort.__version__} agrees with PyTorch (max abs diff {err:.2e} on batch 3)"
