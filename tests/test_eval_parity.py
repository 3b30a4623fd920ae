"""Parity of ``labeltool.eval.evaluate`` with the official tools, every stat within 1e-9.

The reference is xtcocotools' COCOeval driven as mmpose's CocoWholeBodyMetric drives it
(``tests/eval_reference.py``), on the real COCO-WholeBody GT in ../shared/realdata and on
random sets from a hypothesis generator; body-only sets are also checked against pycocotools.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from eval_reference import split_document, split_results, xtcocotools_stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeltool.eval import evaluate
from labeltool.eval.predictions import part_score_key
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import (
    COCO17,
    HALPE136,
    PART_NAMES,
    WHOLEBODY133,
    WHOLEBODY_KPT_KEYS,
    Layout,
    halpe136_to_coco133_index,
)

pytest.importorskip("xtcocotools", reason="xtcocotools is the reference (pip install xtcocotools, test-only)")

TOL = 1e-9
SPLIT_KEYS = [WHOLEBODY_KPT_KEYS[p] for p in PART_NAMES]


def assert_parity(gt_path: Path, gt_doc: dict, results: list, layout: Layout, sigmas_float32: bool = False) -> dict:
    """Run both evaluators; every stat of every part must agree within TOL. Returns ours."""
    # the layout is given: a GT file without annotations does not tell it
    report = evaluate(gt_path, copy.deepcopy(results), layout=layout, sigmas_float32=sigmas_float32)
    ref_doc = gt_doc if layout is WHOLEBODY133 else split_document(gt_doc, layout)
    ref_results = results if layout is WHOLEBODY133 and (not results or "foot_kpts" in results[0]) else split_results(
        results, layout
    )
    reference = xtcocotools_stats(ref_doc, ref_results, layout, sigmas_float32=sigmas_float32)
    assert set(reference) == set(report.parts)
    for part in report.parts:
        ours = report.results[part].stats
        diff = np.abs(ours - reference[part])
        assert diff.max() <= TOL, f"{part}: ours {ours.tolist()} vs xtcocotools {reference[part].tolist()}"
    return report.as_dict()


# --------------------------------------------------------------------------- real GT


@pytest.fixture(scope="module")
def real_gt(realdata) -> tuple[Path, dict]:
    path = realdata / "coco_wholebody" / "test_coco_wholebody.json"
    return path, json.loads(path.read_text())


def perturbed_results(doc: dict, noise: float, seed: int, drop: float = 0.0, false_pos: int = 0) -> list[dict]:
    """GT persons as split-key results: points moved by N(0, noise * person scale / 100) px,
    random point scores, a fraction of persons dropped and some false positives added."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in doc["annotations"]:
        if rng.random() < drop:
            continue
        scale = np.sqrt(max(ann["area"], 1.0))
        det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": float(rng.random())}
        for key in SPLIT_KEYS:
            pts = np.asarray(ann[key], dtype=np.float64).reshape(-1, 3)
            pts[:, :2] += rng.normal(0, noise * scale / 100, (len(pts), 2))
            pts[:, 2] = rng.uniform(0.05, 1.0, len(pts))
            det[key] = pts.reshape(-1).tolist()
        out.append(det)
    images = [im for im in doc["images"]]
    for _ in range(false_pos):
        im = images[rng.integers(len(images))]
        cx, cy = rng.uniform(0, im["width"]), rng.uniform(0, im["height"])
        s = rng.uniform(20, 200)
        det = {"image_id": im["id"], "category_id": 1, "score": float(rng.random())}
        for key in SPLIT_KEYS:
            n = len(doc["annotations"][0][key]) // 3
            pts = np.column_stack([rng.normal(cx, s, n), rng.normal(cy, s, n), rng.uniform(0.05, 1, n)])
            det[key] = pts.reshape(-1).tolist()
        out.append(det)
    return out


@pytest.mark.parametrize("noise", [0.0, 1.0, 3.0, 8.0, 25.0])
def test_real_gt_noise_levels(real_gt, noise):
    path, doc = real_gt
    stats = assert_parity(path, doc, perturbed_results(doc, noise, seed=int(noise * 10)), WHOLEBODY133)
    if noise == 0.0:  # exact points: every match has OKS 1, so AP is the same at every threshold; the
        # two persons with no labelled body point still get scored detections: false positives
        assert stats["body"]["AP"] == pytest.approx(stats["body"]["AP50"], abs=1e-12)
        assert stats["body"]["AP75"] == stats["body"]["AP50"] < 1
    if noise == 25.0:
        assert stats["face"]["AP"] < 0.2  # faces are small: 25% of the person scale loses them


