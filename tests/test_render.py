"""Rendering: overlays of the real file, part colours at keypoint pixels, person crops, contact sheets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from labeltool.errors import UserError
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import COCO17, WHOLEBODY133
from labeltool.review.render import (
    PART_COLORS,
    contact_sheet,
    draw_pose,
    part_boxes,
    render_dataset,
    render_person_crop,
)


@pytest.fixture(scope="module")
def real(realdata):
    return load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")


@pytest.fixture(scope="module")
def images_dir(realdata):
    return realdata / "coco_wholebody"


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _isolated_points(ds, image_id: int, min_gap: float = 8.0) -> dict[str, tuple[int, int]]:
    """Per part, one labelled point of this image with no other part's point within ``min_gap`` px."""
    persons = ds.persons_by_image()[image_id]
    pts, parts = [], []
    part_of = ds.layout.part_of()
    for i in persons:
        lab = ds.keypoints[i, :, 2] > 0
        pts.append(ds.keypoints[i, lab, :2])
        parts.extend(part_of[lab])
    pts = np.concatenate(pts)
    parts = np.array(parts)
    found = {}
    for xy, part in zip(pts, parts):
        others = pts[parts != part]
        if part not in found and (len(others) == 0 or np.hypot(*(others - xy).T).min() >= min_gap):
            found[part] = (int(round(xy[0])), int(round(xy[1])))
    return found


def test_render_real_file(real, images_dir, tmp_path):
    summary = render_dataset(real, images_dir, tmp_path / "out", sheet=True)
    assert sorted(p.name for p in summary.overlays) == [
        "000000000785.png", "000000040083.png", "000000196141.png", "000000197388.png",
    ]  # fmt: skip
    sizes = {im["file_name"][:-4]: (im["height"], im["width"], 3) for im in real.images}
    for path in summary.overlays:
        assert _rgb(path).shape == sizes[path.stem]
    # 12 of the 14 persons have a labelled point: 2 rows of 10 tiles of 192 px with 2 px gaps
    assert summary.persons_on_sheet == 12
    assert _rgb(summary.sheet).shape == (2 * 192 + 3 * 2, 10 * 192 + 11 * 2, 3)
    # the overlay differs from the photo, the photo untouched elsewhere
    photo = _rgb(images_dir / "000000197388.jpg")
    overlay = _rgb(tmp_path / "out" / "000000197388.png")
    changed = (photo != overlay).any(axis=2)
    assert 0.005 < changed.mean() < 0.2


def test_keypoint_pixels_have_their_part_colour(real, images_dir, tmp_path):
    render_dataset(real, images_dir, tmp_path)
    checked = set()
    for im in real.images:
        overlay = _rgb(tmp_path / f"{im['file_name'][:-4]}.png")
        for part, (x, y) in _isolated_points(real, int(im["id"])).items():
            assert tuple(overlay[y, x]) == PART_COLORS[part], (im["file_name"], part, (x, y))
            checked.add(part)
    assert checked == set(PART_COLORS)  # body, foot, face, left and right hand all seen


def test_boxes_are_drawn_on_the_box_edges(real, images_dir, tmp_path):
    render_dataset(real, images_dir, tmp_path / "plain", limit=1)
    render_dataset(real, images_dir, tmp_path / "boxes", boxes=True, limit=1)
    plain = _rgb(tmp_path / "plain" / "000000000785.png").astype(int)
    boxed = _rgb(tmp_path / "boxes" / "000000000785.png").astype(int)
    ys, xs = np.nonzero((plain != boxed).any(axis=2))
    assert len(ys) > 100
    boxes = [real.bboxes[0].tolist(), *part_boxes(real.keypoints[0], WHOLEBODY133, real.annotations[0]).values()]
    assert boxes[1] == real.annotations[0]["face_box"]  # the file's own part box
    near_edge = np.zeros(len(ys), dtype=bool)
    for x, y, w, h in boxes:
        inside = (xs >= x - 2) & (xs <= x + w + 2) & (ys >= y - 2) & (ys <= y + h + 2)
        on_edge = (np.abs(xs - x) <= 2) | (np.abs(xs - x - w) <= 2) | (np.abs(ys - y) <= 2) | (np.abs(ys - y - h) <= 2)
        near_edge |= inside & on_edge
    assert near_edge.all()


