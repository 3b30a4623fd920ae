"""Foot teacher: MediaPipe Pose on the person crop -> big toe, small toe, heel per foot.

BlazePose has a heel and a ``foot_index`` (the tip of the foot) per side: they give the
COCO-WholeBody heel and big toe. Nothing offline predicts the small toe; it is
**estimated** (``small_toe=True``, default) from BlazePose's 3D world points: the foot's
heel -> toe vector, the person's lateral direction from the hips, standard foot
proportions (the fifth toe tip ``SMALL_TOE_BACK`` foot lengths behind the big toe and
``SMALL_TOE_SIDE`` foot lengths lateral), projected to the image with a weak-perspective
camera fitted to the 33 points. Its confidence is ``SMALL_TOE_CONF_FACTOR`` x that of the
foot. ``small_toe=False`` leaves it unlabelled (confidence 0, x = y = 0).

Sanity check against the given body: a foot is dropped (all zeros) when BlazePose's ankle
lies farther than ``ANKLE_TOLERANCE`` shin lengths from the body's ankle (the fit found
another leg or another person), and each point must lie within ``FOOT_REACH`` shin lengths
of the body's ankle.
"""

from __future__ import annotations

import numpy as np

from labeltool.layouts import L_ANKLE, L_KNEE, R_ANKLE, R_KNEE
from labeltool.proposals import person_boxes_from_body
from labeltool.teachers.base import (
    CROP_FEET,
    Backend,
    BuildOptions,
    Closable,
    ModelTeacher,
    PartPrediction,
    TeacherSpec,
)
from labeltool.teachers.crops import check_body, check_boxes, check_image
from labeltool.teachers.pose import (
    BP_LEFT_ANKLE,
    BP_LEFT_FOOT_INDEX,
    BP_LEFT_HEEL,
    BP_LEFT_HIP,
    BP_LEFT_KNEE,
    BP_RIGHT_ANKLE,
    BP_RIGHT_FOOT_INDEX,
    BP_RIGHT_HEEL,
    BP_RIGHT_HIP,
    BP_RIGHT_KNEE,
    PoseCropModel,
    PoseFit,
    describe_pose,
)

NUM_FOOT = 6  # L big toe, L small toe, L heel, R big toe, R small toe, R heel
SIDE_SLICES = {"left": slice(0, 3), "right": slice(3, 6)}
ANKLE_TOLERANCE = 0.35  # BlazePose ankle vs body ankle, in shin lengths
FOOT_REACH = 1.0  # foot point to body ankle, in shin lengths
SMALL_TOE_BACK = 0.18  # fifth toe tip behind the big toe tip, in foot lengths
SMALL_TOE_SIDE = 0.3  # fifth toe tip lateral of the big toe tip, in foot lengths
SMALL_TOE_CONF_FACTOR = 0.5

# Per side: BlazePose heel, foot_index, ankle, knee; COCO-17 ankle, knee.
_BP = {
    "left": (BP_LEFT_HEEL, BP_LEFT_FOOT_INDEX, BP_LEFT_ANKLE, BP_LEFT_KNEE),
    "right": (BP_RIGHT_HEEL, BP_RIGHT_FOOT_INDEX, BP_RIGHT_ANKLE, BP_RIGHT_KNEE),
}
_COCO = {"left": (L_ANKLE, L_KNEE), "right": (R_ANKLE, R_KNEE)}


