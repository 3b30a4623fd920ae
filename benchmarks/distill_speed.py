"""`wbt distill` throughput, pipeline overhead, worker scaling and peak memory on this machine.

Input: the real COCO-WholeBody images in ../shared/realdata/coco_wholebody, body-only
annotations, repeated ``--repeat`` times under new image / annotation ids (the same photos,
so every size has the same persons per image). Every run is the real CLI in a subprocess
(real teachers, real shards, real assembly); memory is the peak summed RSS of its process
tree, sampled every 20 ms.

Prints:
- persons/s and images/s with 1 and 2 workers, and the 1 -> 2 scaling (target >= 1.7x);
- the teachers' own time per person (inside their predict calls) and the pipeline overhead
  beyond it: decode, proposals, merge, shard and output writing (target < 25% of teacher time);
- peak RAM at two dataset sizes (should stay flat);
- the wall time extrapolated to COCO train2017 (~150k persons with keypoints, 57k images) on 16 cores.

    .venv/bin/python benchmarks/distill_speed.py [--data ../shared/realdata] [--repeat 24] [--big 2] [--ray]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COCO_TRAIN_PERSONS = 149_813  # persons with keypoints in person_keypoints_train2017.json
COCO_TRAIN_IMAGES = 56_599  # images holding them


def make_input(data: Path, repeat: int, dest: Path) -> Path:
    """Body-only annotations over the real images, repeated under new ids."""
    src = json.loads((data / "coco_wholebody" / "test_coco_wholebody.json").read_text())
    part_keys = {"foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts", "face_box", "lefthand_box"}
    part_keys |= {"righthand_box", "foot_valid", "face_valid", "lefthand_valid", "righthand_valid"}
    images, anns = [], []
    for r in range(repeat):
        for im in src["images"]:
            images.append({**im, "id": im["id"] + r * 10_000_000})
        for a in src["annotations"]:
            a = {k: v for k, v in a.items() if k not in part_keys}
            anns.append({**a, "id": a["id"] + r * 10_000_000, "image_id": a["image_id"] + r * 10_000_000})
    doc = {**src, "images": images, "annotations": anns}
    path = dest / f"body_x{repeat}.json"
    path.write_text(json.dumps(doc))
    return path


def peak_rss_of(proc: subprocess.Popen) -> list[int]:
    """Start sampling the summed RSS of ``proc`` and its children; returns a list whose [0] holds the peak."""
    import psutil

    peak = [0]

    def sample():
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while proc.poll() is None:
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                break
            peak[0] = max(peak[0], total)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    return peak


def run(ann: Path, images: Path, out: Path, workers: int, engine: str = "local") -> dict:
    cmd = [sys.executable, "-c", "from labeltool.cli import main; main()", "distill", "--ann", str(ann)]
    cmd += ["--images", str(images), "--out", str(out), "--workers", str(workers), "--no-progress", "--shard-size", "4"]
    cmd += ["--engine", engine]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    peak = peak_rss_of(proc)
    _, err = proc.communicate()
    total = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"wbt distill failed:\n{err}")
    summary = json.loads((out / "summary.json").read_text())
    summary["bench"] = {"process_seconds": total, "peak_rss": peak[0]}
    return summary


def startup_seconds() -> float:
    """Building the teachers once (what each worker pays at start)."""
    sys.path.insert(0, str(REPO))
    from labeltool.distill.body import AnnotatedBody
    from labeltool.distill.work import DistillConfig, Distiller

    start = time.perf_counter()
    Distiller(DistillConfig(), AnnotatedBody()).close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--repeat", type=int, default=24, help="copies of the 4 real images for the speed runs")
    parser.add_argument("--big", type=int, default=2, help="the memory run's size, in multiples of --repeat")
    parser.add_argument("--ray", action="store_true", help="also run the 2-worker case on a local Ray instance")
    args = parser.parse_args()
    if not (args.data / "coco_wholebody").is_dir():
        sys.exit(f"{args.data / 'coco_wholebody'}: real data not found (give --data)")
    images = args.data / "coco_wholebody"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    os.environ.setdefault("GLOG_minloglevel", "2")
    startup = startup_seconds()
    print(f"teacher start-up (built once per worker): {startup:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = make_input(args.data, args.repeat, tmp)
        big = make_input(args.data, args.repeat * args.big, tmp)
        results = {w: run(small, images, tmp / f"w{w}", w) for w in (1, 2)}
        big_run = run(big, images, tmp / "big", 2)
        ray_run = run(small, images, tmp / "ray", 2, engine="ray") if args.ray else None
    load = os.getloadavg()[0]

    print(f"\ninput: {args.repeat} x 4 real COCO images; persons labelled per run: {results[1]['persons']['labelled']}")
    print(f"{'workers':>8} {'persons/s':>10} {'images/s':>9} {'label s':>8} {'assemble s':>11} {'peak RSS MB':>12}")
    for w, s in results.items():
        r = s["run"]
        print(
            f"{w:>8} {r['persons_per_second']:>10.2f} {r['images_per_second']:>9.2f} {r['wall_seconds']:>8.1f} "
            f"{r['assemble_seconds']:>11.2f} {s['bench']['peak_rss'] / 2**20:>12.0f}"
        )
    if ray_run is not None:
        r = ray_run["run"]
        print(
            f"{'2 (ray)':>8} {r['persons_per_second']:>10.2f} {r['images_per_second']:>9.2f} {r['wall_seconds']:>8.1f} "
            f"{r['assemble_seconds']:>11.2f} {ray_run['bench']['peak_rss'] / 2**20:>12.0f}   (Ray start-up included)"
        )
    scaling = results[2]["run"]["persons_per_second"] / results[1]["run"]["persons_per_second"]
    print(f"scaling 1 -> 2 workers: {scaling:.2f}x (target >= 1.7x)")

    one = results[1]["run"]
    persons = one["persons_done_now"]
    teacher = one["teacher_seconds_per_person"] * persons
    # one worker runs in-process: its labelling wall time = start-up + teachers + everything else
    overhead = one["wall_seconds"] - startup - teacher + one["assemble_seconds"]
    by = ", ".join(f"{k} {v * 1000:.0f}" for k, v in one["teacher_seconds_per_person_by_teacher"].items())
    print(f"teachers' own time: {one['teacher_seconds_per_person'] * 1000:.0f} ms per person ({by} ms)")
    print(
        f"pipeline overhead beyond the teachers (decode, proposals, merge, shards, outputs): "
        f"{overhead / persons * 1000:.0f} ms per person = {100 * overhead / teacher:.1f}% of teacher time (target < 25%)"
    )

    b = big_run
    print(
        f"\npeak RAM, 2 workers: {results[2]['bench']['peak_rss'] / 2**20:.0f} MB for {results[2]['images']['in_output']} images, "
        f"{b['bench']['peak_rss'] / 2**20:.0f} MB for {b['images']['in_output']} images"
    )

    per_person_1 = one["wall_seconds"] / persons  # seconds per person, one worker, start-up included
    per_person_1_steady = (one["wall_seconds"] - startup) / persons
    ideal = COCO_TRAIN_PERSONS * per_person_1_steady / 16
    measured_eff = scaling / 2
    print(
        f"\nCOCO train2017 ({COCO_TRAIN_PERSONS} persons, {COCO_TRAIN_IMAGES} images) on 16 cores, 16 workers: "
        f"{ideal / 3600:.1f} h at linear scaling ({per_person_1_steady * 1000:.0f} ms per person per core; "
        f"{per_person_1 * 1000:.0f} ms with start-up), {ideal / min(measured_eff, 1.0) / 3600:.1f} h at this run's "
        f"2-worker efficiency ({measured_eff:.0%})"
    )
    print(f"load average at the end: {load:.1f} (figures taken under that load)")


if __name__ == "__main__":
    main()
