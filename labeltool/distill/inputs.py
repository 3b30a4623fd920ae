"""What `wbt distill` reads: persons (body keypoints or boxes) and the directory of their images.

Four ways in, one result (:class:`DistillInput`):

- ``--coco SPLIT [--root ROOT]`` and ``--ann FILE --images DIR [--format DATASET]``: a keypoint
  file of a body dataset (:mod:`labeltool.datasets`: COCO-17 / 133 / 136, Halpe-26, CrowdPose,
  AI Challenger, MPII, OCHuman, PoseTrack18, Human-Art), its points mapped to COCO-17 by
  name; the dataset's other body points (head top, neck, ...) are kept as extra points.
- ``--images DIR --boxes DETS.json``: person boxes, body from the body teacher.
- ``--images DIR`` alone: every person a detector finds (``--detector``, default the built-in
  one, :mod:`labeltool.detectors`), its boxes kept in ``OUT/detections.json``, body from the
  body teacher on them.
- ``--sample``: photos of people shipped with installed packages, written as JPEGs
  (see :mod:`labeltool.distill.sample`), then as ``--images DIR``.
- :func:`from_images` (the body teacher on each whole image, one person per image) is kept
  for callers that want that.

Every check that can fail on the user's input happens here, at once, as a one-line
:class:`UserError`; a missing or unreadable single image is only found (and logged) later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltool.datasets import BodyFormat, read_body_dataset
from labeltool.distill.body import AnnotatedBody, BodySource, DetectedBody, DetectorBody, WholeImageBody
from labeltool.distill.native_log import NATIVE_LOG, native_stderr_to
from labeltool.distill.shards import RUN_FILE, SHARD_DIR
from labeltool.errors import UserError
from labeltool.io.boxes import read_box_file
from labeltool.io.paths import list_images, resolve_coco_split
from labeltool.io.pose import PoseDataset
from labeltool.layouts import COCO17, WHOLEBODY_BOX_KEYS


@dataclass
class DistillInput:
    """Persons to label (COCO-17 body; zeros when the body teacher provides it), their images, their body source."""

    dataset: PoseDataset
    images_dir: Path
    body: BodySource  # where the body points come from (annotations, or the body teacher on boxes / images)
    identity: dict  # what makes two runs the same input (paths, sizes, times): checked on resume
    format: BodyFormat | None = None  # the dataset of an annotation file
    extra: np.ndarray | None = None  # (N, E, 3) its persons' extra points (names: format.extra_names)

    @property
    def extra_names(self) -> tuple[str, ...]:
        return self.format.extra_names if self.format is not None and self.extra is not None else ()

    def describe(self) -> dict | None:
        """summary.json 'dataset': the input's dataset format and its mapping (None without annotations)."""
        return None if self.format is None else self.format.describe()

    def persons_to_label(self) -> np.ndarray:
        """(N,) bool: persons the teachers run on."""
        return self.body.persons_to_label(self.dataset)


