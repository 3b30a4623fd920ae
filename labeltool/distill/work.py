"""The work on one image, the single code path every engine runs.

:class:`Distiller` holds the teachers (built once per worker process or Ray actor, or
given by the caller) and :meth:`Distiller.label_image` does one image: decode, body (from
the input's :class:`~labeltool.distill.body.BodySource`), crop proposals, part teachers,
merge. Every teacher is called the same way (:class:`labeltool.teachers.base.Teacher`); what
crop it gets follows from its ``crop`` attribute (:data:`CROP_REQUESTS`). Engines only
schedule ``label_image`` over :class:`ImageTask` records and hand the :class:`ImageResult`
records to the shard writer; the result of an image depends on nothing but the image and the task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from labeltool.digests import content_digest
from labeltool.distill.body import BodySource, ImageTask
from labeltool.distill.shards import ImageResult
from labeltool.distill.teacher_choice import TeacherChoice
from labeltool.images import ImageReadError, decode_rgb, read_image_bytes
from labeltool.label_codes import MERGED_PARTS
from labeltool.layouts import WHOLEBODY133
from labeltool.merge.rules import MergedPersons, MergeRules, PartCandidate, combine_candidates, merge_persons
from labeltool.proposals import face_boxes_from_body, foot_boxes_from_body, hand_boxes_from_body, person_boxes_from_body
from labeltool.teachers.base import CROP_FACE, CROP_FEET, CROP_HAND, CROP_PERSON, Teacher, split_parts

__all__ = ["CROP_REQUESTS", "DistillConfig", "Distiller", "ImageTask"]


@dataclass(frozen=True)
class DistillConfig:
    """Everything a worker needs to build its teachers and label images (picklable)."""

    teachers: TeacherChoice = field(default_factory=TeacherChoice)
    rules: MergeRules = field(default_factory=MergeRules)


@dataclass
class CropRequest:
    """One teacher call: the ``parts`` it predicts, on ``boxes`` (P, 4) where ``ok`` (P,), for ``sides``."""

    parts: tuple[str, ...]
    boxes: np.ndarray
    ok: np.ndarray
    sides: str | None = None


FaceHint = tuple[np.ndarray, np.ndarray] | None  # face boxes and validity from the input's head points (P, 4), (P,)


def _face_requests(body: np.ndarray, fills: tuple[str, ...], hint: FaceHint = None) -> list[CropRequest]:
    """Face boxes from the body's head points; where it has none, from the input's head top and neck (``hint``)."""
    boxes, ok = face_boxes_from_body(body)
    if hint is not None:
        use = ~ok & hint[1]
        boxes = np.where(use[:, None], hint[0], boxes)
        ok = ok | use
    return [CropRequest(("face",), boxes, ok)]


def _hand_requests(body: np.ndarray, fills: tuple[str, ...], hint: FaceHint = None) -> list[CropRequest]:
    return [CropRequest((f"{side}hand",), *hand_boxes_from_body(body, side), side) for side in ("left", "right")]


def _feet_requests(body: np.ndarray, fills: tuple[str, ...], hint: FaceHint = None) -> list[CropRequest]:
    """One pose fit per person for both feet, on the person box grown to hold both foot boxes."""
    left, left_ok = foot_boxes_from_body(body, "left")
    right, right_ok = foot_boxes_from_body(body, "right")
    around, around_ok = person_boxes_from_body(body)
    person = _union([(around, around_ok), (left, left_ok), (right, right_ok)])
    return [CropRequest(("foot",), person, left_ok | right_ok)]


def _person_requests(body: np.ndarray, fills: tuple[str, ...], hint: FaceHint = None) -> list[CropRequest]:
    """A whole-body teacher: every part it fills from one call on the person boxes."""
    return [CropRequest(fills, *person_boxes_from_body(body))]


# Teacher.crop -> the calls it gets for the persons of an image (P, 17, 3)
CROP_REQUESTS: dict[str, Callable[[np.ndarray, tuple[str, ...], FaceHint], list[CropRequest]]] = {
    CROP_FACE: _face_requests,
    CROP_HAND: _hand_requests,
    CROP_FEET: _feet_requests,
    CROP_PERSON: _person_requests,
}


class Distiller:
    """Teachers built once; :meth:`label_image` labels one image. Use as a context manager or call close().

    ``teachers``: already built teachers to use (tests pass a real teacher of their choice);
    by default the ones ``config.teachers`` names are built from the registry, the body
    teacher only when ``body`` needs it. Each teacher's source must be one of the run's
    (``config.teachers.sources()``).
    """

    def __init__(self, config: DistillConfig, body: BodySource, teachers: Sequence[Teacher] | None = None):
        self.config = config
        self.body_source = body
        self.owns_teachers = teachers is None
        built = config.teachers.build(body=body.needs_teacher, threads=1) if teachers is None else list(teachers)
        self.body_teacher = next((t for t in built if t.spec.part == "body"), None)
        self.part_teachers = [t for t in built if t.spec.part != "body"]
        self.teachers = built
        if body.needs_teacher and self.body_teacher is None:
            raise ValueError("this input takes its body from the body teacher: give one")
        sources = config.teachers.sources()
        for t in built:
            if t.spec.source not in sources:
                raise ValueError(f"teacher {t.spec} is not one of the run's sources {sources}")
        self.sources = sources
        self.ensemble_codes = {
            frozenset(sources.index(m) for m in members): sources.index(name)
            for name, members in config.teachers.ensembles().items()
        }

    def close(self) -> None:
        """Free the models (those this Distiller built)."""
        if self.owns_teachers:
            for teacher in self.teachers:
                teacher.close()

    def __enter__(self) -> Distiller:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def label_image(self, task: ImageTask) -> ImageResult:
        """Label one image; a missing / unreadable image or a teacher failure becomes ``result.error``."""
        start = time.perf_counter()
        result = ImageResult(image_id=task.image_id)
        if task.error:  # the plan refused the image (its name leaves the image folder): never read
            result.error = task.error
            return result
        try:
            data = read_image_bytes(task.path)
            result.digest = content_digest(data)  # checked on resume: a replaced image is not mixed in
            image = decode_rgb(data, task.path)
        except ImageReadError as err:
            result.error = f"{task.path}: {err.reason}"
            result.seconds = time.perf_counter() - start
            return result
        result.height, result.width = image.shape[:2]
        try:
            self._label(image, task, result)
        except Exception as err:  # a teacher failing on one image must not stop a dataset run
            result.error = f"{task.path}: teacher error: {type(err).__name__}: {err}"
            result.ann_ids = np.zeros(0, dtype=np.int64)
            result.labels = MergedPersons.empty(0)
        result.seconds = time.perf_counter() - start
        return result

    def _timed(self, result: ImageResult, part: str, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - t
            result.teacher_seconds += seconds
            result.part_seconds[part] = result.part_seconds.get(part, 0.0) + seconds

    def _label(self, image: np.ndarray, task: ImageTask, result: ImageResult) -> None:
        height, width = image.shape[:2]
        rules = self.config.rules
        teacher = self.body_teacher
        code = self.sources.index(teacher.spec.source) if teacher is not None else 0
        get_body = self.body_source.body
        if teacher is None:
            got = get_body(image, task, teacher, code, rules)
        else:
            got = self._timed(result, "body", get_body, image, task, teacher, code, rules)
        if got is None:
            return  # nobody to label
        body, body_conf, body_src = got
        parts = self._predict_parts(image, body, result, self.body_source.face_boxes(task))
        labels = merge_persons(body, body_conf, body_src, parts, (height, width), rules)
        bboxes, areas = self.body_source.person_boxes(task, labels, width, height)
        result.ann_ids = np.asarray(task.ann_ids, dtype=np.int64)
        result.bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
        result.areas = np.asarray(areas, dtype=np.float64)
        result.labels = labels

    def _source_codes(self, teacher: Teacher, num_points: int) -> int | np.ndarray:
        """The source code of each point of one call's output (one code unless some points have their own)."""
        code = self.sources.index(teacher.spec.source)
        if not teacher.point_sources:
            return code
        codes = np.full(num_points, code, dtype=np.int8)
        for name, idx in teacher.point_sources.items():
            codes[list(idx)] = self.sources.index(f"{teacher.spec.source}:{name}")
        return codes

    def _predict_parts(
        self, image: np.ndarray, body: np.ndarray, result: ImageResult, face_hint: FaceHint = None
    ) -> dict[str, PartCandidate]:
        """Every part teacher on its crops of the persons of ``body``; one candidate per part for the merge."""
        num = len(body)
        candidates: dict[str, list[PartCandidate]] = {}
        for teacher in self.part_teachers:
            for req in CROP_REQUESTS[teacher.crop](body, teacher.fills, face_hint):
                k = sum(len(WHOLEBODY133.parts[p]) for p in req.parts)
                pts = np.zeros((num, k, 3))
                flags: dict[str, np.ndarray] = {}
                if req.ok.any():
                    pred = self._timed(
                        result, teacher.spec.part, teacher.predict, image, req.boxes[req.ok], body[req.ok], req.sides
                    )
                    pts[req.ok] = pred.points
                    for name, values in pred.flags.items():
                        flags[name] = np.zeros(num, dtype=bool)
                        flags[name][req.ok] = values
                codes = self._source_codes(teacher, k)
                for part, part_pts in split_parts(pts, req.parts).items():
                    if part not in MERGED_PARTS:  # a whole-body model's body: the body comes from the body source
                        continue
                    source = codes if np.isscalar(codes) else split_parts(codes[None], req.parts)[part][0]
                    candidates.setdefault(part, []).append(PartCandidate(source, part_pts, req.ok, req.boxes, flags))
        rules = self.config.rules
        return {part: combine_candidates(found, part, rules, self.ensemble_codes) for part, found in candidates.items()}


def _union(boxes: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per person, the box around every valid [x0, y0, x1, y1] box of the list (zeros when none is valid)."""
    lo = np.full((len(boxes[0][0]), 2), np.inf)
    hi = np.full((len(boxes[0][0]), 2), -np.inf)
    for b, ok in boxes:
        lo = np.where(ok[:, None], np.minimum(lo, b[:, :2]), lo)
        hi = np.where(ok[:, None], np.maximum(hi, b[:, 2:]), hi)
    out = np.concatenate([lo, hi], axis=1)
    out[~np.isfinite(out).all(axis=1)] = 0.0
    return out
