"""Speed of `wbt eval` against the official evaluators and the fast COCOeval ports, on the same files.

Builds a synthetic COCO-WholeBody set (default 5000 images, 6500 persons, ~6800 detections,
mmpose-style results with split part keys), then times, each in a fresh subprocess:

* wbt: load GT + results json, and the six-part evaluation (``labeltool.eval.evaluate``);
* xtcocotools (the reference): ``COCO(gt)`` + ``loadRes(results)``, and the six COCOeval passes
  (body, foot, face, lefthand, righthand, wholebody; ``use_area=True``), as mmpose drives it;
* hotcoco (Rust) and faster-coco-eval (C++), when installed: pycocotools-style evaluators with
  no part keys, so each part is its own GT / results pair (``keypoints`` = the part's points,
  ``num_keypoints`` = its labelled count) evaluated with the part's sigmas. Their AP / AR (all
  areas) equal the official ones here; their APM / APL do not: their ``loadRes`` measures a
  detection's area on the part's points, the official one on the body's. The largest
  difference is printed for both groups of stats.

Then the same on the set converted to Halpe-136 (flat lists): ``wbt eval --protocol halpe``
against halpecocotools (AlphaPose's evaluator, one COCOeval with five parts), when installed.

Prints the times, the ratios against the reference (targets: evaluation >= 20x and whole run
incl. json >= 5x xtcocotools; >= 2x hotcoco on the evaluation), the peak resident memory of each
process and the largest stat difference. Wall-clock ratios move with the machine's load; the
CPU seconds in brackets are steadier.

    .venv/bin/python benchmarks/eval_speed.py            # full size, ~2 min
    .venv/bin/python benchmarks/eval_speed.py --images 500 --persons 650 --dets 680
    pip install hotcoco faster-coco-eval                 # the optional peers (binary wheels)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # tests/eval_reference.py drives the official tools

from labeltool.layouts import (  # noqa: E402
    PART_NAMES,
    WHOLEBODY133,
    WHOLEBODY_KPT_KEYS,
    halpe136_to_coco133_index,
)

PARTS = (*PART_NAMES, "wholebody")
HALPE_PARTS = ("body", "foot", "face", "hand", "fullbody")
PEERS = ("hotcoco", "faster-coco-eval")


def build_set(n_images: int, n_persons: int, n_dets: int, seed: int) -> tuple[dict, list[dict]]:
    """A synthetic GT json (COCO-WholeBody keys, polygons, part boxes) and mmpose-style results."""
    rng = np.random.default_rng(seed)
    k = WHOLEBODY133.num_keypoints
    images = [
        {"id": int(i), "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}
        for i in rng.choice(600_000, n_images, replace=False) + 1
    ]
    # every image gets one person, the rest go to random images (some crowded)
    owner = np.concatenate([np.arange(n_images), rng.integers(0, n_images, max(0, n_persons - n_images))])
    anns, people = [], []
    for j, im_index in enumerate(owner):
        im = images[im_index]
        s = float(np.exp(rng.uniform(np.log(20), np.log(400))))
        w, h = 0.55 * s, s
        x, y = rng.uniform(0, 640 - w / 2), rng.uniform(0, 480 - h / 2)
        pts = np.column_stack([rng.uniform(x, x + w, k), rng.uniform(y, y + h, k), np.zeros(k)])
        for part, idx in WHOLEBODY133.parts.items():
            p_part = {"body": 0.95, "foot": 0.7, "face": 0.5, "lefthand": 0.4, "righthand": 0.4}[part]
            if rng.random() < p_part:
                lab = rng.random(len(idx)) < 0.85
                pts[idx[lab], 2] = rng.integers(1, 3, lab.sum())
        pts[pts[:, 2] == 0, :2] = 0
        crowd = int(rng.random() < 0.01)
        poly = np.column_stack([rng.uniform(x, x + w, 20), rng.uniform(y, y + h, 20)]).round(2).reshape(-1).tolist()
        ann = {
            "segmentation": [poly],
            "num_keypoints": int((pts[:17, 2] > 0).sum()),
            "area": round(w * h * rng.uniform(0.4, 0.8), 4),
            "iscrowd": crowd,
            "image_id": im["id"],
            "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
            "category_id": 1,
            "id": 900_000 + j,
        }
        for part, key in WHOLEBODY_KPT_KEYS.items():
            ann[key] = pts[WHOLEBODY133.parts[part]].round(2).reshape(-1).tolist()
        for part in ("face", "lefthand", "righthand"):
            ann[f"{part}_box"] = [0.0, 0.0, 0.0, 0.0]
        for part in ("foot", "face", "lefthand", "righthand"):
            ann[f"{part}_valid"] = bool((pts[WHOLEBODY133.parts[part], 2] > 0).any())
        anns.append(ann)
        people.append((im["id"], pts, s, crowd))
    doc = {"info": {"description": "synthetic"}, "images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}

    results = []
    true_dets = [p for p in people if not p[3]][:n_dets]
    for image_id, pts, s, _ in true_dets:
        det = pts.copy()
        det[:, :2] = np.where(det[:, 2:] > 0, det[:, :2], rng.uniform(0, 400, (k, 2)))
        det[:, :2] += rng.normal(0, 0.01 * s, (k, 2))
        det[:, 2] = rng.uniform(0.05, 1.0, k)
        results.append(_result(image_id, det, float(rng.random())))
    while len(results) < n_dets:  # false positives on random images
        im = images[rng.integers(n_images)]
        s = float(np.exp(rng.uniform(np.log(20), np.log(400))))
        x, y = rng.uniform(0, 600), rng.uniform(0, 440)
        det = np.column_stack([rng.uniform(x, x + 0.55 * s, k), rng.uniform(y, y + s, k), rng.uniform(0.05, 1, k)])
        results.append(_result(im["id"], det, float(rng.random() * 0.5)))
    return doc, results


def _result(image_id: int, pts: np.ndarray, score: float) -> dict:
    out = {"image_id": int(image_id), "category_id": 1, "score": score}
    for part, key in WHOLEBODY_KPT_KEYS.items():
        out[key] = pts[WHOLEBODY133.parts[part]].round(3).reshape(-1).tolist()
    return out


# --------------------------------------------------------------------------- runners (subprocess)


def run_wbt(gt: str, pred: str, repeat: int, protocol: str = "coco-wholebody") -> dict:
    from labeltool.eval.evaluator import evaluate, load_ground_truth, load_results

    rss0 = _rss_mb()
    runs = []
    for _ in range(repeat):
        t0 = _clock()
        ds = load_ground_truth(gt)
        preds = load_results(ds, pred)
        t1 = _clock()
        report = evaluate(ds, preds, protocol=protocol)
        t2 = _clock()
        runs.append((t0, t1, t2))
    stats = {p: report.results[p].stats.tolist() for p in report.parts}
    return {**_best(runs), "peak_mb": _rss_mb(), "base_mb": rss0, "stats": stats}


def run_xtcocotools(gt: str, pred: str, repeat: int) -> dict:
    from eval_reference import xtcocotools_passes
    from xtcocotools.coco import COCO

    rss0 = _rss_mb()
    runs = []
    for _ in range(repeat):
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = _clock()
            coco = COCO(gt)
            det = coco.loadRes(pred)
            t1 = _clock()
            passes = xtcocotools_passes(coco, det, WHOLEBODY133, PARTS)
            stats = {part: passes[part].tolist() for part in PARTS}
            t2 = _clock()
        runs.append((t0, t1, t2))
    return {**_best(runs), "peak_mb": _rss_mb(), "base_mb": rss0, "stats": stats}


def _part_sets(gt: str, pred: str) -> tuple[list[dict], list[list[dict]], list[np.ndarray]]:
    """Per part: a GT json with that part's points as ``keypoints`` (and its labelled count as
    ``num_keypoints``, which pycocotools-style evaluators use to ignore persons), the results with
    that part's points and score, and the part's sigmas."""
    doc = json.loads(Path(gt).read_text())
    results = json.loads(Path(pred).read_text())
    docs, dets, sigmas = [], [], []
    for part in PARTS:
        keys = [WHOLEBODY_KPT_KEYS[p] for p in PART_NAMES] if part == "wholebody" else [WHOLEBODY_KPT_KEYS[part]]
        score = "score" if part == "body" else f"{part}_score"
        anns = []
        for ann in doc["annotations"]:
            pts = [v for k in keys for v in ann[k]]
            anns.append({k: ann[k] for k in ("id", "image_id", "category_id", "bbox", "area", "iscrowd")}
                        | {"keypoints": pts, "num_keypoints": sum(1 for v in pts[2::3] if v > 0)})  # fmt: skip
        docs.append({"images": doc["images"], "annotations": anns, "categories": doc["categories"]})
        dets.append([{"image_id": r["image_id"], "category_id": r["category_id"], "score": r.get(score, r["score"]),
                      "keypoints": [v for k in keys for v in r[k]]} for r in results])  # fmt: skip
        idx = np.arange(WHOLEBODY133.num_keypoints) if part == "wholebody" else WHOLEBODY133.parts[part]
        sigmas.append(WHOLEBODY133.sigmas[idx])
    return docs, dets, sigmas


def run_peer(which: str, gt: str, pred: str, repeat: int) -> dict:
    """hotcoco or faster-coco-eval, one keypoint COCOeval per part with the part's sigmas."""
    try:
        if which == "hotcoco":
            from hotcoco import COCO, COCOeval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
    except ImportError as err:
        return {"skipped": f"{which} not installed ({err.name})"}
    rss0 = _rss_mb()
    runs = []
    for _ in range(repeat):
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = _clock()
            docs, dets, sigmas = _part_sets(gt, pred)
            pairs = []
            for doc, det in zip(docs, dets):
                coco = COCO(doc)
                pairs.append((coco, coco.loadRes(det)))
            t1 = _clock()
            stats = {}
            for part, (coco, res), sig in zip(PARTS, pairs, sigmas):
                if which == "hotcoco":
                    ev = COCOeval(coco, res, "keypoints")
                    ev.params.kpt_oks_sigmas = sig.tolist()
                else:
                    ev = COCOeval(coco, res, "keypoints", kpt_oks_sigmas=sig.tolist(), use_area=True)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
                stats[part] = [float(v) for v in ev.stats][:10]
            t2 = _clock()
        runs.append((t0, t1, t2))
    return {**_best(runs), "peak_mb": _rss_mb(), "base_mb": rss0, "stats": stats}


