"""`wbt teach`: run one teacher on given boxes and write COCO-style keypoint results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from labeltool.errors import UserError
from labeltool.io.boxes import read_box_file
from labeltool.io.paths import image_path
from labeltool.teachers.base import CROP_HAND, Teacher
from labeltool.teachers.registry import (
    DEFAULT_BACKENDS,
    NONE,
    backends_of,
    build_teacher,
    check_model_files,
    lookup_spec,
)
from labeltool.teachers.registry import parts as registered_parts

PARTS = tuple(registered_parts())  # the parts with a registered teacher


@dataclass
class BoxEntry:
    """One box to label: image, [x0, y0, x1, y1] box, optional side / body / source id."""

    image_id: int
    box: np.ndarray
    side: str | None = None
    body: np.ndarray | None = None  # (17, 3) when the entry carries COCO-17 keypoints
    source_id: int | None = None
    extra: dict = field(default_factory=dict)


def read_boxes(path: Path, images_dir: Path) -> tuple[dict[int, Path], list[BoxEntry]]:
    """Boxes from a box file (:mod:`labeltool.io.boxes`): a dataset ({images, annotations}) or a results list.

    Each entry needs ``image_id`` and ``bbox`` [x, y, w, h] with a positive width and height;
    ``side`` ('left' / 'right'), 17-point ``keypoints`` (the body) and ``id`` are used when
    present. For a results list, images are found as ``file_name`` in the entry, else
    ``<image_id as 12 digits>.jpg`` (COCO), else ``<image_id>.jpg`` / ``.png`` in the image folder.
    """
    boxes = read_box_file(path)
    files = {int(im["id"]): image_path(images_dir, im) for im in boxes.images or []}
    out = []
    for i, e in enumerate(boxes.entries):
        where = boxes.where(i)
        if "image_id" not in e:
            raise UserError(f"{where} is missing required key 'image_id'")
        bbox = e["bbox"]
        if not (np.isfinite(bbox).all() and bbox[2] > 0 and bbox[3] > 0):
            raise UserError(f"{where}: 'bbox' {bbox} must be finite with positive width and height")
        side = e.get("side")
        if side is not None and side not in ("left", "right"):
            raise UserError(f"{where}: 'side' must be 'left' or 'right', got {side!r}")
        body = None
        kp = e.get("keypoints")
        if isinstance(kp, list) and len(kp) == 51:
            body = np.asarray(kp, dtype=np.float64).reshape(17, 3)
        image_id = int(e["image_id"])
        if image_id not in files:
            files[image_id] = _find_image(images_dir, image_id, e.get("file_name"), path)
        x, y, w, h = (float(v) for v in bbox)
        out.append(
            BoxEntry(
                image_id=image_id,
                box=np.array([x, y, x + w, y + h]),
                side=side,
                body=body,
                source_id=e.get("id"),
            )
        )
    return files, out


def _find_image(images_dir: Path, image_id: int, file_name: str | None, boxes_path: Path) -> Path:
    candidates = [image_path(images_dir, {"id": image_id, "file_name": file_name})] if file_name else []
    candidates += [images_dir / f"{image_id:012d}.jpg", images_dir / f"{image_id}.jpg", images_dir / f"{image_id}.png"]
    for c in candidates:
        if c.is_file():
            return c
    raise UserError(
        f"{boxes_path}: no image for image_id {image_id} in {images_dir} "
        f"(tried {', '.join(c.name for c in candidates)}; give a COCO file with 'images' or a 'file_name')"
    )


def _backend_and_arg(text: str) -> tuple[str, str | None]:
    name, colon, arg = text.partition(":")
    return name, (arg if colon else None)


def scale_boxes(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Grow [x0, y0, x1, y1] boxes about their centres by ``factor``."""
    center = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half = (boxes[:, 2:] - boxes[:, :2]) * factor / 2.0
    return np.concatenate([center - half, center + half], axis=1)


