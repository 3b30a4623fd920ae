"""Hand teacher: MediaPipe's hand landmark model on hand crops, made robust by multi-view bootstrapping.

The model is ``hand_landmark_full.tflite`` from the mediapipe wheel, run directly with
``ai-edge-litert`` on crops we choose (MediaPipe's own palm detector misses most hands
smaller than ~40 px, i.e. most COCO hands). It returns 21 points, a hand-presence score and
a handedness score for each 224 x 224 crop, and is batched over the views of one hand.

In the spirit of Simon et al. (CVPR 2017, "Hand keypoint detection in single images using
multiview bootstrapping"), each hand is seen through several synthetic views of the same
image region and the views vote:

1. find the hand.
   - With the forearm (body elbow and wrist given), as MediaPipe Holistic does: its hand
     re-crop model (``hand_recrop.tflite``, in the wheel) sees a loose region
     (``RECROP_SCALE`` x the box, forearm up) and returns the hand ROI (centre, size,
     rotation); the landmark model sees that ROI through ``RECROP_VIEWS``. The hand is found
     when ``RECROP_MIN_SUPPORT`` good views agree. One re-crop run + 5 landmark runs.
   - Without the forearm: a rotation search. The box is cropped at several rotations (the
     full circle), at the box scale and, unless ``EARLY_STOP_SUPPORT`` views already agree,
     at a wider scale.
   Views the model scores below ``PRESENCE_MIN``, or whose wrist is far from the body's
   wrist, are dropped. The view agreeing (mean point distance < ``AGREE_RADIUS`` x hand
   size) with the largest presence-weighted set of views wins; its supporters are the
   inliers. When the body's side is given, views whose handedness matches it are preferred
   (a small hand's mirror-image fit has the same outline); if none matches, all compete.
2. refine: a crop aligned like MediaPipe's own tracking ROI (wrist -> middle-finger base
   pointing up, side ``REFINE_SCALE`` x the hand's extent) is built from the inliers'
   mean, and seen through ``REFINE_VIEWS`` (small rotations, a zoom, a mirror); refine views
   that do not agree with the found hand are dropped.
3. consensus per keypoint over the refine views: median, outliers beyond
   ``INLIER_RADIUS`` x hand size dropped, mean of the rest; confidence = (inlier views /
   views) x (mean presence score of the inliers).

Handedness: the model's handedness output is P(right hand) for an unmirrored image (checked
on the Panoptic _l / _r crops); a mirrored view votes 1 - P. ``HandResult.right_prob`` is
the presence-weighted vote; a box whose given body side is contradicted (the vote past
0.5 by ``CONTRADICTION_MARGIN`` on the wrong side) is flagged in ``HandResult.contradicts``
and keeps its points: the distill step decides. Nothing is ever swapped silently.

:class:`HandModel` is the model (``predict_hands`` returns a :class:`HandResult`);
:class:`HandTeacher` puts it behind the :class:`~labeltool.teachers.base.Teacher` protocol,
registered as ``hand=mediapipe`` (:data:`BACKENDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from labeltool.digests import package_file_records
from labeltool.errors import UserError
from labeltool.layouts import ELBOW
from labeltool.layouts import WRIST as WRIST_JOINT
from labeltool.teachers.base import (
    CROP_HAND,
    HANDEDNESS_CONTRADICTS,
    Backend,
    BuildOptions,
    Closable,
    ModelTeacher,
    PartPrediction,
    TeacherSpec,
)
from labeltool.teachers.crops import (
    angle_to_point_up,
    box_center_side,
    check_body,
    check_boxes,
    check_image,
    crop_matrix,
    import_mediapipe,
    to_crop,
    to_image,
    warp,
)
from labeltool.versions import PACKAGES, package_version

NUM_HAND = 21
SIDES = ("left", "right")
INPUT_SIZE = 224
RECROP_INPUT_SIZE = 256
WRIST, MIDDLE_MCP = 0, 9


@dataclass(frozen=True)
class View:
    """One synthetic view: extra rotation (degrees), crop scale factor, mirror."""

    angle: float = 0.0
    scale: float = 1.0
    mirror: bool = False


# Search rotations (degrees) around the forearm direction when the body is given, else the full circle.
SEARCH_ANGLES_BODY = (0.0, 45.0, -45.0, 90.0, -90.0)
SEARCH_ANGLES_FREE = (0.0, 45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0)
SEARCH_SCALES = (1.0, 1.4)  # tried in turn; the next scale only when the views so far do not agree
EARLY_STOP_SUPPORT = 3  # agreeing good views that end the search
REFINE_VIEWS = (
    View(0, 1.0, False),
    View(0, 1.0, True),
    View(15, 1.0, False),
    View(-15, 1.0, False),
    View(0, 1.2, False),
)
# Re-crop (MediaPipe Holistic): a loose region around the proposal -> the hand ROI, then views of that ROI.
RECROP_SCALE = 2.0  # re-crop input side / proposal box side
RECROP_SHIFT = 0.1  # MediaPipe moves the re-crop ROI this share of its side towards the fingers
RECROP_VIEWS = (
    View(0, 1.0, False),
    View(0, 1.0, True),
    View(20, 1.0, False),
    View(-20, 1.0, False),
    View(0, 1.3, False),
)
RECROP_MIN_SUPPORT = 2  # agreeing good views around the re-crop ROI that accept it
CROP_SCALE = 1.0  # search crop side / hand box side (proposal boxes already hold the hand with margin)
REFINE_SCALE = 1.6  # refine crop side / hand extent (wrist-up frame)
PRESENCE_MIN = 0.5  # a view counts when the model's hand presence is at least this
AGREE_RADIUS = 0.2  # search: views agree when their mean point distance is below this x hand size
WRIST_RADIUS = 0.6  # with a body: a view's wrist must lie this close (x hand size) to the body's wrist
INLIER_RADIUS = 0.15  # consensus: per-keypoint inlier radius, x hand size
CONTRADICTION_MARGIN = 0.3  # flag when the handedness vote is this far past 0.5 on the wrong side

# COCO-17 elbow / wrist indices per side.
_ARM = {side: (ELBOW[side], WRIST_JOINT[side]) for side in SIDES}


@dataclass
class HandResult:
    """Hand teacher output for M boxes."""

    keypoints: np.ndarray  # (M, 21, 3) x, y, confidence (0 = no prediction)
    right_prob: np.ndarray  # (M,) presence-weighted vote for "the person's right hand"; nan: no prediction
    contradicts: np.ndarray  # (M,) bool: the model's handedness contradicts the given side
    views_found: np.ndarray  # (M,) refine views in which the model saw a hand


def _bundled_model(relative: str, what: str) -> Path:
    import_mediapipe()
    path = Path(str(resources.files("mediapipe").joinpath(relative)))
    if not path.is_file():
        raise UserError(f"{path}: MediaPipe's {what} model is missing from the mediapipe package")
    return path


HAND_FILE = "modules/hand_landmark/hand_landmark_full.tflite"
RECROP_FILE = "modules/holistic_landmark/hand_recrop.tflite"


def hand_model_path() -> Path:
    """``hand_landmark_full.tflite`` inside the installed mediapipe wheel."""
    return _bundled_model(HAND_FILE, "hand landmark")


def recrop_model_path() -> Path:
    """``hand_recrop.tflite`` (MediaPipe Holistic's hand ROI model) inside the installed mediapipe wheel."""
    return _bundled_model(RECROP_FILE, "hand re-crop")


def _interpreter(path: Path, num_threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise UserError("the hand teacher needs ai-edge-litert (pip install 'ai-edge-litert>=1.2')") from None
    return Interpreter(model_path=str(path), num_threads=num_threads)


class CropNetwork:
    """A bundled .tflite network on square RGB uint8 crops (B, S, S, 3), fed as float 0..1.

    The interpreter's batch follows the number of crops (re-allocated when it changes).
    """

    def __init__(self, path: Path, input_size: int, num_threads: int | None = None):
        self.input_size = input_size
        self._interpreter = _interpreter(path, num_threads)
        self._batch = 0
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]

    def outputs(self, crops: np.ndarray) -> list[np.ndarray]:
        """The network's output tensors for a batch of crops."""
        s = self.input_size
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
            raise ValueError(f"crops must be (B, {s}, {s}, 3), got {crops.shape}")
        b = len(crops)
        if b != self._batch:
            self._interpreter.resize_tensor_input(self._input, [b, s, s, 3])
            self._interpreter.allocate_tensors()
            self._batch = b
        self._interpreter.set_tensor(self._input, crops.astype(np.float32) / 255.0)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(i) for i in self._outputs]

    def close(self) -> None:
        self._interpreter = None


