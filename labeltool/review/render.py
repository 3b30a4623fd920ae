"""Draw keypoint labels: skeleton overlays (one colour per part), part boxes, person crops and contact sheets.

Images are RGB uint8 arrays (H, W, 3), as in the teacher contract; keypoints are (K, 3) arrays
(x, y, visibility or score) in any layout. A point is drawn when its third value is above
``min_score`` (0 by default: every labelled point); a link when both its ends are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeltool.errors import UserError
from labeltool.images import read_rgb
from labeltool.io.atomic import new_outputs_removed_on_error, write_bytes_atomic
from labeltool.io.paths import image_path
from labeltool.io.pose import PoseDataset, tight_box
from labeltool.layouts import WHOLEBODY_BOX_KEYS, Layout

# One colour per part (RGB).
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "body": (0, 128, 255),
    "foot": (255, 0, 255),
    "face": (255, 255, 0),
    "lefthand": (0, 255, 0),
    "righthand": (255, 40, 40),
}
PERSON_BOX_COLOR = (255, 255, 255)
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions


@dataclass
class RenderSummary:
    """What :func:`render_dataset` wrote."""

    overlays: list[Path]
    sheet: Path | None
    persons_on_sheet: int


def _fixed(xy: np.ndarray) -> tuple[int, int]:
    return int(round(xy[0] * (1 << _SHIFT))), int(round(xy[1] * (1 << _SHIFT)))


def _style(image: np.ndarray) -> tuple[int, int]:
    """Point radius and line thickness for an image of this size."""
    side = min(image.shape[:2])
    radius = max(2, int(round(side / 200)))
    return radius, max(1, radius - 1)


def draw_pose(
    image: np.ndarray,
    keypoints: np.ndarray,
    layout: Layout,
    min_score: float = 0.0,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one person's skeleton on ``image`` in place (and return it).

    Links first, coloured by the part they lead into (a link from the body into a hand gets
    the hand's colour), then the points of every part; face points are dots only.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (layout.num_keypoints, 3):
        raise ValueError(f"expected ({layout.num_keypoints}, 3) keypoints for {layout.name}, got {keypoints.shape}")
    auto_radius, auto_thickness = _style(image)
    radius = auto_radius if radius is None else radius
    thickness = auto_thickness if thickness is None else thickness
    shown = keypoints[:, 2] > min_score
    part_of = layout.part_of()
    for a, b in layout.skeleton:
        if not (shown[a] and shown[b]) or part_of[a] == "face" or part_of[b] == "face":
            continue
        part = part_of[b] if part_of[a] == "body" else part_of[a]
        cv2.line(image, _fixed(keypoints[a]), _fixed(keypoints[b]), PART_COLORS[part], thickness, cv2.LINE_AA, _SHIFT)
    for part, idx in layout.parts.items():
        r = max(1, radius - 1) if part == "face" else radius
        for i in idx[shown[idx]]:
            cv2.circle(image, _fixed(keypoints[i]), r << _SHIFT, PART_COLORS[part], -1, cv2.LINE_AA, _SHIFT)
    return image


def part_boxes(keypoints: np.ndarray, layout: Layout, annotation: dict | None = None) -> dict[str, list[float]]:
    """[x, y, w, h] of the labelled face and hands (the parts COCO-WholeBody gives boxes): the
    annotation's own box when it has one (``face_box``, ...), else the tight box of the part's labelled points."""
    out = {}
    for part, key in WHOLEBODY_BOX_KEYS.items():
        idx = layout.parts.get(part)
        if idx is None or not (keypoints[idx, 2] > 0).any():
            continue
        stored = (annotation or {}).get(key)
        if isinstance(stored, list) and len(stored) == 4 and stored[2] > 0 and stored[3] > 0:
            out[part] = [float(v) for v in stored]
        else:
            out[part] = tight_box(keypoints[idx])
    return out


def draw_box(image: np.ndarray, box: Sequence[float], color: tuple[int, int, int], thickness: int = 1) -> np.ndarray:
    """Draw an [x, y, w, h] rectangle in place."""
    x, y, w, h = box
    cv2.rectangle(image, _fixed((x, y)), _fixed((x + w, y + h)), color, thickness, cv2.LINE_AA, _SHIFT)
    return image


def draw_box_score(image: np.ndarray, box: Sequence[float], score: float, color: tuple[int, int, int],
                   thickness: int = 1) -> np.ndarray:
    """Write a person box's detector ``score`` ('0.87') at its top-left corner, inside the image, in place."""
    x, y = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
    scale = max(0.4, thickness * 0.4)
    text = f"{score:.2f}"
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    org = (int(min(x, image.shape[1] - tw - 2)) + 2, int(y) + th + 2)
    cv2.rectangle(image, (org[0] - 2, org[1] - th - 2), (org[0] + tw + 2, org[1] + base), color, -1)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return image