def test_real_gt_dropped_persons_and_false_positives(real_gt):
    path, doc = real_gt
    results = perturbed_results(doc, 2.0, seed=1, drop=0.3, false_pos=12)
    stats = assert_parity(path, doc, results, WHOLEBODY133)
    assert 0 < stats["body"]["AR"] < 1


def test_real_gt_part_scores_missing_present_and_zero(real_gt):
    path, doc = real_gt
    rng = np.random.default_rng(7)
    results = perturbed_results(doc, 3.0, seed=2, false_pos=6)
    for i, det in enumerate(results):
        if i % 3 == 0:  # part scores on some detections only: the others fall back to 'score'
            for part in ("foot", "face", "lefthand", "righthand", "wholebody"):
                det[part_score_key(part)] = float(rng.random())
        if i % 4 == 1:  # a part whose point scores are all zero leaves that part's evaluation
            pts = np.asarray(det["face_kpts"]).reshape(-1, 3)
            pts[:, 2] = 0
            det["face_kpts"] = pts.reshape(-1).tolist()
        if i % 5 == 2:
            det["lefthand_score"] = 0.0
    assert_parity(path, doc, results, WHOLEBODY133)


def test_real_gt_fed_back_unlabelled_at_origin_and_inside_box(real_gt):
    """GT as predictions: unlabelled points stay at (0, 0), or move inside the person's box."""
    path, doc = real_gt
    at_origin = []
    inside = []
    for ann in doc["annotations"]:
        det = {"image_id": ann["image_id"], "category_id": 1, "score": 1.0}
        det_in = dict(det)
        x, y, w, h = ann["bbox"]
        for key in SPLIT_KEYS:
            pts = np.asarray(ann[key], dtype=np.float64).reshape(-1, 3)
            det[key] = pts.reshape(-1).tolist()
            moved = pts.copy()
            unl = moved[:, 2] <= 0
            moved[unl, 0] = x + w / 2
            moved[unl, 1] = y + h / 2
            moved[:, 2] = np.where(unl, 0.5, moved[:, 2])  # the model scores every point it outputs
            det_in[key] = moved.reshape(-1).tolist()
        at_origin.append(det)
        inside.append(det_in)
    stats_origin = assert_parity(path, doc, at_origin, WHOLEBODY133)
    stats_inside = assert_parity(path, doc, inside, WHOLEBODY133)
    # the known surprise: unlabelled GT points at (0, 0) make the body extent (the detection
    # area) span to the image corner, so some detections change area range
    assert stats_origin != stats_inside


def test_real_gt_flat_results_and_float32_sigmas(real_gt):
    path, doc = real_gt
    split = perturbed_results(doc, 2.0, seed=3, false_pos=3)
    flat = []
    for det in split:
        pts = np.concatenate([np.asarray(det[k]) for k in SPLIT_KEYS])
        flat.append({"image_id": det["image_id"], "category_id": 1, "score": det["score"], "keypoints": pts.tolist()})
    a = assert_parity(path, doc, flat, WHOLEBODY133)
    b = assert_parity(path, doc, flat, WHOLEBODY133, sigmas_float32=True)
    assert a.keys() == b.keys()


def test_real_gt_empty_predictions_give_zeros(real_gt):
    path, doc = real_gt
    stats = assert_parity(path, doc, [], WHOLEBODY133)
    assert stats["body"]["AP"] == 0.0 and stats["wholebody"]["AR"] == 0.0


def halpe_document(doc: dict) -> dict:
    """The real 133-point GT as flat Halpe-136: shared points copied, neck / mid-hip from their
    labelled neighbours, head top unlabelled."""
    halpe_idx, coco_idx = halpe136_to_coco133_index()
    out = {k: v for k, v in doc.items() if k != "annotations"}
    out["annotations"] = []
    ds = load_pose_dataset_from_doc(doc)
    for i, ann in enumerate(doc["annotations"]):
        pts = np.zeros((136, 3))
        pts[halpe_idx] = ds.keypoints[i, coco_idx]
        for target, (a, b) in ((18, (5, 6)), (19, (11, 12))):
            if pts[a, 2] > 0 and pts[b, 2] > 0:
                pts[target] = [(pts[a, 0] + pts[b, 0]) / 2, (pts[a, 1] + pts[b, 1]) / 2, 2]
        new = {k: ann[k] for k in ("id", "image_id", "category_id", "bbox", "area", "iscrowd")}
        new["keypoints"] = pts.reshape(-1).tolist()
        new["num_keypoints"] = int((pts[:, 2] > 0).sum())
        out["annotations"].append(new)
    return out


def load_pose_dataset_from_doc(doc: dict):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "gt.json"
        p.write_text(json.dumps(doc))
        return load_pose_dataset(p)


