"""The one image reader: every command decodes and measures images here, by the same rules.

- **Raw pixel frame.** EXIF orientation is *not* applied: COCO's annotations (and every
  label wbt writes) are in the stored pixel frame, which is what pycocotools, mmpose and the
  COCO-WholeBody evaluator see. OpenCV's ``imread`` / ``imdecode`` rotate by the EXIF tag by
  default, so the decode passes ``IMREAD_IGNORE_ORIENTATION``; :func:`image_size` reads the
  header with PIL, which does not rotate either, so sizes and pixels always agree.
- **A truncated or corrupt file is an error**, never an image padded with grey: OpenCV's
  ``imread`` returns the decoded part of a truncated JPEG, ``imdecode`` returns nothing, so
  the file's bytes are decoded with ``imdecode``. :func:`image_size` reads only the header;
  a file cut after its header is caught when its pixels are decoded.
- Only regular files are read (a FIFO named ``x.jpg`` would block a reader forever).

Errors are :class:`ImageReadError` (a :class:`UserError`: ``path: reason``); distill logs
``reason`` per image in errors.jsonl, the other commands stop with the one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from labeltool.errors import UserError

NOT_DECODABLE = "not a decodable image (empty, truncated or not an image)"


class ImageReadError(UserError):
    """An image file that is missing, unreadable or does not decode completely."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across worker processes
        return (ImageReadError, (self.path, self.reason))


def _check_regular(path: str | os.PathLike) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageReadError(path, "image file not found") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot read the image file: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        raise ImageReadError(path, "not a regular file")


def read_image_bytes(path: str | os.PathLike) -> np.ndarray:
    """The bytes of an image file (uint8), by the rules above (regular files only)."""
    _check_regular(path)
    try:
        return np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(path, f"cannot read the image file: {err.strerror or err}") from None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3) in its raw pixel frame (EXIF orientation ignored)."""
    return decode_rgb(read_image_bytes(path), path)


def content_digest(data: bytes | np.ndarray) -> str:
    """sha256 (hex) of a file's bytes: what a label was made from, checked when a run resumes."""
    import hashlib

    return hashlib.sha256(memoryview(data)).hexdigest()


def file_digest(path: str | os.PathLike) -> str | None:
    """:func:`content_digest` of a file read in 1 MiB blocks; None when it is absent or not a regular file."""
    import hashlib

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def decode_rgb(data: bytes | np.ndarray, where: str | os.PathLike) -> np.ndarray:
    """Encoded image bytes (from ``where``, named in errors) as RGB uint8 (H, W, 3), by the rules above."""
    import cv2

    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if bgr is None:
        raise ImageReadError(where, NOT_DECODABLE)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file's raw pixel frame, from its header (no decode, EXIF ignored)."""
    from PIL import Image, UnidentifiedImageError

    _check_regular(path)
    try:
        with Image.open(Path(path)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageReadError(path, NOT_DECODABLE) from None
    return int(width), int(height)
