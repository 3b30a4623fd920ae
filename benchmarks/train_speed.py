"""Student training throughput: samples/s, step time split (data vs augment vs model) and FLOP utilisation.

Runs the real training step (labeltool.student.train.Learner: augmentation + SimCC targets on
the device, forward, backward, AdamW, EMA) on persons from the real COCO-WholeBody sample,
tiled to --persons persons, each given its own image file entry so the no-cache path decodes
one JPEG per person (as COCO does, ~1.3 persons per image). The data path is either the crop
cache (uint8 memmap, built first into a temp dir) or cropping from the images.

Model FLOP utilisation = 3 x forward FLOPs per sample x samples/s, over a dense matrix-product
rate measured in the same run on the same device (bf16 on CUDA, float32 on the CPU), and over
the datasheet peak when the GPU is known.

    python benchmarks/train_speed.py --preset tiny --device cpu --steps 20 --batch-size 32
    python benchmarks/train_speed.py --preset m --device cuda --cache --batch-size 256 --workers 12
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from labeltool.layouts import WHOLEBODY133
from labeltool.student.data import (
    BatchIndices,
    CachedCrops,
    CropGeometry,
    ImageCrops,
    PersonTable,
    batch_loader,
    build_crop_cache,
    load_json_source,
)
from labeltool.student.model import Student, count_flops
from labeltool.student.train import Learner, TrainConfig

DATASHEET_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def tiled_table(data: Path, persons: int) -> PersonTable:
    d = data / "coco_wholebody"
    return tile_table(load_json_source(d / "test_coco_wholebody.json", d, WHOLEBODY133), persons)


def tile_table(base: PersonTable, persons: int) -> PersonTable:
    """``base`` repeated to ``persons`` persons, each with its own image entry (one JPEG decode per person)."""
    reps = -(-persons // len(base))
    idx = np.tile(np.arange(len(base)), reps)[:persons]
    t = base.subset(idx)
    # one image entry per person: the no-cache path then decodes one JPEG per person
    t.image_paths = base.image_paths[t.image_index]
    t.image_index = np.arange(persons, dtype=np.int32)
    return t


class RandomBatches(torch.utils.data.Sampler):
    """``count`` random batches of person indices (with replacement across batches)."""

    def __init__(self, n: int, batch_size: int, count: int):
        self.n, self.batch_size, self.count = n, batch_size, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        rng = np.random.default_rng(0)
        for _ in range(self.count):
            yield rng.choice(self.n, self.batch_size, replace=False)


def matmul_rate(device: torch.device) -> float:
    """Dense matrix-product FLOP/s on this device (bf16 on CUDA, float32 on the CPU)."""
    n = 8192 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 20 if device.type == "cuda" else 5
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "realdata")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "s", "m"])
    ap.add_argument("--input-size", default="192x256")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--persons", type=int, default=0, help="persons to tile (default: enough for the steps)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", action="store_true", help="read crops from a memmap crop cache (built first)")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-ema", action="store_true")
    args = ap.parse_args()

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    w, h = (int(v) for v in args.input_size.split("x"))
    total = args.warmup + args.steps
    persons = args.persons or args.batch_size * total
    table = tiled_table(args.data, persons)
    cfg = TrainConfig(preset=args.preset, input_size=(w, h), batch_size=args.batch_size, amp=not args.no_amp,
                      channels_last=not args.no_channels_last, compile=args.compile, ema=not args.no_ema,
                      workers=args.workers, warmup_steps=10, epochs=2)
    geometry = CropGeometry((w, h), cfg.cache_margin)
    tmp = tempfile.TemporaryDirectory(prefix="wbt_crop_cache_")
    if args.cache:
        t = time.perf_counter()
        build_crop_cache(table, geometry, tmp.name, workers=args.workers, progress=False)
        build_s = time.perf_counter() - t
        source = CachedCrops(table, geometry, tmp.name)
    else:
        source = ImageCrops(table, geometry)
    learner = Learner(cfg, WHOLEBODY133, device, steps_per_epoch=total)
    loader = batch_loader(source, BatchIndices(persons, args.batch_size, seed=0), args.workers,
                          pin_memory=device.type == "cuda")

    data_s = aug_s = model_s = 0.0
    it = iter(loader)
    t_run = None
    for step in range(total):
        if step == args.warmup:
            sync(device)
            data_s = aug_s = model_s = 0.0
            t_run = time.perf_counter()
        t0 = time.perf_counter()
        batch = next(it)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        sync(device)
        t1 = time.perf_counter()
        inputs = learner.inputs(batch)
        sync(device)
        t2 = time.perf_counter()
        loss = learner.optimise(*inputs)
        sync(device)
        t3 = time.perf_counter()
        data_s += t1 - t0
        aug_s += t2 - t1
        model_s += t3 - t2
    elapsed = time.perf_counter() - t_run
    samples = args.steps * args.batch_size
    rate = samples / elapsed

    # the data path alone (workers reading crops, no model): the ceiling it puts on a fast device;
    # timed from the first batch on, so worker start-up is left out
    data_batches = max(40, 4 * args.workers)
    data_loader = batch_loader(source, RandomBatches(persons, args.batch_size, data_batches), args.workers)
    n_data, t = 0, None
    for b in data_loader:
        if t is None:
            t = time.perf_counter()
            continue
        n_data += len(b["index"])
    data_rate = n_data / (time.perf_counter() - t)

    probe = Student(cfg.student_config())
    fwd_flops = count_flops(probe)
    train_flops = 3 * fwd_flops * rate
    peak = matmul_rate(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = torch.get_num_threads()
    ms = 1000 / args.steps
    print(f"device: {name} ({'bf16 autocast' if device.type == 'cuda' and not args.no_amp else 'float32'}"
          f"{', channels_last' if device.type == 'cuda' and not args.no_channels_last else ''}"
          f"{', compiled' if args.compile else ''}; torch {torch.__version__}, {threads} CPU threads)")
    print(f"preset {args.preset}, input {w}x{h}, batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup} warm-up, data from {'crop cache (memmap)' if args.cache else 'JPEG images'}, "
          f"{args.workers} loader workers, final loss {float(loss):.5f}")
    if args.cache:
        print(f"crop cache: {persons} persons built in {build_s:.1f} s ({persons / build_s:.0f} persons/s), "
              f"{geometry.crop_size[0]}x{geometry.crop_size[1]} crops, {persons * geometry.crop_size[0] * geometry.crop_size[1] * 3 / 1e6:.0f} MB")
    print(f"throughput: {rate:.1f} samples/s")
    print(f"data path alone ({args.workers} workers, no model): {data_rate:.0f} samples/s")
    print(f"step time: {elapsed * ms:.1f} ms = data wait {data_s * ms:.1f} ms + augment/targets {aug_s * ms:.1f} ms "
          f"+ forward/backward/optimizer {model_s * ms:.1f} ms (synchronised per phase)")
    print(f"model FLOPs: {fwd_flops / 1e9:.2f} GFLOPs forward per sample, x3 for training: "
          f"{train_flops / 1e12:.3f} TFLOP/s achieved")
    print(f"reference matmul on this device, same run: {peak / 1e12:.3f} TFLOP/s -> model FLOP utilisation "
          f"{100 * train_flops / peak:.1f}% of it")
    for key, tflops in DATASHEET_BF16_TFLOPS.items():
        if key in name:
            print(f"datasheet dense bf16 peak of the {key}: {tflops:.0f} TFLOP/s -> MFU {100 * train_flops / (tflops * 1e12):.1f}%")
    tmp.cleanup()


if __name__ == "__main__":
    main()
