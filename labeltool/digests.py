"""sha256 of files and bytes: the one place wbt hashes what its outputs depend on.

Images (checked per shard when a run resumes), input files (annotations, boxes: run.json's
``input_digests``) and model files (``describe()`` of teachers and detectors: summary.json
``models``). Standard library only, so describing a model never imports its library.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BLOCK = 1 << 20  # files are read in 1 MiB blocks


def content_digest(data: bytes | np.ndarray) -> str:
    """sha256 (hex) of a file's bytes: what a label was made from, checked when a run resumes."""
    return hashlib.sha256(memoryview(data)).hexdigest()


def file_digest(path: str | os.PathLike) -> str | None:
    """:func:`content_digest` of a file read in blocks; None when it is absent or not a regular file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(BLOCK), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _cached_digest(path: str, size: int, mtime_ns: int) -> str | None:
    """:func:`file_digest` once per file version: a model file is described by every worker and on every resume."""
    return file_digest(path)


def file_record(path: str | os.PathLike) -> dict:
    """{'name', 'sha256'} of a model file ('missing' when absent or not a regular file)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return {"name": path.name, "sha256": "missing"}
    return {"name": path.name, "sha256": _cached_digest(str(path), st.st_size, st.st_mtime_ns) or "missing"}


def package_file_records(package: str, *relative: str) -> list[dict]:
    """:func:`file_record` of files inside an installed package (the models a wheel ships), without importing it."""
    spec = importlib.util.find_spec(package)  # importing mediapipe is slow, and it may be absent
    if spec is None or not spec.submodule_search_locations:
        return [{"name": Path(r).name, "sha256": "missing"} for r in relative]
    root = Path(spec.submodule_search_locations[0])
    return [file_record(root / r) for r in relative]
