"""The review queue: clean human labels raise nothing; each kind of planted error is found, on its person."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.io.pose import load_pose_dataset, write_pose_dataset
from labeltool.labels_table import write_labels
from labeltool.layouts import WHOLEBODY133
from labeltool.review.labels import ReviewLabels, load_labels
from labeltool.review.queue import QueueRules, person_suspicion, review_queue

LH, RH, FACE = (WHOLEBODY133.parts[p] for p in ("lefthand", "righthand", "face"))


@pytest.fixture()
def gt(realdata):
    return load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")


def _index(ds, ann_id):
    return list(ds.ann_ids).index(ann_id)


def test_clean_ground_truth_is_not_flagged(gt):
    """The 14 hand-labelled COCO-WholeBody persons: no false alarm."""
    assert review_queue(ReviewLabels(gt)) == []


def test_planted_errors_are_found(gt):
    kpts = gt.keypoints
    # 437295 has both hands: put its left hand at its right wrist (a left/right swap)
    a = _index(gt, 437295)
    kpts[a, LH, :2] += kpts[a, 10, :2] - kpts[a, LH[0], :2]
    # 442619's face shrunk 8 times around its centre (implausibly small for the body)
    b = _index(gt, 442619)
    centre = kpts[b, FACE, :2].mean(axis=0)
    kpts[b, FACE, :2] = centre + (kpts[b, FACE, :2] - centre) / 8
    # 460541's right hand thrown 300 px to the right, out of its box
    c = _index(gt, 460541)
    kpts[c, RH, 0] += 300
    entries = review_queue(ReviewLabels(gt))
    found = {e.ann_id: {(f.kind, f.part) for f in e.flags} for e in entries}
    assert set(found) == {437295, 442619, 460541}
    assert ("hand_side", "lefthand") in found[437295]
    assert found[442619] == {("part_size", "face")}
    assert ("outside_box", "righthand") in found[460541]
    assert all(0 < e.suspicion <= 1 for e in entries)
    assert [e.suspicion for e in entries] == sorted((e.suspicion for e in entries), reverse=True)


def test_low_confidence_needs_teacher_points(gt):
    confidence = np.ones(gt.keypoints.shape[:2])
    source = np.where(gt.keypoints[:, :, 2] > 0, 1, 0)  # 1 = gt: never suspicious
    names = ("none", "gt", "derived", "face_teacher")
    d = _index(gt, 198196)
    source[d, FACE] = 3
    confidence[d, FACE] = 0.3
    labels = ReviewLabels(gt, confidence=confidence, source=source, source_names=names)
    (entry,) = review_queue(labels, QueueRules(min_confidence=0.6))
    assert entry.ann_id == 198196 and [(f.kind, f.part) for f in entry.flags] == [("low_confidence", "face")]
    assert entry.suspicion == pytest.approx(0.5)
    # the same low values on ground-truth points raise nothing
    labels.source[d, FACE] = 1
    assert review_queue(labels) == []
    assert person_suspicion(labels).tolist() == [0.0] * len(gt)


def test_parquet_and_cli(gt, tmp_path, labels_table_of):
    """A table with the columns of wbt distill's labels.parquet, read back and queued from the command line."""
    conf = np.where(gt.keypoints[:, :, 2] > 0, 0.9, 0.0).astype(np.float32)
    src = np.where(gt.keypoints[:, :, 2] > 0, 3, 0).astype(np.int8)
    e = _index(gt, 531914)
    conf[e, RH] = np.where(gt.keypoints[e, RH, 2] > 0, 0.2, 0.0)

    path = tmp_path / "labels.parquet"
    write_labels(labels_table_of(gt, conf, src, ("none", "gt", "derived", "hand")), path)
    labels = load_labels(path)
    np.testing.assert_array_equal(labels.dataset.keypoints, gt.keypoints)
    np.testing.assert_array_equal(labels.dataset.bboxes, gt.bboxes)
    assert labels.source_names == ("none", "gt", "derived", "hand") and labels.part_status["face"][0] == "accepted"
    r = CliRunner().invoke(main, ["review", "queue", str(path), "--top", "5"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("1 of 14 persons flagged")
    assert lines[2].split()[:3] == ["1", "531914", "197388"] and "low_confidence righthand" in lines[2]
    # the same labels as json: no confidence, so nothing to flag; bad files are one-line errors
    json_path = tmp_path / "labels.json"
    write_pose_dataset(gt, json_path)
    r = CliRunner().invoke(main, ["review", "queue", str(json_path)])
    assert r.exit_code == 0 and r.output.startswith("0 of 14 persons flagged")
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    r = CliRunner().invoke(main, ["review", "queue", str(tmp_path / "bad.parquet")])
    assert r.exit_code == 2 and r.stderr.startswith(
        f"wbt: error: {tmp_path / 'bad.parquet'}: not a readable parquet file"
    )
