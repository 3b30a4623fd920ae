"""`wbt distill`: whole-body pseudo-labels for a dataset of body-only people."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from labeltool.datasets import format_names, format_titles
from labeltool.detectors.base import DEFAULT_MAX_PERSONS, DEFAULT_NMS
from labeltool.detectors.registry import choices_text as detector_choices
from labeltool.errors import UserError
from labeltool.teachers.registry import choices_text
from labeltool.versions import warn_if_off_lock


@click.command("distill")
@click.option(
    "--coco",
    "coco_split",
    metavar="SPLIT",
    help="COCO split in the COCO layout, e.g. train2017 (with --root or $COCO_ROOT).",
)
@click.option(
    "--root", type=click.Path(), help="COCO root: ROOT/annotations/person_keypoints_SPLIT.json and ROOT/SPLIT/."
)
@click.option(
    "--ann",
    type=click.Path(),
    help=f"A keypoint file of a known dataset ({format_titles()}; docs/formats.md); its body points are mapped to "
    "COCO-17 by name.",
)
@click.option(
    "--format",
    "dataset_format",
    metavar="DATASET",
    help=f"The dataset of --ann ({format_names()}); default: detected from the file's content.",
)
@click.option(
    "--images", "images_dir", type=click.Path(), help="Directory of the images (file_name is relative to it)."
)
@click.option(
    "--boxes", type=click.Path(), help="Person boxes (COCO detection results) for --images: body from the body teacher."
)
@click.option(
    "--detector",
    metavar="BACKEND[:ARG]",
    help=f"Person detector for --images without --boxes (and --sample): {detector_choices()}. Default: mediapipe.",
)
@click.option(
    "--min-box-score", type=float, default=0.5, show_default=True,
    help="Drop person boxes (--boxes or the detector's) scoring lower.",
)
@click.option("--det-nms", type=float, default=DEFAULT_NMS, show_default=True,
              help="Detector: drop a box overlapping a better one by more than this IoU (1: keep all).")
@click.option("--max-persons", type=int, default=DEFAULT_MAX_PERSONS, show_default=True,
              help="Detector: at most this many persons per image (the best-scoring).")
@click.option(
    "--sample", is_flag=True, help="Label the built-in sample photos of people (written into OUT/sample_images)."
)
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Output directory.")
@click.option("--limit", type=int, help="Label only the first N images (by id) that have persons to label.")
@click.option(
    "--workers", type=int, help="Worker processes (default: all cores; with --engine ray: the cluster's CPUs)."
)
@click.option(
    "--layout",
    type=click.Choice(["133", "136", "both"]),
    default="both",
    show_default=True,
    help="Json outputs: COCO-WholeBody 133, Halpe 136 or both.",
)
@click.option(
    "--teachers",
    "teachers",
    metavar="PART=BACKEND[:ARG],...",
    help=f"Teachers, e.g. face=dlib,hand=none. Parts: {choices_text()}; small_toe=estimate|none.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; ray: Ray Data actors on a Ray cluster.",
)
@click.option(
    "--address",
    help="--engine ray: the cluster to join (e.g. auto, ray://head:10001); default: start Ray on this machine.",
)
@click.option("--shard-size", type=int, default=64, show_default=True, help="Images per resumable shard.")
@click.option("--overwrite", is_flag=True, help="Discard the shards of an earlier run in --out with other options.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def distill_command(coco_split, root, ann, dataset_format, images_dir, boxes, detector, min_box_score, det_nms, max_persons, sample, out_dir, limit, workers, layout, teachers, engine, address, shard_size, overwrite, no_progress):  # fmt: skip
    """Distil 133 / 136-point whole-body labels from body-only people with teacher models.

    \b
    Inputs (pick one):
      wbt distill --coco train2017 --root /data/coco --out wb/
      wbt distill --ann person_keypoints.json --images imgs/ --out wb/
      wbt distill --ann mmpose_crowdpose_trainval.json --images crowdpose/images --out wb/
      wbt distill --images imgs/ --boxes dets.json --out wb/
      wbt distill --images imgs/ --out wb/      (every person the detector finds)
      wbt distill --images imgs/ --detector onnx:yolox_m_humanart.onnx --out wb/
      wbt distill --sample --out wb/
    Outputs in --out: wholebody133.json, halpe136.json, labels.parquet, errors.jsonl, summary.json
    (and detections.json: the detector's boxes, when it ran).
    A killed run started again with the same command resumes from its shards
    (also with another --engine or --workers).
    """
    from labeltool.distill import inputs
    from labeltool.distill.pipeline import default_workers, distill, run_local
    from labeltool.distill.sample import write_sample_images
    from labeltool.distill.teacher_choice import TeacherChoice
    from labeltool.distill.work import DistillConfig

    given = [name for name, on in (("--coco", coco_split), ("--ann", ann), ("--sample", sample)) if on]
    if len(given) > 1:
        raise UserError(f"give only one of --coco, --ann, --sample (got {' and '.join(given)})")
    if boxes and (coco_split or ann or sample):
        raise UserError("--boxes goes with --images only (not with --coco, --ann or --sample)")
    if root and not coco_split:
        raise UserError("--root goes with --coco")
    if dataset_format and not ann:
        raise UserError("--format goes with --ann")
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    if address and engine != "ray":
        raise UserError("--address goes with --engine ray")
    detecting = not (coco_split or ann or boxes) and bool(images_dir or sample)
    if not detecting:
        for name, given in (("--detector", detector is not None), ("--det-nms", det_nms != DEFAULT_NMS),
                            ("--max-persons", max_persons != DEFAULT_MAX_PERSONS)):
            if given:
                raise UserError(f"{name} goes with --images without --boxes, or --sample (the detector runs there)")
    choice = TeacherChoice.parse(teachers)
    spec = None
    if detecting:
        from labeltool.detectors.registry import parse_detector

        spec = parse_detector(detector, min_box_score, det_nms, max_persons)
    if coco_split:
        if images_dir:
            raise UserError("--coco takes the images from ROOT/SPLIT; do not give --images")
        inp = inputs.from_coco(coco_split, root)
    elif ann:
        if not images_dir:
            raise UserError("--ann needs --images DIR (the directory of the annotated images)")
        inp = inputs.from_annotations(ann, images_dir, dataset_format)
    elif sample:
        if images_dir:
            raise UserError("--sample brings its own images; do not give --images")
        detect_in = write_sample_images(Path(out_dir) / "sample_images")
    elif images_dir and boxes:
        inp = inputs.from_boxes(images_dir, boxes, min_box_score)
    elif images_dir:
        detect_in = inputs.check_images_dir(images_dir)
    else:
        raise UserError(
            "no input: give --coco SPLIT, --ann FILE --images DIR, --images DIR [--boxes DETS.json] or --sample"
        )
    warn_if_off_lock()  # labels depend on the numeric libraries: say so when they are not the lock's
    run_engine = run_local
    if engine == "ray":
        from labeltool.distill import ray_engine

        ray_engine.connect(address)  # fail at once, before any work, when Ray is missing or unreachable
        workers = workers or ray_engine.cluster_cpus()
        run_engine = functools.partial(ray_engine.run_ray, address=address)
    if detecting:  # the detector's work comes after every check, the Ray cluster's too
        inp = inputs.from_detector(detect_in, spec, out_dir, limit, overwrite, not no_progress,
                                   workers=1 if engine == "ray" else workers or default_workers())
    config = DistillConfig(teachers=choice)
    summary = distill(
        inp,
        out_dir,
        config,
        workers=workers or default_workers(),
        limit=limit,
        shard_size=shard_size,
        layout=layout,
        overwrite=overwrite,
        progress=not no_progress,
        engine=run_engine,
    )
    images = summary["images"]
    if images["failed"] and not images["labelled"]:  # a wrong --images, say: not a success, whatever was written
        raise UserError(
            f"{out_dir}: every image failed ({images['failed']}); the reasons are in {Path(out_dir) / 'errors.jsonl'}"
        )
    persons, parts, run = summary["persons"], summary["parts"], summary["run"]
    click.echo(
        f"{out_dir}: {summary['images']['in_output']} images, {persons['in_output']} persons "
        f"({persons['labelled']} labelled), {summary['images']['failed']} failed images (errors.jsonl)"
    )
    click.echo("accepted: " + ", ".join(f"{p} {v['accepted']}/{v['proposed']}" for p, v in parts.items()))
    if run["persons_per_second"]:
        click.echo(
            f"{run['persons_per_second']} persons/s, {run['images_per_second']} images/s with {run['workers']} workers"
        )


COMMANDS: list[click.Command] = [distill_command]