def halpe_files(work: Path, doc: dict, results: list[dict]) -> tuple[Path, Path]:
    """The set as flat Halpe-136: shared points copied; head top, neck and hip from neighbours."""
    halpe_idx, coco_idx = halpe136_to_coco133_index()

    def flat(item: dict) -> list[float]:
        pts133 = np.concatenate([np.asarray(item[WHOLEBODY_KPT_KEYS[p]]).reshape(-1, 3) for p in PART_NAMES])
        pts = np.zeros((136, 3))
        pts[halpe_idx] = pts133[coco_idx]
        for target, (a, b) in ((17, (1, 2)), (18, (5, 6)), (19, (11, 12))):
            if pts[a, 2] > 0 and pts[b, 2] > 0:
                pts[target] = [(pts[a, 0] + pts[b, 0]) / 2, (pts[a, 1] + pts[b, 1]) / 2, min(pts[a, 2], pts[b, 2])]
        return pts.round(3).reshape(-1).tolist()

    anns = [{k: v for k, v in a.items() if k not in WHOLEBODY_KPT_KEYS.values() and not k.endswith(("_box", "_valid"))}
            | {"keypoints": flat(a)} for a in doc["annotations"]]  # fmt: skip
    res = [{"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"], "keypoints": flat(r)}
           for r in results]  # fmt: skip
    gt, pred = work / "halpe_gt.json", work / "halpe_results.json"
    gt.write_text(json.dumps({**doc, "annotations": anns}))
    pred.write_text(json.dumps(res))
    return gt, pred


