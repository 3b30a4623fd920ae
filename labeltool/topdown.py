"""Top-down crop geometry in mmpose's and rtmlib's convention, shared by the student and the ONNX teachers.

A person box is grown by ``BOX_PADDING`` and to the input's aspect; its centre lands on input
pixel (W / 2, H / 2) (mmpose's ``get_warp_matrix`` with ``TopdownAffine``, use_udp False;
rtmlib's ``top_down_affine``), pixel centres at integers as ``cv2.warpAffine`` samples. One
implementation, so a crop made by wbt and one made by rtmlib or mmpose hold the same pixels.
"""

from __future__ import annotations

import numpy as np

BOX_PADDING = 1.25  # the nominal crop is the person box grown by this factor (mmpose, RTMPose; rtmlib's padding)


def box_center_scale(bboxes: np.ndarray, aspect: float, padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 2) and crop sizes (N, 2) of x y w h boxes, grown to ``aspect`` = w / h, then by ``padding``."""
    bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    center = bboxes[:, :2] + 0.5 * bboxes[:, 2:]
    w, h = bboxes[:, 2].copy(), bboxes[:, 3].copy()
    wide = w > aspect * h
    h[wide] = w[wide] / aspect
    w[~wide] = h[~wide] * aspect
    return center, np.stack([w, h], axis=1) * padding


def crop_matrices(center: np.ndarray, scale: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """(N, 2, 3) affine maps image -> crop: ``center`` to crop pixel (W / 2, H / 2), ``scale`` (w) to its width.

    mmpose's ``get_warp_matrix`` (``TopdownAffine``, use_udp False) and rtmlib's ``top_down_affine``
    put the box centre there too (pixel centres at integers, as ``cv2.warpAffine`` samples), so a
    point's crop coordinates, and hence the SimCC bins, are the same as theirs."""
    out_w, out_h = out_size
    s = out_w / scale[:, 0]
    m = np.zeros((len(center), 2, 3), dtype=np.float64)
    m[:, 0, 0] = s
    m[:, 1, 1] = s
    m[:, 0, 2] = out_w / 2 - s * center[:, 0]
    m[:, 1, 2] = out_h / 2 - s * center[:, 1]
    return m


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2, 3) matrices applied to (N, K, 2) points."""
    return np.einsum("nij,nkj->nki", m[:, :, :2], points) + m[:, None, :, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.zeros((len(m), 3, 3))
    full[:, :2] = m
    full[:, 2, 2] = 1
    return np.linalg.inv(full)[:, :2]


def clip_boxes_to_images(bboxes: np.ndarray, image_ids: np.ndarray, images: list[dict]) -> np.ndarray:
    """x y w h GT boxes clipped to their image, as mmpose's CocoWholeBodyDataset reads them (corners into
    [0, width - 1] x [0, height - 1]) for validation and for inference on GT boxes; an image without a
    size leaves its boxes as they are."""
    size = {int(im["id"]): (im.get("width"), im.get("height")) for im in images}
    out = bboxes.astype(np.float64).copy()
    for i, (img, box) in enumerate(zip(image_ids, bboxes)):
        w, h = size.get(int(img), (None, None))
        if not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
            continue
        x0, y0 = np.clip(box[0], 0, w - 1), np.clip(box[1], 0, h - 1)
        x1, y1 = np.clip(box[0] + box[2], 0, w - 1), np.clip(box[1] + box[3], 0, h - 1)
        out[i] = (x0, y0, x1 - x0, y1 - y0)
    return out
