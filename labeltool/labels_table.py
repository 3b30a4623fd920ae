"""``labels.parquet``, distill's per-person table: its schema, its writer and its one reader.

One row per person, in the COCO-WholeBody-133 layout. Schema version
:data:`SCHEMA_VERSION` (stored in the file metadata under ``wbt_labels_version``):

| column | type | meaning |
|---|---|---|
| ann_id, image_id, category_id | int64 | COCO ids |
| file_name | string | the image, relative to the image folder |
| iscrowd | int8 | COCO crowd flag |
| bbox | 4 x float64 | person box x, y, w, h |
| area | float64 | COCO area |
| distilled | bool | the teachers ran on this person (False: crowd, no body points, image failed) |
| keypoints | 399 x float64 | 133 x (x, y, v) flattened, the values of wholebody133.json |
| confidence | 133 x float32 | per point: 1 ground truth, the teacher's own, 0 none |
| source | 133 x int8 | per point: an index into the metadata list ``wbt_sources`` |
| foot_valid ... righthand_valid | bool | the part has a labelled point |
| face_box, lefthand_box, righthand_box | 4 x float64 | part boxes x, y, w, h (zeros when invalid) |
| foot_status ... righthand_status | string | the merge outcome of the part (``labeltool.label_codes.PART_STATUSES``) |
| extra_keypoints | list of float64 | E x (x, y, v): the input dataset's points COCO-WholeBody lacks (head top, neck, ...), ground truth as read; names in the metadata list ``wbt_extra_points`` (version 2) |

Version 1 files (no ``extra_keypoints``) are read with no extra points.

Every reader (review, report, queue, the student) goes through :func:`read_labels`, which
refuses a file that is not parquet, of another schema version, or whose columns differ,
in one line naming the file. Fixed-size list columns are written and read by
:func:`fixed_list_array` / :func:`column_array` (distill's shard files use them too).
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from labeltool.errors import UserError
from labeltool.io.atomic import AtomicFile, write_errors_name
from labeltool.label_codes import MERGED_PARTS
from labeltool.layouts import WHOLEBODY133, WHOLEBODY_BOX_KEYS

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 2 added extra_keypoints / wbt_extra_points
VERSION_KEY = b"wbt_labels_version"
SOURCES_KEY = b"wbt_sources"
EXTRA_NAMES_KEY = b"wbt_extra_points"
PARTS = MERGED_PARTS  # foot, face, lefthand, righthand: the parts with a _valid and a _status column
BOX_KEYS = tuple(WHOLEBODY_BOX_KEYS.values())
NUM_KEYPOINTS = WHOLEBODY133.num_keypoints
PARQUET_MAGIC = b"PAR1"


def _box() -> pa.DataType:
    return pa.list_(pa.float64(), 4)


COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("ann_id", pa.int64()),
    ("image_id", pa.int64()),
    ("file_name", pa.string()),
    ("category_id", pa.int64()),
    ("iscrowd", pa.int8()),
    ("bbox", _box()),
    ("area", pa.float64()),
    ("distilled", pa.bool_()),
    ("keypoints", pa.list_(pa.float64(), NUM_KEYPOINTS * 3)),
    ("confidence", pa.list_(pa.float32(), NUM_KEYPOINTS)),
    ("source", pa.list_(pa.int8(), NUM_KEYPOINTS)),
    *((f"{p}_valid", pa.bool_()) for p in PARTS),
    *((key, _box()) for key in BOX_KEYS),
    *((f"{p}_status", pa.string()) for p in PARTS),
    ("extra_keypoints", pa.list_(pa.float64())),
)
V1_COLUMNS = COLUMNS[:-1]


def labels_schema(source_names: list[str] | tuple[str, ...], extra_names: tuple[str, ...] = ()) -> pa.Schema:
    """The arrow schema of labels.parquet, with the version, the source and the extra point names in its metadata."""
    meta = {
        SOURCES_KEY: orjson.dumps(list(source_names)),
        EXTRA_NAMES_KEY: orjson.dumps(list(extra_names)),
        b"wbt_layout": b"coco_wholebody133: keypoints is 133 x (x, y, v) flattened; source indexes wbt_sources",
        VERSION_KEY: str(SCHEMA_VERSION).encode(),
    }
    return pa.schema(list(COLUMNS), metadata=meta)


@dataclass
class LabelsTable:
    """The rows of labels.parquet as numpy arrays (N persons, 133 points)."""

    ann_ids: np.ndarray  # (N,) int64
    image_ids: np.ndarray  # (N,) int64
    file_names: list[str]
    category_ids: np.ndarray  # (N,) int64
    iscrowd: np.ndarray  # (N,) int8
    bboxes: np.ndarray  # (N, 4) float64
    areas: np.ndarray  # (N,) float64
    distilled: np.ndarray  # (N,) bool
    keypoints: np.ndarray  # (N, 133, 3) float64
    confidence: np.ndarray  # (N, 133) float32
    source: np.ndarray  # (N, 133) int8, codes into source_names
    valid: dict[str, np.ndarray]  # part -> (N,) bool
    part_boxes: dict[str, np.ndarray]  # face_box / lefthand_box / righthand_box -> (N, 4) float64
    status: dict[str, list[str]]  # part -> merge outcome per person
    source_names: tuple[str, ...] = ()
    extra_keypoints: np.ndarray | None = None  # (N, E, 3) the input dataset's extra points; None: E = 0
    extra_names: tuple[str, ...] = ()

    def extra(self) -> np.ndarray:
        """(N, E, 3) extra points (E = len(extra_names), 0 when there are none)."""
        if self.extra_keypoints is None:
            return np.zeros((len(self), len(self.extra_names), 3))
        return np.asarray(self.extra_keypoints, dtype=np.float64).reshape(len(self), len(self.extra_names), 3)

    def __len__(self) -> int:
        return len(self.ann_ids)

    def to_arrow(self) -> pa.Table:
        """The rows as an arrow table of :func:`labels_schema`."""
        n = len(self)
        columns = {
            "ann_id": pa.array(np.asarray(self.ann_ids, dtype=np.int64)),
            "image_id": pa.array(np.asarray(self.image_ids, dtype=np.int64)),
            "file_name": pa.array(list(self.file_names), type=pa.string()),
            "category_id": pa.array(np.asarray(self.category_ids, dtype=np.int64)),
            "iscrowd": pa.array(np.asarray(self.iscrowd, dtype=np.int8)),
            "bbox": fixed_list_array(np.asarray(self.bboxes, dtype=np.float64).reshape(n, 4), 4, pa.float64()),
            "area": pa.array(np.asarray(self.areas, dtype=np.float64)),
            "distilled": pa.array(np.asarray(self.distilled, dtype=bool), type=pa.bool_()),
            "keypoints": fixed_list_array(self.keypoints, NUM_KEYPOINTS * 3, pa.float64()),
            "confidence": fixed_list_array(self.confidence, NUM_KEYPOINTS, pa.float32()),
            "source": fixed_list_array(self.source, NUM_KEYPOINTS, pa.int8()),
        }
        for p in PARTS:
            columns[f"{p}_valid"] = pa.array(np.asarray(self.valid[p], dtype=bool), type=pa.bool_())
        for key in BOX_KEYS:
            columns[key] = fixed_list_array(np.asarray(self.part_boxes[key], dtype=np.float64).reshape(n, 4), 4,
                                            pa.float64())  # fmt: skip
        for p in PARTS:
            columns[f"{p}_status"] = pa.array(list(self.status[p]), type=pa.string())
        width = 3 * len(self.extra_names)
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width, type=pa.int32())
        columns["extra_keypoints"] = pa.ListArray.from_arrays(offsets, pa.array(self.extra().reshape(-1), pa.float64()))
        return pa.table(columns, schema=labels_schema(self.source_names, self.extra_names))


# --------------------------------------------------------------------------- fixed-size list columns


def fixed_list_array(values: np.ndarray, width: int, dtype: pa.DataType) -> pa.FixedSizeListArray:
    """(N, ...) values -> a column of N fixed-size lists of ``width`` values, without a Python object per value."""
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, width)


def column_array(table: pa.Table, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Column ``name`` as an (N, *shape) array: a fixed-size list column flattened, ``shape=()`` for a plain one.

    ValueError when a row is empty or holds another number of values.
    """
    col = table.column(name).combine_chunks()
    if shape:
        if col.null_count:
            raise ValueError(f"column '{name}' has empty rows")
        col = col.flatten()
    if col.null_count:
        raise ValueError(f"column '{name}' has empty values")
    values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)
    if values.size != table.num_rows * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"column '{name}' must hold {int(np.prod(shape))} values per row")
    return values.reshape(-1, *shape)


