"""Parity of ``evaluate(..., protocol="halpe")`` with halpecocotools, every stat within 1e-9.

The reference is halpecocotools' COCOeval as AlphaPose's ``evaluate_mAP(res, "keypoints", gt,
halpe=True)`` runs it (``eval_reference.halpecocotools_stats``, tests/eval_reference.py), on the real
COCO-WholeBody GT in ../shared/realdata (as 133 points and converted to Halpe-136) with noise
levels, dropped persons and false positives, and on random sets from a hypothesis generator
(crowd persons, ``ignore`` fields, detections with no scored point, score ties, boxes, two
categories).
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from eval_reference import flat_document, halpecocotools_eval, halpecocotools_stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_eval_parity import SPLIT_KEYS, halpe_document, make_set, perturbed_results

from labeltool.errors import UserError
from labeltool.eval import compute_oks, evaluate
from labeltool.eval.halpe import HALPE_PARTS, halpe_parts
from labeltool.layouts import HALPE136, WHOLEBODY133, Layout

pytest.importorskip("halpecocotools", reason="halpecocotools is the reference (./install.sh --test builds it)")

TOL = 1e-9


def assert_halpe_parity(gt_path: Path, gt_doc: dict, results: list[dict], layout: Layout) -> dict:
    """Ours (from the GT file, split or flat) against halpecocotools (flat GT and results)."""
    report = evaluate(gt_path, copy.deepcopy(results), protocol="halpe", layout=layout)
    assert report.parts == HALPE_PARTS
    reference = halpecocotools_stats(flat_document(gt_doc, layout), flat_results(results))
    assert set(reference) == set(HALPE_PARTS)
    for part in HALPE_PARTS:
        ours = report.results[part].stats
        diff = np.abs(ours - reference[part])
        assert diff.max() <= TOL, f"{part}: ours {ours.tolist()} vs halpecocotools {reference[part].tolist()}"
    return report.as_dict()


def flat_results(results: list[dict]) -> list[dict]:
    """Results with one flat ``keypoints`` list (COCO-WholeBody split keys joined in part order)."""
    out = []
    for det in results:
        if "foot_kpts" in det:
            det = {k: v for k, v in det.items() if k not in SPLIT_KEYS} | {
                "keypoints": np.concatenate([np.asarray(det[k], dtype=np.float64) for k in SPLIT_KEYS]).tolist()
            }
        out.append(det)
    return out


# --------------------------------------------------------------------------- real GT


@pytest.fixture(scope="module")
def real_gt(realdata) -> tuple[Path, dict]:
    path = realdata / "coco_wholebody" / "test_coco_wholebody.json"
    return path, json.loads(path.read_text())


@pytest.fixture(scope="module")
def real_halpe(real_gt, tmp_path_factory) -> tuple[Path, dict]:
    doc = halpe_document(real_gt[1])
    path = tmp_path_factory.mktemp("halpe") / "halpe136.json"
    path.write_text(json.dumps(doc))
    return path, doc


def halpe_results(doc: dict, noise: float, seed: int, drop: float = 0.0, false_pos: int = 0) -> list[dict]:
    """Flat 136-point results from the Halpe GT: noise in % of the person scale, dropped persons,
    false positives, random point scores."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in doc["annotations"]:
        if rng.random() < drop:
            continue
        pts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3).copy()
        pts[:, :2] += rng.normal(0, noise * np.sqrt(max(ann["area"], 1.0)) / 100, (len(pts), 2))
        pts[:, 2] = rng.uniform(0.05, 1, len(pts))
        out.append({"image_id": ann["image_id"], "category_id": 1, "score": float(rng.random()),
                    "keypoints": pts.reshape(-1).tolist()})  # fmt: skip
    for _ in range(false_pos):
        im = doc["images"][rng.integers(len(doc["images"]))]
        cx, cy, s = rng.uniform(0, im["width"]), rng.uniform(0, im["height"]), rng.uniform(20, 200)
        pts = np.column_stack([rng.normal(cx, s, 136), rng.normal(cy, s, 136), rng.uniform(0.05, 1, 136)])
        out.append({"image_id": im["id"], "category_id": 1, "score": float(rng.random()),
                    "keypoints": pts.reshape(-1).tolist()})  # fmt: skip
    return out


