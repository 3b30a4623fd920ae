"""The student's training loop: plain PyTorch, one process per GPU (torchrun / DDP), exact resume.

:class:`Trainer` runs a ``wbt train-student`` in named steps (resume, build, run_epoch, validate,
save); :class:`Learner` holds the model, optimizer, schedule and EMA and makes one step; the
checkpoint format and its checks live in :mod:`labeltool.student.checkpoint`.

AdamW (no weight decay on norms and biases), linear warm-up then cosine decay per step,
an EMA of the weights, gradient clipping, bf16 autocast and channels_last on CUDA, optional
``torch.compile``. Every epoch writes ``last.pt`` atomically with the model, optimizer,
scheduler, EMA, epoch, RNG states (python, numpy, torch, CUDA), the arguments and the log,
so ``--resume`` continues as if never stopped (same weights for the same seed). A non-finite
loss stops training with a clear message and leaves the last good checkpoint untouched.
Validation every N epochs runs the EMA model on the validation persons' GT boxes and
evaluates with :func:`labeltool.eval.evaluate`; per-part AP goes to ``log.csv`` /
``log.json`` and ``curves.png``.
"""

from __future__ import annotations

import io
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labeltool import __version__
from labeltool.errors import UserError
from labeltool.io.atomic import RunLock, write_bytes_atomic, write_json_atomic
from labeltool.layouts import layout_for
from labeltool.student.augment import AugmentConfig, augment_batch
from labeltool.student.checkpoint import (
    init_from_checkpoint,
    load_resume_checkpoint,
    restore_training,
    rng_state,
    save_checkpoint,
    training_checkpoint,
)
from labeltool.student.codec import SimCCCodec
from labeltool.student.data import (
    FACE_WEIGHT,
    BatchIndices,
    CachedCrops,
    CropGeometry,
    ImageCrops,
    PersonTable,
    batch_loader,
    build_crop_cache,
    concat_tables,
    load_source,
)
from labeltool.student.model import Student, StudentConfig
from labeltool.topdown import clip_boxes_to_images
from labeltool.versions import installed_versions


