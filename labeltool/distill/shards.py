"""Resumable results: one parquet shard per fixed chunk of images, written atomically.

The images to label are sorted by id and cut into chunks of ``shard_size``; shard k holds
the labelled persons of chunk k (one row each) and, in its metadata, each image's size
and error. A shard is written to a temporary name and renamed, so it is either complete or
absent: a run killed at any moment and started again redoes only the absent shards, and
the assembled output is identical to an uninterrupted run. ``run.json`` records what the
shards were made from; a re-run with another input or other options is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labeltool.errors import UserError
from labeltool.io.atomic import write_bytes_atomic, write_json_atomic
from labeltool.io.jsonfile import read_json
from labeltool.label_codes import MERGED_PARTS
from labeltool.labels_table import column_array, fixed_list_array
from labeltool.merge.rules import MergedPersons

SHARD_DIR = "shards"  # the folder of an output directory that holds the shards and run.json
RUN_FILE = "run.json"
SHARD_FORMAT = "shard-{:06d}.parquet"


@dataclass
class ImageResult:
    """What the work on one image produced: its size, its labelled persons, or an error."""

    image_id: int
    height: int = 0
    width: int = 0
    error: str | None = None
    digest: str | None = None  # sha256 of the image file's bytes (None: not read)
    ann_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bboxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # x y w h
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: MergedPersons = field(default_factory=lambda: MergedPersons.empty(0))
    teacher_seconds: float = 0.0  # time inside the teachers' predict calls
    part_seconds: dict[str, float] = field(default_factory=dict)  # the same, per teacher (body, face, hand, foot)
    seconds: float = 0.0  # whole work function (decode, proposals, teachers, merge)

    @property
    def num_persons(self) -> int:
        return len(self.ann_ids)


def shard_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / SHARD_FORMAT.format(index)


def chunk(image_ids: list[int], shard_size: int) -> list[list[int]]:
    """The images of each shard: sorted ids cut into chunks of ``shard_size``."""
    ids = sorted(image_ids)
    return [ids[i : i + shard_size] for i in range(0, len(ids), shard_size)]


def check_run(shard_dir: Path, run: dict, overwrite: bool) -> None:
    """Start or resume the run described by ``run`` in ``shard_dir``.

    A directory holding shards of a different run is refused (one line naming what
    differs) unless ``overwrite``, which deletes them.
    """
    path = shard_dir / RUN_FILE
    run = json.loads(json.dumps(run))  # as it reads back from disk
    if shard_dir.is_dir():
        for stale in shard_dir.glob(".shard-*.tmp"):  # left by a killed run; never renamed, never read
            stale.unlink()
    if path.exists() and not overwrite:
        old = read_json(path)
        if old != run:
            diff = sorted(k for k in set(old) | set(run) if old.get(k) != run.get(k))
            raise UserError(
                f"{path}: this output directory holds a run with different {', '.join(diff)}; "
                "use another --out, the same options, or --overwrite to start again"
            )
        return
    if shard_dir.exists():
        for p in shard_dir.iterdir():
            if p.name.startswith("shard-") or p.name.startswith(".shard-") or p.name == RUN_FILE:
                p.unlink()
    shard_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run, path)


# ------------------------------------------------------------------ what the labels depend on (resume)

DIGESTS_KEY = "input_digests"  # run.json: sha256 of the input files (annotations, boxes) the shards were made from


def check_input_digests(shard_dir: Path, digests: dict[str, dict], overwrite: bool) -> None:
    """Refuse to resume when an input file's content changed since the shards were made (one line naming it).

    ``digests``: option -> {"path", "sha256"}. An annotation edited keeping its size and
    modification time would otherwise resume with labels from both versions.
    """
    path = shard_dir / RUN_FILE
    if overwrite or not path.exists():
        return
    old = read_json(path)
    old = old.get(DIGESTS_KEY) if isinstance(old, dict) else None
    if not isinstance(old, dict):
        return  # a run.json without digests: the run record's own comparison decides
    for option, record in digests.items():
        was = old.get(option)
        if isinstance(was, dict) and was.get("sha256") != record["sha256"]:
            raise UserError(
                f"{record['path']}: {option} changed since the shards in {shard_dir} were made from it (sha256 "
                "differs); restore it, or use --overwrite to label everything again"
            )


def check_shard_images(shard_dir: Path, done: list[int], path_of, threads: int = 8) -> dict[int, ShardMeta]:
    """Refuse to resume when an image a finished shard labelled was replaced, removed or added since.

    Each shard's footer holds the sha256 of every image it read (None: not read); the files are
    hashed again (threads: hashlib releases the GIL) and the first difference is one line naming
    the image. ``path_of(image_id)``: the image file, None for a name outside the image folder.
    Returns the footers read (shard -> :class:`ShardMeta`), so the statistics need not read them again.
    """
    from concurrent.futures import ThreadPoolExecutor

    from labeltool.digests import file_digest

    metas = {k: read_shard_meta(shard_path(shard_dir, k)) for k in done}
    wanted = []  # (shard, image id, path, digest the shard recorded)
    for k, meta in metas.items():
        for im in meta.images:
            if "digest" in im:  # shards of an older wbt have none (their run.json differs anyway)
                wanted.append((k, im["id"], path_of(im["id"]), im["digest"]))
    if not wanted:
        return metas
    with ThreadPoolExecutor(max(1, threads)) as pool:
        now = pool.map(lambda w: file_digest(w[2]) if w[2] is not None else None, wanted, chunksize=16)
        for (k, image_id, path, was), digest in zip(wanted, now):
            if digest != was:
                what = "is gone or unreadable" if digest is None else "was not readable then" if was is None else (
                    "was replaced (sha256 differs)"
                )  # fmt: skip
                raise UserError(
                    f"{path}: image id {image_id} {what} since {shard_path(shard_dir, k).name} labelled it; "
                    "restore it, or use --overwrite to label everything again"
                )
    return metas


def results_table(results: list[ImageResult]) -> pa.Table:
    """One row per labelled person of ``results`` (the shard's table)."""
    rows = [r for r in results if r.num_persons]
    n = sum(r.num_persons for r in rows)

    def cat(get, shape, dtype):
        return np.concatenate([get(r) for r in rows]) if rows else np.zeros((0, *shape), dtype=dtype)

    image_ids = np.concatenate([np.full(r.num_persons, r.image_id, dtype=np.int64) for r in rows]) if rows else []
    columns = {
        "ann_id": pa.array(cat(lambda r: r.ann_ids, (), np.int64), type=pa.int64()),
        "image_id": pa.array(np.asarray(image_ids, dtype=np.int64), type=pa.int64()),
        "bbox": fixed_list_array(cat(lambda r: r.bboxes, (4,), np.float64), 4, pa.float64()),
        "area": pa.array(cat(lambda r: r.areas, (), np.float64), type=pa.float64()),
        "keypoints": fixed_list_array(cat(lambda r: r.labels.keypoints, (133, 3), np.float64), 399, pa.float64()),
        "confidence": fixed_list_array(cat(lambda r: r.labels.confidence, (133,), np.float32), 133, pa.float32()),
        "source": fixed_list_array(cat(lambda r: r.labels.source, (133,), np.int8), 133, pa.int8()),
    }
    for part in MERGED_PARTS:
        status = [s for r in rows for s in r.labels.status[part]]
        columns[f"{part}_status"] = pa.array(status, type=pa.string())
    assert all(len(c) == n for c in columns.values())
    return pa.table(columns)


def write_shard(shard_dir: Path, index: int, results: list[ImageResult]) -> Path:
    """Write shard ``index`` (temp file, fsync, rename): person rows + per-image metadata."""
    table = results_table(results)
    images = [
        {"id": r.image_id, "height": r.height, "width": r.width, "error": r.error, "digest": r.digest} for r in results
    ]
    timing = {
        "images": len(results),
        "persons": int(sum(r.num_persons for r in results)),
        "teacher_seconds": float(sum(r.teacher_seconds for r in results)),
        "part_seconds": {
            part: float(sum(r.part_seconds.get(part, 0.0) for r in results))
            for part in dict.fromkeys(["body", "face", "hand", "foot", *(p for r in results for p in r.part_seconds)])
        },
        "work_seconds": float(sum(r.seconds for r in results)),
    }
    meta = {b"wbt_images": json.dumps(images).encode(), b"wbt_timing": json.dumps(timing).encode()}
    table = table.replace_schema_metadata(meta)
    path = shard_path(shard_dir, index)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(sink.getvalue().to_pybytes(), path)
    return path


@dataclass
class Shard:
    """A shard read back: person rows as numpy arrays, image metadata, timing."""

    ann_ids: np.ndarray
    image_ids: np.ndarray
    bboxes: np.ndarray
    areas: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray
    source: np.ndarray
    status: dict[str, np.ndarray]
    images: list[dict]
    timing: dict


@dataclass
class ShardMeta:
    """A shard's footer: each image's size and error, and the timing of its work."""

    images: list[dict]
    timing: dict


def read_shard_meta(path: Path) -> ShardMeta:
    """The metadata of a shard written by :func:`write_shard`, from its footer only (no rows)."""
    meta = pq.read_schema(path).metadata or {}
    return ShardMeta(images=json.loads(meta[b"wbt_images"]), timing=json.loads(meta[b"wbt_timing"]))


def read_shard(path: Path) -> Shard:
    """Read a shard written by :func:`write_shard`."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    return Shard(
        ann_ids=column_array(table, "ann_id", (), np.int64),
        image_ids=column_array(table, "image_id", (), np.int64),
        bboxes=column_array(table, "bbox", (4,), np.float64),
        areas=column_array(table, "area", (), np.float64),
        keypoints=column_array(table, "keypoints", (133, 3), np.float64),
        confidence=column_array(table, "confidence", (133,), np.float32),
        source=column_array(table, "source", (133,), np.int8),
        status={p: np.asarray(table.column(f"{p}_status").to_pylist(), dtype=object) for p in MERGED_PARTS},
        images=json.loads(meta[b"wbt_images"]),
        timing=json.loads(meta[b"wbt_timing"]),
    )
