"""What a person detector is: the :class:`Detector` protocol, its spec and output, and box NMS.

A detector is built once per process from a :class:`DetectorSpec` (``--detector
BACKEND[:ARG]`` plus the thresholds) by :mod:`labeltool.detectors.registry`, the one place
``wbt distill`` and ``wbt predict`` look backends up, in the style of the teachers
(:mod:`labeltool.teachers.base`). Every detector is called the same way::

    found = detector.detect(image)   # RGB uint8 (H, W, 3) -> Detections(boxes (N, 4) x0 y0 x1 y1, scores (N,))

already filtered by the spec's ``min_score``, de-duplicated by box NMS at ``nms`` IoU and cut
to ``max_persons`` (highest scores first), so callers hold no per-backend code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from labeltool.proposals import box_iou

DEFAULT_MIN_SCORE = 0.5  # boxes scoring lower are dropped (--min-box-score)
DEFAULT_NMS = 0.45  # box IoU above which the lower-scoring box is dropped (--det-nms; rtmlib's YOLOX / RTMDet 0.45)
DEFAULT_MAX_PERSONS = 100  # persons per image at most (--max-persons; COCO keeps 100 detections per image)


@dataclass(frozen=True)
class DetectorSpec:
    """``--detector BACKEND[:ARG]`` and the thresholds every backend applies the same way."""

    backend: str
    arg: str | None = None
    min_score: float = DEFAULT_MIN_SCORE
    nms: float = DEFAULT_NMS
    max_persons: int = DEFAULT_MAX_PERSONS

    def __str__(self) -> str:
        return self.backend + (f":{self.arg}" if self.arg is not None else "")

    def thresholds(self) -> dict:
        return {"min_score": self.min_score, "nms": self.nms, "max_persons": self.max_persons}


@dataclass
class Detections:
    """Person boxes of one image: ``boxes`` (N, 4) ``[x0, y0, x1, y1]`` pixels, ``scores`` (N,) in [0, 1], best first."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.scores)


@runtime_checkable
class Detector(Protocol):
    """A model that finds the persons of a whole image.

    ``spec``: the :class:`DetectorSpec` it was built from (thresholds included).
    """

    spec: DetectorSpec

    def detect(self, image: np.ndarray) -> Detections:
        """Person boxes of an RGB uint8 image (H, W, 3), after ``min_score``, NMS and ``max_persons``."""
        ...

    def describe(self) -> dict:
        """The model behind the boxes (model, version, files with their sha256, thresholds) for the outputs."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, plus_one: bool = False) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first: a box whose IoU with a kept one exceeds ``threshold`` goes.

    Areas are ``(x1 - x0) * (y1 - y0)`` (mmcv / torchvision), or with ``plus_one`` rtmlib's
    ``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixel convention (its YOLOX / RTMDet post-processing,
    which the ONNX backend reproduces); ``threshold`` >= 1 keeps every box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if plus_one:
        boxes = boxes + np.array([0.0, 0.0, 1.0, 1.0])
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iou = box_iou(boxes[i][None], boxes[rest])
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def finish(boxes: np.ndarray, scores: np.ndarray, spec: DetectorSpec, width: int, height: int,
           plus_one: bool = False, apply_nms: bool = True) -> Detections:
    """The spec's common last steps: drop boxes under ``min_score``, NMS (unless the model did it), the best ``max_persons``,
    then clip to the image and drop what is left empty (under 1 pixel wide or high)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    ok = scores >= spec.min_score
    boxes, scores = boxes[ok], scores[ok]
    keep = nms(boxes, scores, spec.nms, plus_one) if apply_nms else np.argsort(-scores, kind="stable")
    keep = keep[: spec.max_persons]
    boxes, scores = boxes[keep].copy(), scores[keep]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
    return Detections(boxes[ok], scores[ok])
