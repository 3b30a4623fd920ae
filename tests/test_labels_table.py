"""labels.parquet: one schema (with a version), one writer, one reader for review, report, queue and the student."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.errors import UserError
from labeltool.io.pose import load_pose_dataset
from labeltool.labels_table import COLUMNS, SCHEMA_VERSION, read_labels, write_labels
from labeltool.layouts import HALPE136, WHOLEBODY133


@pytest.fixture(scope="module")
def real(realdata):
    return load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")


@pytest.fixture()
def labels_path(real, tmp_path, labels_table_of):
    rng = np.random.default_rng(0)
    conf = np.where(real.keypoints[:, :, 2] > 0, rng.uniform(0.1, 1, real.keypoints.shape[:2]), 0).astype(np.float32)
    path = tmp_path / "labels.parquet"
    write_labels(labels_table_of(real, conf, source_names=("none", "gt", "derived", "face:x")), path)
    return path


def test_round_trip_and_schema(real, labels_path):
    schema = pq.read_schema(labels_path)
    assert schema.metadata[b"wbt_labels_version"] == str(SCHEMA_VERSION).encode() == b"2"
    assert [(f.name, f.type) for f in schema] == list(COLUMNS)
    table = read_labels(labels_path)
    np.testing.assert_array_equal(table.keypoints, real.keypoints)
    np.testing.assert_array_equal(table.bboxes, real.bboxes)
    np.testing.assert_array_equal(table.ann_ids, real.ann_ids)
    assert table.source_names == ("none", "gt", "derived", "face:x")
    assert table.confidence.dtype == np.float32 and table.source.dtype == np.int8
    assert table.valid["face"].sum() == 4 and table.status["foot"] == ["accepted"] * len(real)


def test_extra_points_round_trip_and_version_1_files_still_read(real, tmp_path, labels_table_of):
    """Version 2 keeps the input dataset's extra points (names in the metadata); a version 1 file reads with none."""
    rows = labels_table_of(real)
    extra = np.random.default_rng(1).uniform(0, 500, (len(real), 2, 3))
    rows.extra_keypoints, rows.extra_names = extra, ("top_head", "neck")
    path = tmp_path / "v2.parquet"
    write_labels(rows, path)
    back = read_labels(path)
    assert back.extra_names == ("top_head", "neck")
    np.testing.assert_array_equal(back.extra(), extra)
    np.testing.assert_array_equal(back.keypoints, real.keypoints)
    # a version 1 file: the same columns without extra_keypoints
    table = pq.read_table(path).drop(["extra_keypoints"])
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"wbt_extra_points"}
    v1 = _rewrite(path, tmp_path / "v1.parquet", table=table.replace_schema_metadata({**meta, b"wbt_labels_version": b"1"}))
    old = read_labels(v1)
    assert old.extra_names == () and old.extra().shape == (len(real), 0, 3)
    np.testing.assert_array_equal(old.keypoints, real.keypoints)


def test_review_and_student_read_the_same_values(realdata, labels_path):
    """The two readers that used to disagree now share one: same points, same confidences."""
    from labeltool.review.labels import load_labels
    from labeltool.student.data import load_parquet_source

    review = load_labels(labels_path)
    student = load_parquet_source(labels_path, realdata / "coco_wholebody", WHOLEBODY133, face_weight=0.5)
    rows = [int(np.nonzero(review.dataset.ann_ids == a)[0][0]) for a in student.ann_ids]
    np.testing.assert_allclose(student.keypoints, review.dataset.keypoints[rows, :, :2], rtol=0, atol=1e-4)
    face = WHOLEBODY133.parts["face"]
    expected = review.confidence[rows].astype(np.float32)
    expected[:, face] *= 0.5
    np.testing.assert_array_equal(student.weights, expected)
    h136 = load_parquet_source(labels_path, realdata / "coco_wholebody", HALPE136)  # the one 133 -> 136
    assert (h136.weights[:, HALPE136.index("head")] == 0).all() and (h136.weights[:, HALPE136.index("neck")] > 0).any()


def _rewrite(path, out, metadata=None, table=None):
    table = pq.read_table(path) if table is None else table
    if metadata is not None:
        table = table.replace_schema_metadata({**table.schema.metadata, **metadata})
    pq.write_table(table, out)
    return out


def _write(out, data: bytes):
    out.write_bytes(data)
    return out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, out: _rewrite(p, out, {b"wbt_labels_version": b"3"}),
         "labels table schema version 3, this wbt reads versions 1, 2"),
        (lambda p, out: _rewrite(p, out, table=pq.read_table(p).replace_schema_metadata({})),
         "not a wbt labels table (no 'wbt_labels_version' in its metadata)"),
        (lambda p, out: _rewrite(p, out, table=pq.read_table(p).drop(["confidence"])),
         "missing column 'confidence' (labels table schema version 2)"),
        (lambda p, out: _rewrite(p, out, table=pq.read_table(p).set_column(
            1, "image_id", pa.array(np.zeros(14), type=pa.float64()))),
         "column 'image_id' is double, expected int64"),
        (lambda p, out: _write(out, b'{"images": []}'), "not a readable parquet file (it does not start with PAR1)"),
        (lambda p, out: _write(out, p.read_bytes()[:300]), "not a readable parquet file"),
    ],
    ids=["other-version", "no-version", "missing-column", "column-type", "json", "truncated"],
)  # fmt: skip
def test_bad_files_are_one_line_errors_in_every_reader(realdata, labels_path, make, message):
    bad = make(labels_path, labels_path.parent / "bad.parquet")
    with pytest.raises(UserError) as err:
        read_labels(bad)
    assert str(err.value).startswith(f"{bad}: ") and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    from labeltool.student.data import load_parquet_source

    with pytest.raises(UserError) as err2:
        load_parquet_source(bad, realdata / "coco_wholebody", WHOLEBODY133)
    assert str(err2.value) == str(err.value)
    for args in (["review", "queue", str(bad)], ["report", str(bad), "--images", str(realdata), "--out",
                                                 str(bad.parent / "r.html")]):  # fmt: skip
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and r.stderr == f"wbt: error: {err.value}\n", r.output
        assert not (bad.parent / "r.html").exists()