@pytest.mark.parametrize("noise", [0.0, 1.0, 3.0, 8.0, 25.0])
def test_real_halpe136_noise_levels(real_halpe, noise):
    path, doc = real_halpe
    stats = assert_halpe_parity(path, doc, halpe_results(doc, noise, seed=int(noise * 10)), HALPE136)
    if noise == 0.0:  # exact points: every match has OKS 1, so AP does not depend on the threshold
        assert stats["fullbody"]["AP"] == pytest.approx(stats["fullbody"]["AP50"], abs=1e-12)
    if noise == 25.0:  # face and hand sigmas are all 0.015 here: lost at this noise
        assert stats["face"]["AP"] < 0.05 and stats["hand"]["AP"] < 0.05


def test_real_halpe136_dropped_persons_and_false_positives(real_halpe):
    path, doc = real_halpe
    stats = assert_halpe_parity(path, doc, halpe_results(doc, 2.0, seed=1, drop=0.3, false_pos=12), HALPE136)
    assert 0 < stats["body"]["AR"] < 1


def test_real_coco133_split_gt_and_split_results(real_gt):
    """The COCO-WholeBody file as it comes (split keys): halpecocotools reads it flat, with its
    own 133-point sigmas, which are not COCO-WholeBody's: the two protocols differ."""
    path, doc = real_gt
    results = perturbed_results(doc, 3.0, seed=2, drop=0.2, false_pos=6)
    halpe = assert_halpe_parity(path, doc, results, WHOLEBODY133)
    coco = evaluate(path, copy.deepcopy(results)).as_dict()
    # same body sigmas and ranking, no crowd in this file: the all-range stats agree; the medium /
    # large ones do not, since a detection's area is the extent of all its points, not the body's
    for stat in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
        assert halpe["body"][stat] == coco["body"][stat]
    assert halpe["body"]["APM"] != coco["body"]["APM"]
    assert halpe["face"]["AP"] != coco["face"]["AP"]  # 0.015 for every face point, not the 68 COCO ones


def test_real_crowd_person_is_a_positive_ignore_field_ignores_id_zero_unmatched(real_halpe, tmp_path):
    """halpecocotools does not ignore iscrowd persons (they count, and match many detections);
    an ``ignore`` field does ignore; a person with annotation id 0 cannot be matched."""
    _, doc = real_halpe
    doc = copy.deepcopy(doc)
    doc["annotations"][0]["iscrowd"] = 1
    doc["annotations"][1]["ignore"] = 1
    doc["annotations"][2]["id"] = 0  # a match to id 0 reads as no match in COCOeval
    path = tmp_path / "crowd.json"
    path.write_text(json.dumps(doc))
    results = halpe_results(doc, 2.0, seed=5, false_pos=4)
    results += [dict(results[0], score=0.01)]  # a second detection of the crowd person: also a match
    stats = assert_halpe_parity(path, doc, results, HALPE136)
    plain = evaluate(path, copy.deepcopy(results)).as_dict()  # COCO-WholeBody: crowd ignored
    assert stats["body"] != plain["body"]


def test_detection_without_a_scored_point_is_dropped_from_every_part(real_halpe):
    path, doc = real_halpe
    results = halpe_results(doc, 1.0, seed=3)
    pts = np.asarray(results[0]["keypoints"]).reshape(-1, 3)
    pts[:, 2] = 0
    results[0]["keypoints"] = pts.reshape(-1).tolist()
    face_only = np.asarray(results[1]["keypoints"]).reshape(-1, 3)
    face_only[:26, 2] = 0  # body and feet unscored, the rest scored: still in every part
    results[1]["keypoints"] = face_only.reshape(-1).tolist()
    assert_halpe_parity(path, doc, results, HALPE136)


def test_halpe_protocol_refuses_other_layouts_and_float32_sigmas(real_halpe, tmp_path):
    path, doc = real_halpe
    with pytest.raises(UserError, match="own float64 sigmas"):
        evaluate(path, halpe_results(doc, 1.0, seed=0), protocol="halpe", sigmas_float32=True)
    body = {**doc, "annotations": [dict(a, keypoints=a["keypoints"][:51]) for a in doc["annotations"]]}
    p17 = tmp_path / "coco17.json"
    p17.write_text(json.dumps(body))
    with pytest.raises(UserError, match="halpe protocol evaluates 136 or 133-point files, not 17"):
        evaluate(p17, [], protocol="halpe")


