"""A detector over a folder of images, its boxes kept in a detections file (``detections.json``) that resumes.

``wbt distill --images DIR`` writes ``OUT/detections.json``; ``wbt predict --images DIR`` writes
``RESULTS.detections.json`` beside its results. The file is a COCO-style object that
``--boxes`` reads back (:func:`labeltool.boxfile.read_box_file`)::

    {"detector": {detector, model, version, files (sha256), min_score, nms, max_persons},
     "images": [{id, file_name}], "detected": [image ids run so far],
     "failed": [{image_id, file_name, error}],
     "annotations": [{id, image_id, category_id: 1, bbox: [x, y, w, h], score}]}

A later run with the same detector (same description: model file hashes and thresholds) and
the same image list reuses the boxes of the images already detected and runs the others; any
other file at that path is refused, never overwritten, unless the caller says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltool.coco import read_json, write_json_atomic
from labeltool.detectors.base import DetectorSpec
from labeltool.errors import UserError


@dataclass
class FolderDetections:
    """The persons found in a folder: per box its image id, [x, y, w, h] and score; images that failed."""

    image_ids: np.ndarray  # (N,)
    bboxes: np.ndarray  # (N, 4) x y w h
    scores: np.ndarray  # (N,)
    detected: list[int]  # image ids the detector ran on
    failed: list[dict]  # {image_id, file_name, error}
    seconds: float  # detector time of this call (0 when every image came from the file)
    detector: dict


def _entries(doc: dict) -> tuple[list[int], list[dict], list[dict]]:
    return list(doc.get("detected", [])), list(doc.get("failed", [])), list(doc.get("annotations", []))


def detect_folder(images: list[dict], images_dir: Path, spec: DetectorSpec, path: Path, description: dict,
                  limit: int | None = None, progress: bool = True, replace: bool = False) -> FolderDetections:
    """Run ``spec``'s detector on ``images`` (``{id, file_name}``, in id order) and keep the boxes in ``path``.

    ``limit``: stop once that many images have persons (``wbt distill --limit``). ``replace``:
    a detections file of another detector or image list at ``path`` is replaced instead of refused.
    """
    from labeltool.detectors.registry import build_detector
    from labeltool.images import ImageReadError, read_rgb

    detected: list[int] = []
    failed: list[dict] = []
    annotations: list[dict] = []
    if path.exists():
        old = read_json(path)
        same = isinstance(old, dict) and old.get("detector") == description and old.get("images") == images
        if same:
            detected, failed, annotations = _entries(old)
        elif not replace:
            raise UserError(f"{path}: holds the boxes of another detector or image list ({_what(old)}); "
                            "use another output, the same --detector and thresholds, or --overwrite")
    done = set(detected)
    with_persons = {a["image_id"] for a in annotations}
    todo = [im for im in images if int(im["id"]) not in done]
    seconds = 0.0
    if todo:
        from tqdm import tqdm

        detector = build_detector(spec)
        try:
            bar = tqdm(todo, unit="img", desc="detect", disable=not progress, dynamic_ncols=True)
            for im in bar:
                image_id = int(im["id"])
                if limit is not None and len(with_persons) >= limit:
                    break  # enough images with persons for --limit (a later run detects the rest)
                try:
                    image = read_rgb(images_dir / im["file_name"])
                except ImageReadError as err:
                    failed.append({"image_id": image_id, "file_name": im["file_name"], "error": str(err)})
                    detected.append(image_id)
                    continue
                start = time.perf_counter()
                found = detector.detect(image)
                seconds += time.perf_counter() - start
                detected.append(image_id)
                for box, score in zip(found.boxes, found.scores):
                    x0, y0, x1, y1 = (float(v) for v in box)
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                                        "score": round(float(score), 5)})
                if len(found):
                    with_persons.add(image_id)
        finally:
            detector.close()
        doc = {"detector": description, "images": images, "detected": detected, "failed": failed,
               "annotations": annotations}
        write_json_atomic(doc, path)
    ids = np.asarray([a["image_id"] for a in annotations], dtype=np.int64)
    return FolderDetections(
        image_ids=ids,
        bboxes=np.asarray([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4),
        scores=np.asarray([a["score"] for a in annotations], dtype=np.float64),
        detected=detected, failed=failed, seconds=seconds, detector=description,
    )


def _what(doc) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("detector"), dict):
        return f"detector {doc['detector'].get('detector', '?')}"
    return "not a wbt detections file"
