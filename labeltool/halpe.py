"""COCO-WholeBody-133 <-> Halpe-136: the one conversion, used by distill, convert, review and the student.

The 133 points both layouts share are copied by the index map of
:func:`labeltool.layouts.halpe136_to_coco133_index` (Halpe interleaves the feet by side:
20 L big toe, 21 R big toe, 22 L small toe, 23 R small toe, 24 L heel, 25 R heel; 133 keeps
them per side, 17-22 L big toe, L small toe, L heel, R big toe, R small toe, R heel).

Halpe has three points COCO-WholeBody lacks. Going to 136 from 133 points:

- **neck** (18) = midpoint of the two shoulders, **hip** (19) = midpoint of the two hips:
  labelled when both sources are, visibility (and confidence) = the lower of the two. This
  is how OpenPose made its Neck and MidHip from COCO labels.
- **head** (17, the top of the head) stays unlabelled (0, 0, 0). No COCO point lies on the
  top of the head, so any value would be a guess, and a guess written into a ground-truth
  file would be scored by ``wbt eval`` as if a person had clicked it. AlphaPose, whose Halpe
  dataset defines the point, does the same when it trains on COCO-WholeBody
  (``halpe_coco_wholebody_136.py`` pads head, neck and hip with zeros).

Going back to 133, the three are dropped. A Halpe source keeps its own values of all three.
"""

from __future__ import annotations

import numpy as np

from labeltool.layouts import HALPE136, WHOLEBODY133, halpe136_to_coco133_index

# Halpe-only point -> the two 133 points whose midpoint it is. "head" is never derived.
MIDPOINTS = {"neck": ("left_shoulder", "right_shoulder"), "hip": ("left_hip", "right_hip")}
HALPE_ONLY = ("head", "neck", "hip")


def to_halpe136(keypoints: np.ndarray, confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 133, 3) COCO-WholeBody points (and optional (N, 133) confidences) -> Halpe-136.

    Returns (N, 136, 3) float64 keypoints and (N, 136) float32 confidences (None when none
    were given); neck and hip derived as in the module docstring, head unlabelled.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    num = len(keypoints)
    halpe_idx, coco_idx = halpe136_to_coco133_index()
    kpts = np.zeros((num, HALPE136.num_keypoints, 3), dtype=np.float64)
    kpts[:, halpe_idx] = keypoints[:, coco_idx]
    conf = None
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float32)
        conf = np.zeros((num, HALPE136.num_keypoints), dtype=np.float32)
        conf[:, halpe_idx] = confidence[:, coco_idx]
    for name, (first, second) in MIDPOINTS.items():
        j, a, b = HALPE136.index(name), WHOLEBODY133.index(first), WHOLEBODY133.index(second)
        both = (keypoints[:, a, 2] > 0) & (keypoints[:, b, 2] > 0)
        kpts[both, j, :2] = (keypoints[both, a, :2] + keypoints[both, b, :2]) / 2.0
        kpts[both, j, 2] = np.minimum(keypoints[both, a, 2], keypoints[both, b, 2])
        if conf is not None:
            conf[both, j] = np.minimum(confidence[both, a], confidence[both, b])
    return kpts, conf


def to_wholebody133(keypoints: np.ndarray, confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 136, 3) Halpe points (and optional (N, 136) confidences) -> COCO-WholeBody-133; head, neck, hip dropped."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    num = len(keypoints)
    halpe_idx, coco_idx = halpe136_to_coco133_index()
    kpts = np.zeros((num, WHOLEBODY133.num_keypoints, 3), dtype=np.float64)
    kpts[:, coco_idx] = keypoints[:, halpe_idx]
    conf = None
    if confidence is not None:
        conf = np.zeros((num, WHOLEBODY133.num_keypoints), dtype=np.float32)
        conf[:, coco_idx] = np.asarray(confidence, dtype=np.float32)[:, halpe_idx]
    return kpts, conf
