"""GAU gamma / beta initialisation: mmpose's ``torch.rand`` against xavier gamma + zero beta.

Trains the student (preset --preset, input --input-size) on the real COCO-WholeBody sample
(../shared/realdata/coco_wholebody, 12 usable persons, one batch of all of them per step,
augmentation on) with mmpose's schedule shape: linear warm-up from 1e-5 over --warmup steps
(mmpose: 1000), flat, then cosine to 5 % over the second half, at the peak LR --lr (4e-3, the
whole-body configs' base LR, used as given at this batch: the stress case). For each init and
seed it prints the loss (mean of 20-step windows) and the EMA model's whole-body / body AP on
the same persons' GT boxes after training (a fit on 12 persons: it says whether training
works, not how well the student generalises).

    OMP_NUM_THREADS=1 nice python benchmarks/gau_init.py --seeds 0 1 2 --steps 1100 --input-size 64 96

(one thread: on a shared 2-core machine two OpenMP threads spinning against other jobs ran ~10x
slower; a run of 1100 steps takes ~5 minutes on one free core)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from labeltool.layouts import WHOLEBODY133
from labeltool.student.data import CropGeometry, ImageCrops, load_json_source
from labeltool.student.model import GAU
from labeltool.student.train import Learner, TrainConfig, _Validation


def set_gau_init(model: torch.nn.Module, kind: str, seed: int) -> None:
    """Re-draw every GAU's gamma and beta: ``rand`` as mmpose's RTMCCBlock, ``xavier`` gamma + zero beta."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, GAU):
                if kind == "rand":
                    m.gamma.copy_(torch.rand(m.gamma.shape, generator=g))
                    m.beta.copy_(torch.rand(m.beta.shape, generator=g))
                else:
                    torch.nn.init.xavier_uniform_(m.gamma, generator=g)
                    m.beta.zero_()


def run(kind: str, seed: int, args, batch: dict, json_path: Path) -> dict:
    cfg = TrainConfig(preset=args.preset, input_size=tuple(args.input_size), batch_size=len(batch["index"]),
                      lr=args.lr, lr_base_batch=0, warmup_steps=args.warmup, epochs=2, seed=seed, device="cpu",
                      val=str(json_path), val_images=str(json_path.parent), workers=0)
    learner = Learner(cfg, WHOLEBODY133, torch.device("cpu"), steps_per_epoch=args.steps // 2)
    set_gau_init(learner.model, kind, seed)
    learner.ema.module.load_state_dict(learner.model.state_dict())
    losses = []
    t = time.perf_counter()
    for step in range(args.steps):
        losses.append(float(learner.step(batch)))
        if args.progress and (step + 1) % args.progress == 0:
            print(f"  {kind} seed {seed} step {step + 1}: loss {np.mean(losses[-args.progress:]):.4f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    ap = _Validation(cfg, WHOLEBODY133).run(learner.ema.module, torch.device("cpu"))
    return {"losses": np.array(losses), "ap": ap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "realdata")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--input-size", type=int, nargs=2, default=(192, 256))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--progress", type=int, default=0, help="print the mean loss every N steps (0: off)")
    ap.add_argument("--inits", nargs="+", choices=("rand", "xavier"), default=["rand", "xavier"])
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    json_path = args.data / "coco_wholebody" / "test_coco_wholebody.json"
    table = load_json_source(json_path, json_path.parent, WHOLEBODY133)
    batch = ImageCrops(table, CropGeometry(tuple(args.input_size))).read_batch(np.arange(len(table)))
    print(f"{len(table)} persons, preset {args.preset}, {args.input_size[0]}x{args.input_size[1]}, {args.steps} steps, "
          f"warm-up {args.warmup}, lr {args.lr:g}; loss = mean of {args.window}-step windows", flush=True)
    marks = sorted({min(args.steps, s) for s in (args.window, 100, 250, 500, 750, 1000, args.steps)})
    print(f"{'init':<7}{'seed':>5}" + "".join(f"{'@' + str(s):>9}" for s in marks)
          + f"{'max':>9}{'AP wb':>8}{'AP body':>8}{'s':>6}", flush=True)
    for kind in args.inits:
        for seed in args.seeds:
            t = time.perf_counter()
            r = run(kind, seed, args, batch, json_path)
            loss = r["losses"]
            smooth = [loss[max(0, s - args.window):s].mean() for s in marks]
            print(f"{kind:<7}{seed:>5}" + "".join(f"{v:9.4f}" for v in smooth) + f"{loss.max():9.3f}"
                  f"{r['ap'].get('AP_wholebody', float('nan')):8.3f}{r['ap'].get('AP_body', float('nan')):8.3f}"
                  f"{time.perf_counter() - t:6.0f}", flush=True)


if __name__ == "__main__":
    main()
