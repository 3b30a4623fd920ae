"""Box files: COCO detection results or a COCO-style object, read by ``wbt distill --boxes`` and ``wbt teach``.

One reader for the file's structure: a list of entries ``{image_id | file_name, bbox [x, y,
w, h], ...}`` (a detector's results), or an object with ``images`` (``id`` and
``file_name`` each) and ``annotations`` holding such entries. Every structural mistake is a
one-line :class:`UserError` naming the file and the entry. What an entry's other keys mean
(``score``, ``category_id``, ``side``, ``keypoints``, ``id``) and how entries find their
image files is the caller's business.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labeltool.coco import read_json
from labeltool.errors import UserError


@dataclass
class BoxFile:
    """A box file read: the ``images`` of a COCO-style object (None for a plain list), and its entries."""

    path: Path
    images: list[dict] | None
    entries: list[dict]

    def where(self, i: int) -> str:
        """'FILE: entry i', the start of an error about entry ``i``."""
        return f"{self.path}: entry {i}"


def read_box_file(path: str | os.PathLike) -> BoxFile:
    """Read and check a box file: each entry an object with a 4-number ``bbox`` and an ``image_id`` or ``file_name``."""
    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict):
        if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
            raise UserError(f"{path}: expected a list of boxes or an object with 'images' and 'annotations'")
        images = data["images"]
        for i, im in enumerate(images):
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise UserError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        entries = data["annotations"]
    elif isinstance(data, list):
        images, entries = None, data
    else:
        raise UserError(f"{path}: expected a list of boxes or a COCO object, got {type(data).__name__}")
    boxes = BoxFile(path, images, entries)
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise UserError(f"{boxes.where(i)} is not an object")
        if "bbox" not in e:
            raise UserError(f"{boxes.where(i)} is missing required key 'bbox'")
        bbox = e["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise UserError(f"{boxes.where(i)}: 'bbox' must be 4 numbers [x, y, w, h]")
        if "image_id" not in e and "file_name" not in e:
            raise UserError(f"{boxes.where(i)} is missing required key 'image_id'")
    return boxes
