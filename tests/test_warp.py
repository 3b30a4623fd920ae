"""The teachers' crops are exact bilinear samples of the image, whatever OpenCV is installed (issue 19).

OpenCV 4.x's warpAffine rounds each source position to 1/32 pixel (up to 7 grey levels off);
OpenCV 5.x samples exactly. ``labeltool.topdown.warp_bilinear`` does not depend on either.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from labeltool.teachers.crops import crop_matrix, warp
from labeltool.topdown import invert_affine, warp_bilinear


def exact_bilinear(image: np.ndarray, matrix: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """The float crop, sampled by scipy (order 1, zeros beyond the image, pixel centres at integers)."""
    inv = invert_affine(np.asarray(matrix, dtype=np.float64)[None])[0]
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    return np.stack([ndimage.map_coordinates(image[:, :, c].astype(np.float64), [sy, sx], order=1,
                                             mode="grid-constant", cval=0.0) for c in range(image.shape[2])], -1)  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_teacher_crops_are_the_exact_bilinear_samples_rounded(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(57, 83, 3), dtype=np.uint8)
    center = rng.uniform([-10, -10], [93, 67])  # also crops reaching past the border
    matrix = crop_matrix(center, side=float(rng.uniform(5, 120)), out_size=48, angle=float(rng.uniform(-3, 3)),
                         mirror=bool(seed % 2))  # fmt: skip
    truth = exact_bilinear(image, matrix, 48, 48)
    for crop in (warp(image, matrix, 48), warp_bilinear(image, matrix, (48, 48))):
        assert crop.dtype == np.uint8 and crop.shape == (48, 48, 3)
        # rounded to the nearest grey level (float32 weights: a tie may go either way)
        assert np.abs(crop - truth).max() <= 0.5 + 1e-3


def test_a_sub_pixel_shift_finer_than_one_32nd_moves_the_pixels():
    """A ramp 0, 64, 128... shifted by 1/256 px: every pixel moves by 0.25 grey levels; by 3/256, 0.75 -> 1."""
    image = np.repeat(np.repeat((np.arange(4) * 64).astype(np.uint8)[None, :, None], 4, 0), 3, 2)
    for shift, want in ((1 / 256, 0), (3 / 256, 1)):
        m = np.array([[1.0, 0.0, -shift], [0.0, 1.0, 0.0]])  # crop x = image x - shift
        crop = warp_bilinear(image, m, (3, 4))
        np.testing.assert_array_equal(crop[:, :3, 0], np.broadcast_to(np.arange(3) * 64 + want, (4, 3)))


def test_grey_and_odd_inputs():
    image = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(warp_bilinear(image, np.eye(2, 3), (5, 4)), image)  # identity: the same pixels
    nan = np.full((2, 3), np.nan)
    assert not warp_bilinear(image, nan, (3, 2)).any()  # a broken matrix gives black, not garbage
    with pytest.raises(ValueError, match="uint8"):
        warp_bilinear(image.astype(np.float32), np.eye(2, 3), (5, 4))
