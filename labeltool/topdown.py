"""Top-down crop geometry in mmpose's and rtmlib's convention, shared by the student and the ONNX teachers.

A person box is grown by ``BOX_PADDING`` and to the input's aspect; its centre lands on input
pixel (W / 2, H / 2) (mmpose's ``get_warp_matrix`` with ``TopdownAffine``, use_udp False;
rtmlib's ``top_down_affine``), pixel centres at integers as ``cv2.warpAffine`` samples. One
implementation, so a crop made by wbt and one made by rtmlib or mmpose hold the same pixels.
"""

from __future__ import annotations

import numpy as np

BOX_PADDING = 1.25  # the nominal crop is the person box grown by this factor (mmpose, RTMPose; rtmlib's padding)
RTMLIB_MEAN = (123.675, 116.28, 103.53)  # subtracted from the B, G, R channels in this order
RTMLIB_STD = (58.395, 57.12, 57.375)


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


def warp_bilinear(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """The crop (H, W, C) uint8 of a uint8 ``image`` through a 2x3 image -> crop ``matrix``, ``out_size`` = (W, H).

    Exact bilinear sampling in float64 (pixel centres at integers, black outside the image), rounded
    half to even: what ``cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT, 0)`` computes in OpenCV 5,
    to within one grey level at exact ties. Done here rather than by cv2 because OpenCV 4.x rounds
    the source position to 1/32 pixel (fixed-point tables), up to 7 grey levels away, so the
    teachers' labels changed with the installed OpenCV (issue 19, docs/teachers.md); these pixels
    depend only on the input and the matrix.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"image must be uint8 (H, W) or (H, W, C), got {img.dtype} {img.shape}")
    squeeze = img.ndim == 2
    if squeeze:
        img = img[:, :, None]
    h, w, c = img.shape
    out_w, out_h = int(out_size[0]), int(out_size[1])
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    inv = invert_affine(m[None])[0]
    xs = np.arange(out_w, dtype=np.float64)
    ys = np.arange(out_h, dtype=np.float64)[:, None]
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    flat = img.reshape(-1, c)
    # float32 weights are exact enough (values <= 255) and, like every elementwise IEEE operation,
    # the same on every machine. The corners are summed in one order on both paths below.
    if w >= 2 and h >= 2 and sx.min() >= 0 and sx.max() <= w - 1 and sy.min() >= 0 and sy.max() <= h - 1:
        # Every position inside the image (the usual crop): no border. A position on the last
        # column / row takes its left / upper neighbour with weight 0, the same sum.
        x0f, y0f = np.minimum(np.floor(sx), w - 2), np.minimum(np.floor(sy), h - 2)
        fx, fy = (sx - x0f).astype(np.float32), (sy - y0f).astype(np.float32)
        gx, gy = 1.0 - fx, 1.0 - fy
        i00 = y0f.astype(np.intp) * w + x0f.astype(np.intp)
        out = np.take(flat, i00, axis=0) * (gx * gy)[..., None]
        out += np.take(flat, i00 + 1, axis=0) * (fx * gy)[..., None]
        out += np.take(flat, i00 + w, axis=0) * (gx * fy)[..., None]
        out += np.take(flat, i00 + w + 1, axis=0) * (fx * fy)[..., None]
    else:
        # Far-away positions (and NaN) land on the zero border; clipping keeps the integer maths small.
        sx = np.nan_to_num(np.clip(sx, -1.0, float(w)), nan=-1.0)
        sy = np.nan_to_num(np.clip(sy, -1.0, float(h)), nan=-1.0)
        x0f, y0f = np.floor(sx), np.floor(sy)
        fx, fy = (sx - x0f).astype(np.float32), (sy - y0f).astype(np.float32)
        x0, y0 = x0f.astype(np.intp), y0f.astype(np.intp)
        out = np.zeros((out_h, out_w, c), dtype=np.float32)
        for dy, wy in ((0, 1.0 - fy), (1, fy)):  # a corner outside the image weighs nothing (black border)
            yy = y0 + dy
            inside_y = (yy >= 0) & (yy < h)
            for dx, wx in ((0, 1.0 - fx), (1, fx)):
                xx = x0 + dx
                weight = wx * wy * (inside_y & (xx >= 0) & (xx < w))
                index = np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)
                out += np.take(flat, index, axis=0) * weight[..., None]
    # A convex combination of values in 0..255: rounded, it stays in 0..255.
    out = np.rint(out, out=out).astype(np.uint8)
    return out[:, :, 0] if squeeze else out
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


def normalise_bgr(crops_bgr: np.ndarray) -> np.ndarray:
    """What rtmlib feeds the network for BGR crops (M, H, W, 3): (M, 3, H, W) float32 ``(x - mean) / std``."""
    x = (np.asarray(crops_bgr, dtype=np.float32) - np.asarray(RTMLIB_MEAN, dtype=np.float32)) / np.asarray(
        RTMLIB_STD, dtype=np.float32
    )
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