class HandRecropModel(CropNetwork):
    """MediaPipe Holistic's hand re-crop network run directly: RGB crops (B, 256, 256, 3) uint8 of a
    loose region around a hand in, two points (B, 2, 2) in crop pixels out: the hand ROI's centre and
    a point at half its side from the centre, towards the wrist."""

    def __init__(self, num_threads: int | None = None):
        super().__init__(recrop_model_path(), RECROP_INPUT_SIZE, num_threads)

    def run(self, crops: np.ndarray) -> np.ndarray:
        out = self.outputs(crops)
        return out[0].reshape(len(crops), 2, 2).astype(np.float64)


class HandLandmarkModel(CropNetwork):
    """MediaPipe's hand landmark network run directly: RGB crops (B, 224, 224, 3) uint8 in,
    points (B, 21, 2) in crop pixels, presence (B,) and P(right hand) (B,) out."""

    def __init__(self, num_threads: int | None = None):
        super().__init__(hand_model_path(), INPUT_SIZE, num_threads)

    def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.outputs(crops)
        b = len(crops)
        points = out[0].reshape(b, NUM_HAND, 3)[:, :, :2].astype(np.float64)
        return points, out[1].reshape(b).astype(np.float64), out[2].reshape(b).astype(np.float64)


def consensus(
    points: np.ndarray, scores: np.ndarray, num_views: int, radius: float = INLIER_RADIUS
) -> np.ndarray:
    """Robust per-keypoint fusion of V view predictions (V, K, 2) with per-view scores (V,).

    Median per keypoint, views beyond ``radius`` x hand size (the larger side of the
    median points' extent) dropped, mean of the rest. Returns (K, 3): x, y, confidence =
    (inliers / num_views) x mean inlier score.
    """
    points = np.asarray(points, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    out = np.zeros((points.shape[1], 3))
    if len(points) == 0:
        return out
    median = np.median(points, axis=0)
    size = max(float(np.ptp(median, axis=0).max()), 1e-6)
    inlier = np.linalg.norm(points - median[None], axis=2) <= radius * size  # (V, K)
    # The view nearest the median always counts, so every keypoint has an inlier.
    nearest = np.argmin(np.linalg.norm(points - median[None], axis=2), axis=0)
    inlier[nearest, np.arange(points.shape[1])] = True
    w = inlier.astype(np.float64)
    n_in = w.sum(axis=0)
    out[:, :2] = (points * w[:, :, None]).sum(axis=0) / n_in[:, None]
    out[:, 2] = (n_in / num_views) * (scores[:, None] * w).sum(axis=0) / n_in
    return out


def best_supported_view(points: np.ndarray, scores: np.ndarray, radius: float = AGREE_RADIUS) -> np.ndarray:
    """Inlier mask (V,) of the view that agrees with the largest score-weighted set of views.

    Two views agree when their mean point distance is below ``radius`` x the hand size.
    """
    points = np.asarray(points, dtype=np.float64)
    sizes = np.ptp(points, axis=1).max(axis=1)  # (V,)
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=3).mean(axis=2)  # (V, V)
    agree = dist <= radius * np.maximum(sizes[:, None], 1e-6)
    support = (agree * scores[None, :]).sum(axis=1)
    return agree[int(np.argmax(support))]


