"""What a run labels: the images with persons to label, sorted by id, cut into shards, and their tasks.

The input's :class:`~labeltool.distill.body.BodySource` says which persons and images
need the teachers and what each :class:`~labeltool.distill.body.ImageTask` holds; the plan
only orders, limits and chunks. Tasks are generated lazily, one shard at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltool.distill.body import ImageTask
from labeltool.distill.inputs import DistillInput
from labeltool.distill.shards import chunk
from labeltool.io.paths import resolve_inside


@dataclass
class Plan:
    """The images to label (sorted ids) cut into shards, and the images the output keeps."""

    chunks: list[list[int]]
    keep_image_ids: set[int]
    tasks_of: Callable[[list[int]], Iterator[ImageTask]]
    path_of: Callable[[int], Path | None]  # an image's file (None: its name leaves the image folder, never read)

    @property
    def num_images(self) -> int:
        return sum(len(c) for c in self.chunks)


def make_plan(inp: DistillInput, limit: int | None, shard_size: int) -> Plan:
    """Images with persons to label, sorted by id, first ``limit`` (the output then keeps only those)."""
    ds = inp.dataset
    work_ids = inp.body.image_ids_to_label(ds)
    if limit is not None:
        work_ids = work_ids[:limit]
        keep = set(work_ids)
    else:
        keep = {int(im["id"]) for im in ds.images}
    index = ds.image_index()
    persons = ds.persons_by_image()
    to_label = inp.persons_to_label()
    none = np.zeros(0, dtype=np.int64)

    def path_of(image_id: int) -> Path | None:
        image = index.get(image_id)
        return resolve_inside(inp.images_dir, image["file_name"]) if image is not None else None

    def tasks_of(image_ids: list[int]) -> Iterator[ImageTask]:
        for image_id in image_ids:
            sel = persons.get(image_id, none)
            name = index[image_id]["file_name"]
            inside = path_of(image_id)  # a name outside the folder is logged, never read
            task = inp.body.task(ds, image_id, str(inside or name), sel[to_label[sel]])
            if inside is None:
                task.error = f"{name!r}: file name outside the image folder {inp.images_dir} (not read)"
            if inp.extra is not None and len(task.ann_ids):
                task.extra = inp.extra[sel[to_label[sel]]]
            yield task

    return Plan(chunk(work_ids, shard_size), keep, tasks_of, path_of)
