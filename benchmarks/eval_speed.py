"""Speed of `wbt eval` against xtcocotools (driven as mmpose's CocoWholeBodyMetric) on the same files.

Builds a synthetic COCO-WholeBody set (default 5000 images, 6500 persons, ~6800 detections,
mmpose-style results with split part keys), then times, each in a fresh subprocess:

* wbt: load GT + results json, and the six-part evaluation (``labeltool.eval.evaluate``);
* xtcocotools: ``COCO(gt)`` + ``loadRes(results)``, and the six COCOeval passes
  (body, foot, face, lefthand, righthand, wholebody; ``use_area=True``).

Prints both times, the ratios (targets: evaluation >= 20x, whole run incl. json >= 5x), the
peak resident memory of each process and the largest stat difference between the two.

    .venv/bin/python benchmarks/eval_speed.py            # full size, ~1 min
    .venv/bin/python benchmarks/eval_speed.py --images 500 --persons 650 --dets 680
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
sys.path.insert(0, str(REPO))

from labeltool.layouts import PART_NAMES, WHOLEBODY133, WHOLEBODY_KPT_KEYS  # noqa: E402

PARTS = (*PART_NAMES, "wholebody")


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


def run_wbt(gt: str, pred: str, repeat: int) -> dict:
    from labeltool.eval.evaluator import evaluate, load_ground_truth, load_results

    rss0 = _rss_mb()
    runs = []
    for _ in range(repeat):
        t0 = _clock()
        ds = load_ground_truth(gt)
        preds = load_results(ds, pred)
        t1 = _clock()
        report = evaluate(ds, preds)
        t2 = _clock()
        runs.append((t0, t1, t2))
    stats = {p: report.results[p].stats.tolist() for p in report.parts}
    return {**_best(runs), "peak_mb": _rss_mb(), "base_mb": rss0, "stats": stats}


def run_xtcocotools(gt: str, pred: str, repeat: int) -> dict:
    from xtcocotools.coco import COCO

    from labeltool.eval.reference import xtcocotools_passes

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


def _child(which: str, gt: Path, pred: Path, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--gt", str(gt), "--pred", str(pred), "--repeat", str(repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--persons", type=int, default=6500)
    ap.add_argument("--dets", type=int, default=6800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="wbt runs (best taken); xtcocotools runs once")
    ap.add_argument("--workdir", help="keep the generated json here (default: a temp dir)")
    ap.add_argument("--child", choices=["wbt", "xtcocotools"], help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    ap.add_argument("--pred", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "wbt":
        print(json.dumps(run_wbt(args.gt, args.pred, args.repeat)))
        return
    if args.child == "xtcocotools":
        print(json.dumps(run_xtcocotools(args.gt, args.pred, args.repeat)))
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
            f"gt {gt.stat().st_size / 1e6:.1f} MB, results {pred.stat().st_size / 1e6:.1f} MB"
        )
        w = _child("wbt", gt, pred, args.repeat)
        x = _child("xtcocotools", gt, pred, 1)
    diff = max(abs(a - b) for p in PARTS for a, b in zip(w["stats"][p], x["stats"][p]))
    print(f"{'':24}{'wbt':>10}{'xtcocotools':>14}{'ratio':>9}   (wall clock; CPU seconds in brackets)")
    for key, label, target in (("eval", "six-part evaluation", 20), ("load", "json loading", None),
                               ("total", "whole run incl. json", 5)):
        ratio = x[f"{key}_wall"] / w[f"{key}_wall"]
        cpu_ratio = x[f"{key}_cpu"] / w[f"{key}_cpu"]
        tgt = f"  target >= {target}x: {'met' if ratio >= target else 'NOT met'}" if target else ""
        print(f"{label:24}{w[key + '_wall']:>9.3f}s{x[key + '_wall']:>13.3f}s{ratio:>8.1f}x"
              f"   ({w[key + '_cpu']:.3f}s / {x[key + '_cpu']:.3f}s = {cpu_ratio:.1f}x){tgt}")
    print(f"{'peak memory (RSS)':24}{w['peak_mb']:>8.0f}MB{x['peak_mb']:>12.0f}MB   (after imports: "
          f"{w['base_mb']:.0f} / {x['base_mb']:.0f} MB)")
    print(f"wbt: best of {args.repeat} runs; xtcocotools: 1 run; machine load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"largest stat difference wbt vs xtcocotools: {diff:.2e}")
    print(f"wholebody AP / AR: {w['stats']['wholebody'][0]:.4f} / {w['stats']['wholebody'][5]:.4f}")


if __name__ == "__main__":
    main()