def crop_square(
    image: np.ndarray, box: Sequence[float], size: int, margin: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size, 3) square crop around an [x, y, w, h] box grown by ``margin`` of its long side
    on each side (outside the image: grey), and the 2x3 affine that maps image to crop pixels."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h, 1.0) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    scale = size / side
    affine = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]], dtype=np.float64)
    crop = cv2.warpAffine(
        image, affine, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128),
    )  # fmt: skip
    return crop, affine


def render_person_crop(
    image: np.ndarray,
    keypoints: np.ndarray,
    layout: Layout,
    box: Sequence[float],
    size: int = 192,
    margin: float = 0.15,
    min_score: float = 0.0,
) -> np.ndarray:
    """A (size, size, 3) RGB crop of one person around ``box`` ([x, y, w, h], COCO bbox) with the skeleton drawn.

    The crop is scaled first and the skeleton drawn after, so lines stay sharp at any zoom.
    """
    crop, affine = crop_square(image, box, size, margin)
    pts = np.asarray(keypoints, dtype=np.float64).copy()
    pts[:, :2] = pts[:, :2] @ affine[:, :2].T + affine[:, 2]
    radius = max(2, size // 96)
    return draw_pose(crop, pts, layout, min_score=min_score, radius=radius, thickness=max(1, radius - 1))


def contact_sheet(
    tiles: Sequence[np.ndarray], columns: int = 10, captions: Sequence[str] | None = None, gap: int = 2
) -> np.ndarray:
    """Tiles of one size in a grid (row by row) on a dark background, each with an optional caption."""
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    th, tw = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * th + (rows + 1) * gap, columns * tw + (columns + 1) * gap, 3), 24, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        sheet[y : y + th, x : x + tw] = tile
        if captions:
            cv2.putText(
                sheet, captions[k], (x + 3, y + th - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 2, cv2.LINE_AA
            )
            cv2.putText(
                sheet, captions[k], (x + 3, y + th - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA
            )
    return sheet


def write_png(rgb: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB image as PNG through a temp file and a rename (no half-written files)."""
    path = Path(path)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    write_bytes_atomic(buf.tobytes(), path)


def _overlay_name(file_name: str) -> Path:
    """The overlay's path under the output folder: the image's relative path, as .png."""
    return Path(file_name).with_suffix(".png")


def _drawn(ds: PoseDataset, i: int, min_score: float) -> bool:
    return not ds.iscrowd[i] and bool((ds.keypoints[i, :, 2] > min_score).any())


def render_dataset(
    ds: PoseDataset,
    images_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    boxes: bool = False,
    sheet: bool = False,
    overlays: bool = True,
    limit: int | None = None,
    sheet_max: int = 100,
    tile: int = 192,
    min_score: float = 0.0,
) -> RenderSummary:
    """Overlays ``<out_dir>/<image file_name>`` with a .png suffix (every person's skeleton, optional person and part
    boxes) and, with ``sheet``, ``<out_dir>/contact_sheet.png``: crops of up to ``sheet_max``
    persons spread evenly over the file, captioned with their annotation ids.

    Only images with at least one drawn person are rendered (the first ``limit`` of them). Every
    image needed is checked before anything is written.
    """
    index = ds.image_index()
    by_image = {k: [i for i in v if _drawn(ds, i, min_score)] for k, v in ds.persons_by_image().items()}
    image_ids = [int(im["id"]) for im in ds.images if by_image.get(int(im["id"]))]
    overlay_ids = image_ids[:limit] if overlays else []
    persons = [i for i in range(len(ds)) if _drawn(ds, i, min_score)]
    if sheet and len(persons) > sheet_max:
        persons = [persons[k] for k in np.linspace(0, len(persons) - 1, sheet_max).round().astype(int)]
    sheet_persons = persons if sheet else []
    needed = dict.fromkeys(overlay_ids + [int(ds.image_ids[i]) for i in sheet_persons])
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: image directory not found")
    for image_id in needed:
        p = image_path(images_dir, index[image_id])
        if not p.is_file():
            raise UserError(f"{p}: image file not found (image id {image_id} in {ds.path or 'the labels'})")
    overlay_names: dict[Path, str] = {}
    for image_id in overlay_ids:  # sub/a.jpg -> OUT/sub/a.png: same-stem images in two folders stay apart
        name = index[image_id]["file_name"]
        other = overlay_names.setdefault(_overlay_name(name), name)
        if other != name:
            raise UserError(f"{ds.path}: images {other!r} and {name!r} would both be drawn to {_overlay_name(name)}")
    if sheet and not sheet_persons:
        raise UserError(f"{ds.path}: no labelled person to put on a contact sheet")

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory")
    with new_outputs_removed_on_error(out_dir):  # a failed write (full disk) leaves no partial set
        return _render(ds, index, by_image, images_dir, out_dir, overlay_ids, sheet_persons, boxes, tile, min_score)


def _render(
    ds: PoseDataset,
    index: dict[int, dict],
    by_image: dict[int, list[int]],
    images_dir: Path,
    out_dir: Path,
    overlay_ids: list[int],
    sheet_persons: list[int],
    boxes: bool,
    tile: int,
    min_score: float,
) -> RenderSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image_id in overlay_ids:
        im = index[image_id]
        rgb = read_rgb(image_path(images_dir, im))
        radius, thickness = _style(rgb)
        for i in by_image[image_id]:
            if boxes:
                draw_box(rgb, ds.bboxes[i], PERSON_BOX_COLOR, thickness)
                score = ds.annotations[i].get("score") if ds.annotations else None
                if isinstance(score, (int, float)) and not isinstance(score, bool):  # a detector's box
                    draw_box_score(rgb, ds.bboxes[i], float(score), PERSON_BOX_COLOR, thickness)
                for part, box in part_boxes(ds.keypoints[i], ds.layout, ds.annotations[i]).items():
                    draw_box(rgb, box, PART_COLORS[part], thickness)
            draw_pose(rgb, ds.keypoints[i], ds.layout, min_score=min_score, radius=radius, thickness=thickness)
        path = out_dir / _overlay_name(im["file_name"])
        write_png(rgb, path)
        written.append(path)

    sheet_path = None
    if sheet_persons:
        tiles, captions, cache = [], [], {}
        for i in sheet_persons:
            image_id = int(ds.image_ids[i])
            if image_id not in cache:  # persons come in file order: keep only the current image
                cache = {image_id: read_rgb(image_path(images_dir, index[image_id]))}
            tiles.append(
                render_person_crop(cache[image_id], ds.keypoints[i], ds.layout, ds.bboxes[i], tile, min_score=min_score)
            )
            captions.append(str(int(ds.ann_ids[i])))
        sheet_path = out_dir / "contact_sheet.png"
        write_png(contact_sheet(tiles, columns=10, captions=captions), sheet_path)
    return RenderSummary(overlays=written, sheet=sheet_path, persons_on_sheet=len(sheet_persons))