def roi_from_recrop(points: np.ndarray, shift: float = RECROP_SHIFT) -> tuple[np.ndarray, float, float]:
    """Hand ROI (centre, side, angle) from the re-crop model's two points in image pixels, as MediaPipe does:
    side = 2 x their distance, the second point (wrist side) straight down, moved ``shift`` x side up."""
    center, toward_wrist = points[0], points[1]
    side = 2.0 * float(np.linalg.norm(toward_wrist - center))
    angle = angle_to_point_up(center - toward_wrist)
    up = to_image(np.array([0.5, 0.5 - shift]), crop_matrix(center, side, 1, angle))
    return up, side, angle


def roi_from_points(points: np.ndarray, scale: float = REFINE_SCALE) -> tuple[np.ndarray, float, float]:
    """MediaPipe-style hand crop from 21 points: (centre, side, angle) with wrist -> middle base up."""
    angle = angle_to_point_up(points[MIDDLE_MCP] - points[WRIST])
    rotated = to_crop(points, crop_matrix(points.mean(axis=0), 1.0, 1, angle))
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    center_rot = (lo + hi) / 2.0
    side = float(max(hi - lo)) * scale
    center = to_image(center_rot, crop_matrix(points.mean(axis=0), 1.0, 1, angle))
    return center, side, angle