def run_halpecocotools(gt: str, pred: str, repeat: int) -> dict:
    try:
        import halpecocotools  # noqa: F401
    except ImportError:
        return {"skipped": "halpecocotools not installed (./install.sh --test builds it)"}
    from eval_reference import _halpecocotools_shims

    rss0 = _rss_mb()
    runs = []
    for _ in range(repeat):
        with _halpecocotools_shims(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from halpecocotools.coco import COCO
            from halpecocotools.cocoeval import COCOeval

            t0 = _clock()
            coco = COCO(gt)
            det = coco.loadRes(pred)
            t1 = _clock()
            ev = COCOeval(coco, det, "keypoints")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats = {part: [float(v) for v in s[part]] for s in ev.stats for part in s}
            t2 = _clock()
        runs.append((t0, t1, t2))
    return {**_best(runs), "peak_mb": _rss_mb(), "base_mb": rss0, "stats": stats}


def _rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _best(runs: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]]) -> dict:
    """Best of the runs for loading, evaluation and both, in wall and CPU seconds."""
    out = {}
    for i, clock in enumerate(("wall", "cpu")):
        out[f"load_{clock}"] = min(r[1][i] - r[0][i] for r in runs)
        out[f"eval_{clock}"] = min(r[2][i] - r[1][i] for r in runs)
        out[f"total_{clock}"] = min(r[2][i] - r[0][i] for r in runs)
    return out


CHILDREN = {"wbt": run_wbt, "xtcocotools": run_xtcocotools, "hotcoco": lambda *a: run_peer("hotcoco", *a),
            "faster-coco-eval": lambda *a: run_peer("faster-coco-eval", *a), "wbt-halpe": lambda *a: run_wbt(*a, protocol="halpe"),
            "halpecocotools": run_halpecocotools}  # fmt: skip


