"""Checks a checkpoint passes before a tensor is copied or a model built: zip bombs, tensors that would
allocate past their file or are not dense real weights, and the names and shapes a config builds.

Shared by :mod:`labeltool.student.checkpoint` (wbt's files) and
:mod:`labeltool.student.mmpose_checkpoint` (mmpose's), so a hostile file of either kind is a
one-line :class:`UserError` that costs no memory.
"""

from __future__ import annotations

import os
import warnings
import zipfile

import torch

from labeltool.errors import UserError
from labeltool.student.model import Student, StudentConfig

# torch.save stores zip members uncompressed; float weights deflate ~1.1x. A member that expands more
# than this (and by more than _BOMB_MIN_BYTES) is a zip bomb: 13 MB of zeros deflated is 3.4 GB loaded.
MAX_EXPANSION = 20
_BOMB_MIN_BYTES = 1 << 20
_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)  # num_batches_tracked, counters


def check_archive(path: str | os.PathLike) -> None:
    """Refuse a zip checkpoint whose compressed members would expand past :data:`MAX_EXPANSION` times their size.

    Read from the zip directory only, before ``torch.load`` (which cannot memory-map a compressed
    member and inflates it whole). A file that is not a zip (legacy torch format) passes.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    for info in members:
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(
                MAX_EXPANSION * info.compress_size, _BOMB_MIN_BYTES):
            raise UserError(f"{path}: refused: zip member {info.filename} expands from {info.compress_size} to "
                            f"{info.file_size} bytes (over {MAX_EXPANSION}x; torch.save stores tensors uncompressed)")


def check_tensors(state: dict, path: str | os.PathLike, what: str = "tensor") -> None:
    """Refuse, naming the tensor, what would allocate past its file or not load as dense real weights.

    A tensor must be dense (strided), hold data (not ``meta``), be real (complex would be cast
    with a warning, dropping the imaginary part), declare no more elements than its storage
    holds (a stride-0 view of one number can declare 10^12 elements, allocated on the first copy),
    and hold finite numbers (NaN weights give NaN keypoints, written as ``null`` that eval refuses).
    Keys that are not tensors are left to the caller.
    """
    for key, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue
        name = f"{what} {key} {tuple(t.shape)}"
        if t.layout != torch.strided:
            raise UserError(f"{path}: refused: {name} is {str(t.layout).removeprefix('torch.')}, not a dense tensor")
        if t.is_meta:
            raise UserError(f"{path}: refused: {name} is a meta tensor (a shape without data)")
        if t.is_complex() or not (t.is_floating_point() or t.dtype in _INTEGER_DTYPES):
            raise UserError(f"{path}: refused: {name} is {str(t.dtype).removeprefix('torch.')}; "
                            f"weights must be real floating-point numbers")
        held = t.untyped_storage().nbytes() // max(t.element_size(), 1) - t.storage_offset()
        if t.numel() > max(held, 0):
            raise UserError(f"{path}: refused: {name} declares {t.numel()} elements but its data holds {max(held, 0)} "
                            f"(a stride-0 or overlapping view)")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise UserError(f"{path}: refused: {name} has {bad} NaN or Inf values (a diverged training?); "
                            f"its outputs would be NaN")


def expected_state(config: StudentConfig) -> dict[str, torch.Tensor]:
    """The student's state dict for ``config`` on the meta device: names and shapes, no memory.

    Built before the real model so that a file whose config or tensors disagree is refused by
    name, not after allocating what a hostile config declares (split ratio 0.001: 16 GB).
    """
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Initializing zero-element tensors is a no-op"
        return Student(config).state_dict()