@pytest.mark.parametrize("noise", [1.0, 6.0])
def test_real_gt_as_halpe136(real_gt, tmp_path, noise):
    _, doc = real_gt
    halpe = halpe_document(doc)
    path = tmp_path / "halpe.json"
    path.write_text(json.dumps(halpe))
    assert load_pose_dataset(path).layout is HALPE136
    rng = np.random.default_rng(int(noise))
    results = []
    for ann in halpe["annotations"]:
        pts = np.asarray(ann["keypoints"]).reshape(-1, 3)
        pts[:, :2] += rng.normal(0, noise * np.sqrt(ann["area"]) / 100, (136, 2))
        pts[:, 2] = rng.uniform(0.05, 1, 136)
        results.append({"image_id": ann["image_id"], "category_id": 1, "score": float(rng.random()),
                        "keypoints": pts.reshape(-1).tolist(), "face_score": float(rng.random())})
    stats = assert_parity(path, halpe, results, HALPE136)
    assert set(stats) == {"body", "foot", "face", "lefthand", "righthand", "wholebody"}


def pycocotools_body_stats(doc: dict, results: list, sigmas: np.ndarray) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(doc)
        coco.createIndex()
        det = coco.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco, det, "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def body_only(doc: dict) -> dict:
    out = {k: v for k, v in doc.items() if k != "annotations"}
    out["annotations"] = [
        {k: v for k, v in ann.items() if k in ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "keypoints")}
        | {"num_keypoints": int((np.asarray(ann["keypoints"][2::3]) > 0).sum())}
        for ann in doc["annotations"]
    ]
    return out


def test_real_gt_body_only_pycocotools(real_gt, tmp_path):
    _, doc = real_gt
    coco17 = body_only(doc)
    path = tmp_path / "body.json"
    path.write_text(json.dumps(coco17))
    results = [
        {"image_id": d["image_id"], "category_id": 1, "score": d["score"], "keypoints": d["keypoints"]}
        for d in perturbed_results(doc, 2.0, seed=4, drop=0.2, false_pos=5)
    ]
    report = evaluate(path, results)
    assert report.parts == ("body",)
    ours = report.results["body"].stats
    np.testing.assert_allclose(ours, pycocotools_body_stats(coco17, results, COCO17.sigmas), atol=TOL, rtol=0)
    assert_parity(path, coco17, results, COCO17)


# --------------------------------------------------------------------------- random sets


@st.composite
def random_sets(draw):
    """A random GT json and results list: crowd regions, persons with no labelled point, float
    visibilities, up to 25 detections per image, score ties, part scores on some detections,
    all-zero parts, unlabelled points at (0, 0) or inside the box, empty result lists."""
    layout = draw(st.sampled_from([WHOLEBODY133, HALPE136, COCO17]))
    n_images = draw(st.integers(1, 5))
    persons = draw(st.lists(st.integers(0, 6), min_size=n_images, max_size=n_images))
    dets = draw(st.lists(st.integers(0, 25), min_size=n_images, max_size=n_images))
    opts = {
        "crowd": draw(st.sampled_from([0.0, 0.2])),
        "no_labels": draw(st.sampled_from([0.0, 0.25])),
        "float_vis": draw(st.booleans()),
        "origin": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "ties": draw(st.booleans()),
        "part_scores": draw(st.sampled_from(["none", "some", "all"])),
        "zero_part": draw(st.sampled_from([0.0, 0.3])),
        "noise": draw(st.sampled_from([0.5, 3.0, 12.0])),
        "duplicates": draw(st.booleans()),
        "empty": draw(st.integers(0, 9)) == 0,
        "flat": draw(st.booleans()),
        "boxes": draw(st.integers(0, 7)) == 0,
        "other_category": draw(st.booleans()),
        "two_categories": draw(st.integers(0, 5)) == 0,
    }
    seed = draw(st.integers(0, 2**31 - 1))
    return make_set(layout, persons, dets, opts, np.random.default_rng(seed))