def _child(which: str, gt: Path, pred: Path, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--gt", str(gt), "--pred", str(pred), "--repeat", str(repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"skipped": f"{which} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(ours: dict, others: dict[str, dict], targets: dict[str, dict[str, float]], parts: tuple[str, ...]) -> None:
    """One block per timing (evaluation, loading, whole run): ours, then each other and the ratio."""
    ran = {name: r for name, r in others.items() if "skipped" not in r}
    for name, r in others.items():
        if "skipped" in r:
            print(f"  {name}: skipped ({r['skipped']})")
    for key, label in (("eval", "evaluation (in memory)"), ("load", "json loading"), ("total", "whole run incl. json")):
        print(f"  {label}: wbt {ours[key + '_wall']:.3f} s ({ours[key + '_cpu']:.3f} s CPU)")
        for name, r in ran.items():
            ratio = r[f"{key}_wall"] / ours[f"{key}_wall"]
            cpu = r[f"{key}_cpu"] / ours[f"{key}_cpu"]
            target = targets.get(name, {}).get(key)
            tgt = f"  target >= {target:g}x: {'met' if ratio >= target else 'NOT met'}" if target else ""
            print(f"    {name:18} {r[key + '_wall']:8.3f} s ({r[key + '_cpu']:.3f} s CPU)   "
                  f"wbt is {ratio:5.1f}x faster ({cpu:.1f}x CPU){tgt}")  # fmt: skip
    print(f"  peak memory (RSS): wbt {ours['peak_mb']:.0f} MB; "
          + "; ".join(f"{n} {r['peak_mb']:.0f} MB" for n, r in ran.items()))
    for name, r in ran.items():
        all_area = max(abs(a - b) for p in parts for i, (a, b) in enumerate(zip(ours["stats"][p], r["stats"][p]))
                       if i not in (3, 4, 8, 9))  # fmt: skip
        ranges = max(abs(a - b) for p in parts for i, (a, b) in enumerate(zip(ours["stats"][p], r["stats"][p]))
                     if i in (3, 4, 8, 9))  # fmt: skip
        print(f"  largest stat difference wbt vs {name}: AP/AR (all areas) {all_area:.2e}, "
              f"APM/APL/ARM/ARL {ranges:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--persons", type=int, default=6500)
    ap.add_argument("--dets", type=int, default=6800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="wbt and peer runs (best taken); the references run once")
    ap.add_argument("--no-halpe", action="store_true", help="skip the Halpe-protocol section")
    ap.add_argument("--workdir", help="keep the generated json here (default: a temp dir)")
    ap.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    ap.add_argument("--pred", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(CHILDREN[args.child](args.gt, args.pred, args.repeat)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        doc, results = build_set(args.images, args.persons, args.dets, args.seed)
        gt, pred = work / "gt.json", work / "results.json"
        gt.write_text(json.dumps(doc))
        pred.write_text(json.dumps(results))
        print(
            f"set: {len(doc['images'])} images, {len(doc['annotations'])} persons, {len(results)} detections; "
            f"gt {gt.stat().st_size / 1e6:.1f} MB, results {pred.stat().st_size / 1e6:.1f} MB; machine load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        w = _child("wbt", gt, pred, args.repeat)
        others = {"xtcocotools": _child("xtcocotools", gt, pred, 1)}
        for peer in PEERS:
            others[peer] = _child(peer, gt, pred, args.repeat)
        print(f"\nCOCO-WholeBody protocol, six parts (wbt and peers: best of {args.repeat}; xtcocotools: 1 run)")
        _table(w, others, {"xtcocotools": {"eval": 20, "total": 5}, "hotcoco": {"eval": 2}}, PARTS)
        print(f"  wholebody AP / AR: {w['stats']['wholebody'][0]:.4f} / {w['stats']['wholebody'][5]:.4f}")
        if not args.no_halpe:
            hgt, hpred = halpe_files(work, doc, results)
            wh = _child("wbt-halpe", hgt, hpred, args.repeat)
            hx = {"halpecocotools": _child("halpecocotools", hgt, hpred, 1)}
            print(f"\nHalpe protocol, Halpe-136 ({hgt.stat().st_size / 1e6:.1f} MB GT), five parts in one pass "
                  f"(wbt: best of {args.repeat}; halpecocotools: 1 run)")  # fmt: skip
            _table(wh, hx, {}, HALPE_PARTS)
            print(f"  fullbody AP / AR: {wh['stats']['fullbody'][0]:.4f} / {wh['stats']['fullbody'][5]:.4f}")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
