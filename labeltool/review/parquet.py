"""Read the distill table ``labels.parquet`` (one row per person) into :class:`ReviewLabels`.

Columns written by ``wbt distill`` (labeltool/merge/assemble.py, run by labeltool/distill): ann_id, image_id, file_name,
category_id, iscrowd, bbox (4), area, keypoints (133 x 3 flattened), confidence (133),
source (133, codes into the schema metadata ``wbt_sources``), ``<part>_valid``, the part
boxes and ``<part>_status`` for foot, face, lefthand and righthand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from labeltool.coco import PoseDataset
from labeltool.errors import UserError
from labeltool.layouts import WHOLEBODY133
from labeltool.review.labels import ReviewLabels

REQUIRED_COLUMNS = ("ann_id", "image_id", "file_name", "bbox", "keypoints")
STATUS_PARTS = ("foot", "face", "lefthand", "righthand")


def _fixed(table, name: str, width: int, path: Path) -> np.ndarray:
    column = table.column(name).combine_chunks()
    values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    if values.size != len(table) * width:
        raise UserError(f"{path}: column '{name}' must hold {width} values per row")
    return values.reshape(len(table), width)


def load_parquet_labels(path: str | os.PathLike) -> ReviewLabels:
    """Load ``labels.parquet``; its images are (id, file_name) pairs, sizes come from the image files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{path}: not a readable parquet file ({err})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (expected the labels.parquet of wbt distill)")
    n = len(table)
    keypoints = _fixed(table, "keypoints", 399, path).reshape(n, 133, 3)
    bboxes = _fixed(table, "bbox", 4, path)
    ann_ids = np.asarray(table.column("ann_id").to_numpy(), dtype=np.int64)
    image_ids = np.asarray(table.column("image_id").to_numpy(), dtype=np.int64)
    file_names = table.column("file_name").to_pylist()

    def column(name: str, default, dtype):
        if name in table.column_names:
            return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)
        return np.full(n, default, dtype=dtype)

    images: dict[int, dict] = {}
    for image_id, file_name in zip(image_ids.tolist(), file_names):
        images.setdefault(image_id, {"id": image_id, "file_name": file_name})
    annotations = []
    for i in range(n):
        ann = {}
        for key in ("face_box", "lefthand_box", "righthand_box"):
            if key in table.column_names:
                ann[key] = [float(v) for v in table.column(key)[i].as_py()]
        annotations.append(ann)
    areas = column("area", np.nan, np.float64)
    areas = np.where(np.isnan(areas), bboxes[:, 2] * bboxes[:, 3], areas)
    ds = PoseDataset(
        layout=WHOLEBODY133,
        keypoints=keypoints,
        ann_ids=ann_ids,
        image_ids=image_ids,
        category_ids=column("category_id", 1, np.int64),
        bboxes=bboxes,
        areas=areas,
        iscrowd=column("iscrowd", 0, np.int64),
        annotations=annotations,
        images=sorted(images.values(), key=lambda im: im["id"]),
        categories=[],
        path=str(path),
    )
    meta = table.schema.metadata or {}
    sources = tuple(json.loads(meta[b"wbt_sources"])) if b"wbt_sources" in meta else ()
    confidence = _fixed(table, "confidence", 133, path) if "confidence" in table.column_names else None
    source = None
    if "source" in table.column_names:
        source = _fixed(table, "source", 133, path).astype(np.int64)
    status = {}
    for part in STATUS_PARTS:
        if f"{part}_status" in table.column_names:
            status[part] = [str(s) for s in table.column(f"{part}_status").to_pylist()]
    return ReviewLabels(dataset=ds, confidence=confidence, source=source, source_names=sources, part_status=status)
