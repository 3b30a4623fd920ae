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
- **A pixel limit, checked from the header before decoding.** A 30000 x 30000 PNG of one
  colour is 875 KB on disk and 2.7 GB per decoded copy (5.4 GB with the RGB conversion), in
  every worker. An image over :data:`MAX_IMAGE_PIXELS` is refused by every reader, as PIL
  refuses it (``DecompressionBombError``), before any pixel is decoded.

Errors are :class:`ImageReadError` (a :class:`UserError`: ``path: reason``); distill logs
``reason`` per image in errors.jsonl, the other commands stop with the one line.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np

from labeltool.errors import UserError

NOT_DECODABLE = "not a decodable image (empty, truncated or not an image)"
# PIL's refusal threshold (2 x Image.MAX_IMAGE_PIXELS; about 13400 x 13400, 0.5 GB as RGB): larger than any
# photo a pose dataset holds, small enough that a few workers decoding at once fit in memory.
MAX_IMAGE_PIXELS = 178_956_970
# between 1x and 2x PIL's limit it only warns; wbt's limit is the one that decides (no warning on stderr)
warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")


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


def decode_rgb(data: bytes | np.ndarray, where: str | os.PathLike) -> np.ndarray:
    """Encoded image bytes (from ``where``, named in errors) as RGB uint8 (H, W, 3), by the rules above."""
    import cv2

    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    _check_pixels(_header_size(data, where), where)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if bgr is None:
        raise ImageReadError(where, NOT_DECODABLE)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file's raw pixel frame, from its header (no decode, EXIF ignored).

    An image over :data:`MAX_IMAGE_PIXELS` is refused here too, so that every command agrees on it.
    """
    _check_regular(path)
    size = _header_size(Path(path), path)
    if size is None:
        raise ImageReadError(path, NOT_DECODABLE)
    _check_pixels(size, path)
    return size


def _header_size(source: Path | np.ndarray, where: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the header of an image file or its bytes; None when PIL cannot identify it.

    PIL refuses a header over its own limit (:data:`MAX_IMAGE_PIXELS`, the same) with its own
    error type: that becomes the same one-line refusal as :func:`_check_pixels` gives.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    stream = io.BytesIO(source.tobytes()) if isinstance(source, np.ndarray) else source
    try:
        with Image.open(stream) as img:
            width, height = img.size
    except Image.DecompressionBombError as err:
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise ImageReadError(where, f"image of {pixels[1] if pixels else 'too many'} pixels is over wbt's limit of "
                                    f"{MAX_IMAGE_PIXELS} pixels (refused before decoding)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return int(width), int(height)


def _check_pixels(size: tuple[int, int] | None, where: str | os.PathLike) -> None:
    """Refuse an image whose header declares more than :data:`MAX_IMAGE_PIXELS` (None: no header PIL reads;
    OpenCV's own limit of 2^30 pixels then applies)."""
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageReadError(where, f"image of {size[0] * size[1]} pixels ({size[0]}x{size[1]}) is over wbt's limit of "
                                    f"{MAX_IMAGE_PIXELS} pixels (refused before decoding)")
