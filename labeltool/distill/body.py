"""Where each person's body keypoints come from: one :class:`BodySource` per kind of input.

The input reader (:mod:`labeltool.distill.inputs`) picks the source; the plan asks it which
persons and images to label and what each :class:`ImageTask` holds, and the per-image work
asks it for the body points and the output boxes. Nothing else branches on the input kind.

- :class:`AnnotatedBody` (``--coco``, ``--ann``): the annotation's 17 body points, never altered;
  for a dataset without some COCO-17 points (:mod:`labeltool.datasets`: CrowdPose, AIC, MPII,
  PoseTrack18) the body teacher fills those, point by point, and the dataset's head top / neck
  give the face proposal where the body has no head points.
- :class:`DetectedBody` (``--images --boxes``): the body teacher on each given person box;
  :class:`DetectorBody` (``--images`` alone): the same on a person detector's boxes.
- :class:`WholeImageBody`: the body teacher on the whole image, one person per image; its box
  is the labelled points' extent (for API callers; ``--images`` now detects every person).

A new input kind whose body comes another way (a body model's results file, say) is one more
class here with these methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltool.datasets import BodyFormat
from labeltool.io.pose import PoseDataset
from labeltool.label_codes import SOURCE_GT, SOURCE_MAPPED
from labeltool.layouts import COCO17
from labeltool.merge.rules import MergedPersons, MergeRules, body_from_teacher
from labeltool.proposals import face_boxes_from_head, xywh_to_xyxy
from labeltool.teachers.base import Teacher

PERSON_BOX_MARGIN = 0.1  # whole-image mode: person bbox = labelled points' extent grown by this share per side


@dataclass
class ImageTask:
    """One image to label and its persons (body from the input; zeros when the body teacher gives it)."""

    image_id: int
    path: str
    ann_ids: np.ndarray  # (P,)
    body: np.ndarray  # (P, 17, 3)
    bboxes: np.ndarray  # (P, 4) x y w h
    areas: np.ndarray  # (P,)
    extra: np.ndarray | None = None  # (P, E, 3) the input dataset's extra points (head top, neck, ...)
    error: str | None = None  # set by the plan when the image must not be read (its name leaves the image folder)


BodyPoints = tuple[np.ndarray, np.ndarray, np.ndarray]  # keypoints (P, 17, 3), confidence (P, 17), source codes (P, 17)


class BodySource:
    """Base: persons from the input's annotations; subclasses say where the body points come from."""

    description: str = ""  # summary.json 'body_from'
    needs_teacher: bool = False  # the run builds the body teacher

    def persons_to_label(self, ds: PoseDataset) -> np.ndarray:
        """(N,) bool: persons the teachers run on (never crowd regions)."""
        return ds.iscrowd == 0

    def image_ids_to_label(self, ds: PoseDataset) -> list[int]:
        """Sorted ids of the images with persons to label."""
        return sorted(set(ds.image_ids[self.persons_to_label(ds)].tolist()))

    def task(self, ds: PoseDataset, image_id: int, path: str, persons: np.ndarray) -> ImageTask:
        """The task of one image; ``persons``: indices into ``ds`` of its persons to label."""
        sel = persons
        return ImageTask(image_id, path, ds.ann_ids[sel], ds.keypoints[sel], ds.bboxes[sel], ds.areas[sel])

    def body(self, image: np.ndarray, task: ImageTask, teacher: Teacher | None, code: int, rules: MergeRules) -> BodyPoints | None:
        """The body points of ``task``'s persons (``code``: the body teacher's source code); None: nobody to label."""
        raise NotImplementedError

    def person_boxes(self, task: ImageTask, labels: MergedPersons, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Output bbox (P, 4) x y w h and area (P,) of the labelled persons: the input's."""
        return np.asarray(task.bboxes, dtype=np.float64).reshape(-1, 4), np.asarray(task.areas, dtype=np.float64)

    def face_boxes(self, task: ImageTask) -> tuple[np.ndarray, np.ndarray] | None:
        """Face proposals (P, 4) [x0, y0, x1, y1] and validity from the input's extra points; None: the input has none."""
        return None


class AnnotatedBody(BodySource):
    """Body points from the input annotations (source ``gt``, or ``mapped`` from another layout), never altered.

    ``fmt``: the input's dataset (:class:`labeltool.datasets.BodyFormat`); COCO-17 points it
    has no point for are filled by the body teacher on the person box, point by point (its
    own source code and confidence), when the teacher's points agree with the person's
    labelled ones (``rules.body_fill_max_dist``). A labelled ground-truth point is never
    replaced, and a point the dataset has but left unlabelled stays unlabelled.
    """

    def __init__(self, fmt: BodyFormat | None = None):
        self.fill = np.zeros(17, dtype=bool) if fmt is None else fmt.missing.copy()
        self.gt_code = SOURCE_GT if fmt is None or fmt.is_coco17_order else SOURCE_MAPPED
        self.face_from = None if fmt is None else fmt.face_from
        self.needs_teacher = bool(self.fill.any())
        self.description = "input annotations (never altered)"
        if self.needs_teacher:
            missing = ", ".join(COCO17.names[k] for k in np.nonzero(self.fill)[0])
            self.description += f"; {missing} (not in {fmt.title}) from the body teacher"

    def persons_to_label(self, ds: PoseDataset) -> np.ndarray:
        """Not crowd, and at least one body point labelled."""
        return (ds.iscrowd == 0) & (ds.keypoints[:, :, 2] > 0).any(axis=1)

    def body(self, image, task, teacher, code, rules) -> BodyPoints:
        body = np.asarray(task.body, dtype=np.float64)
        conf = np.where(body[:, :, 2] > 0, 1.0, 0.0)
        src = np.full(body.shape[:2], self.gt_code, dtype=np.int8)
        if not self.needs_teacher or teacher is None or not len(body):
            return body, conf, src
        raw = teacher.predict(image, xywh_to_xyxy(task.bboxes)).points
        kpts, t_conf, t_src = body_from_teacher(raw, code, image.shape[:2], rules)
        agree = teacher_agrees(kpts, body, rules.body_fill_max_dist)
        take = self.fill[None, :] & (kpts[:, :, 2] > 0) & (body[:, :, 2] <= 0) & agree[:, None]
        body = np.where(take[:, :, None], kpts, body)
        return body, np.where(take, t_conf, conf), np.where(take, t_src, src).astype(np.int8)

    def face_boxes(self, task: ImageTask) -> tuple[np.ndarray, np.ndarray] | None:
        if self.face_from is None or task.extra is None:
            return None
        top, bottom, center, side = self.face_from
        return face_boxes_from_head(task.extra[:, top], task.extra[:, bottom], center, side)


def teacher_agrees(teacher: np.ndarray, truth: np.ndarray, max_dist: float) -> np.ndarray:
    """(P,) bool: the teacher's points (P, 17, 3) lie on the labelled ones of ``truth``.

    The median distance over the points both have (at least 2) is at most ``max_dist`` of
    the diagonal of the labelled points' box: a fit on a neighbour in a crowd fails this.
    """
    both = (teacher[:, :, 2] > 0) & (truth[:, :, 2] > 0)
    out = np.zeros(len(truth), dtype=bool)
    for p in np.nonzero(both.sum(axis=1) >= 2)[0]:
        xy = truth[p, truth[p, :, 2] > 0, :2]
        diagonal = float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0)))
        dist = np.linalg.norm(teacher[p, both[p], :2] - truth[p, both[p], :2], axis=1)
        out[p] = diagonal > 0 and float(np.median(dist)) <= max_dist * diagonal
    return out


