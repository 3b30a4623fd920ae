"""Where a label file's images are: file names kept inside their folder, COCO's split layout, numbered names.

A label file is user input: its ``file_name`` values must not make wbt read files outside
the image folder (:func:`resolve_inside`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labeltool.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # what a folder of photos holds

if TYPE_CHECKING:
    from labeltool.io.pose import PoseDataset


def resolve_inside(root: str | os.PathLike, name: Any) -> Path | None:
    """``root / name`` when the name stays inside ``root``, else None.

    A label file is user input: a ``file_name`` of ``../x.jpg`` or an absolute path must not
    make wbt read files elsewhere. A relative name without ``..`` is inside by construction;
    symlinks in the folder are followed (whoever owns the folder put them there: image folders
    are often links into a dataset store). A name with ``..`` is resolved as the system would
    open it (``..`` after a symlinked folder climbs from the link's target) and must land inside.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    parts = Path(name).parts
    if parts and not os.path.isabs(name) and ".." not in parts:
        return Path(root) / name
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, name))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        return None
    return Path(root) / name


def ids_from_file_names(names: list[str]) -> list[int] | None:
    """Image ids from file names as COCO's (000000000785.jpg -> 785), or None when not every name is numbered.

    A stem counts as a number when it is ASCII digits (``'²'.isdigit()`` is true but ``int('²')``
    fails) that fit a 64-bit id, and no two names give one id.
    """
    stems = [Path(name).stem for name in names]
    if not all(s.isascii() and s.isdigit() for s in stems):
        return None
    ids = [int(s) for s in stems]
    if len(set(ids)) != len(ids) or any(i >= 2**63 for i in ids):
        return None
    return ids


def check_utf8_name(folder: str | os.PathLike, name: str) -> None:
    """Refuse a file name that is not UTF-8 on disk: JSON label files (UTF-8) cannot name it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        raise UserError(
            f"{Path(folder) / raw.decode('utf-8', 'backslashreplace')}: file name is not UTF-8 "
            f"({raw!r}); rename it (the label files are UTF-8 JSON and cannot name it)"
        ) from None


def image_path(images_dir: str | os.PathLike, image: dict) -> Path:
    """Path of an image entry's file under ``images_dir`` (its ``file_name``); a name that
    resolves outside ``images_dir`` is a :class:`UserError` (see :func:`resolve_inside`)."""
    path = resolve_inside(images_dir, image["file_name"])
    if path is None and not (isinstance(image["file_name"], str) and image["file_name"]):
        raise UserError(f"image id {image.get('id')}: 'file_name' must be a non-empty string, got {image['file_name']!r}")
    if path is None:
        raise UserError(
            f"{image['file_name']!r}: file_name of image id {image.get('id')} is outside the image folder {images_dir}"
        )
    return path


def check_images_exist(dataset: PoseDataset, images_dir: str | os.PathLike) -> None:
    """Raise a one-line :class:`UserError` for the first image file that is absent."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: image directory not found")
    for im in dataset.images:
        p = image_path(images_dir, im)
        if not p.is_file():
            raise UserError(f"{p}: image file not found (image id {im['id']} in {dataset.path or 'annotations'})")


def resolve_coco_split(split: str, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``--coco SPLIT``: (ROOT/annotations/person_keypoints_SPLIT.json, ROOT/SPLIT/).

    ROOT comes from ``root`` or ``$COCO_ROOT``.
    """
    root = root or os.environ.get("COCO_ROOT")
    if not root:
        raise UserError(f"--coco {split}: give the COCO root with --root or $COCO_ROOT")
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: COCO root directory not found")
    ann = root / "annotations" / f"person_keypoints_{split}.json"
    images = root / split
    if not ann.is_file():
        raise UserError(
            f"{ann}: annotation file not found (COCO layout: ROOT/annotations/person_keypoints_{split}.json)"
        )
    if not images.is_dir():
        raise UserError(f"{images}: image directory not found (COCO layout: ROOT/{split}/)")
    return ann, images


def list_images(images_dir: Path) -> list[dict]:
    """Image entries for the image files directly in ``images_dir``, sorted by name.

    Ids are the file names' numbers when every name is a number (COCO's 000000000785.jpg
    -> 785), else 1, 2, ... in name order.
    """
    # not only regular files: a FIFO or a dangling link named x.jpg is logged in errors.jsonl (never opened)
    files = sorted(p.name for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise UserError(f"{images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    for name in files:
        check_utf8_name(images_dir, name)
    ids = ids_from_file_names(files) or list(range(1, len(files) + 1))
    return [{"id": i, "file_name": f} for i, f in zip(ids, files)]