@dataclass
class TrainConfig:
    """Everything ``wbt train-student`` takes (stored in each checkpoint as ``args``)."""

    train: str = ""  # labels.parquet or json
    images: str = ""
    out: str = "student_run"
    extra_sources: list[tuple[str, str, str]] = field(default_factory=list)  # (labels, images, part)
    preset: str = "m"
    num_keypoints: int = 133
    input_size: tuple[int, int] = (192, 256)
    use_gau: bool = True
    epochs: int = 270  # rtmpose-m_8xb64-270e_coco-wholebody: max_epochs = 270
    batch_size: int = 256  # per process
    lr: float = 4e-3  # at a total batch of lr_base_batch (RTMPose whole-body: base_lr = 4e-3)
    lr_base_batch: int = 512  # auto_scale_lr = dict(base_batch_size=512); 0: use lr as given at any batch
    weight_decay: float = 0.05
    warmup_steps: int = 1000  # LinearLR(start_factor=1.0e-5, by_epoch=False, end=1000)
    # CosineAnnealingLR(eta_min=base_lr * 0.05, begin=max_epochs // 2): an absolute 2e-4 there, of the unscaled
    # base LR (auto_scale_lr scales the optimizer's LR, not eta_min); here min_lr_ratio x --lr likewise
    min_lr_ratio: float = 0.05
    stage2_epochs: int = 30  # stage2_num_epochs = 30 (PipelineSwitchHook; RTMW: 10)
    ema: bool = True
    ema_momentum: float = 2e-4  # EMAHook(ema_type='ExpMomentumEMA', momentum=0.0002) (gamma 2000)
    ema_gamma: float = 2000.0
    clip_grad: float = 35.0  # max gradient norm (0 = off)
    bn_momentum: float = 0.1  # BatchNorm running-stat momentum: SyncBN default of the RTMPose configs; raise it for very short runs
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False
    workers: int = 8
    cache: str = ""  # crop cache directory ('' = crop from the images)
    build_cache: bool = False
    cache_margin: float = 1.25
    augment: bool = True
    face_weight: float = FACE_WEIGHT  # RTMPose-t/s/m (the presets): 1, no per-point weights; RTMW: 0.5
    val: str = ""  # validation GT json
    val_images: str = ""
    val_dets: str = ""  # person detections for validation (COCO results json); '' = the GT boxes
    val_every: int = 10
    val_flip: bool = True  # test_cfg=dict(flip_test=True)
    resume: bool = False
    overwrite: bool = False  # start afresh in an --out that holds a run (its files are replaced)
    init: str = ""  # start from this checkpoint's weights
    seed: int = 0
    device: str = "auto"
    max_steps_per_epoch: int = 0  # 0 = a full pass over the data
    stop_after: int = 0  # stop after this many epochs of this invocation (0 = run to `epochs`); for time-limited jobs
    log_every: int = 50
    progress: bool = True

    def check(self) -> None:
        """One-line :class:`UserError` for a number that cannot make a run (checked before anything is read)."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "val_every": self.val_every, "lr": self.lr}
        at_least_zero = {"weight_decay": self.weight_decay, "warmup_steps": self.warmup_steps,
                         "lr_base_batch": self.lr_base_batch, "stage2_epochs": self.stage2_epochs,
                         "clip_grad": self.clip_grad, "face_weight": self.face_weight, "workers": self.workers,
                         "max_steps_per_epoch": self.max_steps_per_epoch, "stop_after": self.stop_after,
                         "log_every": self.log_every}
        for name, value in {**positive, **at_least_zero}.items():
            flag = f"--{name.replace('_', '-')}"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"{flag} must be a finite number (got {value!r})")
            if name in positive and value <= 0:
                raise UserError(f"{flag} must be greater than 0 (got {value})")
            if value < 0:
                raise UserError(f"{flag} must not be negative (got {value})")
        if not (math.isfinite(self.cache_margin) and self.cache_margin >= 1):
            raise UserError(f"--cache-margin must be at least 1 (got {self.cache_margin})")

    def student_config(self) -> StudentConfig:
        return StudentConfig(preset=self.preset, num_keypoints=self.num_keypoints, input_size=tuple(self.input_size),
                             use_gau=self.use_gau)

    def args(self) -> dict:
        """The options as a checkpoint stores them (``args``; the input size as a list)."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class EMA:
    """mmpose's ``ExpMomentumEMA`` (mmengine, ``update_buffers=True``): the first update copies the weights,
    then every float parameter and buffer moves toward the model by
    ``(1 - momentum) * exp(-(1 + steps) / gamma) + momentum`` (integer buffers are copied)."""

    def __init__(self, model: Student, momentum: float, gamma: float, channels_last: bool = False):
        self.momentum, self.gamma = momentum, gamma
        self.steps = 0
        self.module = Student(model.config).to(next(model.parameters()).device)
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.module.load_state_dict(model.state_dict())
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._pairs(model)

    def _pairs(self, model: nn.Module) -> None:
        ema, own = self.module.state_dict(), model.state_dict()
        self._float = ([ema[k] for k, v in own.items() if v.dtype.is_floating_point],
                       [v for v in own.values() if v.dtype.is_floating_point])
        self._other = ([ema[k] for k, v in own.items() if not v.dtype.is_floating_point],
                       [v for v in own.values() if not v.dtype.is_floating_point])

    def step_momentum(self, steps: int) -> float:
        return (1 - self.momentum) * math.exp(-float(1 + steps) / self.gamma) + self.momentum

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema, own = self._float
        if self.steps == 0:
            torch._foreach_copy_(ema, own)
        else:
            torch._foreach_lerp_(ema, own, self.step_momentum(self.steps))
        for e, v in zip(*self._other):
            e.copy_(v)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.steps = state["steps"]


