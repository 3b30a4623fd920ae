"""Student checkpoints: the format ``wbt train-student`` writes, its atomic write, and every read of one.

A run's ``OUT/last.pt`` (rewritten atomically every epoch) is one dict:

    model        the student's weights              ema, ema_state   EMA weights and its step count (or None)
    optimizer    AdamW's state                      scheduler        the LR schedule's state
    epoch        epochs done                        rng              RNG states (one dict, or one per rank)
    args         the TrainConfig, as a dict         config           the StudentConfig, as a dict
    layout       the keypoint layout's name         history          the log, one record per epoch
    versions     the numeric libraries' versions (a ``--resume`` on another stack is refused)

It holds only tensors, numbers, strings, lists, tuples and dicts, so every load uses
``torch.load(weights_only=True)``: a file carrying any other pickled object is refused, never
run. ``predict``, ``export`` and ``--init`` need ``config`` and ``model``; ``--resume`` needs
:data:`RESUME_ENTRIES`. An mmpose RTMPose file (:mod:`labeltool.student.mmpose_checkpoint`) loads
as a student checkpoint too. Every file is checked before a tensor is copied or a model built,
so a hostile one is a one-line :class:`UserError` that costs no memory.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from labeltool.errors import UserError, first_line
from labeltool.io.atomic import AtomicFile
from labeltool.student.checkpoint_checks import check_archive, check_tensors, expected_state
from labeltool.student.mmpose_checkpoint import init_message, load_mmpose_checkpoint
from labeltool.student.model import Student, StudentConfig
from labeltool.versions import check_same_stack, installed_versions

if TYPE_CHECKING:
    from labeltool.student.train import EMA

RESUME_ENTRIES = ("model", "optimizer", "scheduler", "epoch", "rng", "args", "config", "history")



# --------------------------------------------------------------------------- writing


def training_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, ema: EMA | None, epoch: int, rng,
                        args: dict, config: StudentConfig, layout: str, history: list[dict]) -> dict:
    """The checkpoint of a run after ``epoch`` epochs (the entries listed in this module's docstring)."""
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "ema_state": ema.state_dict() if ema is not None else None,
        "epoch": epoch, "rng": rng, "args": args, "config": config.to_dict(), "layout": layout, "history": history,
        "versions": installed_versions(),  # a --resume on other library versions is refused
    }


def save_checkpoint(ckpt: dict, path: Path) -> None:
    """``torch.save`` through a temp file and a rename: a crash mid-write leaves the previous file whole."""
    with AtomicFile(path) as tmp:
        torch.save(ckpt, tmp)


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors, numbers and strings only, so a checkpoint
    loads with ``torch.load(weights_only=True)`` (numpy's state is an ndarray, python's a tuple of ints)."""
    version, words, gauss_next = random.getstate()
    key, np_words, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {"key": str(key), "state": torch.from_numpy(np_words.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py, nps = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    np.random.set_state((nps["key"], nps["state"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- resuming

# Arguments a resumed run may change (where it runs, how it reports, when it stops); any other
# difference from the checkpoint's arguments would silently train another run and is refused.
RESUMABLE_CHANGES = frozenset({
    "out", "resume", "overwrite", "init", "device", "workers", "cache", "build_cache", "compile", "amp", "channels_last",
    "val", "val_images", "val_dets", "val_every", "val_flip", "stop_after", "log_every", "progress",
})


def load_resume_checkpoint(path: Path, args: dict) -> dict:
    """The checkpoint ``--resume`` continues, refused in one line when absent, unreadable, of a run with other
    arguments than ``args`` (the TrainConfig as a dict) or written on another library stack."""
    if not path.is_file():
        raise UserError(f"{path}: nothing to resume (no checkpoint in --out)")
    ckpt = load_checkpoint(path, need=RESUME_ENTRIES)
    check_resume_args(ckpt["args"], args, path)
    check_same_stack(ckpt.get("versions"), path)
    return ckpt


def check_resume_args(saved: dict, now: dict, path: Path) -> None:
    """A one-line :class:`UserError` naming every option of ``now`` that differs from the run in ``path``."""
    diff = []
    for key, value in now.items():
        if key in RESUMABLE_CHANGES or key not in saved:
            continue
        before = saved[key]
        if _plain(before) != _plain(value):
            diff.append(f"--{key.replace('_', '-')} ({_shown(before)} there, {_shown(value)} now)")
    if diff:
        raise UserError(f"{path}: --resume of a run started with other options: {'; '.join(diff)}; "
                        "resume with the same options, or use another --out")


def restore_training(ckpt: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, ema: EMA | None,
                     generator: torch.Generator, rank: int) -> tuple[int, list[dict]]:
    """Puts a resumed run's weights, optimizer, schedule, EMA and RNG states back; returns (epochs done, log)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ema is not None and ckpt.get("ema_state") is not None:
        ema.load_state_dict(ckpt["ema_state"])
    rng = ckpt["rng"]
    if isinstance(rng, list):  # one state per rank; a resumed run with more ranks reuses rank 0's
        rng = rng[rank] if rank < len(rng) else rng[0]
    set_rng_state(rng)
    generator.set_state(rng["augment"].to(generator.get_state().device))
    return ckpt["epoch"], ckpt.get("history", [])


