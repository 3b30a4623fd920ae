"""MediaPipe Pose (BlazePose, ``model_complexity=1``: the only one bundled) on person crops.

Shared by the body teacher (COCO-17 from the 33 BlazePose points) and the foot teacher
(heel and foot_index). ``model_complexity`` 0 and 2 would download their models: not offered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltool.digests import package_file_records
from labeltool.teachers.crops import box_center_side, crop_matrix, import_mediapipe, to_image, warp
from labeltool.versions import PACKAGES, package_version

NUM_BLAZEPOSE = 33
# BlazePose index of each COCO-17 point (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28], dtype=np.int64)
BP_LEFT_HIP, BP_RIGHT_HIP = 23, 24
BP_LEFT_KNEE, BP_RIGHT_KNEE = 25, 26
BP_LEFT_ANKLE, BP_RIGHT_ANKLE = 27, 28
BP_LEFT_HEEL, BP_RIGHT_HEEL = 29, 30
BP_LEFT_FOOT_INDEX, BP_RIGHT_FOOT_INDEX = 31, 32

PERSON_CROP_SCALE = 1.25  # crop side / larger side of the person box
PERSON_CROP_SIZE = 384


@dataclass
class PoseFit:
    """One person's BlazePose fit in image coordinates."""

    points: np.ndarray  # (33, 2) image pixels
    visibility: np.ndarray  # (33,) in [0, 1]
    world: np.ndarray  # (33, 3) metres, hip-centred (BlazePose world landmarks)


class PoseCropModel:
    """MediaPipe Pose built once; :meth:`fit` runs it on the square crop around a person box."""

    def __init__(self, crop_scale: float = PERSON_CROP_SCALE, crop_size: int = PERSON_CROP_SIZE):
        mp = import_mediapipe()
        self.crop_scale = crop_scale
        self.crop_size = crop_size
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=True, model_complexity=1, enable_segmentation=False, min_detection_confidence=0.3
        )

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def fit(self, image: np.ndarray, box: np.ndarray) -> PoseFit | None:
        """The person in ``box`` ([x0, y0, x1, y1]), or None when MediaPipe finds nobody."""
        center, side = box_center_side(box)
        if not side[0] > 1:
            return None
        mat = crop_matrix(center[0], side[0] * self.crop_scale, self.crop_size)
        result = self._pose.process(warp(image, mat, self.crop_size))
        if result.pose_landmarks is None:
            return None
        lms = result.pose_landmarks.landmark
        crop_pts = np.array([(p.x * self.crop_size, p.y * self.crop_size) for p in lms], dtype=np.float64)
        vis = np.clip(np.array([p.visibility for p in lms], dtype=np.float64), 0.0, 1.0)
        world = np.zeros((NUM_BLAZEPOSE, 3))
        if result.pose_world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float64)
        return PoseFit(points=to_image(crop_pts, mat), visibility=vis, world=world)


POSE_FILES = ("modules/pose_detection/pose_detection.tflite", "modules/pose_landmark/pose_landmark_full.tflite")


def describe_pose(model: str) -> dict:
    """The description of a teacher built on MediaPipe Pose (foot, body): its version and bundled model files."""
    files = package_file_records("mediapipe", *POSE_FILES)
    return {"model": model, "version": package_version(*PACKAGES["mediapipe"]), "files": files}
