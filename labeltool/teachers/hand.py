"""Hand teacher: MediaPipe's hand landmark model on hand crops, made robust by multi-view bootstrapping.

The model is ``hand_landmark_full.tflite`` from the mediapipe wheel, run directly with
``ai-edge-litert`` on crops we choose (MediaPipe's own palm detector misses most hands
smaller than ~40 px, i.e. most COCO hands). It returns 21 points, a hand-presence score and
a handedness score for each 224 x 224 crop, and is batched over the views of one hand.

In the spirit of Simon et al. (CVPR 2017, "Hand keypoint detection in single images using
multiview bootstrapping"), each hand is seen through several synthetic views of the same
image region and the views vote:

1. search: the box is cropped at several rotations (around the forearm direction when the
   body is given, the full circle otherwise), at the box scale and, unless
   ``EARLY_STOP_SUPPORT`` views already agree, at a wider scale; every view is mapped back
   to image coordinates. Views the model scores below ``PRESENCE_MIN``, or whose wrist is
   far from the body's wrist, are dropped. The view agreeing (mean point distance <
   ``AGREE_RADIUS`` x hand size) with the largest presence-weighted set of views wins; its
   supporters are the inliers.
2. refine: a crop aligned like MediaPipe's own tracking ROI (wrist -> middle-finger base
   pointing up, side ``REFINE_SCALE`` x the hand's extent) is built from the inliers'
   mean, and seen through ``REFINE_VIEWS`` (small rotations, a zoom, a mirror).
3. consensus per keypoint over the refine views: median, outliers beyond
   ``INLIER_RADIUS`` x hand size dropped, mean of the rest; confidence = (inlier views /
   views) x (mean presence score of the inliers).

Handedness: the model's handedness output is P(right hand) for an unmirrored image (checked
on the Panoptic _l / _r crops); a mirrored view votes 1 - P. ``HandResult.right_prob`` is
the presence-weighted vote; a box whose given body side is contradicted (the vote past
0.5 by ``CONTRADICTION_MARGIN`` on the wrong side) is flagged in ``HandResult.contradicts``
and keeps its points: the distill step decides. Nothing is ever swapped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.teachers.crops import (
    angle_to_point_up,
    box_center_side,
    check_boxes,
    check_image,
    crop_matrix,
    import_mediapipe,
    to_crop,
    to_image,
    warp,
)

NUM_HAND = 21
SIDES = ("left", "right")
INPUT_SIZE = 224
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
CROP_SCALE = 1.0  # search crop side / hand box side (proposal boxes already hold the hand with margin)
REFINE_SCALE = 1.6  # refine crop side / hand extent (wrist-up frame)
PRESENCE_MIN = 0.5  # a view counts when the model's hand presence is at least this
AGREE_RADIUS = 0.2  # search: views agree when their mean point distance is below this x hand size
WRIST_RADIUS = 0.6  # with a body: a view's wrist must lie this close (x hand size) to the body's wrist
INLIER_RADIUS = 0.15  # consensus: per-keypoint inlier radius, x hand size
CONTRADICTION_MARGIN = 0.3  # flag when the handedness vote is this far past 0.5 on the wrong side

# COCO-17 elbow / wrist indices per side.
_ARM = {"left": (7, 9), "right": (8, 10)}


@dataclass
class HandResult:
    """Hand teacher output for M boxes."""

    keypoints: np.ndarray  # (M, 21, 3) x, y, confidence (0 = no prediction)
    right_prob: np.ndarray  # (M,) presence-weighted vote for "the person's right hand"; nan: no prediction
    contradicts: np.ndarray  # (M,) bool: the model's handedness contradicts the given side
    views_found: np.ndarray  # (M,) refine views in which the model saw a hand


def hand_model_path() -> Path:
    """``hand_landmark_full.tflite`` inside the installed mediapipe wheel."""
    import_mediapipe()
    path = Path(str(resources.files("mediapipe").joinpath("modules/hand_landmark/hand_landmark_full.tflite")))
    if not path.is_file():
        raise UserError(f"{path}: MediaPipe's hand landmark model is missing from the mediapipe package")
    return path


class HandLandmarkModel:
    """MediaPipe's hand landmark network run directly: RGB crops (B, 224, 224, 3) uint8 in,
    points (B, 21, 2) in crop pixels, presence (B,) and P(right hand) (B,) out."""

    def __init__(self, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError("the hand teacher needs ai-edge-litert (pip install 'ai-edge-litert>=1.2')") from None
        self._interpreter = Interpreter(model_path=str(hand_model_path()), num_threads=num_threads)
        self._batch = 0
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]

    def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"crops must be (B, {INPUT_SIZE}, {INPUT_SIZE}, 3), got {crops.shape}")
        b = len(crops)
        if b != self._batch:
            self._interpreter.resize_tensor_input(self._input, [b, INPUT_SIZE, INPUT_SIZE, 3])
            self._interpreter.allocate_tensors()
            self._batch = b
        self._interpreter.set_tensor(self._input, crops.astype(np.float32) / 255.0)
        self._interpreter.invoke()
        out = [self._interpreter.get_tensor(i) for i in self._outputs]
        points = out[0].reshape(b, NUM_HAND, 3)[:, :, :2].astype(np.float64)
        return points, out[1].reshape(b).astype(np.float64), out[2].reshape(b).astype(np.float64)

    def close(self) -> None:
        self._interpreter = None


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


def roi_from_points(points: np.ndarray, scale: float = REFINE_SCALE) -> tuple[np.ndarray, float, float]:
    """MediaPipe-style hand crop from 21 points: (centre, side, angle) with wrist -> middle base up."""
    angle = angle_to_point_up(points[MIDDLE_MCP] - points[WRIST])
    rotated = to_crop(points, crop_matrix(points.mean(axis=0), 1.0, 1, angle))
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    center_rot = (lo + hi) / 2.0
    side = float(max(hi - lo)) * scale
    center = to_image(center_rot, crop_matrix(points.mean(axis=0), 1.0, 1, angle))
    return center, side, angle


class HandTeacher:
    """MediaPipe's hand landmark model on hand crops, with multi-view search, refinement and consensus.

    ``predict(image, boxes, sides=None, body=None)`` -> (M, 21, 3); ``predict_hands`` returns the
    full :class:`HandResult` with handedness. ``sides`` is 'left' / 'right' (one for all) or a
    sequence of M of them (None for unknown). ``body`` (M, 17, 3) COCO-17 keypoints, when
    given, centre the rotation search on the forearm direction (elbow -> wrist up).
    ``refine=False, search=False`` gives the plain single-view baseline (one crop of the box).
    """

    def __init__(
        self,
        search: bool = True,
        refine: bool = True,
        refine_views: tuple[View, ...] = REFINE_VIEWS,
        crop_scale: float = CROP_SCALE,
        num_threads: int | None = None,
    ):
        self.model = HandLandmarkModel(num_threads=num_threads)
        self.search = search
        self.refine = refine
        self.refine_views = tuple(refine_views)
        self.crop_scale = crop_scale

    def close(self) -> None:
        """Free the model."""
        if self.model is not None:
            self.model.close()
            self.model = None

    def __enter__(self) -> HandTeacher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
                image, centers[i], box_sides[i] * self.crop_scale, base_angles[i], has_arm[i], wrists[i]
            )
            if found is None:
                continue
            out.keypoints[i], out.right_prob[i], out.views_found[i] = found
            if sides[i] == "right":
                out.contradicts[i] = out.right_prob[i] < 0.5 - CONTRADICTION_MARGIN
            elif sides[i] == "left":
                out.contradicts[i] = out.right_prob[i] > 0.5 + CONTRADICTION_MARGIN
        return out

    def _search(self, image, center, side, base_angle, has_arm, wrist):
        """Search views, scale by scale: stop once ``EARLY_STOP_SUPPORT`` good views agree.

        Returns the inlier views' points, presence, P(right) and the number of views run.
        """
        angles = SEARCH_ANGLES_BODY if has_arm else SEARCH_ANGLES_FREE
        scales = SEARCH_SCALES if self.search else (1.0,)
        if not self.search:
            angles = (0.0,)
        kept_pts, kept_presence, kept_right = [], [], []
        num_views = 0
        inliers = np.zeros(0, dtype=bool)
        for scale in scales:
            views = tuple(View(a, scale) for a in angles)
            pts, presence, right = self.run_views(image, center, side, base_angle, views)
            num_views += len(views)
            good = presence >= PRESENCE_MIN
            if wrist is not None:  # the hand hangs on the body's wrist
                sizes = np.ptp(pts, axis=1).max(axis=1)
                good &= np.linalg.norm(pts[:, WRIST] - wrist, axis=1) <= WRIST_RADIUS * sizes
            kept_pts += list(pts[good])
            kept_presence += list(presence[good])
            kept_right += list(right[good])
            if kept_pts:
                inliers = best_supported_view(np.stack(kept_pts), np.array(kept_presence))
                if inliers.sum() >= EARLY_STOP_SUPPORT:
                    break
        if not kept_pts:
            return None
        return np.stack(kept_pts)[inliers], np.array(kept_presence)[inliers], np.array(kept_right)[inliers], num_views

    def _predict_one(self, image, center, side, base_angle, has_arm, wrist):
        found = self._search(image, center, side, base_angle, has_arm, wrist)
        if found is None:
            return None
        pts, presence, right, num_views = found
        if self.refine:
            roi_center, roi_side, roi_angle = roi_from_points(pts.mean(axis=0))
            r_pts, r_presence, r_right = self.run_views(image, roi_center, roi_side, roi_angle, self.refine_views)
            good = r_presence >= PRESENCE_MIN
            if good.any():
                pts, presence, right = r_pts[good], r_presence[good], r_right[good]
                num_views = len(self.refine_views)
        keypoints = consensus(pts, presence, num_views)
        right_prob = float(np.average(right, weights=presence))
        return keypoints, right_prob, len(pts)


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
    body = np.asarray(body, dtype=np.float64)
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
    body = np.asarray(body, dtype=np.float64)
    if body.shape != (m, 17, 3):
        raise ValueError(f"body must be (M, 17, 3) for M = {m} boxes, got {body.shape}")
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
