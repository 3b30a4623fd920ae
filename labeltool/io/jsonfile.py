"""JSON files: the one reader (size and format sniffing, one-line errors), the checks of JSON numbers, and bytes out.

Every json file wbt reads goes through :func:`read_json`: its first bytes are checked before
the file is read whole (a parquet, zip or image passed by mistake is named), and bad json is a
one-line :class:`UserError` with line and column. orjson (a required dependency) parses and
serialises.
"""

from __future__ import annotations

import gc
import json
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from labeltool.errors import UserError

# Coordinates, sizes and scores beyond this are a broken file, not an image (and would overflow on write).
MAX_ABS_VALUE = 1e7


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a big tree of JSON objects.

    Parsed JSON has no reference cycles, but its millions of new containers trigger repeated
    full collections that walk all of them: pausing halves the load time of a 240 MB file.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()



# First bytes of binary formats users pass by mistake: named instead of "invalid JSON".
_BINARY_MAGIC = {
    b"PAR1": "a parquet file",
    b"PK\x03\x04": "a zip file",
    b"\x1f\x8b": "a gzip file",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x93NUMPY": "a numpy .npy file",
    b"\x80": "a pickle file",
    b"%PDF": "a PDF file",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
}
_JSON_FIRST_BYTES = b'{["-0123456789tfn"'
_NON_JSON_CONSTANTS = ("NaN", "-Infinity", "Infinity")


def read_json(path: str | os.PathLike, allow_nan: bool = False) -> Any:
    """Parse a json file; a missing file or bad json is a one-line :class:`UserError`.

    The first bytes are checked before the file is read whole, so a large binary or junk
    file is refused at once (and named: a parquet file, a zip...). ``allow_nan``: NaN and
    Infinity literals parse (as Python's json writes them), so that a results reader can
    name the detection that holds one instead of failing on the whole file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a json file")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file, expected a json file")
    check_json_start(path)
    data = path.read_bytes()
    try:
        with gc_paused():
            return orjson.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        if allow_nan:
            try:
                with gc_paused():
                    return json.loads(data)
            except (ValueError, UnicodeDecodeError, RecursionError):
                pass  # orjson's error names the problem
        raise UserError(f"{path}: {_json_error(err, data)}") from None


def check_json_start(path: Path) -> None:
    """Refuse a file whose first bytes cannot start a JSON document, naming known binary formats.

    Reads 64 bytes: a 1 GB binary or junk file is refused without being read whole.
    """
    with open(path, "rb") as f:
        head = f.read(64)
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise UserError(f"{path}: is {what}, expected JSON" + (" (save it as UTF-8)" if "UTF-16" in what else ""))
    if head.startswith(b"\xef\xbb\xbf"):
        raise UserError(f"{path}: starts with a byte-order mark (BOM); save it as UTF-8 without BOM")
    first = head.lstrip(b" \t\r\n")[:1]
    if not first:
        if len(head) < 64:
            raise UserError(f"{path}: is empty, expected JSON")
        return  # long leading whitespace: let the parser decide
    if first not in _JSON_FIRST_BYTES:
        if b"\x00" in head or not _is_text(head):
            raise UserError(f"{path}: is a binary file, expected JSON")
        raise UserError(f"{path}: not JSON (starts with {head.strip()[:20].decode('utf-8', 'replace')!r})")


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start > len(head) - 4  # a multi-byte character cut by the 64-byte window
    return True


def _json_error(err: Exception, data: bytes) -> str:
    """What is wrong with ``data``, with line and column, naming NaN / Infinity (valid in Python, not in JSON)."""
    if isinstance(err, json.JSONDecodeError) and err.pos is not None:
        if "depth" in err.msg or "recursion" in err.msg:
            return "invalid JSON: nested too deeply"
        if "UTF-8" in err.msg or not err.doc:
            return _utf8_error(data) or f"invalid JSON: {err.msg}"
        near = err.doc[max(0, err.pos - 1) : err.pos + 9]
        constant = next((c for c in _NON_JSON_CONSTANTS if c in near), None)
        what = f"{constant} is not a JSON number (write null or a finite number)" if constant else err.msg
        return f"invalid JSON at line {err.lineno} column {err.colno}: {what}"
    return _utf8_error(data) or "invalid JSON"


def _utf8_error(data: bytes) -> str | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not UTF-8 text ({err.reason} at byte {err.start})"
    return None



def is_number(v: Any) -> bool:
    """A JSON number (not a bool or a string) that is finite and within ±MAX_ABS_VALUE."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_ABS_VALUE


def all_numbers(rows: Iterable[list]) -> bool:
    """Whether every value of the rows is an int or float (numpy would take strings and bools as numbers)."""
    return set(map(type, chain.from_iterable(rows))) <= {int, float}


def first_out_of_range(values: np.ndarray) -> int | None:
    """Index of the first row with a NaN, an infinity or a value beyond ±MAX_ABS_VALUE, else None."""
    ok = np.abs(values.reshape(len(values), -1 if len(values) else 0)) <= MAX_ABS_VALUE  # NaN compares False
    if ok.all():
        return None
    return int(np.nonzero(~ok.all(axis=1))[0][0])


def json_bytes(value: Any) -> bytes:
    """``value`` as json bytes (numpy arrays and scalars included), as every wbt json file is written."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
