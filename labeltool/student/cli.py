"""`wbt train-student`, `wbt predict` and `wbt export`: the student's commands.

torch is imported inside the commands, so ``wbt --help`` stays fast.
"""

from __future__ import annotations

import math
import os

import click

from labeltool.errors import UserError
from labeltool.io.atomic import check_output_not_input


def _size(text: str) -> tuple[int, int]:
    """'192x256' (width x height) -> (192, 256)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input-size {text!r}: expected WIDTHxHEIGHT, e.g. 192x256 or 288x384") from None
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise UserError(f"--input-size {text}: both sides must be positive multiples of 32 (e.g. 192x256, 288x384)")
    return w, h


@click.command("train-student")
@click.option("--train", "train_path", type=click.Path(), help="labels.parquet from wbt distill, or a COCO-WholeBody / "
              "Halpe / COCO json.")
@click.option("--images", type=click.Path(), help="Image directory of --train.")
@click.option("--extra-source", "extra", nargs=3, multiple=True, metavar="LABELS IMAGES PART",
              help="Another label source trained at the same time (repeatable); PART: wholebody, face (68-point "
                   "json), lefthand, righthand or hand (21-point json, taken as a left hand). Points a source "
                   "lacks get weight 0.")
@click.option("--out", default="student_run", show_default=True, type=click.Path(), help="Run directory "
              "(last.pt, log.csv, log.json, curves.png).")
@click.option("--preset", type=click.Choice(["tiny", "s", "m"]), default="m", show_default=True)
@click.option("--keypoints", "num_keypoints", type=click.Choice(["133", "136"]), default="133", show_default=True,
              help="Outputs: 133 (COCO-WholeBody) or 136 (Halpe).")
@click.option("--input-size", default="192x256", show_default=True, help="WIDTHxHEIGHT (multiples of 32).")
@click.option("--no-gau", is_flag=True, help="Head without the gated attention unit.")
@click.option("--describe", is_flag=True, help="Print the model's parameters and GFLOPs and exit.")
@click.option("--epochs", default=270, show_default=True, help="LR flat after warm-up to half of them, then cosine "
              "to 5 % of --lr (mmpose's absolute eta_min, not scaled with the batch); the last --stage2-epochs train with milder augmentation (RTMPose's schedule).")
@click.option("--batch-size", default=256, show_default=True, help="Per process (GPU).")
@click.option("--lr", default=4e-3, show_default=True, help="AdamW learning rate at a total batch of "
              "--lr-base-batch; the run uses it scaled linearly to its total batch (--batch-size x processes).")
@click.option("--lr-base-batch", default=512, show_default=True, help="The total batch --lr is meant for (RTMPose "
              "whole-body: 4e-3 at 512); 0: use --lr as given at any batch.")
@click.option("--weight-decay", default=0.05, show_default=True)
@click.option("--warmup-steps", default=1000, show_default=True, help="Linear warm-up from 1e-5 x the LR.")
@click.option("--stage2-epochs", default=30, show_default=True, help="Last epochs with milder augmentation (no box "
              "noise, scale 0.75-1.25, rotation 60, dropout p 0.5); RTMW uses 10.")
@click.option("--no-ema", is_flag=True)
@click.option("--clip-grad", default=35.0, show_default=True, help="Max gradient norm (0: off).")
@click.option("--no-amp", is_flag=True, help="No bf16 autocast on CUDA.")
@click.option("--no-channels-last", is_flag=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--workers", default=min(8, os.cpu_count() or 1), show_default="min(8, cores)",
              help="Data loader processes.")
@click.option("--cache", type=click.Path(), default="", help="Crop cache directory (uint8 memmap of pre-cropped "
              "persons); build it with --build-cache.")
@click.option("--build-cache", is_flag=True, help="(Re)build the crop cache in --cache before training.")
@click.option("--cache-margin", default=1.25, show_default=True, help="Cached crops cover this many times the "
              "model's crop.")
@click.option("--no-augment", is_flag=True)
@click.option("--face-weight", default=1.0, show_default=True, help="Loss weight of face points (RTMPose-t/s/m, the "
              "presets' anchors: 1; RTMW: 0.5).")
@click.option("--val", type=click.Path(), default="", help="Validation GT json (evaluated on its GT boxes).")
@click.option("--val-images", type=click.Path(), default="")
@click.option("--val-dets", type=click.Path(), default="", help="Validate on these person detections (COCO results "
              "json, e.g. mmpose's COCO_val2017_detections_AP_H_56_person.json) with OKS-NMS 0.9, as the published "
              "APs are measured; default: the GT boxes (clipped to the image), which scores higher.")
@click.option("--val-every", default=10, show_default=True, help="Validate every N epochs (and after the last).")
@click.option("--val-flip/--no-val-flip", default=True, show_default=True,
              help="Flip test-time augmentation in validation (the anchors' flip_test=True).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--overwrite", is_flag=True, help="Start afresh in an --out that holds a run (its last.pt and logs "
              "are replaced); without it (or --resume) a non-empty --out is refused.")
@click.option("--init", type=click.Path(), default="", help="Start from this checkpoint's weights (a student or "
              "an mmpose RTMPose checkpoint; tensors that do not fit start fresh).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--max-steps-per-epoch", default=0, help="Cap the steps per epoch (0: a full pass).")
@click.option("--stop-after", default=0, help="Stop after N epochs of this run (the schedule still spans --epochs); "
              "continue later with --resume.")
@click.option("--log-every", default=50, show_default=True)
def train_student_command(train_path, images, extra, out, preset, num_keypoints, input_size, no_gau, describe,
                          epochs, batch_size, lr, lr_base_batch, weight_decay, warmup_steps, stage2_epochs,
                          no_ema, clip_grad, no_amp,
                          no_channels_last, compile_, workers, cache, build_cache, cache_margin, no_augment,
                          face_weight, val, val_images, val_dets, val_every, val_flip, resume, overwrite, init, seed, device,
                          max_steps_per_epoch, stop_after, log_every):
    """Train the whole-body student (CSPNeXt + SimCC) on pseudo-labels or any COCO-WholeBody / Halpe json.

    \b
    Example:
      wbt train-student --train labels.parquet --images coco/train2017 --out runs/m \\
          --cache /data/crops --build-cache --val val133.json --val-images coco/val2017
      torchrun --nproc_per_node 8 -m labeltool.student train-student ...   (one process per GPU)
    """
    from labeltool.student.model import StudentConfig
    from labeltool.student.model import describe as describe_model
    from labeltool.student.train import TrainConfig, train

    size = _size(input_size)
    if describe:
        click.echo(describe_model(StudentConfig(preset=preset, num_keypoints=int(num_keypoints), input_size=size,
                                                use_gau=not no_gau)))
        return
    if not train_path or not images:
        raise UserError("give --train LABELS and --images DIR (or --describe)")
    if build_cache and not cache:
        raise UserError("--build-cache needs --cache DIR")
    if val and not val_images:
        raise UserError("--val needs --val-images DIR")
    if val_dets and not val:
        raise UserError("--val-dets needs --val GT.json (the detections' images and the ground truth)")
    cfg = TrainConfig(
        train=train_path, images=images, out=out, extra_sources=[tuple(e) for e in extra], preset=preset,
        num_keypoints=int(num_keypoints), input_size=size, use_gau=not no_gau, epochs=epochs,
        batch_size=batch_size, lr=lr, lr_base_batch=lr_base_batch, weight_decay=weight_decay,
        warmup_steps=warmup_steps, stage2_epochs=stage2_epochs, ema=not no_ema,
        clip_grad=clip_grad, amp=not no_amp, channels_last=not no_channels_last, compile=compile_,
        workers=workers, cache=cache, build_cache=build_cache, cache_margin=cache_margin, augment=not no_augment,
        face_weight=face_weight, val=val, val_images=val_images, val_dets=val_dets, val_every=val_every, val_flip=val_flip,
        resume=resume, overwrite=overwrite, init=init, seed=seed, device=device, max_steps_per_epoch=max_steps_per_epoch,
        stop_after=stop_after, log_every=log_every,
    )
    from labeltool.versions import warn_if_off_lock

    warn_if_off_lock()
    result = train(cfg)
    click.echo(f"done: {result.epochs_done} epochs; checkpoint {result.out / 'last.pt'}, log {result.out / 'log.csv'}")


@click.command("predict")
@click.option("--model", "model_path", required=True, type=click.Path(),
              help="Student checkpoint (last.pt), or an mmpose RTMPose checkpoint (.pth).")
@click.option("--images", required=True, type=click.Path(), help="Image directory.")
@click.option("--gt", type=click.Path(), help="GT json: predict on its person boxes (and map image ids to files).")
@click.option("--boxes", type=click.Path(), help="Detector boxes (COCO detection results json).")
@click.option("--detector", metavar="BACKEND[:ARG]",
              help="Without --gt / --boxes: the person detector (default mediapipe, built in; onnx:FILE for YOLOX / "
                   "RTMDet); its boxes go to OUT's .detections.json.")
@click.option("--det-nms", type=float, default=0.45, show_default=True,
              help="Detector: drop a box overlapping a better one by more than this IoU.")
@click.option("--max-persons", type=int, default=100, show_default=True, help="Detector: persons per image at most.")
@click.option("--out", required=True, type=click.Path(), help="Results json (the format wbt eval reads).")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Average with the horizontally flipped crop (the anchors' flip_test=True).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--nms", type=click.Choice(["oks", "parametric", "none"]), default="oks", show_default=True,
              help="Pose NMS on detector boxes: mmpose's OKS-NMS or AlphaPose's parametric NMS.")
@click.option("--nms-thr", default=0.9, show_default=True, help="OKS threshold of --nms oks.")
@click.option("--box-thr", type=float, default=None,
              help="Drop detector boxes scoring under this [default: 0 for --boxes, 0.5 for --detector].")
@click.option("--no-ema", is_flag=True, help="Use the raw weights, not the EMA.")
def predict_command(model_path, images, gt, boxes, detector, det_nms, max_persons, out, flip, batch_size, workers,
                    device, nms, nms_thr, box_thr, no_ema):
    """Top-down whole-body keypoints for GT or detector boxes, written as COCO-WholeBody results."""
    from labeltool.student.predict import run_predict
    from labeltool.student.train import pick_device

    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1 (got {batch_size})")
    if workers < 0:
        raise UserError(f"--workers must not be negative (got {workers})")
    detect = None
    if gt is None and boxes is None:  # every person the detector finds
        from labeltool.detectors.base import DEFAULT_MIN_SCORE
        from labeltool.detectors.registry import parse_detector

        detect = parse_detector(detector, DEFAULT_MIN_SCORE if box_thr is None else box_thr, det_nms, max_persons)
    elif detector is not None:
        raise UserError("--detector goes without --gt and --boxes (it finds the persons itself)")
    box_thr = 0.0 if box_thr is None else box_thr
    for name, value, lo, hi in (("--nms-thr", nms_thr, 0.0, 1.0), ("--box-thr", box_thr, -math.inf, math.inf)):
        if not (math.isfinite(value) and lo <= value <= hi):
            raise UserError(f"{name} must be a finite number{f' in [{lo}, {hi}]' if math.isfinite(lo) else ''} "
                            f"(got {value})")

    check_output_not_input(out, {"--model": model_path, "--images": images, "--gt": gt, "--boxes": boxes})
    n = run_predict(model_path, images, out, gt=gt, boxes=boxes, flip=flip, batch_size=batch_size, workers=workers,
                    device=str(pick_device(device)), nms=nms, nms_thr=nms_thr, box_thr=box_thr, use_ema=not no_ema,
                    detector=detect)
    click.echo(f"wrote {n} poses to {out}")


@click.command("export")
@click.option("--model", "model_path", required=True, type=click.Path(),
              help="Student checkpoint, or an mmpose RTMPose checkpoint.")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(), help="Output .onnx file.")
@click.option("--no-check", is_flag=True, help="Do not run the file with onnxruntime.")
@click.option("--no-ema", is_flag=True)
def export_command(model_path, onnx_path, no_check, no_ema):
    """Export a student to ONNX as rtmlib's RTMPose runs it (input: (BGR - mean) / std, N x 3 x H x W;
    outputs: SimCC x / y logits, arg-max / 2 = input pixels). See docs/student.md."""
    from labeltool.student.export import export_onnx

    check_output_not_input(onnx_path, {"--model": model_path}, option="--onnx")

    click.echo(export_onnx(model_path, onnx_path, use_ema=not no_ema, check=not no_check))


COMMANDS: list[click.Command] = [train_student_command, predict_command, export_command]