def test_oks_matches_halpecocotools_float32_points(real_halpe, real_gt):
    """compute_oks(coords_float32=True) with the protocol's sigmas gives halpecocotools' OKS matrix
    per image and part to 1e-13 (only the summation order differs), persons with and without
    labelled points; float64 points would not: the float32 rounding of the distances shows at 1e-10."""
    for layout, doc, results in (
        (HALPE136, real_halpe[1], halpe_results(real_halpe[1], 4.0, seed=9, false_pos=8)),
        (WHOLEBODY133, flat_document(real_gt[1], WHOLEBODY133), flat_results(perturbed_results(real_gt[1], 4.0, 9))),
    ):
        ev = halpecocotools_eval(doc, results)
        table = halpe_parts(layout)
        compared = differs_in_float64 = 0
        for (image_id, _), by_part in ev.ious.items():
            gts = [a for a in doc["annotations"] if a["image_id"] == image_id]
            dts = [r for r in results if r["image_id"] == image_id]
            dts = sorted(dts, key=lambda r: -r["score"])[:20]  # all have a scored point here
            if not gts or not dts:
                continue
            g = np.array([a["keypoints"] for a in gts]).reshape(len(gts), -1, 3)
            d = np.array([r["keypoints"] for r in dts]).reshape(len(dts), -1, 3)
            areas = np.array([a["area"] for a in gts])[None]
            boxes = np.array([a["bbox"] for a in gts], dtype=np.float64)[None]
            for part, (idx, sigmas) in table.items():
                ours = compute_oks(d[:, None, idx], g[None, :, idx], areas, sigmas, boxes, coords_float32=True)
                np.testing.assert_allclose(ours, by_part[part], rtol=1e-13, atol=0)
                wide = compute_oks(d[:, None, idx], g[None, :, idx], areas, sigmas, boxes)
                differs_in_float64 += int(not np.allclose(wide, by_part[part], rtol=1e-10, atol=0))
                compared += 1
        assert compared >= 15 and differs_in_float64 > 0


# --------------------------------------------------------------------------- random sets


@st.composite
def random_halpe_sets(draw):
    """Random GT and results (as in test_eval_parity) on 133 or 136 points, plus ``ignore`` fields,
    an annotation id 0 and detections whose every point score is 0; never an empty result list (halpecocotools'
    loadRes fails on one)."""
    layout = draw(st.sampled_from([WHOLEBODY133, HALPE136]))
    n_images = draw(st.integers(1, 5))
    persons = draw(st.lists(st.integers(0, 6), min_size=n_images, max_size=n_images))
    dets = draw(st.lists(st.integers(0, 25), min_size=n_images, max_size=n_images))
    opts = {
        "crowd": draw(st.sampled_from([0.0, 0.3])),
        "no_labels": draw(st.sampled_from([0.0, 0.25])),
        "float_vis": draw(st.booleans()),
        "origin": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "ties": draw(st.booleans()),
        "part_scores": draw(st.sampled_from(["none", "some"])),  # halpecocotools ranks by 'score' anyway
        "zero_part": draw(st.sampled_from([0.0, 0.3, 0.7])),
        "noise": draw(st.sampled_from([0.5, 3.0, 12.0])),
        "duplicates": draw(st.booleans()),
        "empty": False,
        "flat": draw(st.booleans()),
        "boxes": draw(st.integers(0, 7)) == 0,
        "other_category": draw(st.booleans()),
        "two_categories": draw(st.integers(0, 5)) == 0,
    }
    ignore = draw(st.sampled_from([0.0, 0.2]))
    unscored = draw(st.sampled_from([0.0, 0.2]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    layout, doc, results = make_set(layout, persons, dets, opts, rng)
    for ann in doc["annotations"]:
        if rng.random() < ignore:
            ann["ignore"] = int(rng.integers(1, 3))
    if doc["annotations"] and draw(st.booleans()):
        doc["annotations"][0]["id"] = 0  # matches to it read as no match
    for det in results:
        if rng.random() < unscored:
            for key in ("keypoints", *SPLIT_KEYS[1:]):
                if key in det:
                    pts = np.asarray(det[key]).reshape(-1, 3)
                    pts[:, 2] = 0
                    det[key] = pts.reshape(-1).tolist()
    if not results:
        im = doc["images"][0]
        results = [{"image_id": im["id"], "category_id": 1, "score": 0.5,
                    "keypoints": rng.uniform(0, 400, (layout.num_keypoints, 3)).reshape(-1).tolist()}]  # fmt: skip
    return layout, doc, results


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(random_halpe_sets())
def test_random_sets_match_halpecocotools(case):
    layout, doc, results = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps(doc))
        assert_halpe_parity(path, doc, results, layout)