# --------------------------------------------------------------------------- writing


class LabelsWriter:
    """Writes labels.parquet batch by batch (one row group each) to an :class:`AtomicFile`, renamed on :meth:`close`."""

    def __init__(
        self, path: str | os.PathLike, source_names: list[str] | tuple[str, ...], extra_names: tuple[str, ...] = ()
    ):
        self.path = Path(path)
        self.source_names = tuple(source_names)
        self.extra_names = tuple(extra_names)
        with write_errors_name(self.path):  # a full disk names the output, not the temp file
            self.target = AtomicFile(self.path)
            try:
                self.writer = pq.ParquetWriter(self.target.tmp, labels_schema(self.source_names, self.extra_names))
            except BaseException:
                self.target.abort()
                raise

    def write(self, rows: LabelsTable) -> None:
        with write_errors_name(self.path):
            self.writer.write_table(rows.to_arrow())

    def finish(self) -> None:
        """Close the temp file; :meth:`AtomicFile.commit` of ``target`` then renames it."""
        with write_errors_name(self.path):
            try:
                self.writer.close()
            except BaseException:
                self.target.abort()
                raise

    def close(self) -> None:
        self.finish()
        with write_errors_name(self.path):
            self.target.commit()

    def abort(self) -> None:
        """Drop the temp file (after an error); the previous file at ``path``, if any, stays."""
        with suppress(Exception):  # the error that made us abort is the one to report
            self.writer.close()
        self.target.abort()


