"""Known answers for ``compute_oks`` and ``evaluate`` (hand-computed cases), and its Python API."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from labeltool.errors import UserError
from labeltool.eval import STAT_NAMES, compute_oks, evaluate, predictions_from_arrays
from labeltool.eval.oks import keypoint_vars
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import COCO17, HALPE136, WHOLEBODY133, WHOLEBODY_KPT_KEYS

# --------------------------------------------------------------------------- compute_oks


def test_oks_one_point_known_value():
    # e = d^2 / (2 sigma)^2 / area / 2 = 4 / 0.04 / 100 / 2 = 0.5
    gt = np.array([[10.0, 20.0, 2.0]])
    pred = np.array([[12.0, 20.0]])
    oks = compute_oks(pred, gt, 100.0, np.array([0.1]))
    assert oks == pytest.approx(math.exp(-0.5), abs=1e-15)


def test_oks_counts_only_labelled_points_and_float_visibility():
    sig = np.array([0.1, 0.1, 0.1])
    gt = np.array([[0.0, 0.0, 2.0], [5.0, 5.0, 0.3], [50.0, 50.0, 0.0]])
    pred = np.array([[0.0, 0.0], [7.0, 5.0], [500.0, 500.0]])  # the unlabelled point is far away
    expected = (1.0 + math.exp(-0.5)) / 2
    assert compute_oks(pred, gt, 100.0, sig) == pytest.approx(expected, abs=1e-15)


def test_oks_unlabelled_reference_uses_grown_box():
    sig = np.array([0.1, 0.1])
    gt = np.zeros((2, 3))  # nothing labelled
    box = np.array([10.0, 10.0, 10.0, 20.0])  # grown: x in [0, 30], y in [-10, 50]
    inside = np.array([[0.0, 0.0], [30.0, 50.0]])
    assert compute_oks(inside, gt, 100.0, sig, box) == pytest.approx(1.0)
    outside = np.array([[40.0, 0.0], [0.0, 52.0]])  # 10 px right of the box, 2 px below it
    expected = (math.exp(-100 / 0.04 / 100 / 2) + math.exp(-4 / 0.04 / 100 / 2)) / 2
    assert compute_oks(outside, gt, 100.0, sig, box) == pytest.approx(expected, abs=1e-15)
    assert compute_oks(outside, gt, 100.0, sig) == 0.0  # no box: nothing to compare with


def test_oks_broadcasts_to_a_matrix_equal_to_pairs():
    rng = np.random.default_rng(0)
    sig = WHOLEBODY133.sigmas[WHOLEBODY133.parts["face"]]
    pred = rng.uniform(0, 50, (4, 68, 3))
    gt = np.concatenate([rng.uniform(0, 50, (3, 68, 2)), rng.integers(0, 3, (3, 68, 1))], axis=2)
    gt[1, :, 2] = 0  # one reference without labels
    areas = np.array([900.0, 400.0, 2500.0])
    boxes = np.array([[0, 0, 30, 30], [10, 10, 20, 20], [0, 0, 50, 50]], dtype=float)
    matrix = compute_oks(pred[:, None], gt[None], areas[None], sig, boxes[None])
    assert matrix.shape == (4, 3)
    for d in range(4):
        for g in range(3):
            assert matrix[d, g] == pytest.approx(compute_oks(pred[d], gt[g], areas[g], sig, boxes[g]), abs=1e-15)
    assert ((matrix > 0) & (matrix <= 1)).all()


def test_float32_sigmas_are_rounded_like_mmpose():
    sig = WHOLEBODY133.sigmas
    v64, v32 = keypoint_vars(sig), keypoint_vars(sig, float32=True)
    assert v32.dtype == np.float64
    np.testing.assert_array_equal(v32, ((sig.astype(np.float32) * 2) ** 2).astype(np.float64))
    assert 0 < np.abs(v32 - v64).max() < 1e-8


# --------------------------------------------------------------------------- evaluate


def _person(rng: np.random.Generator, x: float, y: float, s: float) -> np.ndarray:
    pts = np.column_stack([rng.uniform(x, x + s, 133), rng.uniform(y, y + s, 133), np.full(133, 2.0)])
    return pts


def _gt_file(tmp_path, people: list[np.ndarray], areas: list[float]):
    anns = []
    for i, (pts, area) in enumerate(zip(people, areas)):
        ann = {"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": area,
               "bbox": [float(pts[:, 0].min()), float(pts[:, 1].min()), 100.0, 100.0]}
        for part, key in WHOLEBODY_KPT_KEYS.items():
            ann[key] = pts[WHOLEBODY133.parts[part]].reshape(-1).tolist()
        anns.append(ann)
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    return path


def _det(pts: np.ndarray, score: float, **extra) -> dict:
    det = {"image_id": 1, "category_id": 1, "score": score, **extra}
    for part, key in WHOLEBODY_KPT_KEYS.items():
        det[key] = pts[WHOLEBODY133.parts[part]].reshape(-1).tolist()
    return det


def test_perfect_predictions_score_one(tmp_path):
    rng = np.random.default_rng(1)
    people = [_person(rng, 0, 0, 100), _person(rng, 200, 0, 50)]
    gt = _gt_file(tmp_path, people, [10000.0, 2500.0])
    report = evaluate(gt, [_det(p, 0.9) for p in people])
    assert report.parts == ("body", "foot", "face", "lefthand", "righthand", "wholebody")
    for part in report.parts:
        stats = report.as_dict()[part]
        assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
        assert stats["APM"] == pytest.approx(1.0) and stats["APL"] == pytest.approx(1.0)


def test_false_positive_ranked_first_halves_ap_and_part_scores_rerank(tmp_path):
    rng = np.random.default_rng(2)
    person = _person(rng, 0, 0, 100)
    gt = _gt_file(tmp_path, [person], [10000.0])
    far = person + np.array([500.0, 500.0, 0.0])
    # the false positive outranks the true one by 'score', but not by 'foot_score'
    dets = [_det(far, 0.9, foot_score=0.1), _det(person, 0.8, foot_score=1.0)]
    report = evaluate(gt, dets)
    # one person: precision 1/2 at recall 1, so the envelope is 0.5 at every recall point
    assert report.stat("body", "AP") == pytest.approx(0.5)
    assert report.stat("body", "AR") == pytest.approx(1.0)
    assert report.stat("foot", "AP") == pytest.approx(1.0)
    assert report.stat("face", "AP") == pytest.approx(0.5)  # no face_score: ranked by 'score'


def test_part_with_all_zero_scores_leaves_that_part(tmp_path):
    rng = np.random.default_rng(3)
    person = _person(rng, 0, 0, 100)
    gt = _gt_file(tmp_path, [person], [10000.0])
    det = person.copy()
    det[WHOLEBODY133.parts["face"], 2] = 0
    report = evaluate(gt, [_det(det, 0.9)])
    assert report.stat("body", "AR") == pytest.approx(1.0)
    assert report.stat("face", "AR") == 0.0 and report.stat("face", "AP") == 0.0
    assert report.results["face"].num_dets == 0 and report.results["body"].num_dets == 1


def test_empty_predictions_give_zeros_and_no_gt_gives_undefined(tmp_path):
    rng = np.random.default_rng(4)
    gt = _gt_file(tmp_path, [_person(rng, 0, 0, 100)], [10000.0])
    report = evaluate(gt, [])
    for part in report.parts:  # the one person is large (area 10000): medium has nobody to find
        assert report.as_dict()[part] == {s: (-1.0 if s in ("APM", "ARM") else 0.0) for s in STAT_NAMES}
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
                                 "categories": [{"id": 1}]}))
    report = evaluate(empty, [], layout=133)
    assert (report.results["body"].stats == -1).all()  # nothing to find: undefined, as COCOeval


def test_arrays_route_equals_json_route(tmp_path):
    rng = np.random.default_rng(5)
    people = [_person(rng, 0, 0, 100), _person(rng, 150, 0, 80)]
    gt = _gt_file(tmp_path, people, [10000.0, 6400.0])
    noisy = [p + np.concatenate([rng.normal(0, 2, (133, 2)), np.zeros((133, 1))], axis=1) for p in people]
    dets = [_det(p, s) for p, s in zip(noisy, (0.7, 0.6))]
    a = evaluate(gt, dets)
    b = evaluate(load_pose_dataset(gt), predictions_from_arrays(np.stack(noisy), [1, 1], [0.7, 0.6]))
    for part in a.parts:
        np.testing.assert_array_equal(a.results[part].stats, b.results[part].stats)
    assert 0 < a.stat("face", "AP") < 1  # 2 px noise on faces this size costs some AP
    flat = evaluate(gt, predictions_from_arrays(np.stack(noisy).reshape(2, -1), [1, 1], [0.7, 0.6]))
    np.testing.assert_array_equal(flat.results["wholebody"].stats, a.results["wholebody"].stats)
    none = evaluate(gt, predictions_from_arrays(np.zeros((0, 133, 3)), [], []))
    assert none.stat("body", "AP") == 0.0
    with pytest.raises(UserError, match="17 keypoints per detection"):
        evaluate(gt, predictions_from_arrays(np.zeros((1, 17, 3)), [1], [1.0]))
    with pytest.raises(UserError, match="not in"):
        evaluate(gt, predictions_from_arrays(np.stack(noisy), [1, 2], [0.7, 0.6]))
    assert set(a.as_dict()["body"]) == set(STAT_NAMES)


def test_layouts_choose_their_parts(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
                            "iscrowd": 0, "keypoints": [1.0, 1.0, 2.0] * 136}]}
    path = tmp_path / "halpe.json"
    path.write_text(json.dumps(doc))
    assert evaluate(path, []).parts == ("body", "foot", "face", "lefthand", "righthand", "wholebody")
    assert evaluate(path, [], parts=["face"]).parts == ("face",)
    assert len(HALPE136.parts["body"]) == 20
    doc["annotations"][0]["keypoints"] = [1.0, 1.0, 2.0] * 17
    path.write_text(json.dumps(doc))
    assert evaluate(path, []).parts == ("body",)
    assert COCO17.num_keypoints == 17
    with pytest.raises(UserError, match="not the 136-point layout"):
        evaluate(path, [], layout=136)
    with pytest.raises(UserError, match="unknown part 'face'"):
        evaluate(path, [], parts=["face"])
