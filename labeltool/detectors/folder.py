"""A detector over a folder of images, its boxes kept in a detections file (``detections.json``) that resumes.

``wbt distill --images DIR`` writes ``OUT/detections.json``; ``wbt predict --images DIR`` writes
``RESULTS.detections.json`` beside its results. The file is a COCO-style object that
``--boxes`` reads back (:func:`labeltool.io.boxes.read_box_file`)::

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

from labeltool.detectors.base import DetectorSpec
from labeltool.errors import UserError
from labeltool.io.atomic import write_json_atomic
from labeltool.io.jsonfile import read_json


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
                  limit: int | None = None, progress: bool = True, replace: bool = False,
                  workers: int = 1) -> FolderDetections:
    """Run ``spec``'s detector on ``images`` (``{id, file_name}``, in id order) and keep the boxes in ``path``.

    ``limit``: stop once that many images have persons (``wbt distill --limit``). ``replace``:
    a detections file of another detector or image list at ``path`` is replaced instead of refused.
    ``workers`` > 1: a spawn pool of that many processes, one detector (one thread) each; the
    boxes are the same, in the same order. The file is saved every :data:`SAVE_EVERY` seconds.
    """
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

        def save() -> None:
            write_json_atomic({"detector": description, "images": images, "detected": detected, "failed": failed,
                               "annotations": annotations}, path)

        last_save = time.monotonic()
        results = _run(todo, images_dir, spec, workers)
        try:
            for im, found, error, took in tqdm(results, total=len(todo), unit="img", desc="detect",
                                                disable=not progress, dynamic_ncols=True):
                image_id = int(im["id"])
                detected.append(image_id)
                seconds += took
                if error is not None:
                    failed.append({"image_id": image_id, "file_name": im["file_name"], "error": error})
                for box, score in zip(*found):
                    x0, y0, x1, y1 = (float(v) for v in box)
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                                        "score": round(float(score), 5)})
                if len(found[1]):
                    with_persons.add(image_id)
                if time.monotonic() - last_save > SAVE_EVERY:  # a killed run keeps what was detected
                    save()
                    last_save = time.monotonic()
                if limit is not None and len(with_persons) >= limit:
                    break  # enough images with persons for --limit (a later run detects the rest)
        finally:
            if hasattr(results, "close"):
                results.close()
        save()
    ids = np.asarray([a["image_id"] for a in annotations], dtype=np.int64)
    return FolderDetections(
        image_ids=ids,
        bboxes=np.asarray([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4),
        scores=np.asarray([a["score"] for a in annotations], dtype=np.float64),
        detected=detected, failed=failed, seconds=seconds, detector=description,
    )


SAVE_EVERY = 60.0  # seconds between saves of the detections file while detecting
CHUNK = 4  # images per pool task


def _detect_one(detector, images_dir: Path, im: dict):
    """(image entry, (boxes, scores), error or None, detector seconds) of one image."""
    from labeltool.images import ImageReadError, read_rgb

    try:
        image = read_rgb(images_dir / im["file_name"])
    except ImageReadError as err:
        return im, (np.zeros((0, 4)), np.zeros(0)), str(err), 0.0
    start = time.perf_counter()
    found = detector.detect(image)
    return im, (found.boxes, found.scores), None, time.perf_counter() - start


class _Serial:
    """The images detected in this process, one at a time."""

    def __init__(self, todo: list[dict], images_dir: Path, spec: DetectorSpec):
        from labeltool.detectors.registry import build_detector

        self.detector = build_detector(spec)
        self.items = (_detect_one(self.detector, images_dir, im) for im in todo)

    def __iter__(self):
        return self.items

    def close(self) -> None:
        self.detector.close()


_WORKER: dict = {}


def _init_worker(spec: DetectorSpec, images_dir: Path) -> None:
    import cv2

    from labeltool.detectors.registry import build_detector

    cv2.setNumThreads(1)  # HOG and the resizes: one thread per worker, as the networks
    _WORKER["detector"] = build_detector(spec, threads=1)
    _WORKER["images_dir"] = images_dir


def _pool_task(im: dict):
    return _detect_one(_WORKER["detector"], _WORKER["images_dir"], im)


class _Pool:
    """The images detected in a spawn pool, results in image order."""

    def __init__(self, todo: list[dict], images_dir: Path, spec: DetectorSpec, workers: int):
        import multiprocessing as mp

        self.pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(spec, images_dir))
        self.items = self.pool.imap(_pool_task, todo, chunksize=CHUNK)

    def __iter__(self):
        return self.items

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


def _run(todo: list[dict], images_dir: Path, spec: DetectorSpec, workers: int):
    return _Pool(todo, images_dir, spec, workers) if workers > 1 and len(todo) > 1 else _Serial(todo, images_dir, spec)


def _what(doc) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("detector"), dict):
        return f"detector {doc['detector'].get('detector', '?')}"
    return "not a wbt detections file"
