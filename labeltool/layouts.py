"""Keypoint layouts as data: COCO-17, COCO-WholeBody-133, Halpe-136 and Halpe-26.

The facts (names, flip pairs, skeleton links, OKS sigmas) are read from
``labeltool/data/keypoint_layouts.json``, copied from the mmpose dataset configs
and the official COCO-WholeBody evaluator. A layout's parts are index arrays, so
code that walks parts never branches on the layout's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

PART_NAMES = ("body", "foot", "face", "lefthand", "righthand")

# COCO-WholeBody json keys of each part's keypoints, box and validity flag.
WHOLEBODY_KPT_KEYS = {
    "body": "keypoints",
    "foot": "foot_kpts",
    "face": "face_kpts",
    "lefthand": "lefthand_kpts",
    "righthand": "righthand_kpts",
}
WHOLEBODY_BOX_KEYS = {"face": "face_box", "lefthand": "lefthand_box", "righthand": "righthand_box"}
WHOLEBODY_VALID_KEYS = {
    "foot": "foot_valid",
    "face": "face_valid",
    "lefthand": "lefthand_valid",
    "righthand": "righthand_valid",
}


@dataclass(frozen=True)
class Layout:
    """One keypoint layout. ``parts`` maps a part name to the indices of its points."""

    name: str
    names: tuple[str, ...]
    parts: dict[str, np.ndarray]
    flip_index: np.ndarray
    skeleton: np.ndarray
    sigmas: np.ndarray

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of the keypoint called ``name``."""
        return self.names.index(name)

    def part_of(self) -> np.ndarray:
        """(K,) array of part names, one per keypoint."""
        out = np.empty(self.num_keypoints, dtype=object)
        for part, idx in self.parts.items():
            out[idx] = part
        return out


@cache
def _raw() -> dict:
    text = resources.files("labeltool").joinpath("data/keypoint_layouts.json").read_text()
    return json.loads(text)


def _build(name: str, key: str) -> Layout:
    raw = _raw()[key]
    num = len(raw["names"])
    flip = np.arange(num)
    for a, b in raw["flip_pairs"]:
        flip[a], flip[b] = b, a
    parts = {part: np.arange(lo, hi) for part, (lo, hi) in raw["parts"].items()}
    return Layout(
        name=name,
        names=tuple(raw["names"]),
        parts=parts,
        flip_index=flip,
        skeleton=np.asarray(raw["skeleton"], dtype=np.int64).reshape(-1, 2),
        sigmas=np.asarray(raw["sigmas"], dtype=np.float64),
    )


COCO17 = _build("coco17", "coco17")
WHOLEBODY133 = _build("coco_wholebody133", "coco_wholebody")
HALPE136 = _build("halpe136", "halpe136")
HALPE26 = _build("halpe26", "halpe26")

LAYOUTS = {17: COCO17, 133: WHOLEBODY133, 136: HALPE136, 26: HALPE26}


def layout_for(num_keypoints: int) -> Layout:
    """The layout with ``num_keypoints`` points (17, 26, 133 or 136)."""
    if num_keypoints not in LAYOUTS:
        raise ValueError(f"no keypoint layout has {num_keypoints} points (known: 17, 26, 133, 136)")
    return LAYOUTS[num_keypoints]


def halpe136_to_coco133_index() -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (halpe_idx, coco133_idx) of the points both layouts share (133 pairs)."""
    pairs = np.asarray(_raw()["halpe136_to_coco133"]["pairs"], dtype=np.int64)
    return pairs[:, 0], pairs[:, 1]


# COCO-17 body joints by name: indices 0-16, the same in COCO-WholeBody-133 and Halpe-136.
# The one definition the proposals, teachers, merge rules and review use.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = (COCO17.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = (
    COCO17.index(f"{side}_{joint}") for joint in ("shoulder", "elbow", "wrist") for side in ("left", "right")
)
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = (
    COCO17.index(f"{side}_{joint}") for joint in ("hip", "knee", "ankle") for side in ("left", "right")
)
# The same per side ('left' / 'right': the person's side).
EYE = {"left": L_EYE, "right": R_EYE}
SHOULDER = {"left": L_SHOULDER, "right": R_SHOULDER}
ELBOW = {"left": L_ELBOW, "right": R_ELBOW}
WRIST = {"left": L_WRIST, "right": R_WRIST}
HIP = {"left": L_HIP, "right": R_HIP}
KNEE = {"left": L_KNEE, "right": R_KNEE}
ANKLE = {"left": L_ANKLE, "right": R_ANKLE}