WARMUP_START = 1e-5  # LinearLR(start_factor=1.0e-5)


def lr_lambda(warmup: int, decay_start: int, total: int, min_ratio: float):
    """Step -> learning-rate factor, mmpose's two schedulers multiplied: linear warm-up from 1e-5 over
    ``warmup`` steps; flat until ``decay_start`` (half of training), then cosine down to ``min_ratio``
    at ``total``, per step (``convert_to_iter_based=True``)."""

    def factor(step: int) -> float:
        warm = WARMUP_START + (1 - WARMUP_START) * min(1.0, step / warmup) if warmup > 0 else 1.0
        if step <= decay_start:
            return warm
        t = min(1.0, (step - decay_start) / max(1, total - decay_start))
        return warm * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

    return factor


def scaled_lr(cfg: TrainConfig, world: int) -> float:
    """``--lr`` scaled linearly from its base batch to this run's total batch (mmengine's auto_scale_lr)."""
    if not cfg.lr_base_batch:
        return cfg.lr
    return cfg.lr * cfg.batch_size * world / cfg.lr_base_batch


_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """mmengine's rule for ``paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0)``: no decay on the
    parameters of norm layers (by type) and on parameters named ``bias``; every other parameter decays
    (ScaleNorm's gain, the GAU's gamma / beta and residual scale included, as there)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            (no_decay if isinstance(module, _NORMS) or name == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --------------------------------------------------------------------------- set-up helpers


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device) under torchrun (``LOCAL_RANK`` set), else (0, 1, device)."""
    if "LOCAL_RANK" not in os.environ:
        return 0, 1, device
    import torch.distributed as dist

    local = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def load_training_table(cfg: TrainConfig) -> PersonTable:
    layout = layout_for(cfg.num_keypoints)
    tables = [load_source(cfg.train, cfg.images, layout, "wholebody", cfg.face_weight)]
    for labels, images, part in cfg.extra_sources:
        tables.append(load_source(labels, images, layout, part, cfg.face_weight))
    table = concat_tables(tables)
    if len(table) == 0:
        raise UserError(f"{cfg.train}: no usable person (non-crowd, a box, at least one labelled point)")
    return table


