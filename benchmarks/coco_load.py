"""Load time and peak memory of ``load_pose_dataset`` on a COCO train2017-sized person-keypoints file.

Builds a synthetic ``person_keypoints_train2017.json`` look-alike in a temp dir (118,287 images,
262,465 person annotations, ~240 MB: segmentation polygons, RLE for crowds, 17x3 keypoints, about
57% of persons with keypoints, as in the real file), then loads it in fresh processes with:

- ``json.load`` (the standard library parser, the reference),
- ``orjson.loads`` (the parser ``load_pose_dataset`` uses: its share of the time and memory),
- ``pycocotools.coco.COCO`` (what most tools use),
- ``labeltool.io.pose.load_pose_dataset`` (validated arrays).

Each loader runs in its own process; peak memory is that process's RSS high-water mark
(``resource.getrusage``) minus its RSS after imports; "kept" is the RSS the loaded result holds. Run:

    .venv/bin/python benchmarks/coco_load.py            # full size
    .venv/bin/python benchmarks/coco_load.py --scale 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NUM_IMAGES = 118_287
NUM_ANNOTATIONS = 262_465
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]  # fmt: skip
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]  # fmt: skip


def _round2(a: np.ndarray) -> list:
    return np.round(a, 2).tolist()


def write_synthetic(path: Path, scale: float = 1.0, seed: int = 0) -> None:
    """Stream a train2017-sized COCO person-keypoints file to ``path`` (chunked, low memory)."""
    import orjson

    rng = np.random.default_rng(seed)
    n_img = max(1, int(NUM_IMAGES * scale))
    n_ann = max(1, int(NUM_ANNOTATIONS * scale))
    with open(path, "wb") as f:
        f.write(b'{"info":{"description":"synthetic COCO 2017 person keypoints","version":"1.0","year":2017},')
        f.write(b'"licenses":[{"url":"http://creativecommons.org/licenses/by-nc-sa/2.0/","id":1,"name":"CC"}],')
        f.write(b'"images":[')
        for start in range(0, n_img, 10_000):
            ids = np.arange(start, min(n_img, start + 10_000))
            chunk = [
                {
                    "license": int(1 + i % 8),
                    "file_name": f"{1_000_000 + i:012d}.jpg",
                    "coco_url": f"http://images.cocodataset.org/train2017/{1_000_000 + i:012d}.jpg",
                    "height": 480,
                    "width": 640,
                    "date_captured": "2013-11-14 16:28:13",
                    "flickr_url": f"http://farm4.staticflickr.com/3153/{9_000_000_000 + i}_2b7d4bc4a5_z.jpg",
                    "id": int(1_000_000 + i),
                }
                for i in ids
            ]
            if start:
                f.write(b",")
            f.write(orjson.dumps(chunk)[1:-1])
        f.write(b'],"annotations":[')
        for start in range(0, n_ann, 10_000):
            m = min(n_ann, start + 10_000) - start
            wh = rng.uniform(10, 300, size=(m, 2))
            xy = rng.uniform(0, 300, size=(m, 2))
            crowd = rng.random(m) < 0.0041  # 1,074 crowd regions in train2017
            has_kpts = (rng.random(m) < 0.57) & ~crowd
            chunk = []
            for j in range(m):
                x, y = xy[j]
                w, h = wh[j]
                if crowd[j]:
                    seg = {"counts": rng.integers(0, 400, size=int(rng.integers(40, 400))).tolist(), "size": [480, 640]}
                else:
                    n_vertices = int(rng.integers(14, 63))
                    angle = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
                    poly = np.stack([x + w / 2 * (1 + np.cos(angle)), y + h / 2 * (1 + np.sin(angle))], axis=1)
                    seg = [_round2(poly.reshape(-1))]
                kpts = np.zeros((17, 3), dtype=np.int64)
                if has_kpts[j]:
                    vis = rng.integers(0, 3, size=17)
                    kpts[:, 0] = np.where(vis > 0, (x + rng.uniform(0, w, 17)).astype(np.int64), 0)
                    kpts[:, 1] = np.where(vis > 0, (y + rng.uniform(0, h, 17)).astype(np.int64), 0)
                    kpts[:, 2] = vis
                chunk.append(
                    {
                        "segmentation": seg,
                        "num_keypoints": int((kpts[:, 2] > 0).sum()),
                        "area": round(float(w * h * 0.6), 4),
                        "iscrowd": int(crowd[j]),
                        "keypoints": kpts.reshape(-1).tolist(),
                        "image_id": int(1_000_000 + rng.integers(0, n_img)),
                        "bbox": _round2(np.array([x, y, w, h])),
                        "category_id": 1,
                        "id": int(start + j + 1),
                    }
                )
            if start:
                f.write(b",")
            f.write(orjson.dumps(chunk)[1:-1])
        category = {"supercategory": "person", "id": 1, "name": "person", "keypoints": COCO_NAMES,
                    "skeleton": COCO_SKELETON}  # fmt: skip
        f.write(b'],"categories":[' + orjson.dumps(category) + b"]}")


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(loader: str, path: str) -> dict:
    """Run one loader in this process: seconds, peak RSS and the RSS the result keeps (MB, above the RSS after imports)."""
    if loader == "json.load":

        def run():
            with open(path) as f:
                return json.load(f)
    elif loader == "orjson.loads":
        import orjson

        def run():
            with open(path, "rb") as f:
                return orjson.loads(f.read())
    elif loader == "pycocotools":
        import contextlib
        import io

        from pycocotools.coco import COCO

        def run():
            with contextlib.redirect_stdout(io.StringIO()):
                return COCO(path)
    elif loader == "load_pose_dataset":
        from labeltool.io.pose import load_pose_dataset

        def run():
            return load_pose_dataset(path)
    else:
        raise ValueError(loader)
    base = _rss_mb()
    t0 = time.perf_counter()
    loaded = run()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    kept = _rss_mb() - base
    count = (
        len(loaded.anns)
        if loader == "pycocotools"
        else len(loaded if loader == "load_pose_dataset" else loaded["annotations"])
    )
    return {"loader": loader, "seconds": seconds, "peak_mb": peak - base, "kept_mb": kept, "annotations": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of train2017's size (default 1)")
    parser.add_argument("--keep", type=Path, help="write the synthetic file here and keep it")
    parser.add_argument("--measure", nargs=2, metavar=("LOADER", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "person_keypoints_train2017.json"
        t0 = time.perf_counter()
        write_synthetic(path, args.scale)
        size_mb = path.stat().st_size / 2**20
        print(f"synthetic file: {path.name}, {size_mb:.0f} MB, written in {time.perf_counter() - t0:.1f} s")
        rows = []
        for loader in ("json.load", "orjson.loads", "pycocotools", "load_pose_dataset"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", loader, str(path)], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = rows[0]
    print(
        f"{'loader':<18} {'annotations':>11} {'seconds':>8} {'x json':>7} {'peak MB':>8} {'x json':>7} {'kept MB':>8}"
    )
    for r in rows:
        print(
            f"{r['loader']:<18} {r['annotations']:>11} {r['seconds']:>8.2f} {r['seconds'] / ref['seconds']:>7.2f} "
            f"{r['peak_mb']:>8.0f} {r['peak_mb'] / ref['peak_mb']:>7.2f} {r['kept_mb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
