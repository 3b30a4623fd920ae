"""The model libraries' own messages during a run go to a log file in the output folder, not the terminal.

Used while the teachers label (:mod:`labeltool.distill.pipeline`) and while the detector finds
persons (:func:`labeltool.distill.inputs.from_detector`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NATIVE_LOG = "teacher_messages.log"  # what TFLite / MediaPipe print while the teachers run


@contextmanager
def native_stderr_to(path: Path) -> Iterator[None]:
    """While labelling, file descriptor 2 goes to ``path``; Python's own stderr stays on the terminal.

    The model libraries (TFLite, MediaPipe's C++ logging) write to fd 2 from their own threads,
    at any moment; redirecting the descriptor for the whole phase (worker processes inherit it)
    keeps their lines off the progress bar, where a per-call redirect would race them.
    """
    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if _writes_to_fd2(python_stderr):  # else (a test runner's capture, a notebook) it is not affected
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace")
    os.dup2(log, 2)
    os.close(log)
    try:
        yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False
