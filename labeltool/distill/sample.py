"""``wbt distill --sample``: real photos of people that ship inside installed packages.

No annotations come with them, so the body comes from the body teacher on the whole image.
The photos are written as JPEGs into a folder of the output, then labelled like any
``--images DIR``. matplotlib (a dependency) ships Grace Hopper's portrait; scikit-image,
when installed, adds the astronaut (Eileen Collins) and the cameraman.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from labeltool.images import decode_rgb
from labeltool.io.atomic import write_bytes_atomic


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return decode_rgb(f.read(), "matplotlib's grace_hopper.jpg")


def _skimage(name: str):
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3]

    return load


SAMPLE_PHOTOS = {
    "astronaut.jpg": _skimage("astronaut"),
    "cameraman.jpg": _skimage("camera"),
    "grace_hopper.jpg": _grace_hopper,
}


def available_sample_photos() -> list[str]:
    """Names of the sample photos whose package is installed."""
    names = ["grace_hopper.jpg"]
    try:
        import skimage.data  # noqa: F401

        names = sorted(SAMPLE_PHOTOS)
    except ImportError:
        pass
    return names


def write_sample_images(dest: str | os.PathLike) -> Path:
    """Write the sample photos as JPEG (quality 95) into ``dest``; returns ``dest``.

    Files already there with the same bytes are left alone, so a resumed run sees the same input.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in available_sample_photos():
        rgb = SAMPLE_PHOTOS[name]()
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:  # pragma: no cover - cv2 always encodes a uint8 image
            raise RuntimeError(f"could not encode {name}")
        path = dest / name
        if path.is_file() and path.read_bytes() == data.tobytes():
            continue
        write_bytes_atomic(data.tobytes(), path)
    return dest
