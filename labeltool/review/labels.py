"""Labels under review: a :class:`PoseDataset` plus, when the file has them, per-keypoint teacher signals.

A COCO-WholeBody / Halpe json carries points and visibilities only. The distill table
``labels.parquet`` adds, per person and keypoint, the teacher's confidence and the source
of the point, and per part the merge outcome; the review queue and the report use them
when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.io.paths import image_path
from labeltool.io.pose import PoseDataset, load_pose_dataset
from labeltool.label_codes import FIXED_SOURCES, SOURCE_GT, SOURCE_MAPPED, SOURCE_NONE
from labeltool.layouts import WHOLEBODY133


@dataclass
class ReviewLabels:
    """People to review. ``confidence`` / ``source`` are (N, K) or None for a plain json."""

    dataset: PoseDataset
    confidence: np.ndarray | None = None  # (N, K) teacher confidence in [0, 1]; 1 for ground truth
    source: np.ndarray | None = None  # (N, K) int codes into source_names
    source_names: tuple[str, ...] = ()
    part_status: dict[str, list[str]] = field(default_factory=dict)  # part -> merge outcome per person

    @property
    def has_confidence(self) -> bool:
        return self.confidence is not None

    def is_teacher_point(self) -> np.ndarray:
        """(N, K) bool: labelled points that a teacher predicted (not copied ground truth)."""
        labelled = self.dataset.keypoints[:, :, 2] > 0
        if self.source is None or not self.source_names:
            return labelled
        fixed = {FIXED_SOURCES[c] for c in (SOURCE_NONE, SOURCE_GT, SOURCE_MAPPED)} & set(self.source_names)
        codes = [self.source_names.index(name) for name in fixed]
        return labelled & ~np.isin(self.source, codes)

    def subset(self, index: np.ndarray) -> ReviewLabels:
        index = np.asarray(index, dtype=np.int64)
        return ReviewLabels(
            dataset=self.dataset.subset(index),
            confidence=None if self.confidence is None else self.confidence[index],
            source=None if self.source is None else self.source[index],
            source_names=self.source_names,
            part_status={part: [s[i] for i in index] for part, s in self.part_status.items()},
        )


def load_labels(path: str | os.PathLike) -> ReviewLabels:
    """Read labels to review: a COCO / COCO-WholeBody / Halpe json, or the distill ``labels.parquet``."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _load_parquet_labels(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a labels json or labels.parquet")
    return ReviewLabels(dataset=load_pose_dataset(path))


def _load_parquet_labels(path: Path) -> ReviewLabels:
    """The distill table ``labels.parquet`` (read by :mod:`labeltool.labels_table`; pyarrow imported
    only here); its images are (id, file_name) pairs, sizes come from the image files."""
    from labeltool.labels_table import read_labels

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


def with_image_sizes(ds: PoseDataset, images_dir: str | os.PathLike | None) -> PoseDataset:
    """``ds`` whose image entries all have width and height (read from the image files' headers when absent).

    A width or height in the labels that is not a positive number is a :class:`UserError`
    (Label Studio's coordinates are percentages of it).
    """
    for im in ds.images:
        for key in ("width", "height"):
            v = im.get(key)
            if key in im and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e7):
                raise UserError(f"{ds.path}: image id {im['id']}: '{key}' must be a positive number, got {v!r}")
    if all("width" in im and "height" in im for im in ds.images):
        return ds
    if images_dir is None:
        raise UserError(f"{ds.path}: image sizes are not in the labels; give the image folder with --images")
    from labeltool.images import image_size

    images = []
    for im in ds.images:
        if "width" not in im or "height" not in im:
            file = image_path(images_dir, im)
            if not file.is_file():
                raise UserError(f"{file}: image file not found (image id {im['id']} in {ds.path})")
            width, height = image_size(file)  # the raw pixel frame, as every reader in wbt sees it
            im = {**im, "width": int(width), "height": int(height)}
        images.append(im)
    return replace(ds, images=images)
