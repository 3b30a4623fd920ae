"""Convert keypoint labels between layouts and export OpenPose JSON.

Every conversion goes through the two whole-body layouts:

- COCO-WholeBody-133 <-> Halpe-136 is :mod:`labeltool.halpe` (the one conversion: shared
  points by index map, neck and hip derived, head top unlabelled; dropped going back).
- COCO-17 is the first 17 points of 133, Halpe-26 the first 26 of 136: padding with
  unlabelled points, or taking the prefix.

Visibilities are carried as they are (integers 0/1/2 or float confidences).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.halpe import to_halpe136, to_wholebody133
from labeltool.io.atomic import new_outputs_removed_on_error, write_json_atomic
from labeltool.io.pose import PoseDataset
from labeltool.layouts import (
    COCO17,
    HALPE26,
    HALPE136,
    WHOLEBODY133,
    Layout,
)

# OpenPose BODY_25 order, as our keypoint names ("hip" is Halpe's mid hip, OpenPose's MidHip).
BODY25_NAMES = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
BODY25_FROM_HALPE136 = np.array([HALPE136.index(name) for name in BODY25_NAMES], dtype=np.int64)

# iBUG-68 eye contours, in face-part indices: the person's right eye is 36-41, the left 42-47.
RIGHT_EYE_CONTOUR = np.arange(36, 42)
LEFT_EYE_CONTOUR = np.arange(42, 48)

TARGETS = {"17": COCO17, "26": HALPE26, "halpe26": HALPE26, "133": WHOLEBODY133, "136": HALPE136}


def _pad(values: np.ndarray, num: int) -> np.ndarray:
    """(N, K, ...) per-point values padded with zeros (unlabelled) to (N, num, ...)."""
    out = np.zeros((len(values), num, *values.shape[2:]), dtype=values.dtype)
    out[:, : values.shape[1]] = values
    return out


def convert_keypoints(kpts: np.ndarray, src: Layout, dst: Layout) -> np.ndarray:
    """(N, K_src, 3) keypoints in layout ``src`` -> (N, K_dst, 3) in ``dst`` (17, 26, 133 or 136 points)."""
    return convert_points(kpts, None, src, dst)[0]


def convert_points(
    kpts: np.ndarray, confidence: np.ndarray | None, src: Layout, dst: Layout
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`convert_keypoints` that also carries (N, K_src) per-point confidences (None: none).

    A derived point's confidence is the lower of its sources'; a point the source lacks gets 0.
    """
    kpts = np.asarray(kpts, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[1:] != (src.num_keypoints, 3):
        raise ValueError(f"expected (N, {src.num_keypoints}, 3) keypoints for {src.name}, got {kpts.shape}")
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float32)
    if src is dst:
        return kpts.copy(), None if confidence is None else confidence.copy()
    # Bring the source into one of the two whole-body layouts.
    if src in (COCO17, HALPE26):
        src = WHOLEBODY133 if src is COCO17 else HALPE136
        kpts = _pad(kpts, src.num_keypoints)
        confidence = None if confidence is None else _pad(confidence, src.num_keypoints)
    # Then into the whole-body layout the target is a prefix of.
    wide = WHOLEBODY133 if dst in (COCO17, WHOLEBODY133) else HALPE136
    if src is not wide:
        kpts, confidence = (to_halpe136 if wide is HALPE136 else to_wholebody133)(kpts, confidence)
    n = dst.num_keypoints
    return kpts[:, :n].copy(), None if confidence is None else confidence[:, :n].astype(np.float32)


def convert_dataset(ds: PoseDataset, dst: Layout) -> PoseDataset:
    """``ds`` with its keypoints converted to layout ``dst``; ids, boxes and other fields kept."""
    return replace(ds, layout=dst, keypoints=convert_keypoints(ds.keypoints, ds.layout, dst))


# --------------------------------------------------------------------------- OpenPose


def _openpose_points(points: np.ndarray) -> list[float]:
    """(K, 3) points -> OpenPose's flat [x, y, c, ...]: c = min(v, 1), and (0, 0, 0) where v <= 0.

    COCO visibilities 1 and 2 both become confidence 1; a float visibility in (0, 1] is taken
    as the label's confidence.
    """
    c = np.clip(points[:, 2], 0.0, 1.0)
    out = np.zeros((len(points), 3), dtype=np.float64)
    on = c > 0
    out[on, :2] = points[on, :2]
    out[on, 2] = c[on]
    return [float(v) for v in out.reshape(-1)]


def openpose_person(kpts136: np.ndarray) -> dict:
    """One OpenPose ``people`` entry (BODY_25, 70 face, 21 + 21 hand points) of a (136, 3) Halpe person.

    The face's 69th and 70th points are the right and left pupils, placed at the centroid of
    the eye's six contour points when all six are labelled (confidence = their minimum), else 0.
    """
    face = kpts136[HALPE136.parts["face"]]
    pupils = np.zeros((2, 3), dtype=np.float64)
    for row, contour in enumerate((RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)):
        eye = face[contour]
        if (eye[:, 2] > 0).all():
            pupils[row, :2] = eye[:, :2].mean(axis=0)
            pupils[row, 2] = eye[:, 2].min()
    return {
        "person_id": [-1],
        "pose_keypoints_2d": _openpose_points(kpts136[BODY25_FROM_HALPE136]),
        "face_keypoints_2d": _openpose_points(np.concatenate([face, pupils])),
        "hand_left_keypoints_2d": _openpose_points(kpts136[HALPE136.parts["lefthand"]]),
        "hand_right_keypoints_2d": _openpose_points(kpts136[HALPE136.parts["righthand"]]),
        "pose_keypoints_3d": [],
        "face_keypoints_3d": [],
        "hand_left_keypoints_3d": [],
        "hand_right_keypoints_3d": [],
    }


def openpose_documents(ds: PoseDataset) -> dict[str, dict]:
    """OpenPose json per image, keyed by output file name ``<image stem>_keypoints.json``.

    Every image gets a file (no people -> an empty list); crowd regions are not people and are left out.
    """
    kpts = convert_keypoints(ds.keypoints, ds.layout, HALPE136)
    by_image = ds.persons_by_image()
    docs: dict[str, dict] = {}
    for im in ds.images:
        name = f"{Path(im['file_name']).stem}_keypoints.json"
        if name in docs:
            raise UserError(
                f"{ds.path}: two images share the file stem of {im['file_name']!r}; OpenPose names files by stem"
            )
        people = [openpose_person(kpts[i]) for i in by_image.get(int(im["id"]), []) if not ds.iscrowd[i]]
        docs[name] = {"version": 1.3, "people": people}
    return docs


def write_openpose(ds: PoseDataset, out_dir: str | os.PathLike) -> list[Path]:
    """Write one OpenPose json per image into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory (OpenPose output is a directory of json files)")
    docs = openpose_documents(ds)  # everything is built before the first file is written
    paths = []
    with new_outputs_removed_on_error(out_dir):  # a failed write (full disk) leaves no partial set
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, doc in docs.items():
            path = out_dir / name
            write_json_atomic(doc, path)
            paths.append(path)
    return paths
