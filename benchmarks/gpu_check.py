"""GPU readiness check for the student: run once on a CUDA machine; prints figures and writes one JSON.

What it runs (each part's figures go to the JSON; a part that fails is recorded, the rest still run):

  paths       every CUDA training path of labeltool.student.train.Learner for --steps steps each, preset
              m at 192x256, batch --batch-size, data from the crop cache (pinned batches, side-stream
              copies via ``to_device``, augmentation and SimCC targets on the GPU, fused AdamW, EMA):
              fp32 eager; bf16 autocast; bf16 + channels_last; bf16 + channels_last + torch.compile.
              Per path: samples/s, final loss, whether every loss was finite. The augmentation +
              target step also runs once under ``torch.cuda.set_sync_debug_mode('warn')``: the
              number of host syncs it makes is recorded (expected 0).
  throughput  samples/s of the fastest path against the targets (>= 5,000 on one H100/H200, stretch
              10,000), and the data path alone (crop cache -> pinned batches, no model).
  loss_curves fp32 and bf16 (channels_last, eager) trained --curve-steps steps from the same seed on
              the same batches with the same augmentation draws. Two runs in different precision
              drift apart step by step (chaotic, like two seeds), so the tolerance is stated on
              smoothed curves: the 50-step moving means of the losses differ by at most 10 %
              (relative) at every step after step 100, and the means of the last 100 steps by at most
              5 %. Curves every 10 steps go to the JSON.
  ddp         ``python -m torch.distributed.run --nproc_per_node <visible GPUs> -m labeltool.student
              train-student`` (NCCL, preset tiny, bf16, channels_last, --compile unless --skip-compile,
              crop cache, batch 64 per GPU, 2 epochs of up to --ddp-steps steps, validation every
              epoch sharded over the ranks) on the labels tiled to --persons (so every rank gets full
              batches): exit code, per-rank RNG states in last.pt, validation AP present, steps done,
              samples/s per epoch. The child gets this checkout on its PYTHONPATH.

The JSON (--out) is rewritten after every stage, so a time-out or a crash keeps the figures so far.
The script runs from a checkout as it is (no ``pip install -e .`` or PYTHONPATH needed).

Data: the real COCO-WholeBody sample (--data, ../shared/realdata by default) tiled to --persons
persons, or, where it is absent, synthetic persons drawn as dots at their 133 points on noise
images (said in the JSON). On a machine without CUDA the script refuses in one line (exit 2).

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --steps 100 --curve-steps 500 --skip-ddp      (a shorter run)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # runs from a checkout: no pip install, no PYTHONPATH
from train_speed import matmul_rate, tile_table  # noqa: E402

from labeltool.io.atomic import write_bytes_atomic, write_json_atomic  # noqa: E402
from labeltool.io.jsonfile import read_json  # noqa: E402
from labeltool.layouts import WHOLEBODY133  # noqa: E402
from labeltool.student.data import (  # noqa: E402
    BatchIndices,
    CachedCrops,
    CropGeometry,
    batch_loader,
    build_crop_cache,
    load_json_source,
)
from labeltool.student.train import Learner, TrainConfig, to_device  # noqa: E402

TARGET_SAMPLES_PER_S = 5000
STRETCH_SAMPLES_PER_S = 10000
CURVE_SMOOTH = 50
CURVE_STEP_TOL = 0.10  # relative, smoothed curves, every step after CURVE_SKIP
CURVE_SKIP = 100
CURVE_FINAL_TOL = 0.05  # relative, mean of the last 100 steps


def sync() -> None:
    torch.cuda.synchronize()


# --------------------------------------------------------------------------- data


def synthetic_dataset(root: Path, images: int = 48, per_image: int = 4, seed: int = 0) -> Path:
    """A COCO-WholeBody json + JPEGs: noise images with each person's 133 points drawn as bright dots,
    so a model can learn them (the check needs a loss that falls, not real people)."""
    import cv2

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    parts = {"keypoints": range(0, 17), "foot_kpts": range(17, 23), "face_kpts": range(23, 91),
             "lefthand_kpts": range(91, 112), "righthand_kpts": range(112, 133)}
    imgs, anns = [], []
    for i in range(images):
        image = rng.integers(0, 90, (480, 640, 3), dtype=np.uint8)
        for j in range(per_image):
            w, h = rng.uniform(90, 160), rng.uniform(180, 300)
            x0, y0 = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            pts = np.stack([rng.uniform(x0, x0 + w, 133), rng.uniform(y0, y0 + h, 133)], axis=1)
            for k, (x, y) in enumerate(pts):
                colour = tuple(int(c) for c in (80 + (k * 37) % 176, 80 + (k * 91) % 176, 255))
                cv2.circle(image, (int(x), int(y)), 2, colour, -1)
            ann = {"id": i * per_image + j + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                   "bbox": [x0, y0, w, h], "area": w * h, "num_keypoints": 17}
            for key, idx in parts.items():
                ann[key] = np.concatenate([pts[list(idx)], np.full((len(idx), 1), 2.0)], axis=1).reshape(-1).tolist()
            for part in ("face", "lefthand", "righthand"):
                ann[f"{part}_box"] = [x0, y0, w, h]
                ann[f"{part}_valid"] = True
            ann["foot_valid"] = True
            anns.append(ann)
        name = f"{i + 1:012d}.jpg"
        cv2.imwrite(str(root / name), image)
        imgs.append({"id": i + 1, "file_name": name, "width": 640, "height": 480})
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [], "skeleton": []}]
    path = root / "synthetic_wholebody.json"
    path.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": cats}))
    return path


def tile_labels(labels: Path, images: Path, persons: int, dst: Path) -> tuple[Path, int]:
    """``labels`` with its annotations repeated (new ids, same images) until at least ``persons`` of them are
    usable for training: what the DDP child trains on, so every rank gets full batches. Returns the path and
    the usable persons in it."""
    usable = len(load_json_source(labels, images, WHOLEBODY133))
    data = read_json(labels)
    anns = data["annotations"]
    reps = max(1, -(-persons // max(usable, 1)))
    step = max(int(a["id"]) for a in anns) + 1
    data["annotations"] = [{**a, "id": int(a["id"]) + r * step} for r in range(reps) for a in anns]
    write_json_atomic(data, dst)
    return dst, usable * reps


def dataset(args, tmp: Path) -> tuple[Path, Path, str]:
    """(labels json, image dir, what it is)."""
    real = args.data / "coco_wholebody" / "test_coco_wholebody.json"
    if real.is_file():
        return real, real.parent, f"real COCO-WholeBody sample ({real}), tiled"
    path = synthetic_dataset(tmp / "synthetic")
    return path, path.parent, f"synthetic persons (no {real}): dots at 133 points on noise images"


# --------------------------------------------------------------------------- single-GPU parts


def make_learner(preset: str, batch: int, amp: bool, channels_last: bool, compile_: bool, steps: int,
                 warmup: int = 100) -> Learner:
    cfg = TrainConfig(preset=preset, input_size=(192, 256), batch_size=batch, amp=amp, channels_last=channels_last,
                      compile=compile_, epochs=2, warmup_steps=warmup, seed=0, device="cuda")
    return Learner(cfg, WHOLEBODY133, torch.device("cuda"), steps_per_epoch=max(1, steps // 2))


def batches(source, batch: int, count: int, workers: int, seed: int = 0):
    """``count`` batches from the crop cache (several epochs' permutations if needed), pinned, on the GPU."""
    sampler = BatchIndices(len(source), batch, seed)

    def host():
        epoch, served = 0, 0
        while served < count:
            sampler.set_epoch(epoch)
            for b in batch_loader(source, sampler, workers, pin_memory=True):
                if served == count:
                    return
                served += 1
                yield b
            epoch += 1

    return to_device(host(), torch.device("cuda"))


def run_path(name: str, source, args, amp: bool, channels_last: bool, compile_: bool) -> dict:
    learner = make_learner("m", args.batch_size, amp, channels_last, compile_, args.steps + args.warmup)
    losses, t0, t_compile = [], None, time.perf_counter()
    for i, batch in enumerate(batches(source, args.batch_size, args.warmup + args.steps, args.workers)):
        if i == args.warmup:
            sync()
            t0 = time.perf_counter()
            t_compile = t0 - t_compile
        losses.append(learner.step(batch))
    sync()
    elapsed = time.perf_counter() - t0
    values = torch.stack(losses).float().cpu().numpy()
    rate = args.steps * args.batch_size / elapsed
    out = {"samples_per_s": rate, "step_ms": 1000 * elapsed / args.steps, "final_loss": float(values[-1]),
           "all_finite": bool(np.isfinite(values).all()), "warmup_s": t_compile, "steps": args.steps,
           "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9}
    print(f"  {name:<32} {rate:9.0f} samples/s  {out['step_ms']:7.1f} ms/step  loss {values[-1]:.4f}  "
          f"warm-up {t_compile:5.1f} s", flush=True)
    torch.cuda.reset_peak_memory_stats()
    return out


def augment_sync_count(source, args) -> int:
    """Host syncs made by one augmentation + target step (torch's sync debug mode, 'warn')."""
    learner = make_learner("m", args.batch_size, True, True, False, 10)
    batch = next(iter(batches(source, args.batch_size, 1, args.workers)))
    learner.inputs(batch)  # first call: lazy CUDA initialisation is not the step's
    sync()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            learner.inputs(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def data_rate(source, args, count: int = 60) -> float:
    n, t = 0, None
    for b in batches(source, args.batch_size, count, args.workers, seed=1):
        if t is None:
            sync()
            t = time.perf_counter()
            continue
        n += len(b["index"])
    sync()
    return n / (time.perf_counter() - t)


def loss_curves(source, args) -> dict:
    curves = {}
    for name, amp in (("fp32", False), ("bf16", True)):
        learner = make_learner("m", args.curve_batch, amp, True, False, args.curve_steps)
        losses = [learner.step(b) for b in batches(source, args.curve_batch, args.curve_steps, args.workers, seed=2)]
        curves[name] = torch.stack(losses).float().cpu().numpy()
        print(f"  {name}: loss {curves[name][0]:.4f} -> {curves[name][-1]:.4f} over {args.curve_steps} steps",
              flush=True)
    kernel = np.ones(CURVE_SMOOTH) / CURVE_SMOOTH
    smooth = {k: np.convolve(v, kernel, mode="valid") for k, v in curves.items()}
    start = max(0, CURVE_SKIP - CURVE_SMOOTH + 1)
    rel = np.abs(smooth["bf16"][start:] - smooth["fp32"][start:]) / np.abs(smooth["fp32"][start:])
    final = {k: float(v[-100:].mean()) for k, v in curves.items()}
    final_rel = abs(final["bf16"] - final["fp32"]) / abs(final["fp32"])
    ok = bool(rel.max() <= CURVE_STEP_TOL and final_rel <= CURVE_FINAL_TOL and all(
        np.isfinite(v).all() for v in curves.values()))
    print(f"  smoothed max relative difference {rel.max():.3f} (tolerance {CURVE_STEP_TOL}), last-100 means "
          f"{final['fp32']:.4f} / {final['bf16']:.4f} ({final_rel:.3f}, tolerance {CURVE_FINAL_TOL}): "
          f"{'agree' if ok else 'DISAGREE'}", flush=True)
    return {"steps": args.curve_steps, "batch": args.curve_batch, "tolerance": {
                "smoothed_max_relative": CURVE_STEP_TOL, "after_step": CURVE_SKIP, "window": CURVE_SMOOTH,
                "last_100_mean_relative": CURVE_FINAL_TOL},
            "smoothed_max_relative": float(rel.max()), "last_100_mean": final, "last_100_relative": final_rel,
            "agree": ok, "every_10_steps": {k: v[::10].round(6).tolist() for k, v in curves.items()}}


# --------------------------------------------------------------------------- DDP


def ddp_check(labels: Path, images: Path, tmp: Path, args, nproc: int | None = None, device: str = "cuda") -> dict:
    """``python -m torch.distributed.run`` of train-student over ``nproc`` processes (every visible GPU; gloo on
    the CPU for tests) on ``labels`` tiled to --persons, batch 64 per process, so each rank has full batches."""
    nproc = nproc or torch.cuda.device_count()
    batch = 64
    train_labels, persons = tile_labels(labels, images, max(args.persons, batch * nproc), tmp / "ddp_train.json")
    steps = min(args.ddp_steps, persons // (batch * nproc))
    out = tmp / "ddp_run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "labeltool.student", "train-student", "--train", str(train_labels), "--images", str(images),
           "--out", str(out), "--preset", "tiny", "--input-size", args.ddp_input_size, "--epochs", "2",
           "--max-steps-per-epoch", str(steps), "--batch-size", str(batch), "--cache", str(tmp / "ddp_cache"),
           "--build-cache", "--workers", str(args.workers), "--val", str(labels), "--val-images", str(images),
           "--val-every", "1", "--stage2-epochs", "1", "--log-every", "1000", "--device", device]
    if not args.skip_compile:
        cmd.append("--compile")
    t = time.perf_counter()
    result = {"processes": nproc, "device": device, "persons": persons, "steps_per_epoch": steps,
              "command": " ".join(cmd[1:])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.ddp_timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # the child imports labeltool from here too
    result.update({"exit_code": proc.returncode, "seconds": time.perf_counter() - t})
    if proc.returncode != 0:
        result["stderr_tail"] = proc.stderr[-3000:]
        print(f"  DDP over {nproc} process(es): FAILED (exit {proc.returncode})\n{proc.stderr[-1500:]}", flush=True)
        return result
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    rng = ckpt["rng"] if isinstance(ckpt["rng"], list) else [ckpt["rng"]]
    history = ckpt["history"]
    result.update({
        "rng_states": len(rng),
        "ranks_differ": bool(nproc < 2 or not torch.equal(rng[0]["augment"], rng[1]["augment"])),
        "stages": [r["stage"] for r in history],
        "validated": all("AP_wholebody" in r for r in history),
        "steps_done": ckpt["scheduler"]["last_epoch"],
        "samples_per_s": [r["samples_per_s"] for r in history],
    })
    result["ok"] = bool(len(rng) == nproc and result["ranks_differ"] and result["validated"]
                        and result["steps_done"] == 2 * steps)
    print(f"  DDP over {nproc} process(es): ok={result['ok']}, {steps} steps per epoch, "
          f"{result['samples_per_s'][-1]:.0f} samples/s in epoch 2, stages {result['stages']}", flush=True)
    return result


def write_report(report: dict, path: Path) -> None:
    """The JSON so far, written atomically after every stage: a time-out or a crash keeps the figures."""
    text = json.dumps(report, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    write_bytes_atomic(text.encode(), path)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "realdata")
    ap.add_argument("--persons", type=int, default=8192, help="persons in the crop cache (tiled)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200, help="timed steps per path")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps per path (compilation happens here)")
    ap.add_argument("--curve-steps", type=int, default=1000)
    ap.add_argument("--curve-batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    ap.add_argument("--ddp-steps", type=int, default=50)
    ap.add_argument("--ddp-timeout", type=int, default=900)
    ap.add_argument("--ddp-input-size", default="192x256", help="WIDTHxHEIGHT of the DDP run (preset tiny)")
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--skip-compile", action="store_true")
    args = ap.parse_args()
    args.warmup = max(1, args.warmup)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; run it where torch.cuda.is_available() is True",
              file=sys.stderr)
        return 2

    name = torch.cuda.get_device_name(0)
    report: dict = {"device": name, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
                    "matmul_tf32": torch.backends.cuda.matmul.allow_tf32}
    print(f"gpu_check on {torch.cuda.device_count()} x {name}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="wbt_gpu_check_") as tmp_name:
        tmp = Path(tmp_name)
        labels, images, what = dataset(args, tmp)
        report["data"] = what
        table = tile_table(load_json_source(labels, images, WHOLEBODY133), args.persons)
        geometry = CropGeometry((192, 256), 1.25)
        t = time.perf_counter()
        build_crop_cache(table, geometry, tmp / "cache", workers=args.workers, progress=False)
        report["crop_cache"] = {"persons": len(table), "build_s": time.perf_counter() - t}
        source = CachedCrops(table, geometry, tmp / "cache")
        print(f"data: {what}; crop cache of {len(table)} persons built in {report['crop_cache']['build_s']:.1f} s",
              flush=True)

        write_report(report, args.out)

        def part(key: str, fn):
            try:
                report[key] = fn()
            except Exception as err:  # record and go on: one broken path must not hide the others' figures
                report[key] = {"error": f"{type(err).__name__}: {err}"}
                print(f"  {key}: FAILED: {type(err).__name__}: {err}", flush=True)
            write_report(report, args.out)

        print(f"paths (preset m, 192x256, batch {args.batch_size}, {args.steps} timed steps each):", flush=True)
        paths = {"fp32": (False, False, False), "bf16": (True, False, False),
                 "bf16_channels_last": (True, True, False), "bf16_channels_last_compile": (True, True, True)}
        if args.skip_compile:
            paths.pop("bf16_channels_last_compile")
        report["paths"] = {}
        for key, (amp, cl, comp) in paths.items():
            try:
                report["paths"][key] = run_path(key, source, args, amp, cl, comp)
            except Exception as err:
                report["paths"][key] = {"error": f"{type(err).__name__}: {err}"}
                print(f"  {key}: FAILED: {type(err).__name__}: {err}", flush=True)
            write_report(report, args.out)
        part("augment_host_syncs", lambda: augment_sync_count(source, args))
        part("data_path_samples_per_s", lambda: data_rate(source, args))
        rates = {k: v["samples_per_s"] for k, v in report["paths"].items() if "samples_per_s" in v}
        best = max(rates, key=rates.get) if rates else None
        report["throughput"] = {
            "best_path": best, "samples_per_s": rates.get(best), "target": TARGET_SAMPLES_PER_S,
            "stretch": STRETCH_SAMPLES_PER_S, "meets_target": bool(best and rates[best] >= TARGET_SAMPLES_PER_S),
            "matmul_bf16_tflops": matmul_rate(torch.device("cuda")) / 1e12,
        }
        print(f"throughput: best {best} {rates.get(best, float('nan')):.0f} samples/s (target "
              f"{TARGET_SAMPLES_PER_S}, stretch {STRETCH_SAMPLES_PER_S}); data path alone "
              f"{report.get('data_path_samples_per_s', float('nan'))} samples/s; augmentation host syncs: "
              f"{report.get('augment_host_syncs')}", flush=True)
        print(f"loss curves (preset m, batch {args.curve_batch}, {args.curve_steps} steps, fp32 vs bf16):", flush=True)
        part("loss_curves", lambda: loss_curves(source, args))
        if not args.skip_ddp:
            print("DDP (torchrun, NCCL, every visible GPU):", flush=True)
            part("ddp", lambda: ddp_check(labels, images, tmp, args))
    report["ok"] = bool(
        all(v.get("all_finite") for v in report["paths"].values())
        and report.get("augment_host_syncs") == 0
        and report.get("loss_curves", {}).get("agree")
        and (args.skip_ddp or report.get("ddp", {}).get("ok"))
    )
    write_report(report, args.out)
    print(f"{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'}; figures in {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