def write_labels(rows: LabelsTable, path: str | os.PathLike) -> None:
    """Write a whole table at once (tests, small tools); distill streams through :class:`LabelsWriter`."""
    writer = LabelsWriter(path, rows.source_names, rows.extra_names)
    try:
        writer.write(rows)
    except BaseException:
        writer.abort()
        raise
    writer.close()


# --------------------------------------------------------------------------- reading


def _check_schema(path: Path, schema: pa.Schema) -> int:
    """The file's schema version, after checking its columns; a :class:`UserError` for anything else."""
    meta = schema.metadata or {}
    version = meta.get(VERSION_KEY)
    if version is None:
        raise UserError(
            f"{path}: not a wbt labels table (no '{VERSION_KEY.decode()}' in its metadata); "
            f"expected the labels.parquet of wbt distill (schema version {SCHEMA_VERSION})"
        )
    readable = {str(v).encode(): v for v in READABLE_VERSIONS}
    if version not in readable:
        raise UserError(
            f"{path}: labels table schema version {version.decode(errors='replace')}, this wbt reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; re-run wbt distill with this version or use the wbt that wrote it"
        )
    number = readable[version]
    for name, dtype in COLUMNS if number >= 2 else V1_COLUMNS:
        if name not in schema.names:
            raise UserError(f"{path}: missing column '{name}' (labels table schema version {number})")
        if not schema.field(name).type.equals(dtype):
            raise UserError(
                f"{path}: column '{name}' is {schema.field(name).type}, expected {dtype} "
                f"(labels table schema version {number})"
            )
    return number


def read_labels(path: str | os.PathLike) -> LabelsTable:
    """Read a labels.parquet; one-line :class:`UserError` for a missing, non-parquet or other-version file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found" if not path.exists() else f"{path}: not a regular file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != PARQUET_MAGIC:
        raise UserError(f"{path}: not a readable parquet file (it does not start with PAR1); expected the "
                        "labels.parquet of wbt distill")  # fmt: skip
    try:
        version = _check_schema(path, pq.read_schema(path))
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{path}: not a readable parquet file ({err})") from None
    try:
        meta = table.schema.metadata
        source_names = tuple(json.loads(meta[SOURCES_KEY])) if SOURCES_KEY in meta else ()
        extra_names = tuple(json.loads(meta[EXTRA_NAMES_KEY])) if version >= 2 else ()
        extra = None  # no extra points (version 1, or an input without any)
        if version >= 2 and extra_names:
            extra = column_array(table, "extra_keypoints", (len(extra_names), 3), np.float64)
        return LabelsTable(
            ann_ids=column_array(table, "ann_id", (), np.int64),
            image_ids=column_array(table, "image_id", (), np.int64),
            file_names=[str(s) for s in table.column("file_name").to_pylist()],
            category_ids=column_array(table, "category_id", (), np.int64),
            iscrowd=column_array(table, "iscrowd", (), np.int8),
            bboxes=column_array(table, "bbox", (4,), np.float64),
            areas=column_array(table, "area", (), np.float64),
            distilled=column_array(table, "distilled", (), bool),
            keypoints=column_array(table, "keypoints", (NUM_KEYPOINTS, 3), np.float64),
            confidence=column_array(table, "confidence", (NUM_KEYPOINTS,), np.float32),
            source=column_array(table, "source", (NUM_KEYPOINTS,), np.int8),
            valid={p: column_array(table, f"{p}_valid", (), bool) for p in PARTS},
            part_boxes={key: column_array(table, key, (4,), np.float64) for key in BOX_KEYS},
            status={p: [str(s) for s in table.column(f"{p}_status").to_pylist()] for p in PARTS},
            source_names=source_names,
            extra_keypoints=extra,
            extra_names=extra_names,
        )
    except (ValueError, TypeError, pa.ArrowException) as err:  # nulls, bad metadata json
        raise UserError(f"{path}: not a valid labels table ({err})") from None