def weak_perspective(world: np.ndarray, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Least-squares 2x4 affine camera mapping world points (N, 3) to image points (N, 2)."""
    a = np.concatenate([world, np.ones((len(world), 1))], axis=1) * weights[:, None]
    b = points * weights[:, None]
    cam, *_ = np.linalg.lstsq(a, b, rcond=None)
    return cam.T  # (2, 4)


def small_toe_world(heel: np.ndarray, toe: np.ndarray, lateral: np.ndarray) -> np.ndarray | None:
    """Fifth-toe tip in world coordinates from heel, big-toe tip and the lateral direction."""
    foot = toe - heel
    length = np.linalg.norm(foot)
    if length < 1e-6:
        return None
    side = lateral - foot * (lateral @ foot) / length**2
    norm = np.linalg.norm(side)
    if norm < 1e-6:
        return None
    return toe - SMALL_TOE_BACK * foot + SMALL_TOE_SIDE * length * side / norm


def foot_from_fit(fit: PoseFit, side: str, small_toe: bool = True) -> np.ndarray:
    """(3, 3) big toe, small toe, heel of one side from a BlazePose fit (no body check)."""
    heel, toe, _, _ = _BP[side]
    out = np.zeros((3, 3))
    conf = fit.visibility[[toe, heel]]
    out[0, :2], out[0, 2] = fit.points[toe], conf[0]
    out[2, :2], out[2, 2] = fit.points[heel], conf[1]
    if small_toe and fit.world.any():
        # The person's lateral direction for this foot: from the other hip towards this one.
        lateral = fit.world[BP_LEFT_HIP] - fit.world[BP_RIGHT_HIP]
        if side == "right":
            lateral = -lateral
        est = small_toe_world(fit.world[heel], fit.world[toe], lateral)
        if est is not None:
            cam = weak_perspective(fit.world, fit.points, np.maximum(fit.visibility, 0.05))
            out[1, :2] = cam @ np.append(est, 1.0)
            out[1, 2] = SMALL_TOE_CONF_FACTOR * min(conf)
    out[:, 2] = np.where(out[:, 2] > 0, np.clip(out[:, 2], 1e-3, 1.0), 0.0)
    out[out[:, 2] == 0, :2] = 0.0
    return out


def check_against_body(foot: np.ndarray, fit: PoseFit, body: np.ndarray, side: str) -> np.ndarray:
    """Zero the foot (3, 3) when BlazePose's ankle or a foot point is implausibly far from the body's ankle."""
    ankle, knee = _COCO[side]
    if body[ankle, 2] <= 0:
        return foot
    bp_ankle, bp_knee = _BP[side][2], _BP[side][3]
    if body[knee, 2] > 0:
        shin = np.linalg.norm(body[knee, :2] - body[ankle, :2])
    else:
        shin = np.linalg.norm(fit.points[bp_knee] - fit.points[bp_ankle])
    if not shin > 1e-6:
        return foot
    out = foot.copy()
    if np.linalg.norm(fit.points[bp_ankle] - body[ankle, :2]) > ANKLE_TOLERANCE * shin:
        return np.zeros_like(foot)
    far = np.linalg.norm(out[:, :2] - body[ankle, :2], axis=1) > FOOT_REACH * shin
    out[far] = 0.0
    return out


class FootModel(Closable):
    """MediaPipe Pose heel / foot_index on person crops -> the 6 COCO-WholeBody foot points.

    ``predict(image, boxes, side=None, body=None)``:

    - ``side=None``: boxes (M, 4) are person boxes; returns (M, 6, 3) in COCO-WholeBody
      order (L big toe, L small toe, L heel, R big toe, R small toe, R heel).
    - ``side='left'|'right'``: boxes are that side's foot boxes (e.g.
      :func:`labeltool.proposals.foot_boxes_from_body`); the person crop is the box around
      ``body`` joined with the foot box; returns (M, 3, 3) for that foot. Pose runs once
      per call, so ``side=None`` (both feet from one run) is twice as fast.

    ``body`` (M, 17, 3), when given, sanity-checks each foot against the body's ankle.
    """

    def __init__(self, small_toe: bool = True):
        self.small_toe = small_toe
        self.model = PoseCropModel()

    def close(self) -> None:
        """Free the model."""
        if self.model is not None:
            self.model.close()
            self.model = None


    def predict(
        self, image: np.ndarray, boxes: np.ndarray, side: str | None = None, body: np.ndarray | None = None
    ) -> np.ndarray:
        image = check_image(image)
        boxes = check_boxes(boxes)
        m = len(boxes)
        body = check_body(body, m)
        if side is not None and side not in SIDE_SLICES:
            raise ValueError(f"side must be 'left', 'right' or None, got {side!r}")
        person = boxes
        if side is not None:
            if body is None:
                raise ValueError("predict(side=...) takes foot boxes and needs the body to find the person crop")
            around, ok = person_boxes_from_body(body)
            joined = np.concatenate([np.minimum(around[:, :2], boxes[:, :2]), np.maximum(around[:, 2:], boxes[:, 2:])], 1)
            person = np.where(ok[:, None], joined, boxes)
        sides = ("left", "right") if side is None else (side,)
        out = np.zeros((m, 3 * len(sides), 3))
        for i in range(m):
            fit = self.model.fit(image, person[i])
            if fit is None:
                continue
            for j, s in enumerate(sides):
                foot = foot_from_fit(fit, s, self.small_toe)
                if body is not None:
                    foot = check_against_body(foot, fit, body[i], s)
                out[i, 3 * j : 3 * j + 3] = foot
        return out


class FootTeacher(ModelTeacher):
    """The 6 foot points (both feet) on person boxes; points 1 and 4 (small toes) are estimated."""

    fills = ("foot",)
    crop = CROP_FEET
    point_sources = {"small_toe_estimated": (1, 4)}

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self.model.predict(image, boxes, None, body))


def describe_foot(spec: TeacherSpec) -> dict:
    return describe_pose("MediaPipe Pose (model_complexity=1) heel / foot_index on the person crop, "
                         "small toe from its 3D pose")


def _build(spec: TeacherSpec, options: BuildOptions) -> FootTeacher:
    return FootTeacher(spec, FootModel(small_toe=options.small_toe), describe_foot)


BACKENDS = (Backend("foot", "mediapipe", FootTeacher, _build, describe_foot),)
