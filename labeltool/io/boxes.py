"""Box files: COCO detection results or a COCO-style object, read by ``wbt distill --boxes``, ``wbt teach``,
``wbt predict --boxes`` and ``wbt train-student``.

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

import numpy as np

from labeltool.errors import UserError
from labeltool.io.jsonfile import MAX_ABS_VALUE, is_number, read_json  # the one check of a JSON number


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
            if not _is_id(im["id"]):
                raise UserError(f"{path}: images[{i}]: 'id' must be an integer, got {im['id']!r}")
            if not isinstance(im["file_name"], str) or not im["file_name"]:
                raise UserError(f"{path}: images[{i}]: 'file_name' must be a non-empty string, got {im['file_name']!r}")
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
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(type(v) in (int, float) for v in bbox)):
            raise UserError(f"{boxes.where(i)}: 'bbox' must be 4 numbers [x, y, w, h]")
        if not all(is_number(v) for v in bbox):
            raise UserError(f"{boxes.where(i)}: 'bbox' {bbox} must be finite and within ±{MAX_ABS_VALUE:g}")
        if "image_id" not in e and "file_name" not in e:
            raise UserError(f"{boxes.where(i)} is missing required key 'image_id'")
        if "image_id" in e and not _is_id(e["image_id"]):
            raise UserError(f"{boxes.where(i)}: 'image_id' must be an integer, got {e['image_id']!r}")
        if "file_name" in e and not (isinstance(e["file_name"], str) and e["file_name"]):
            raise UserError(f"{boxes.where(i)}: 'file_name' must be a non-empty string, got {e['file_name']!r}")
        for key in ("score", "category_id"):
            if key in e and not is_number(e[key]):
                raise UserError(f"{boxes.where(i)}: '{key}' must be a number, got {e[key]!r}")
    return boxes


def person_boxes(path: str | os.PathLike, score_thr: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Person boxes of a box file by image id: (image_ids, x y w h boxes, scores), for ``wbt predict --boxes``.

    Entries with a ``category_id`` other than 1 (person), boxes scoring under ``score_thr`` (an
    absent score is 1) and empty boxes are left out; every entry needs an ``image_id``.
    """
    boxes = read_box_file(path)
    ids, xywh, scores = [], [], []
    for i, e in enumerate(boxes.entries):
        if "image_id" not in e:
            raise UserError(f"{boxes.where(i)} is missing required key 'image_id'")
        box, score = e["bbox"], e.get("score", 1.0)
        if e.get("category_id", 1) != 1 or score < score_thr or box[2] <= 0 or box[3] <= 0:
            continue
        ids.append(e["image_id"])
        xywh.append(box)
        scores.append(score)
    return (np.asarray(ids, dtype=np.int64), np.asarray(xywh, dtype=np.float64).reshape(-1, 4),
            np.asarray(scores, dtype=np.float64))


def _is_id(value) -> bool:
    """A JSON integer (not a bool, not a float, not a string) in int64."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