class HandModel(Closable):
    """MediaPipe's hand landmark model on hand crops, with multi-view search, refinement and consensus.

    ``predict(image, boxes, sides=None, body=None)`` -> (M, 21, 3); ``predict_hands`` returns the
    full :class:`HandResult` with handedness. ``sides`` is 'left' / 'right' (one for all) or a
    sequence of M of them (None for unknown). ``body`` (M, 17, 3) COCO-17 keypoints, when
    given, turn the re-crop region forearm up (elbow -> wrist up); ``recrop=False`` uses the
    rotation search around the forearm direction instead (the teacher before the re-crop model).
    ``recrop=False, refine=False, search=False`` gives the plain single-view baseline (one crop of the box).
    """

    def __init__(
        self,
        search: bool = True,
        refine: bool = True,
        recrop: bool = True,
        refine_views: tuple[View, ...] = REFINE_VIEWS,
        crop_scale: float = CROP_SCALE,
        num_threads: int | None = None,
    ):
        self.model = HandLandmarkModel(num_threads=num_threads)
        self.recrop_model = HandRecropModel(num_threads=num_threads) if recrop else None
        self.search = search
        self.refine = refine
        self.refine_views = tuple(refine_views)
        self.crop_scale = crop_scale

    def close(self) -> None:
        """Free the model."""
        if self.model is not None:
            self.model.close()
            self.model = None
        if self.recrop_model is not None:
            self.recrop_model.close()
            self.recrop_model = None


    def run_views(
        self, image: np.ndarray, center: np.ndarray, side: float, angle: float, views: tuple[View, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict every view of one region: points (V, 21, 2) in image pixels, presence (V,), P(right) (V,)."""
        mats = [
            crop_matrix(center, side * v.scale, INPUT_SIZE, angle + np.deg2rad(v.angle), v.mirror) for v in views
        ]
        crops = np.stack([warp(image, m, INPUT_SIZE) for m in mats])
        pts, presence, right = self.model.run(crops)
        pts = np.stack([to_image(p, m) for p, m in zip(pts, mats)])
        mirrored = np.array([v.mirror for v in views])
        right = np.where(mirrored, 1.0 - right, right)
        return pts, presence, right

    def predict(self, image: np.ndarray, boxes: np.ndarray, sides=None, body: np.ndarray | None = None) -> np.ndarray:
        return self.predict_hands(image, boxes, sides, body).keypoints

    def predict_hands(self, image: np.ndarray, boxes: np.ndarray, sides=None, body: np.ndarray | None = None) -> HandResult:
        image = check_image(image)
        boxes = check_boxes(boxes)
        m = len(boxes)
        sides = _side_list(sides, m)
        body = check_body(body, m)
        base_angles, has_arm = _forearm_angles(body, sides, m)
        wrists = _body_wrists(body, sides, m)
        centers, box_sides = box_center_side(boxes)
        out = HandResult(
            keypoints=np.zeros((m, NUM_HAND, 3)),
            right_prob=np.full(m, np.nan),
            contradicts=np.zeros(m, dtype=bool),
            views_found=np.zeros(m, dtype=np.int64),
        )
        for i in range(m):
            if not box_sides[i] > 1:
                continue
            found = self._predict_one(
                image, centers[i], box_sides[i] * self.crop_scale, base_angles[i], has_arm[i], wrists[i], sides[i]
            )
            if found is None:
                continue
            out.keypoints[i], out.right_prob[i], out.views_found[i] = found
            if sides[i] == "right":
                out.contradicts[i] = out.right_prob[i] < 0.5 - CONTRADICTION_MARGIN
            elif sides[i] == "left":
                out.contradicts[i] = out.right_prob[i] > 0.5 + CONTRADICTION_MARGIN
        return out

    def _good_views(self, pts: np.ndarray, presence: np.ndarray, wrist: np.ndarray | None) -> np.ndarray:
        """Views (V,) the model scores at least ``PRESENCE_MIN`` whose wrist (with a body) hangs on the body's."""
        good = presence >= PRESENCE_MIN
        if wrist is not None:
            sizes = np.ptp(pts, axis=1).max(axis=1)
            good &= np.linalg.norm(pts[:, WRIST] - wrist, axis=1) <= WRIST_RADIUS * sizes
        return good

    def _recrop_search(self, image, center, side, base_angle, wrist, hand_side=None):
        """MediaPipe Holistic's way: the re-crop model turns a loose, forearm-up region around the box
        into the hand ROI, seen through ``RECROP_VIEWS``.

        Accepted when at least ``RECROP_MIN_SUPPORT`` good views agree; returns the inlier
        views' points, presence, P(right) and the number of views run, or None.
        """
        mat = crop_matrix(center, side * RECROP_SCALE, RECROP_INPUT_SIZE, base_angle)
        two = self.recrop_model.run(warp(image, mat, RECROP_INPUT_SIZE)[None])[0]
        roi_center, roi_side, roi_angle = roi_from_recrop(to_image(two, mat))
        if not roi_side > 1:
            return None
        pts, presence, right = self.run_views(image, roi_center, roi_side, roi_angle, RECROP_VIEWS)
        good = self._good_views(pts, presence, wrist)
        if good.sum() < RECROP_MIN_SUPPORT:
            return None
        found = _agreeing_views(pts[good], presence[good], right[good], hand_side)
        if len(found[0]) < RECROP_MIN_SUPPORT:
            return None
        return (*found, len(RECROP_VIEWS))

    def _search(self, image, center, side, base_angle, has_arm, wrist, hand_side=None):
        """Search views, scale by scale: stop once ``EARLY_STOP_SUPPORT`` good views agree.

        Returns the inlier views' points, presence, P(right) and the number of views run.
        """
        angles = SEARCH_ANGLES_BODY if has_arm else SEARCH_ANGLES_FREE
        scales = SEARCH_SCALES if self.search else (1.0,)
        if not self.search:
            angles = (0.0,)
        kept_pts, kept_presence, kept_right = [], [], []
        num_views = 0
        for scale in scales:
            views = tuple(View(a, scale) for a in angles)
            pts, presence, right = self.run_views(image, center, side, base_angle, views)
            num_views += len(views)
            good = self._good_views(pts, presence, wrist)
            kept_pts += list(pts[good])
            kept_presence += list(presence[good])
            kept_right += list(right[good])
            if kept_pts:
                found = _agreeing_views(np.stack(kept_pts), np.array(kept_presence), np.array(kept_right), hand_side)
                if len(found[0]) >= EARLY_STOP_SUPPORT:
                    break
        if not kept_pts:
            return None
        return (*found, num_views)

    def _predict_one(self, image, center, side, base_angle, has_arm, wrist, hand_side=None):
        if self.recrop_model is not None and has_arm:
            found = self._recrop_search(image, center, side, base_angle, wrist, hand_side)
        else:  # no forearm (or re-crop off): the rotation search
            found = self._search(image, center, side, base_angle, has_arm, wrist, hand_side)
        if found is None:
            return None
        pts, presence, right, num_views = found
        if self.refine:
            roi_center, roi_side, roi_angle = roi_from_points(pts.mean(axis=0))
            r_pts, r_presence, r_right = self.run_views(image, roi_center, roi_side, roi_angle, self.refine_views)
            good = r_presence >= PRESENCE_MIN
            # A refine view must stay on the hand it refines (tiny hands drift to a mirror-image fit).
            found_pts = pts.mean(axis=0)
            size = max(float(np.ptp(found_pts, axis=0).max()), 1e-6)
            good &= np.linalg.norm(r_pts - found_pts[None], axis=2).mean(axis=1) <= AGREE_RADIUS * size
            if good.any():
                pts, presence, right = r_pts[good], r_presence[good], r_right[good]
                num_views = len(self.refine_views)
        keypoints = consensus(pts, presence, num_views)
        right_prob = float(np.average(right, weights=presence))
        return keypoints, right_prob, len(pts)


def _agreeing_views(
    pts: np.ndarray, presence: np.ndarray, right: np.ndarray, hand_side: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The largest presence-weighted set of agreeing views (see :func:`best_supported_view`).

    With a known side, views whose handedness vote matches it are preferred: a small hand's
    mirror-image fit has the same outline, and the body's side resolves it. When no view
    matches, all views compete (the result is then flagged as contradicting the side).
    """
    if hand_side is not None:
        match = right >= 0.5 if hand_side == "right" else right <= 0.5
        if match.any():
            pts, presence, right = pts[match], presence[match], right[match]
    inliers = best_supported_view(pts, presence)
    return pts[inliers], presence[inliers], right[inliers]


def _side_list(sides, m: int) -> list[str | None]:
    if sides is None or isinstance(sides, str):
        sides = [sides] * m
    sides = list(sides)
    if len(sides) != m:
        raise ValueError(f"sides has {len(sides)} entries for {m} boxes")
    for s in sides:
        if s is not None and s not in SIDES:
            raise ValueError(f"side must be 'left', 'right' or None, got {s!r}")
    return sides


def _body_wrists(body: np.ndarray | None, sides: list[str | None], m: int) -> list[np.ndarray | None]:
    """Per box: the body's wrist (x, y) on the box's side, or None."""
    if body is None:
        return [None] * m
    out: list[np.ndarray | None] = []
    for i, side in enumerate(sides):
        w = _ARM[side][1] if side is not None else None
        out.append(body[i, w, :2].copy() if w is not None and body[i, w, 2] > 0 else None)
    return out


def _forearm_angles(body: np.ndarray | None, sides: list[str | None], m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per box: the crop angle turning elbow -> wrist up, and whether the arm was there."""
    angles = np.zeros(m)
    has_arm = np.zeros(m, dtype=bool)
    if body is None:
        return angles, has_arm
    for i, side in enumerate(sides):
        if side is None:
            continue
        elbow, wrist = _ARM[side]
        if body[i, elbow, 2] > 0 and body[i, wrist, 2] > 0:
            d = body[i, wrist, :2] - body[i, elbow, :2]
            if np.linalg.norm(d) > 1e-6:
                angles[i] = angle_to_point_up(d)
                has_arm[i] = True
    return angles, has_arm


# ------------------------------------------------------------------ the hand teacher


class HandTeacher(ModelTeacher):
    """21 hand points on hand boxes of one side; flags a handedness that contradicts the side."""

    fills = ("lefthand", "righthand")
    crop = CROP_HAND

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        res = self.model.predict_hands(image, boxes, sides=sides, body=body)
        return PartPrediction(
            res.keypoints,
            flags={HANDEDNESS_CONTRADICTS: res.contradicts},
            values={"right_prob": res.right_prob},
        )


def describe_hand(spec: TeacherSpec) -> dict:
    model = "MediaPipe hand re-crop + hand landmark via ai-edge-litert, multi-view consensus"
    version = f"{package_version(*PACKAGES['mediapipe'])}, {package_version('ai-edge-litert')}"
    return {"model": model, "version": version, "files": package_file_records("mediapipe", RECROP_FILE, HAND_FILE)}


def _build(spec: TeacherSpec, options: BuildOptions) -> HandTeacher:
    return HandTeacher(spec, HandModel(num_threads=options.threads), describe_hand)


BACKENDS = (Backend("hand", "mediapipe", HandTeacher, _build, describe_hand),)
