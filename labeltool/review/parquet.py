"""The distill table ``labels.parquet`` as :class:`ReviewLabels` (read by :mod:`labeltool.labels_table`)."""

from __future__ import annotations

import os

import numpy as np

from labeltool.io.pose import PoseDataset
from labeltool.labels_table import read_labels
from labeltool.layouts import WHOLEBODY133
from labeltool.review.labels import ReviewLabels


def load_parquet_labels(path: str | os.PathLike) -> ReviewLabels:
    """Load ``labels.parquet``; its images are (id, file_name) pairs, sizes come from the image files."""
    table = read_labels(path)
    images: dict[int, dict] = {}
    for image_id, file_name in zip(table.image_ids.tolist(), table.file_names):
        images.setdefault(image_id, {"id": image_id, "file_name": file_name})
    annotations = [
        {key: [float(v) for v in boxes[i]] for key, boxes in table.part_boxes.items()} for i in range(len(table))
    ]
    ds = PoseDataset(
        layout=WHOLEBODY133,
        keypoints=table.keypoints,
        ann_ids=table.ann_ids,
        image_ids=table.image_ids,
        category_ids=table.category_ids,
        bboxes=table.bboxes,
        areas=table.areas,
        iscrowd=table.iscrowd.astype(np.int64),
        annotations=annotations,
        images=sorted(images.values(), key=lambda im: im["id"]),
        categories=[],
        path=str(path),
    )
    return ReviewLabels(
        dataset=ds,
        confidence=table.confidence.astype(np.float64),
        source=table.source.astype(np.int64),
        source_names=table.source_names,
        part_status=table.status,
    )