def _plain(value):
    """Lists and tuples compare alike (a checkpoint keeps tuples; the CLI may give lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _shown(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    return str(_plain(value)) if value != "" else "(none)"


# --------------------------------------------------------------------------- reading


def load_checkpoint(path: str | os.PathLike, need: tuple[str, ...] = ("config", "model")) -> dict:
    """A student checkpoint (``last.pt`` from ``wbt train-student``, or an mmpose RTMPose file), on the CPU,
    with the entries ``need``.

    Loaded with ``weights_only=True``: a checkpoint holds only tensors, numbers, strings, lists,
    tuples and dicts, so a file carrying any other pickled object is refused, never run (a
    pickle can execute code on load). A missing, truncated or foreign file is a one-line
    :class:`UserError`.
    """

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    check_archive(path)
    from_mmpose = load_mmpose_checkpoint(path)  # an mmpose RTMPose checkpoint, as a student checkpoint
    if from_mmpose is not None:
        return from_mmpose
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # junk bytes, not a refused object
            raise UserError(f"{path}: not a readable checkpoint (damaged, truncated or not a torch file): "
                            f"{first_line(str(err))}") from None
        # weights_only met a Python object other than tensors and plain data: name it, never build it
        what = first_line(str(err).split("WeightsUnpickler error:")[-1])
        raise UserError(f"{path}: refused: the file holds more than tensors, numbers, strings, lists and dicts "
                        f"(loading it could run code): {what}") from None
    except Exception as err:  # torch raises many types for a damaged or truncated file
        first = first_line(str(err))
        raise UserError(f"{path}: not a readable checkpoint (damaged or truncated?): {type(err).__name__}: {first}"
                        ) from None
    missing = [k for k in need if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise UserError(f"{path}: not a wbt student checkpoint (no {', '.join(repr(k) for k in missing)} entries)")
    for entry in ("model", "ema"):
        if isinstance(ckpt.get(entry), dict):
            check_tensors(ckpt[entry], path, f"{entry} tensor")
    ckpt.setdefault("source", str(path))
    if "config" in ckpt:
        try:
            StudentConfig.from_dict(ckpt["config"])
        except ValueError as err:
            raise UserError(f"{path}: bad student 'config': {err}") from None
    return ckpt


def model_from_checkpoint(ckpt: dict, use_ema: bool = True) -> Student:
    """The student in ``ckpt`` (its EMA weights when present and ``use_ema``), in eval mode.

    Its tensors' names and shapes are compared with what its config builds (on the meta device)
    before the model is allocated: a mismatch is one line naming the tensor.
    """
    if ckpt.get("incomplete"):  # e.g. an RTMW checkpoint: its backbone alone is no model
        raise UserError(ckpt["incomplete"])
    source = ckpt.get("source", "checkpoint")
    try:
        config = StudentConfig.from_dict(ckpt["config"])
        expected = expected_state(config)  # shapes only (meta device): a hostile config allocates nothing
    except (TypeError, ValueError, KeyError, RuntimeError, ZeroDivisionError, OverflowError) as err:
        raise UserError(f"{source}: its 'config' does not build a student: {type(err).__name__}: "
                        f"{first_line(str(err))}") from None
    entry = "ema" if use_ema and ckpt.get("ema") is not None else "model"
    state = ckpt[entry]
    if not isinstance(state, dict):
        raise UserError(f"{source}: '{entry}' is a {type(state).__name__}, not a dict of tensors")
    for key, want in expected.items():
        got = state.get(key)
        if not isinstance(got, torch.Tensor):
            raise UserError(f"{source}: '{entry}' lacks tensor {key} {tuple(want.shape)} of its config's student")
        if got.shape != want.shape:
            raise UserError(f"{source}: '{entry}' tensor {key} is {tuple(got.shape)}; its config's student has "
                            f"{tuple(want.shape)}")
    unknown = [k for k in state if k not in expected]
    if unknown:
        raise UserError(f"{source}: '{entry}' has tensors its config's student does not: {', '.join(unknown[:3])}")
    model = Student(config)
    model.load_state_dict(state)
    return model.eval()


def init_from_checkpoint(model: nn.Module, path: str) -> str | None:
    """``--init``: the weights of the checkpoint at ``path`` (its EMA when present) that fit ``model`` by name and
    shape, loaded into it; returns the line saying what did not fit and starts fresh (None: everything fit)."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("ema") or ckpt["model"]
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return init_message(path, ckpt, model) if len(fitting) < len(own) else None
