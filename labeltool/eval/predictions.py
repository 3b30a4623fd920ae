"""Keypoint results (predictions) as the evaluator holds them; the file is read by :mod:`labeltool.io.results`.

A results file is a json list of ``{image_id, category_id, keypoints, score}``. ``keypoints``
is either one flat list of K x 3 values in the ground truth's layout, or, for COCO-WholeBody,
the split keys ``keypoints`` (17 x 3), ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``,
``righthand_kpts`` (a missing part key means the part was not predicted). Optional part
scores ``foot_score``, ``face_score``, ``lefthand_score``, ``righthand_score``,
``wholebody_score`` rank a detection within that part; without them ``score`` is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from labeltool.io.results import read_results
from labeltool.layouts import Layout


def part_score_key(part: str) -> str:
    """The results key that ranks detections for ``part`` (xtcocotools ranks body by ``score``)."""
    return "score" if part == "body" else f"{part}_score"


@dataclass
class Predictions:
    """Detections as arrays. ``part_scores[key]`` is NaN where a detection lacks that key."""

    keypoints: np.ndarray  # (D, K, 3) float64: x, y, per-point score
    image_ids: np.ndarray  # (D,) int64
    category_ids: np.ndarray  # (D,) int64
    scores: np.ndarray  # (D,) float64
    part_scores: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (D,) float64, NaN = absent
    bbox_areas: np.ndarray | None = None  # (D,) when the file gives boxes (xtcocotools then uses them)
    path: str = ""

    def __len__(self) -> int:
        return len(self.scores)

    def ranking_scores(self, part: str) -> np.ndarray:
        """Per-detection score that ranks it for ``part``: the part score, else ``score``."""
        key = part_score_key(part)
        if key not in self.part_scores:
            return self.scores
        s = self.part_scores[key]
        return np.where(np.isnan(s), self.scores, s)

    def areas(self, layout: Layout, all_points: bool = False) -> np.ndarray:
        """Area used for the medium / large ranges: the box area when boxes were given, else the
        extent of the body points (all of them, scored or not), as xtcocotools' ``loadRes``
        (``all_points``: the extent of every point, as halpecocotools' ``loadRes`` of flat results)."""
        if self.bbox_areas is not None:
            return self.bbox_areas
        body = self.keypoints[:, :, :2] if all_points else self.keypoints[:, layout.parts["body"], :2]
        lo = body.min(axis=1)
        hi = body.max(axis=1)
        return (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1])


def predictions_from_arrays(
    keypoints: np.ndarray,
    image_ids: np.ndarray,
    scores: np.ndarray,
    category_ids: np.ndarray | None = None,
    part_scores: dict[str, np.ndarray] | None = None,
) -> Predictions:
    """Build :class:`Predictions` from arrays (e.g. a model's output), without a json detour.

    keypoints: (D, K, 3) x, y, score (or (D, K * 3)); image_ids, scores: (D,); category_ids
    default to 1; part_scores: e.g. {"face_score": (D,)}, NaN where a detection has none.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    n = len(keypoints)
    if keypoints.ndim == 2 and n:  # (D, K * 3) flat rows
        keypoints = keypoints.reshape(n, -1, 3)
    return Predictions(
        keypoints=keypoints,
        image_ids=np.asarray(image_ids, dtype=np.int64).reshape(n),
        category_ids=np.ones(n, np.int64) if category_ids is None else np.asarray(category_ids, np.int64).reshape(n),
        scores=np.asarray(scores, dtype=np.float64).reshape(n),
        part_scores={k: np.asarray(v, dtype=np.float64).reshape(n) for k, v in (part_scores or {}).items()},
    )


# --------------------------------------------------------------------------- reading


def load_predictions(
    results: str | os.PathLike | list,
    layout: Layout,
    image_ids: np.ndarray,
    category_ids: np.ndarray,
    gt_name: str = "GT",
) -> Predictions:
    """Read a results file (or an already parsed list) against the ground truth (:func:`labeltool.io.results.read_results`).

    ``image_ids`` / ``category_ids`` are those of the ground truth; a detection on another image
    is an error, as in xtcocotools. A missing ``category_id`` defaults to the ground truth's only
    category. Every problem raises a one-line :class:`UserError` naming the file and the detection.
    """
    only_category = int(category_ids[0]) if len(np.unique(category_ids)) == 1 else None
    res = read_results(results, layout, image_ids=image_ids, gt_name=gt_name, default_category=only_category)
    return Predictions(
        keypoints=res.keypoints,
        image_ids=res.image_ids,
        category_ids=res.category_ids,
        scores=res.scores,
        part_scores=res.part_scores,
        bbox_areas=None if res.bboxes is None else res.bboxes[:, 2] * res.bboxes[:, 3],
        path=res.path,
    )
