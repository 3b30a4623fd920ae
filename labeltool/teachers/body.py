"""Body teacher: MediaPipe Pose on person boxes -> COCO-17 keypoints (for images without annotations).

:class:`BodyModel` is the model (array ``predict``); :class:`BodyTeacher` puts it behind the
:class:`~labeltool.teachers.base.Teacher` protocol, registered as ``body=mediapipe`` (:data:`BACKENDS`).
"""

from __future__ import annotations

import numpy as np

from labeltool.teachers.base import (
    CROP_PERSON,
    Backend,
    BuildOptions,
    Closable,
    ModelTeacher,
    PartPrediction,
    TeacherSpec,
)
from labeltool.teachers.crops import check_boxes, check_image
from labeltool.teachers.pose import BLAZEPOSE_TO_COCO17, PoseCropModel, describe_pose

NUM_BODY = 17


class BodyModel(Closable):
    """MediaPipe Pose (model_complexity=1) per person box -> (M, 17, 3) COCO-17 points.

    ``predict(image, boxes)``: boxes (M, 4) [x0, y0, x1, y1] person boxes (a detector's, or
    the whole image for a single-person photo). Confidence is BlazePose's per-point
    visibility; a box where MediaPipe finds nobody gets all zeros.
    """

    def __init__(self):
        self.model = PoseCropModel()

    def close(self) -> None:
        """Free the model."""
        if self.model is not None:
            self.model.close()
            self.model = None


    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        image = check_image(image)
        boxes = check_boxes(boxes)
        out = np.zeros((len(boxes), NUM_BODY, 3))
        for i, box in enumerate(boxes):
            fit = self.model.fit(image, box)
            if fit is None:
                continue
            out[i, :, :2] = fit.points[BLAZEPOSE_TO_COCO17]
            out[i, :, 2] = np.clip(fit.visibility[BLAZEPOSE_TO_COCO17], 1e-3, 1.0)
        return out


class BodyTeacher(ModelTeacher):
    """COCO-17 body points on person boxes (for inputs without body keypoints)."""

    fills = ("body",)
    crop = CROP_PERSON

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self.model.predict(image, boxes))


def describe_body(spec: TeacherSpec) -> dict:
    return describe_pose("MediaPipe Pose (model_complexity=1) -> COCO-17")


def _build(spec: TeacherSpec, options: BuildOptions) -> BodyTeacher:
    return BodyTeacher(spec, BodyModel(), describe_body)


BACKENDS = (Backend("body", "mediapipe", BodyTeacher, _build, describe_body),)
