"""Writing files safely: atomic writers, the run lock, and the check that an output is not an input.

Every file wbt writes goes through an :class:`AtomicFile` (a temp file renamed over the target),
so no reader sees half a file and a failed write changes nothing. Commands that write call
:func:`check_output_not_input` before any work.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from labeltool.errors import UserError
from labeltool.io.jsonfile import json_bytes


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write json to a temp file beside ``path`` then rename, so no reader sees half a file."""
    write_bytes_atomic(json_bytes(obj), path)


class RunLock:
    """An exclusive lock on a run's output directory, so two runs of one command never write the same
    files (``.wbt-COMMAND.lock`` there, held until :meth:`release` or the process exits). With
    ``remove`` the lock file goes at :meth:`release` (no stray file in a user's folder); a run that
    opened the file just before then finds it gone after locking it and is refused as well."""

    def __init__(self, out_dir: str | os.PathLike, command: str = "distill", remove: bool = False):
        import fcntl

        self.path = Path(out_dir) / f".wbt-{command}.lock"
        self.remove = remove
        self.file = open(self.path, "a")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if remove and os.fstat(self.file.fileno()).st_ino != os.stat(self.path).st_ino:
                raise OSError("the lock file was replaced")
        except OSError:
            self.file.close()
            raise UserError(f"{out_dir}: another wbt {command} is running with this --out") from None

    def release(self) -> None:
        if self.remove:
            self.path.unlink(missing_ok=True)  # while still held
        self.file.close()


class AtomicFile:
    """A temp file beside ``path`` that becomes ``path`` on :meth:`commit` (fsync, rename) or vanishes on :meth:`abort`.

    The one way wbt writes a file: no reader ever sees half a file, and a failed write leaves
    neither a temp file nor a changed ``path``. The temp file is created like any new file
    (mode 0666 minus the umask, applied by the kernel), so the result has normal permissions
    without reading the process umask. Stream into ``.tmp`` (any writer that opens a path), or
    use ``with AtomicFile(path) as tmp:`` to commit on success and abort on an error.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:  # pragma: no cover - 32 random bits
                continue
        self.tmp = tmp

    def commit(self) -> None:
        """Flush the finished temp file to disk and rename it over ``path`` (the temp is removed on failure)."""
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temp file; ``path`` keeps whatever it held before."""
        with suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextmanager
def new_outputs_removed_on_error(folder: str | os.PathLike) -> Iterator[None]:
    """Files and folders the block creates in ``folder`` (and ``folder`` itself, and its parents,
    when the block creates them) are removed again if the block fails.

    A command that writes several files (OpenPose, review exports, render) leaves the output
    folder as it found it when a write fails half-way (a full disk); files it replaced are not
    restored, but each was replaced whole (:func:`write_bytes_atomic`).
    """
    folder = Path(folder)
    missing = []  # folder and its parents that do not exist yet, deepest first
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    before = set() if missing or not folder.is_dir() else set(folder.rglob("*"))
    try:
        yield
    except Exception:  # a failed write; after Ctrl-C the files written so far stay (each one whole)
        if folder.is_dir():
            created = sorted(set(folder.rglob("*")) - before, key=lambda q: len(q.parts), reverse=True)
            for q in created:  # deepest first: files, then the folders they were in
                with contextlib.suppress(OSError):
                    q.rmdir() if q.is_dir() and not q.is_symlink() else q.unlink()
        for q in missing:
            with contextlib.suppress(OSError):
                q.rmdir()
        raise


def _same_path(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder (links and hard links followed; by name when absent)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_not_input(
    out: str | os.PathLike,
    inputs: dict[str, str | os.PathLike | None],
    folder_files: tuple[str, ...] | None = None,
    option: str = "--out",
) -> None:
    """Refuse an output that is an input, or would replace one, before any work (a one-line :class:`UserError`).

    ``out`` is a file, or with ``folder_files`` a folder the command writes those files in (an
    empty tuple: files named after the inputs, as render's). ``inputs``: option -> path (None:
    not given). A folder output may not be an input folder (render into the image folder would
    write over its PNGs, distill would mix its outputs with the images), nor may any file it writes
    be an input file (``distill --ann D/wholebody133.json --out D``). Every command that writes
    calls this, so ``eval --out GT`` or ``predict --out GT`` never replace the user's file.
    """
    out = Path(out)
    targets = [out] if folder_files is None else [out / name for name in folder_files]
    for label, src in inputs.items():
        if src is None:
            continue
        src = Path(src)
        if folder_files is not None and _same_path(out, src):
            raise UserError(f"{out}: {option} is the input {label} folder; write the outputs to another folder")
        for target in targets:
            if _same_path(target, src):
                raise UserError(f"{target}: {option} would replace the input {label} {src}; give another {option}")


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` through an :class:`AtomicFile` (parents created).

    A failed write leaves no temp file and no parent folder it created. An ``OSError`` (full
    disk, read-only or unwritable folder) names ``path``, not the temp file, and the CLI prints
    it as one line.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected an output file name")
    # parent folders this write creates are removed again if it fails
    new_parents = new_outputs_removed_on_error(path.parent) if not path.parent.exists() else contextlib.nullcontext()
    with write_errors_name(path), new_parents, AtomicFile(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


@contextmanager
def write_errors_name(path: str | os.PathLike) -> Iterator[None]:
    """An ``OSError`` raised inside names ``path`` and the system's plain reason.

    A write to an open file (or pyarrow's writer) fails without a file name, and a failed
    temp file names the temp: the user wants to read ``OUT/labels.json: No space left on device``.
    """
    try:
        yield
    except OSError as err:
        if err.errno is None:
            raise
        raise OSError(err.errno, os.strerror(err.errno), str(path)) from err


class JsonDocumentWriter:
    """Writes ``{head..., "<list_key>": [items...], tail...}`` item by item to an :class:`AtomicFile`, renamed on close."""

    def __init__(self, path: Path, head: dict, list_key: str, tail: dict):
        self.path = Path(path)
        self.tail = tail
        with write_errors_name(self.path):  # a full disk names the output, not the temp file
            self.target = AtomicFile(self.path)
            try:
                self.file = open(self.target.tmp, "wb")  # noqa: SIM115 - closed by close() / abort()
            except BaseException:
                self.target.abort()
                raise
            self.file.write(b"{")
            for key, value in head.items():
                self.file.write(json_bytes(key) + b":" + json_bytes(value) + b",")
            self.file.write(json_bytes(list_key) + b":[")
        self.first = True

    def write(self, items: list[dict]) -> None:
        with write_errors_name(self.path):
            for item in items:
                if not self.first:
                    self.file.write(b",")
                self.file.write(json_bytes(item))
                self.first = False

    def finish(self) -> None:
        """Write the tail and close the temp file; :meth:`AtomicFile.commit` of ``target`` then renames it."""
        with write_errors_name(self.path):
            self.file.write(b"]")
            for key, value in self.tail.items():
                self.file.write(b"," + json_bytes(key) + b":" + json_bytes(value))
            self.file.write(b"}")
            self.file.close()

    def close(self) -> None:
        self.finish()
        with write_errors_name(self.path):
            self.target.commit()

    def abort(self) -> None:
        with suppress(OSError):  # closing flushes, which fails again on a full disk
            self.file.close()
        self.target.abort()