class Learner:
    """Model, optimizer, schedule and EMA of a run, and one training step on a batch of source crops."""

    def __init__(self, cfg: TrainConfig, layout, device: torch.device, world: int = 1, steps_per_epoch: int = 1):
        self.cfg = cfg
        self.layout = layout
        self.device = device
        self.cuda = device.type == "cuda"
        self.student_config = cfg.student_config()
        self.input_size = self.student_config.input_size
        self.codec = SimCCCodec(self.input_size, self.student_config.split_ratio)
        self.augment = AugmentConfig() if cfg.augment else AugmentConfig.none()
        self.stage = 1
        # the model's initial weights and the augmentation draw from the seed alone (data loading,
        # cache building or a DataLoader's own seed draws cannot shift them)
        rank = int(os.environ.get("RANK", 0))
        torch.manual_seed(cfg.seed + rank)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed * 1000003 + rank)
        model = Student(self.student_config).to(device)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = cfg.bn_momentum
        self.channels_last = self.cuda and cfg.channels_last
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = EMA(model, cfg.ema_momentum, cfg.ema_gamma, self.channels_last) if cfg.ema else None
        self.lr = scaled_lr(cfg, world)
        # fused AdamW on CUDA: one kernel for all parameters (the model is many small tensors)
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=self.lr, betas=(0.9, 0.999),
                                           fused=self.cuda)
        # the cosine ends at min_lr_ratio x the *unscaled* --lr, as mmpose's absolute eta_min (2e-4 at any
        # batch), never above the run's own LR (a run below --lr-base-batch would otherwise rise to it)
        self.min_lr = min(cfg.min_lr_ratio * cfg.lr, self.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(
            cfg.warmup_steps, (cfg.epochs // 2) * steps_per_epoch, cfg.epochs * steps_per_epoch, self.min_lr / self.lr))
        self.amp = self.cuda and cfg.amp  # bf16 autocast (settable, so a CPU test runs the same code path)
        net: nn.Module = model
        if world > 1:
            net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if self.cuda else None)
        self.net = torch.compile(net) if cfg.compile else net

    def set_epoch(self, epoch: int) -> bool:
        """Stage 2 (mmdet's PipelineSwitchHook at ``max_epochs - stage2_num_epochs``): milder augmentation for
        the last ``stage2_epochs`` epochs. Returns True when this epoch switches."""
        stage = 2 if self.cfg.augment and epoch >= self.cfg.epochs - self.cfg.stage2_epochs else 1
        switched = stage != self.stage
        self.stage = stage
        if self.cfg.augment:
            self.augment = AugmentConfig.stage2() if stage == 2 else AugmentConfig()
        return switched

    def inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Augmented images and SimCC targets of a batch already on the device."""
        with torch.no_grad():
            images, keypoints, weights = augment_batch(batch, self.layout, self.input_size, self.augment,
                                                       self.generator)
            target_x, target_y, weights = self.codec.encode(keypoints, weights)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, target_x, target_y, weights

    def step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimisation step; returns the (detached) loss without synchronising the device."""
        return self.optimise(*self.inputs(batch))

    def optimise(self, images, target_x, target_y, weights) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            simcc_x, simcc_y = self.net(images)
        loss = self.codec.loss(simcc_x, simcc_y, target_x, target_y, weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.clip_grad > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach()


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    out: Path
    epochs_done: int
    history: list[dict]


SCRATCH_HINT = ("training from scratch: mmpose's recipe starts from a pretrained CSPNeXt (AIC + COCO); give --init "
                "an mmpose RTMPose / RTMW checkpoint (what fits loads) or a student's last.pt to start as it does")
RUN_FILES = ("last.pt", "log.json", "log.csv", "curves.png")  # what a run writes in --out
LOCK_COMMAND = "train-student"


def check_out_dir(cfg: TrainConfig) -> None:
    """Refuse an --out that is a file, or that holds anything (a previous run, other files) unless the run
    resumes or overwrites it: a fresh run there would replace ``last.pt`` and mix two runs' logs."""
    out = Path(cfg.out)
    if cfg.resume and cfg.overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out exists and is not a directory")
    if cfg.resume or cfg.overwrite or not out.is_dir():
        return
    held = sorted(p.name for p in out.iterdir() if p.name != f".wbt-{LOCK_COMMAND}.lock")
    if held:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise UserError(f"{out}: --out is not empty ({shown}); continue its run with --resume, start afresh with "
                        "--overwrite, or give another --out")


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) a student as ``cfg`` says; checkpoints and logs go to ``cfg.out``, which stays locked
    against a second ``wbt train-student`` while this one runs."""
    cfg.check()
    check_out_dir(cfg)
    out = Path(cfg.out)
    device = pick_device(cfg.device)
    rank, world, device = init_distributed(device)
    lock, created = None, not out.exists()
    if rank == 0:  # the other ranks only read --out (the checks above see nothing but this lock file)
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out, LOCK_COMMAND, remove=True)
    try:
        if cfg.overwrite and rank == 0:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        return Trainer(cfg, out, device, rank, world).run()
    finally:
        if lock is not None:
            lock.release()
            if created and not any(out.iterdir()):
                out.rmdir()  # a run refused before writing anything leaves no folder behind


class Trainer:
    """This process's part of a ``wbt train-student`` run, step by step: :meth:`resume` checks the checkpoint
    a ``--resume`` continues (before any data is read), :meth:`build` makes the data, the :class:`Learner` and
    its starting weights, then every epoch :meth:`run_epoch` trains, :meth:`validate` evaluates when due and
    :meth:`save` writes the checkpoint and logs. :meth:`run` takes the steps in that order."""

    def __init__(self, cfg: TrainConfig, out: Path, device: torch.device, rank: int = 0, world: int = 1):
        self.cfg, self.out, self.device, self.rank, self.world = cfg, out, device, rank, world
        self.main = rank == 0  # the process that prints and writes
        self.cuda = device.type == "cuda"
        self.ckpt_path = out / "last.pt"
        self.resumed: dict | None = None  # the checkpoint --resume continues
        self.start_epoch = 0
        self.history: list[dict] = []
        self.val: _Validation | None = None  # build() makes it with --val

    def run(self) -> TrainResult:
        """Every step in order; returns the folder, the epochs done and the log."""
        cfg = self.cfg
        self.resume()
        self.build()
        end_epoch = cfg.epochs if not cfg.stop_after else min(cfg.epochs, self.start_epoch + cfg.stop_after)
        for epoch in range(self.start_epoch, end_epoch):
            record = self.run_epoch(epoch)
            validated = self.val is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs)
            if validated:
                record.update(self.validate())
            self.history.append(record)
            self.save(record, plot=validated or epoch + 1 == cfg.epochs or (epoch + 1) % 10 == 0)
        if self.world > 1:
            torch.distributed.barrier()
        return TrainResult(self.out, end_epoch, self.history)

    def resume(self) -> None:
        """With ``--resume``: read ``last.pt`` and refuse it, in one line, if it is not this run's to continue."""
        if self.cfg.resume:
            self.resumed = load_resume_checkpoint(self.ckpt_path, self.cfg.args())

    def build(self) -> None:
        """Seeds, the training persons and their crops, the batches, the :class:`Learner` and its starting
        weights, the validation set; ``run.json`` and the schedule's line."""
        cfg, rank, world = self.cfg, self.rank, self.world
        torch.manual_seed(cfg.seed + rank)
        np.random.seed(cfg.seed + rank)
        random.seed(cfg.seed + rank)
        table = load_training_table(cfg)
        self.layout = table.layout
        geometry = CropGeometry(cfg.student_config().input_size, cfg.cache_margin)
        if cfg.cache:
            if cfg.build_cache and self.main:
                build_crop_cache(table, geometry, cfg.cache, workers=cfg.workers, progress=cfg.progress)
            if world > 1:
                torch.distributed.barrier()
            source = CachedCrops(table, geometry, cfg.cache)
        else:
            source = ImageCrops(table, geometry)
        self.sampler = BatchIndices(len(table), cfg.batch_size, cfg.seed, rank, world)
        if len(self.sampler) == 0:
            raise UserError(f"{cfg.train}: {len(table)} persons make no full batch of {cfg.batch_size} "
                            f"on {world} process(es); lower --batch-size")
        self.steps_per_epoch = (len(self.sampler) if not cfg.max_steps_per_epoch
                                else min(len(self.sampler), cfg.max_steps_per_epoch))
        self.learner = Learner(cfg, self.layout, self.device, world, steps_per_epoch=self.steps_per_epoch)
        self._start_weights()
        self.loader = batch_loader(source, self.sampler, cfg.workers, pin_memory=self.cuda)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.main:  # what the weights are made with, readable without torch (labeltool.versions)
            write_json_atomic({"wbt_version": __version__, "versions": installed_versions()}, self.out / "run.json")
        self.val = _Validation(cfg, self.layout) if cfg.val else None  # every rank validates its share of the persons
        if self.main and cfg.progress:
            stage2 = f", stage 2 from epoch {max(cfg.epochs - cfg.stage2_epochs, 0) + 1}" if cfg.augment else ""
            print(f"lr {self.learner.lr:.3g} (--lr {cfg.lr:g} x total batch {cfg.batch_size * world} / "
                  f"{cfg.lr_base_batch or cfg.batch_size * world}); {cfg.epochs} epochs of {self.steps_per_epoch} "
                  f"steps, cosine decay after epoch {cfg.epochs // 2}{stage2}", flush=True)

    def _start_weights(self) -> None:
        """A resumed run's whole state, else ``--init``'s weights (saying what did not fit), else from scratch."""
        learner, cfg = self.learner, self.cfg
        if self.resumed is not None:
            self.start_epoch, self.history = restore_training(self.resumed, learner.model, learner.optimizer,
                                                              learner.scheduler, learner.ema, learner.generator,
                                                              self.rank)
            if self.main:
                print(f"resumed from {self.ckpt_path} after epoch {self.start_epoch}")
        elif cfg.init:
            message = init_from_checkpoint(learner.model, cfg.init)
            if learner.ema is not None:
                learner.ema.module.load_state_dict(learner.model.state_dict())
            if self.main and message:
                print(message)
        elif self.main and cfg.progress:
            print(SCRATCH_HINT, flush=True)

    def run_epoch(self, epoch: int) -> dict:
        """Trains epoch ``epoch`` (from 0); its log record. A non-finite loss stops the run (TrainingDiverged)."""
        cfg, learner = self.cfg, self.learner
        self.sampler.set_epoch(epoch)
        if learner.set_epoch(epoch) and self.main and cfg.progress and epoch > self.start_epoch:
            print(f"epoch {epoch + 1}: stage 2 (milder augmentation) for the last {cfg.epochs - epoch} epochs",
                  flush=True)
        learner.model.train()
        t_epoch = time.perf_counter()
        loss_sum, n_steps, data_time = torch.zeros((), device=self.device), 0, 0.0
        t_data = time.perf_counter()
        for step, batch in enumerate(to_device(self.loader, self.device)):
            if step >= self.steps_per_epoch:
                break
            data_time += time.perf_counter() - t_data
            loss = learner.step(batch)
            loss_sum += loss
            n_steps += 1
            # a sync per step on the CPU costs nothing; on CUDA check every log_every steps (the
            # checkpoint is only written after the epoch's final check, so it always stays good)
            if (not self.cuda or (step + 1) % max(cfg.log_every, 1) == 0) and not torch.isfinite(loss_sum):
                _diverged(loss, epoch, step, self.ckpt_path, self.history)
            if self.main and cfg.progress and cfg.log_every and (step + 1) % cfg.log_every == 0:
                print(f"epoch {epoch + 1} step {step + 1}/{self.steps_per_epoch} loss {loss.item():.5f} "
                      f"lr {learner.scheduler.get_last_lr()[0]:.2e}", flush=True)
            t_data = time.perf_counter()
        mean_loss = float(loss_sum) / max(n_steps, 1)
        if not math.isfinite(mean_loss):
            _diverged(loss, epoch, n_steps - 1, self.ckpt_path, self.history)
        seconds = time.perf_counter() - t_epoch
        return {"epoch": epoch + 1, "stage": learner.stage, "loss": mean_loss,
                "lr": learner.scheduler.get_last_lr()[0], "seconds": seconds,
                "samples_per_s": n_steps * cfg.batch_size * self.world / max(seconds, 1e-9),
                "data_seconds": data_time}

    def validate(self) -> dict:
        """Per-part AP (``AP_<part>``) of the EMA model (else the model) on the validation set; {} off rank 0."""
        learner = self.learner
        model = learner.ema.module if learner.ema is not None else learner.model
        return self.val.run(model, self.device, self.rank, self.world)

    def save(self, record: dict, plot: bool = True) -> None:
        """After the epoch of ``record`` (already in the history): rank 0 writes ``last.pt`` atomically, the logs
        (``curves.png`` when ``plot``) and the epoch's line; every rank hands in its RNG states."""
        learner = self.learner
        rng = _gather_rng(self.world, learner.generator)  # a collective under DDP: every rank takes part
        if not self.main:
            return
        ckpt = training_checkpoint(learner.model, learner.optimizer, learner.scheduler, learner.ema, record["epoch"],
                                   rng, self.cfg.args(), learner.student_config, self.layout.name, self.history)
        save_checkpoint(ckpt, self.ckpt_path)
        _write_logs(self.out, self.history, plot=plot)
        if self.cfg.progress:
            print(_epoch_line(record), flush=True)


def to_device(batches, device: torch.device):
    """Batches moved to ``device``. On CUDA the next batch's (pinned) host-to-device copy runs on a side
    stream while the current step computes; the compute stream waits for it only when it needs it."""
    if device.type != "cuda":
        for batch in batches:
            yield {k: v.to(device) for k, v in batch.items()}
        return
    copy_stream = torch.cuda.Stream(device)

    def issue(batch):
        with torch.cuda.stream(copy_stream):
            return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    pending = None
    for batch in batches:
        nxt = issue(batch)
        if pending is not None:
            yield pending
        torch.cuda.current_stream(device).wait_stream(copy_stream)
        for v in nxt.values():  # the copies' memory belongs to the compute stream from here on
            v.record_stream(torch.cuda.current_stream(device))
        pending = nxt
    if pending is not None:
        yield pending


def _diverged(loss: torch.Tensor, epoch: int, step: int, ckpt_path: Path, history: list[dict]):
    where = (f"the last good checkpoint, {ckpt_path} (epoch {history[-1]['epoch']}), is intact"
             if history and ckpt_path.is_file() else "no checkpoint had been written yet")
    raise TrainingDiverged(f"training loss became {float(loss.detach())} (not finite) in epoch {epoch + 1} by step {step + 1}: "
                           f"stopped; {where}; lower --lr or check the labels")


def _gather_rng(world: int, generator: torch.Generator):
    own = {**rng_state(), "augment": generator.get_state().cpu()}
    if world == 1:
        return own
    import torch.distributed as dist

    states = [None] * world
    dist.all_gather_object(states, own)
    return states


def _epoch_line(r: dict) -> str:
    line = f"epoch {r['epoch']}: loss {r['loss']:.5f}, {r['samples_per_s']:.1f} samples/s, lr {r['lr']:.2e}"
    aps = [f"{k[3:]} {v:.3f}" for k, v in r.items() if k.startswith("AP_")]
    return line + (", AP " + ", ".join(aps) if aps else "")


class _Validation:
    """Runs the model on the validation persons' GT boxes and evaluates with labeltool.eval."""

    def __init__(self, cfg: TrainConfig, layout):
        from labeltool.io.paths import image_path
        from labeltool.io.pose import load_pose_dataset

        self.gt = load_pose_dataset(cfg.val)
        if not cfg.val_images or not Path(cfg.val_images).is_dir():
            raise UserError(f"--val-images {cfg.val_images or '(missing)'}: image directory not found")
        if self.gt.layout.num_keypoints != layout.num_keypoints:
            raise UserError(f"{cfg.val}: has {self.gt.layout.num_keypoints} points per person; "
                            f"the student predicts {layout.num_keypoints}")
        if cfg.val_dets:
            self.image_ids, self.bboxes, self.box_scores = _val_detections(cfg.val_dets, cfg.val, self.gt)
        else:
            boxes = clip_boxes_to_images(self.gt.bboxes, self.gt.image_ids, self.gt.images)
            keep = (self.gt.iscrowd == 0) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
            self.image_ids, self.bboxes = self.gt.image_ids[keep], boxes[keep]
            self.box_scores = np.ones(len(self.bboxes))
        self.dets = bool(cfg.val_dets)
        uniq, self.image_index = np.unique(self.image_ids, return_inverse=True)
        names = {int(im["id"]): str(image_path(cfg.val_images, im)) for im in self.gt.images}
        self.paths = [names[int(i)] for i in uniq]
        self.flip = cfg.val_flip
        self.workers = min(cfg.workers, 4)

    def run(self, model: Student, device: torch.device, rank: int = 0, world: int = 1) -> dict:
        """Per-part AP on rank 0 ({} elsewhere). Under DDP every rank predicts every world-th person and
        rank 0 gathers them, so no rank idles in a collective (and into its timeout) while one predicts."""
        from labeltool.eval import evaluate, predictions_from_arrays
        from labeltool.student.predict import Predictor, _nms_per_image, instance_scores

        was = model.training
        predictor = Predictor(model, device, self.flip)
        mine = np.arange(rank, len(self.bboxes), world)
        keypoints = predictor.predict_persons(self.paths, self.image_index[mine], self.bboxes[mine],
                                              workers=self.workers)
        model.train(was)
        if world > 1:
            import torch.distributed as dist

            shares = [None] * world
            dist.all_gather_object(shares, (mine, keypoints))
            if rank != 0:
                return {}
            keypoints = np.zeros((len(self.bboxes), *keypoints.shape[1:]))
            for idx, kp in shares:
                keypoints[idx] = kp
        scores = instance_scores(keypoints, self.box_scores)
        image_ids = self.image_ids
        if self.dets:  # mmpose's CocoWholeBodyMetric(nms_mode='oks_nms', nms_thr=0.9) on detector boxes
            keypoints, image_ids, scores = _nms_per_image(keypoints, image_ids, scores, self.bboxes,
                                                          predictor.layout, "oks", 0.9)
        report = evaluate(self.gt, predictions_from_arrays(keypoints, image_ids, scores))
        return {f"AP_{part}": report.stat(part, "AP") for part in report.parts}


def _val_detections(path: str, gt_path: str, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, x y w h boxes, scores) of the person detections in ``path`` (a box file, as mmpose's
    ``bbox_file``: category 1 or none, every score kept); each must name an image of the validation GT."""
    from labeltool.io.boxes import read_box_file

    dets = read_box_file(path)
    known = {int(im["id"]) for im in gt.images}
    ids, boxes, scores = [], [], []
    for i, e in enumerate(dets.entries):
        if e.get("category_id", 1) != 1:
            continue
        if "image_id" not in e:
            raise UserError(f"{dets.where(i)}: --val-dets entries need an 'image_id' of {gt_path}")
        if int(e["image_id"]) not in known:
            raise UserError(f"{dets.where(i)}: image_id {e['image_id']} is not an image of {gt_path}")
        if e["bbox"][2] <= 0 or e["bbox"][3] <= 0:
            continue
        ids.append(int(e["image_id"]))
        boxes.append(e["bbox"])
        scores.append(float(e.get("score", 1.0)))
    if not ids:
        raise UserError(f"{path}: no person detection (category_id 1) with a positive box")
    return np.asarray(ids, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)


def _write_logs(out: Path, history: list[dict], plot: bool = True) -> None:
    write_json_atomic(history, out / "log.json")
    keys = list(dict.fromkeys(k for r in history for k in r))
    lines = [",".join(keys)] + [",".join("" if r.get(k) is None else f"{r[k]:.6g}" for k in keys) for r in history]
    write_bytes_atomic(("\n".join(lines) + "\n").encode("utf-8"), out / "log.csv")
    if plot:  # the PNG costs ~0.3 s: redrawn after validations, every 10 epochs and at the end
        plot_curves(history, out / "curves.png")


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss per epoch and, where validated, AP per part, side by side (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in history]
    ax_loss.plot(epochs, [r["loss"] for r in history], marker="o", ms=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (KL, SimCC)")
    ax_loss.set_yscale("log")
    ap_keys = list(dict.fromkeys(k for r in history for k in r if k.startswith("AP_")))
    for key in ap_keys:
        pts = [(r["epoch"], r[key]) for r in history if key in r]
        ax_ap.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=key[3:])
    ax_ap.set_xlabel("epoch")
    ax_ap.set_ylabel("validation AP")
    if ap_keys:
        ax_ap.legend(fontsize=8)
    else:
        ax_ap.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ax_ap.transAxes)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(png.getvalue(), path)