def make_set(layout: Layout, persons: list[int], dets: list[int], opts: dict, rng: np.random.Generator):
    k = layout.num_keypoints
    image_ids = rng.choice(10_000, size=len(persons), replace=False) + 1
    images = [{"id": int(i), "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in image_ids]
    anns, poses = [], {int(i): [] for i in image_ids}
    ann_ids = iter(rng.choice(1_000_000, size=sum(persons) * 2 + 1, replace=False) + 1)
    for img, n in zip(image_ids, persons):
        for _ in range(n):
            s = float(np.exp(rng.uniform(np.log(12), np.log(300))))
            x, y = rng.uniform(0, 500), rng.uniform(0, 400)
            w, h = 0.6 * s, s
            pts = np.column_stack([rng.uniform(x, x + w, k), rng.uniform(y, y + h, k), np.zeros(k)])
            for idx in layout.parts.values():
                if rng.random() < 0.75:
                    lab = rng.random(len(idx)) < 0.8
                    pts[idx[lab], 2] = rng.uniform(0.1, 1.0, lab.sum()) if opts["float_vis"] else rng.integers(1, 3, lab.sum())
            if rng.random() < opts["no_labels"]:
                pts[:, 2] = 0
            crowd = int(rng.random() < opts["crowd"])
            unl = pts[:, 2] <= 0
            pts[unl & (rng.random(k) < opts["origin"]), :2] = 0
            cat = int(rng.integers(1, 3)) if opts["two_categories"] else 1
            ann = {"id": int(next(ann_ids)), "image_id": int(img), "category_id": cat, "bbox": [x, y, w, h],
                   "area": float(w * h * rng.uniform(0.4, 1.0)), "iscrowd": crowd}
            anns.append(_gt_keys(ann, pts, layout))
            poses[int(img)].append((pts, s))
            if opts["duplicates"] and rng.random() < 0.3:
                dup = dict(anns[-1], id=int(next(ann_ids)))
                anns.append(dup)
                poses[int(img)].append((pts, s))
    rng.shuffle(anns)  # file order is not grouped by image
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    if opts["two_categories"]:  # COCOeval averages the stats over categories
        categories.append({"id": 2, "name": "mannequin", "supercategory": "person"})
    doc = {"images": images, "annotations": anns, "categories": categories}

    results = []
    levels = np.array([0.2, 0.5, 0.9])
    for img, n in zip(image_ids, dets):
        for _ in range(0 if opts["empty"] else n):
            mine = poses[int(img)]
            if mine and rng.random() < 0.7:
                base, s = mine[rng.integers(len(mine))]
                pts = base.copy()
                pts[:, :2] += rng.normal(0, opts["noise"] * s / 100, (k, 2))
            else:
                s = float(np.exp(rng.uniform(np.log(12), np.log(300))))
                x, y = rng.uniform(0, 500), rng.uniform(0, 400)
                pts = np.column_stack([rng.uniform(x, x + 0.6 * s, k), rng.uniform(y, y + s, k), np.zeros(k)])
            pts[:, 2] = rng.uniform(0.01, 1.0, k)
            for idx in layout.parts.values():
                if rng.random() < opts["zero_part"]:
                    pts[idx, 2] = 0
            if layout is COCO17:  # where pycocotools agrees: no detection without a scored point
                pts[0, 2] = max(pts[0, 2], 0.5)
            score = float(rng.choice(levels) if opts["ties"] else rng.random())
            cat = int(rng.integers(1, 3)) if opts["two_categories"] else 1
            if opts["other_category"] and rng.random() < 0.1:
                cat = 3  # not a category of the GT: both evaluators skip it
            det = {"image_id": int(img), "category_id": cat, "score": score}
            for part in (*layout.parts, "wholebody"):
                key = part_score_key(part)
                if key != "score" and (opts["part_scores"] == "all" or
                                       (opts["part_scores"] == "some" and rng.random() < 0.5)):
                    det[key] = float(rng.choice([0.0, *levels]) if opts["ties"] else rng.random())
            if opts["boxes"]:
                det["bbox"] = [float(v) for v in rng.uniform(1, 200, 4)]
            if layout is WHOLEBODY133 and not opts["flat"]:
                _gt_keys(det, pts, layout)
            else:
                det["keypoints"] = pts.reshape(-1).tolist()
            results.append(det)
    rng.shuffle(results)
    return layout, doc, results


def _gt_keys(ann: dict, pts: np.ndarray, layout: Layout) -> dict:
    if layout is WHOLEBODY133:
        for part, key in WHOLEBODY_KPT_KEYS.items():
            ann[key] = pts[layout.parts[part]].reshape(-1).tolist()
    else:
        ann["keypoints"] = pts.reshape(-1).tolist()
        ann["num_keypoints"] = int((pts[:, 2] > 0).sum())
    return ann


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(random_sets())
def test_random_sets_match_xtcocotools(case):
    layout, doc, results = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps(doc))
        assert_parity(path, doc, results, layout)
        # pycocotools' loadRes fails on an empty list; with boxes it takes their area like xtcocotools
        if layout is COCO17 and results:
            ours = evaluate(path, copy.deepcopy(results)).results["body"].stats
            np.testing.assert_allclose(ours, pycocotools_body_stats(doc, results, COCO17.sigmas), atol=TOL, rtol=0)