def test_render_person_crop_maps_points(real, images_dir):
    photo = _rgb(images_dir / "000000000785.jpg")
    box = real.bboxes[0]
    crop = render_person_crop(photo, real.keypoints[0], WHOLEBODY133, box, size=256, margin=0.1)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    x, y, w, h = box
    scale = 256 / (max(w, h) * 1.2)
    left_knee = real.keypoints[0, WHOLEBODY133.index("left_knee"), :2]
    right_hip = real.keypoints[0, WHOLEBODY133.index("right_hip"), :2]
    for xy, part in [(left_knee, "body"), (right_hip, "body")]:
        cx = (xy[0] - (x + w / 2)) * scale + 128
        cy = (xy[1] - (y + h / 2)) * scale + 128
        assert tuple(crop[int(round(cy)), int(round(cx))]) == PART_COLORS[part]
    # padding outside the photo is grey: this box is tall, so the crop's left edge is beyond the person
    far = render_person_crop(photo, real.keypoints[0], WHOLEBODY133, [-500, 0, 100, 100], size=64)
    assert (far[:, :10] == 128).all()


def test_draw_pose_min_score_and_shape_check():
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    k = np.zeros((17, 3))
    k[0] = [10, 10, 0.2]
    k[1] = [30, 30, 0.9]
    draw_pose(image, k, COCO17, min_score=0.3)
    assert not image[8:13, 8:13].any()
    assert tuple(image[30, 30]) == PART_COLORS["body"]
    with pytest.raises(ValueError, match="expected"):
        draw_pose(image, np.zeros((133, 3)), COCO17)


def test_contact_sheet_grid():
    tiles = [np.full((10, 12, 3), v, dtype=np.uint8) for v in (50, 100, 150)]
    sheet = contact_sheet(tiles, columns=2, gap=2)
    assert sheet.shape == (2 * 10 + 3 * 2, 2 * 12 + 3 * 2, 3)
    assert (sheet[2:12, 2:14] == 50).all() and (sheet[2:12, 16:28] == 100).all() and (sheet[14:24, 2:14] == 150).all()
    assert (sheet[14:24, 16:28] == 24).all()  # the empty cell keeps the background


def test_absent_image_writes_nothing(real, tmp_path):
    (tmp_path / "imgs").mkdir()
    out = tmp_path / "out"
    with pytest.raises(UserError, match="000000000785.jpg: image file not found"):
        render_dataset(real, tmp_path / "imgs", out, sheet=True)
    assert not out.exists()


@pytest.mark.parametrize("target", ["136", "26", "17"])
def test_render_other_layouts(real, images_dir, tmp_path, target):
    from labeltool.convert import TARGETS, convert_dataset

    ds = convert_dataset(real, TARGETS[target])
    summary = render_dataset(ds, images_dir, tmp_path, limit=1, sheet=True, sheet_max=3)
    assert [p.name for p in summary.overlays] == ["000000000785.png"] and summary.persons_on_sheet == 3
    overlay = _rgb(summary.overlays[0])
    if target != "17":  # the derived neck of person 442619 is drawn in the body colour
        x, y = ds.keypoints[0, ds.layout.index("neck"), :2].round().astype(int)
        assert tuple(overlay[y, x]) == PART_COLORS["body"]
    found = _isolated_points(ds, 785)
    assert set(found) == set(ds.layout.parts) - {"lefthand"}  # person 442619 has no left hand
    for part, (x, y) in found.items():
        assert tuple(overlay[y, x]) == PART_COLORS[part]