def _file_identity(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_images_dir(images_dir: str | os.PathLike) -> Path:
    images_dir = Path(images_dir)
    if not images_dir.exists():
        raise UserError(f"{images_dir}: image directory not found")
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: is not a directory (--images takes the directory holding the images)")
    return images_dir


def from_annotations(
    ann_path: str | os.PathLike, images_dir: str | os.PathLike, dataset_format: str | None = None
) -> DistillInput:
    """``--ann FILE --images DIR``: body keypoints from a keypoint file of a body dataset.

    ``dataset_format``: the dataset's name (``--format``); default: detected from the file's
    content (:func:`labeltool.datasets.detect_format`).
    """
    ann_path = Path(ann_path)
    images_dir = check_images_dir(images_dir)
    body = read_body_dataset(ann_path, dataset_format)
    ds, fmt = body.native, body.format
    body_only = PoseDataset(
        layout=COCO17,
        keypoints=fmt.coco17_points(ds.keypoints),
        ann_ids=ds.ann_ids,
        image_ids=ds.image_ids,
        category_ids=ds.category_ids,
        bboxes=ds.bboxes,
        areas=ds.areas,
        iscrowd=ds.iscrowd,
        # part boxes of a whole-body input would leak ground truth into the output: drop them
        annotations=[{k: v for k, v in a.items() if k not in WHOLEBODY_BOX_KEYS.values()} for a in ds.annotations],
        images=ds.images,
        categories=ds.categories,
        extra=ds.extra,
        path=str(ann_path),
    )
    _check_references(body_only, ann_path)
    identity = {
        "mode": "annotations",
        "format": fmt.name,
        "ann": _file_identity(ann_path),
        "images": str(images_dir.resolve()),
    }
    extra = body.extra if len(fmt.extra) else None
    return DistillInput(body_only, images_dir, AnnotatedBody(fmt), identity, fmt, extra)


def from_coco(split: str, root: str | os.PathLike | None) -> DistillInput:
    """``--coco SPLIT [--root ROOT]``: ROOT/annotations/person_keypoints_SPLIT.json and ROOT/SPLIT/."""
    ann, images = resolve_coco_split(split, root)
    return from_annotations(ann, images)


def _check_references(ds: PoseDataset, path: Path) -> None:
    known = {int(im["id"]) for im in ds.images}
    missing = set(np.unique(ds.image_ids).tolist()) - known
    if missing:
        raise UserError(f"{path}: annotations refer to image id {min(missing)} which is not in 'images'")


def _empty_dataset(images: list[dict], path: str) -> PoseDataset:
    return _box_dataset(images, [], np.zeros((0, 4)), np.zeros(0), path)


def _box_dataset(
    images: list[dict], image_ids: list[int], boxes: np.ndarray, scores: np.ndarray, path: str
) -> PoseDataset:
    n = len(image_ids)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
    annotations = [{"segmentation": [], "score": float(s)} for s in scores]  # mmpose's reader wants segmentation
    return PoseDataset(
        layout=COCO17,
        keypoints=np.zeros((n, 17, 3)),
        ann_ids=np.arange(1, n + 1, dtype=np.int64),
        image_ids=np.asarray(image_ids, dtype=np.int64),
        category_ids=np.ones(n, dtype=np.int64),
        bboxes=boxes,
        areas=boxes[:, 2] * boxes[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        annotations=annotations,
        images=images,
        categories=[],
        extra={},
        path=path,
    )


def from_images(images_dir: str | os.PathLike) -> DistillInput:
    """``--images DIR``: every image one person, body from the body teacher on the whole image."""
    images_dir = check_images_dir(images_dir)
    images = list_images(images_dir)
    identity = {"mode": "images", "images": str(images_dir.resolve()), "files": [im["file_name"] for im in images]}
    return DistillInput(_empty_dataset(images, str(images_dir)), images_dir, WholeImageBody(), identity)


def from_boxes(images_dir: str | os.PathLike, boxes_path: str | os.PathLike, min_score: float) -> DistillInput:
    """``--images DIR --boxes DETS.json``: person boxes, body from the body teacher.

    DETS.json is a COCO detection results list ``[{image_id | file_name, bbox [x, y, w, h],
    score, category_id}]`` (image ids matched to numbered file names, as COCO's), or a
    COCO-style object with 'images' and 'annotations' holding boxes. Boxes of other
    categories than 1 (person) and under ``min_score`` are dropped.
    """
    images_dir = check_images_dir(images_dir)
    boxes_path = Path(boxes_path)
    boxes = read_box_file(boxes_path)
    images = boxes.images if boxes.images is not None else list_images(images_dir)
    by_id = {int(im["id"]): im for im in images}
    by_name = {im["file_name"]: int(im["id"]) for im in images}
    keep_ids, keep_boxes, keep_scores = [], [], []
    for i, det in enumerate(boxes.entries):
        if "file_name" in det:
            if det["file_name"] not in by_name:
                raise UserError(f"{boxes.where(i)}: no image file {det['file_name']!r} in {images_dir}")
            image_id = by_name[det["file_name"]]
        else:
            image_id = det["image_id"]
            if not isinstance(image_id, int) or image_id not in by_id:
                raise UserError(f"{boxes.where(i)}: image id {image_id!r} matches no image in {images_dir}")
        box = det["bbox"]
        if det.get("category_id", 1) != 1 or float(det.get("score", 1.0)) < min_score:
            continue
        if box[2] <= 1 or box[3] <= 1:
            continue
        keep_ids.append(image_id)
        keep_boxes.append(box)
        keep_scores.append(float(det.get("score", 1.0)))
    order = np.argsort(np.asarray(keep_ids, dtype=np.int64), kind="stable")
    ds = _box_dataset(
        images,
        [keep_ids[i] for i in order],
        np.asarray(keep_boxes, dtype=np.float64).reshape(-1, 4)[order],
        np.asarray(keep_scores)[order],
        str(boxes_path),
    )
    identity = {
        "mode": "boxes",
        "boxes": _file_identity(boxes_path),
        "images": str(images_dir.resolve()),
        "min_score": min_score,
    }
    return DistillInput(ds, images_dir, DetectedBody(), identity)


def from_detector(images_dir: str | os.PathLike, spec, out_dir: str | os.PathLike, limit: int | None = None,
                  overwrite: bool = False, progress: bool = True, workers: int = 1) -> DistillInput:
    """``--images DIR`` without boxes: the persons ``spec``'s detector finds, body from the body teacher.

    The boxes go to ``OUT/detections.json`` (:mod:`labeltool.detectors.folder`), which a resumed
    run reuses; the detector's description (model file hashes, thresholds) is part of the run's
    identity, so resuming with another detector is refused (one line) before anything is written.
    """
    from labeltool.detectors.folder import detect_folder
    from labeltool.detectors.registry import describe_detector

    images_dir = check_images_dir(images_dir)
    images = list_images(images_dir)
    description = describe_detector(spec)
    identity = {"mode": "detector", "images": str(images_dir.resolve()), "files": [im["file_name"] for im in images],
                "detector": description}
    out_dir = Path(out_dir)
    _refuse_other_run(out_dir, identity, overwrite, limit)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    with native_stderr_to(out_dir / NATIVE_LOG):  # TFLite's own lines go to the log, as the teachers' do
        found = detect_folder(images, images_dir, spec, out_dir / DETECTIONS_FILE, description, limit, progress,
                              replace=overwrite, workers=workers)
    order = np.argsort(found.image_ids, kind="stable")
    ds = _box_dataset(images, found.image_ids[order].tolist(), found.bboxes[order], found.scores[order],
                      str(out_dir / DETECTIONS_FILE))
    return DistillInput(ds, images_dir, DetectorBody([f["image_id"] for f in found.failed]), identity)


DETECTIONS_FILE = "detections.json"


def _refuse_other_run(out_dir: Path, identity: dict, overwrite: bool, limit: int | None) -> None:
    """One line, before any detection, when ``out_dir`` holds shards of a run with another detector, images or
    ``--limit`` (the same refusal the pipeline makes later, made before the detector writes its boxes)."""
    from labeltool.io.jsonfile import read_json

    path = out_dir / SHARD_DIR / RUN_FILE
    if overwrite or not path.is_file():
        return
    run = read_json(path)
    old = run.get("input") if isinstance(run, dict) else None
    if old == json.loads(json.dumps(identity)):
        if run.get("limit") != limit:
            raise UserError(f"{path}: this output directory holds a run with different limit; "
                            "use another --out, the same options, or --overwrite to start again")
        return
    if isinstance(old, dict) and old.get("mode") == "detector" and old.get("detector") != identity["detector"]:
        was = old["detector"]
        raise UserError(f"{path}: this output directory holds a run with detector {was.get('detector')} "
                        f"({_thresholds(was)}); this one is {identity['detector']['detector']} "
                        f"({_thresholds(identity['detector'])}); use another --out, the same --detector "
                        "and thresholds, or --overwrite to start again")
    raise UserError(f"{path}: this output directory holds a run with different input; "
                    "use another --out, the same options, or --overwrite to start again")


def _thresholds(description: dict) -> str:
    files = ", ".join(f"{f.get('name')} sha256 {str(f.get('sha256'))[:12]}" for f in description.get("files", []))
    return f"{files}; min_score {description.get('min_score')}, nms {description.get('nms')}, " \
           f"max_persons {description.get('max_persons')}"
