"""`wbt distill` on CrowdPose, AI Challenger, MPII and PoseTrack18 files made from the real COCO-WholeBody sample.

Slow: the real teachers (MediaPipe body, FaceMesh, hands, feet), built once for every run.
Checked per dataset: the COCO-17 points it has come back exactly (source ``mapped``), the ones
it lacks come from the body teacher with its source and confidence, its extra points are
in labels.parquet as written, PoseTrack's head points never become eyes, summary.json names
the dataset.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets_fixtures import COCO, NAMES, write_dataset

from labeltool.distill.inputs import from_annotations
from labeltool.distill.pipeline import distill
from labeltool.distill.teacher_choice import TeacherChoice
from labeltool.distill.work import DistillConfig
from labeltool.labels_table import read_labels

FORMATS = ("crowdpose", "aic", "mpii", "posetrack18")


@pytest.fixture(scope="module")
def runs(realdata, tmp_path_factory):
    """name -> (out dir, source COCO-WholeBody doc, input), all four runs with one set of built teachers."""
    tmp = tmp_path_factory.mktemp("dataset_runs")
    config = DistillConfig(teachers=TeacherChoice())
    teachers = config.teachers.build(body=True, threads=1)
    out = {}
    try:
        for name in FORMATS:
            ann, images, doc = write_dataset(name, realdata / "coco_wholebody", tmp / name)
            inp = from_annotations(ann, images)
            distill(inp, tmp / name / "out", config, workers=1, progress=False, teachers=teachers)
            out[name] = (tmp / name / "out", doc, inp)
    finally:
        for t in teachers:
            t.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", FORMATS)
def test_mapped_exact_missing_from_the_teacher_extra_kept(runs, name):
    out, doc, inp = runs[name]
    labels = read_labels(out / "labels.parquet")
    sources = labels.source_names
    mapped, teacher = sources.index("mapped"), sources.index("body:mediapipe")
    src_by_id = {a["id"]: np.array(a["keypoints"], dtype=np.float64).reshape(17, 3) for a in doc["annotations"]}
    names = NAMES[name]
    have = np.array([n in names for n in COCO])
    filled = 0
    assert len(labels) == len(inp.dataset)
    for i in range(len(labels)):
        # MPII persons are numbered 1..N in file order: the source person is the input's i-th
        j = int(np.nonzero(inp.dataset.ann_ids == labels.ann_ids[i])[0][0])
        gt = src_by_id[labels.ann_ids[i]] if name != "mpii" else _mpii_source(doc, j)
        kpts, src, conf = labels.keypoints[i, :17], labels.source[i, :17], labels.confidence[i, :17]
        on = gt[:, 2] > 0
        # the dataset's points: exactly its values, source 'mapped', confidence 1
        np.testing.assert_array_equal(kpts[have & on, :2], gt[have & on, :2])
        assert (src[have & on] == mapped).all() and (conf[have & on] == 1).all()
        assert not kpts[have & ~on].any()  # a point it has but left unlabelled stays so
        # the points it lacks: from the body teacher or nothing, never 'mapped'
        lacks = ~have & (kpts[:, 2] > 0)
        assert (src[lacks] == teacher).all() and ((conf[lacks] > 0) & (conf[lacks] <= 1)).all()
        filled += int(lacks.sum())
        # the extra points as the dataset file has them
        np.testing.assert_array_equal(labels.extra()[i], inp.extra[j])
    assert filled >= 10, filled  # measured: 50 (14-point sets), 22 (PoseTrack: eyes only)
    assert labels.extra_names == tuple(n for n in names if n not in COCO)
    assert (labels.extra()[:, :, 2] > 0).sum() >= 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["format"] == name and summary["input"]["format"] == name
    assert "body:mediapipe" in summary["models"] and "from the body teacher" in summary["body_from"]
    # faces, hands and feet are distilled as for a COCO input (measured on these files: faces 5-7 of 10-12)
    assert summary["parts"]["face"]["accepted"] >= 4 and summary["parts"]["foot"]["accepted"] >= 6


def _mpii_source(doc: dict, j: int) -> np.ndarray:
    persons = [a for a in doc["annotations"] if not a["iscrowd"]]
    return np.array(persons[j]["keypoints"], dtype=np.float64).reshape(17, 3)


@pytest.mark.slow
def test_posetrack_head_points_are_not_eyes_in_the_outputs(runs):
    out, doc, inp = runs["posetrack18"]
    labels = read_labels(out / "labels.parquet")
    eyes = labels.keypoints[:, 1:3]
    head = labels.extra()  # head_bottom, head_top
    for i in range(len(labels)):
        for e in range(2):
            for h in range(2):
                if eyes[i, e, 2] > 0 and head[i, h, 2] > 0:
                    assert not np.allclose(eyes[i, e, :2], head[i, h, :2])
    assert (labels.source[:, 1:3][eyes[:, :, 2] > 0] == labels.source_names.index("body:mediapipe")).all()
    wb = json.loads((out / "wholebody133.json").read_text())
    assert {im["file_name"] for im in wb["images"]} == {im["file_name"] for im in inp.dataset.images}
    assert all("vid_id" in im and "ignore_regions_x" in im for im in wb["images"])