class DetectedBody(BodySource):
    """Body points from the body teacher on the input's person boxes."""

    description = "body teacher"
    needs_teacher = True

    def body(self, image, task, teacher, code, rules) -> BodyPoints:
        raw = teacher.predict(image, xywh_to_xyxy(task.bboxes)).points
        return body_from_teacher(raw, code, image.shape[:2], rules)


class DetectorBody(DetectedBody):
    """The body teacher on a person detector's boxes (``--images`` alone); images the detector could not
    read are labelled too, so the work logs why in errors.jsonl like any unreadable image."""

    def __init__(self, failed_image_ids: list[int]):
        self.failed = sorted(set(int(i) for i in failed_image_ids))

    def image_ids_to_label(self, ds: PoseDataset) -> list[int]:
        return sorted(set(super().image_ids_to_label(ds)) | set(self.failed))

    def body(self, image, task, teacher, code, rules) -> BodyPoints | None:
        if not len(task.bboxes):
            return None  # read fine now, but the detector found nobody there
        return super().body(image, task, teacher, code, rules)


class WholeImageBody(BodySource):
    """One person per image: the body teacher on the whole image; the person box follows from the labels."""

    description = "body teacher"
    needs_teacher = True

    def image_ids_to_label(self, ds: PoseDataset) -> list[int]:
        """Every image (there are no annotations)."""
        return sorted(int(im["id"]) for im in ds.images)

    def task(self, ds: PoseDataset, image_id: int, path: str, persons: np.ndarray) -> ImageTask:
        """One person whose id is the image's; body and box still unknown."""
        return ImageTask(image_id, path, np.array([image_id]), np.zeros((1, 17, 3)), np.zeros((1, 4)), np.zeros(1))

    def body(self, image, task, teacher, code, rules) -> BodyPoints | None:
        height, width = image.shape[:2]
        raw = teacher.predict(image, whole_image_box(width, height)).points
        body, conf, src = body_from_teacher(raw, code, (height, width), rules)
        if (body[0, :, 2] > 0).sum() < 2:
            return None  # no person found: nothing to label
        return body, conf, src

    def person_boxes(self, task, labels, width, height) -> tuple[np.ndarray, np.ndarray]:
        bboxes = person_box(labels.keypoints[0], PERSON_BOX_MARGIN, width, height)[None]
        return bboxes, bboxes[:, 2] * bboxes[:, 3]


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
