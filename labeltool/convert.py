"""Convert keypoint labels between layouts and export OpenPose JSON.

Every conversion goes through the two whole-body layouts:

- COCO-WholeBody-133 <-> Halpe-136 copy the 133 shared points with the index map of
  :func:`labeltool.layouts.halpe136_to_coco133_index` (Halpe interleaves the feet by side:
  20 L big toe, 21 R big toe, 22 L small toe, 23 R small toe, 24 L heel, 25 R heel; 133 has
  17-22 L big toe, L small toe, L heel, R big toe, R small toe, R heel).
- Going to 136, the three Halpe-only points are derived when their sources are labelled
  (see :func:`derive_halpe_extras`); going back they are dropped.
- COCO-17 is the first 17 points of 133, Halpe-26 the first 26 of 136: padding with
  unlabelled points, or taking the prefix.

Visibilities are carried as they are (integers 0/1/2 or float confidences).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltool.coco import (
    PoseDataset,
    flat_document,
    new_outputs_removed_on_error,
    wholebody_document,
    write_json_atomic,
)
from labeltool.errors import UserError
from labeltool.layouts import (
    COCO17,
    HALPE26,
    HALPE136,
    WHOLEBODY133,
    Layout,
    halpe136_to_coco133_index,
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
CHIN = 8  # iBUG-68 menton

TARGETS = {"17": COCO17, "26": HALPE26, "halpe26": HALPE26, "133": WHOLEBODY133, "136": HALPE136}


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3) midpoints of two (N, 3) point sets; labelled only where both are, v = min of the two."""
    out = np.zeros_like(a, dtype=np.float64)
    both = (a[:, 2] > 0) & (b[:, 2] > 0)
    out[both, :2] = (a[both, :2] + b[both, :2]) / 2
    out[both, 2] = np.minimum(a[both, 2], b[both, 2])
    return out


def derive_halpe_extras(kpts133: np.ndarray) -> np.ndarray:
    """Halpe's head (top), neck and (mid) hip from 133-point labels: (N, 3, 3).

    - neck = midpoint of the two shoulders;
    - hip = midpoint of the two hips;
    - head top = eye centre + (eye centre - chin), where the eye centre is the midpoint of the
      two body eye points and the chin is face point 8 (menton): the classic proportion that
      the eyes sit halfway between the chin and the top of the head, extrapolated along the
      head's own chin-to-eyes axis. Needs the face labelled; without a chin the head top is
      left unlabelled (no nose-based fallback: on the real faces here the chin/nose distance
      ratio from the eyes ranges 2.3-4.6, too unstable to extrapolate from).

    Each derived point is labelled only when all its sources are; its visibility is the
    minimum of theirs. Unlabelled points are (0, 0, 0).
    """
    kpts133 = np.asarray(kpts133, dtype=np.float64)
    n = len(kpts133)
    idx = WHOLEBODY133.index
    out = np.zeros((n, 3, 3), dtype=np.float64)
    out[:, 1] = _midpoint(kpts133[:, idx("left_shoulder")], kpts133[:, idx("right_shoulder")])
    out[:, 2] = _midpoint(kpts133[:, idx("left_hip")], kpts133[:, idx("right_hip")])
    eyes = _midpoint(kpts133[:, idx("left_eye")], kpts133[:, idx("right_eye")])
    chin = kpts133[:, WHOLEBODY133.parts["face"][CHIN]]
    ok = (eyes[:, 2] > 0) & (chin[:, 2] > 0)
    out[ok, 0, :2] = 2 * eyes[ok, :2] - chin[ok, :2]
    out[ok, 0, 2] = np.minimum(eyes[ok, 2], chin[ok, 2])
    return out


def keypoints_133_to_136(kpts133: np.ndarray) -> np.ndarray:
    """(N, 133, 3) COCO-WholeBody -> (N, 136, 3) Halpe: shared points copied, head/neck/hip derived."""
    kpts133 = np.asarray(kpts133, dtype=np.float64)
    halpe, coco = halpe136_to_coco133_index()
    out = np.zeros((len(kpts133), HALPE136.num_keypoints, 3), dtype=np.float64)
    out[:, halpe] = kpts133[:, coco]
    out[:, [HALPE136.index("head"), HALPE136.index("neck"), HALPE136.index("hip")]] = derive_halpe_extras(kpts133)
    return out


def keypoints_136_to_133(kpts136: np.ndarray) -> np.ndarray:
    """(N, 136, 3) Halpe -> (N, 133, 3) COCO-WholeBody: shared points copied, head/neck/hip dropped."""
    kpts136 = np.asarray(kpts136, dtype=np.float64)
    halpe, coco = halpe136_to_coco133_index()
    out = np.zeros((len(kpts136), WHOLEBODY133.num_keypoints, 3), dtype=np.float64)
    out[:, coco] = kpts136[:, halpe]
    return out


def _pad(kpts: np.ndarray, num: int) -> np.ndarray:
    out = np.zeros((len(kpts), num, 3), dtype=np.float64)
    out[:, : kpts.shape[1]] = kpts
    return out


def convert_keypoints(kpts: np.ndarray, src: Layout, dst: Layout) -> np.ndarray:
    """(N, K_src, 3) keypoints in layout ``src`` -> (N, K_dst, 3) in ``dst`` (17, 26, 133 or 136 points)."""
    kpts = np.asarray(kpts, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[1:] != (src.num_keypoints, 3):
        raise ValueError(f"expected (N, {src.num_keypoints}, 3) keypoints for {src.name}, got {kpts.shape}")
    if src is dst:
        return kpts.copy()
    # Bring the source into one of the two whole-body layouts.
    if src is COCO17:
        kpts, src = _pad(kpts, WHOLEBODY133.num_keypoints), WHOLEBODY133
    elif src is HALPE26:
        kpts, src = _pad(kpts, HALPE136.num_keypoints), HALPE136
    # Then into the whole-body layout the target is a prefix of.
    wide = WHOLEBODY133 if dst in (COCO17, WHOLEBODY133) else HALPE136
    if src is not wide:
        kpts = keypoints_133_to_136(kpts) if wide is HALPE136 else keypoints_136_to_133(kpts)
    return kpts[:, : dst.num_keypoints].copy()


def convert_dataset(ds: PoseDataset, dst: Layout) -> PoseDataset:
    """``ds`` with its keypoints converted to layout ``dst``; ids, boxes and other fields kept."""
    return replace(ds, layout=dst, keypoints=convert_keypoints(ds.keypoints, ds.layout, dst))


def converted_document(ds: PoseDataset) -> dict:
    """The json of ``ds`` in its layout's format: COCO-WholeBody keys for 133, one flat list otherwise.

    Part boxes (face_box, lefthand_box, righthand_box) are kept in 136-point files so that a
    133 -> 136 -> 133 round trip loses nothing; layouts without face and hands drop them.
    """
    if ds.layout is WHOLEBODY133:
        return wholebody_document(ds)
    return flat_document(ds, part_boxes=ds.layout is HALPE136)


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