def run_teacher(teacher: Teacher, image: np.ndarray, entries: list[BoxEntry], box_scale: float) -> list[dict]:
    """Predict on the entries of one image; one result dict per entry."""
    boxes = scale_boxes(np.stack([e.box for e in entries]), box_scale)
    have_body = all(e.body is not None for e in entries)
    body = np.stack([e.body for e in entries]) if have_body else None
    pred = teacher.predict(image, boxes, body, [e.side for e in entries])
    results = []
    for i, e in enumerate(entries):
        p = pred.points[i]
        conf = p[:, 2]
        found = conf > 0
        box = e.box
        r = {
            "image_id": e.image_id,
            "category_id": 1,
            "keypoints": [round(float(v), 3) for v in p.reshape(-1)],
            "score": round(float(conf[found].mean()) if found.any() else 0.0, 4),
            "bbox": [round(float(v), 3) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1])],
        }
        if e.source_id is not None:
            r["source_id"] = e.source_id
        if teacher.crop == CROP_HAND:
            r["side"] = e.side
        for name, values in pred.values.items():
            r[name] = None if np.isnan(values[i]) else round(float(values[i]), 4)
        for name, flags in pred.flags.items():
            r[name] = bool(flags[i])
        results.append(r)
    return results


@click.command("teach")
@click.option("--part", type=click.Choice(PARTS), required=True, help="Which teacher to run.")
@click.option("--images", "images_dir", type=click.Path(), required=True, help="Folder with the images.")
@click.option(
    "--boxes",
    "boxes_path",
    type=click.Path(),
    required=True,
    help="COCO-style json: a dataset (images + annotations) or a list of {image_id, bbox[, side, file_name]}.",
)
@click.option("--out", "out_path", type=click.Path(), required=True, help="Output json (COCO keypoint results).")
@click.option("--backend", metavar="BACKEND[:ARG]",
              help="The part's teacher backend (default: the part's default; face: facemesh, dlib or fan).")  # fmt: skip
@click.option("--side", type=click.Choice(("left", "right")), default=None,
              help="Hands: the person's side of every box (a box's own 'side' field wins).")  # fmt: skip
@click.option("--box-scale", type=float, default=1.0, show_default=True,
              help="Grow each box about its centre first (1.5 turns tight GT hand / face boxes into proposal-sized ones).")  # fmt: skip
def teach_command(part, images_dir, boxes_path, out_path, backend, side, box_scale):
    """Run one teacher (face, hand, foot, body or wholebody) on given boxes; write COCO-style keypoint results.

    Output: a json list with one entry per input box, in input order: image_id,
    category_id 1, keypoints (flat K x 3: x, y, confidence; K = 68 face, 21 hand, 6 foot
    in COCO-WholeBody order, 17 body, 133 wholebody), score (mean confidence of the predicted points, 0
    when the teacher found nothing), bbox (the input box), source_id (the input entry's
    id), and for hands side, right_prob and handedness_contradicts.

    \b
    Examples:
      wbt teach --part face --images 300w/ --boxes test_300w.json --out face_pred.json
      wbt teach --part hand --images panoptic/ --boxes test_panoptic.json --box-scale 1.5 --out hand_pred.json
      wbt teach --part body --images photos/ --boxes detections.json --out body_pred.json
      wbt teach --part wholebody --backend onnx:rtmw-x.onnx --images photos/ --boxes persons.json --out wb_pred.json
    """
    from labeltool.images import read_rgb
    from labeltool.io.atomic import check_output_not_input, write_json_atomic

    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: image directory not found")
    check_output_not_input(out_path, {"--images": images_dir, "--boxes": boxes_path})
    if not box_scale > 0:
        raise UserError(f"--box-scale must be positive, got {box_scale}")
    backend = backend or DEFAULT_BACKENDS.get(part)
    if backend is None:
        raise UserError(f"--part {part} needs --backend (choose from {', '.join(backends_of(part))})")
    spec = lookup_spec(part, *_backend_and_arg(backend), option="--backend")
    if spec.backend == NONE:
        raise UserError("--backend none: give the teacher to run")
    check_model_files(spec)  # a wrong model file fails before the boxes are read
    files, entries = read_boxes(Path(boxes_path), images_dir)
    for e in entries:
        if e.side is None:
            e.side = side
    by_image: dict[int, list[int]] = {}
    for i, e in enumerate(entries):
        by_image.setdefault(e.image_id, []).append(i)
    results: list[dict | None] = [None] * len(entries)
    teacher = build_teacher(spec)
    try:
        for image_id, idx in by_image.items():
            image = read_rgb(files[image_id])
            for i, r in zip(idx, run_teacher(teacher, image, [entries[i] for i in idx], box_scale)):
                results[i] = r
    finally:
        teacher.close()
    write_json_atomic(results, out_path)
    found = sum(1 for r in results if r["score"] > 0)
    click.echo(f"wbt teach: {part}: {found} of {len(results)} boxes got a prediction, {len(by_image)} images -> {out_path}")


COMMANDS: list[click.Command] = [teach_command]
