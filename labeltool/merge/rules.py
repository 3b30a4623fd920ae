"""Merge rules: body keypoints + teacher part predictions -> one 133-point record per person.

Pure numpy, no models: the unit tests drive it with hand-made arrays. The rules (documented
in docs/distill.md) are:

- Body points come from the input annotation and are never altered (source ``gt``; ``mapped``
  when the dataset's point of the same name sits elsewhere in its layout). COCO-17 points the
  dataset does not have (CrowdPose's nose, eyes and ears) come from the body teacher on the
  person box, as below, when its points agree with the labelled ones. Without
  an annotation (``--images`` / ``--boxes`` / ``--sample``) they come from the body teacher,
  point by point when its confidence reaches ``body_min_conf`` and the point is in the image.
- Face and each hand are accepted or rejected as a whole: the teacher must have run on a
  proposed crop, its mean confidence over the predicted points must reach the part's
  threshold, and a sanity rule must hold (face: the points' centre lies in the proposal box;
  hand: the model's handedness agrees with the body side and the hand root lies near the
  body wrist). Inside an accepted part each point needs a confidence > 0 and must lie inside
  the image; a part left with fewer than ``min_points`` points is rejected, and so is one whose
  points span less than ``min_spread`` of the proposal box's diagonal (``degenerate``).
- Foot points are accepted one by one: confidence >= ``foot_min_conf``, the ankle of that
  side is labelled and the point lies within ``foot_max_dist`` shin lengths of it.
- A rejected part is all zeros (x = y = v = 0), exactly like COCO-WholeBody's invalid parts.
  Accepted teacher points get visibility ``TEACHER_VISIBILITY`` (2: labelled).
- Every point carries a confidence (1 for ground truth, the teacher's own otherwise, 0 for
  none) and a source code (an index into the run's source names).
- Several teachers for one part (an ensemble) are first combined point by point by their
  agreement (:func:`combine_candidates`); the rules above then judge the combined candidate.

The source codes and part statuses are named in :mod:`labeltool.label_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labeltool.label_codes import (
    ACCEPTED,
    DEGENERATE,
    FAR_FROM_ANKLE,
    FAR_FROM_WRIST,
    HANDEDNESS_MISMATCH,
    LOW_CONFIDENCE,
    MERGED_PARTS,
    NO_DETECTION,
    NO_PROPOSAL,
    NOT_RUN,
    OUTSIDE_PROPOSAL,
    SOURCE_NONE,
    TOO_FEW_POINTS,
)
from labeltool.layouts import ANKLE, KNEE, WHOLEBODY133, WRIST
from labeltool.teachers.base import HANDEDNESS_CONTRADICTS

TEACHER_VISIBILITY = 2.0  # visibility written for an accepted teacher point (COCO: labelled)

FOOT_SIDES = {"left": np.array([0, 1, 2]), "right": np.array([3, 4, 5])}  # in the 6 foot points


@dataclass(frozen=True)
class MergeRules:
    """Thresholds of the merge. Confidences are the teachers' own, in [0, 1]."""

    body_min_conf: float = 0.5  # body teacher point (no annotation)
    # a dataset without some COCO-17 points (CrowdPose: no nose, eyes, ears): the body teacher fills
    # them only when its points agree with the person's labelled ones (median distance, in the
    # diagonals of their box), so that in a crowd it never fills from a neighbour
    body_fill_max_dist: float = 0.1
    face_min_score: float = 0.5  # mean confidence of the face points
    # mean confidence of the hand points. The hand teacher's confidence is (agreeing views /
    # views) x presence, so a small hand that 1-2 of its 5 refine views agree on scores
    # ~0.2: keep it, with that low confidence as its loss weight and review priority.
    hand_min_score: float = 0.15
    foot_min_conf: float = 0.2  # per foot point (the estimated small toe carries half the foot's confidence)
    face_min_points: int = 34  # of 68
    hand_min_points: int = 11  # of 21
    hand_root_max_dist: float = 0.5  # hand root to body wrist, in hand sizes (diagonal of the points' box)
    # face / hand: the accepted points must span at least this share of the proposal box's diagonal. A real
    # face or hand spans a large share of its box (the box is built around it); a constant or broken model
    # puts every point on one pixel (12 of 12 faces were accepted from a constant ONNX model without it)
    min_spread: float = 0.05
    foot_max_dist: float = 1.0  # foot point to ankle, in shin lengths (knee-ankle)
    reject_handedness_mismatch: bool = True
    # ensembles: two models' points agree within this share of the part size (the diagonal of the
    # box around its points), about PCK@0.2 of the box side
    ensemble_agree_dist: float = 0.15

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class PartCandidate:
    """One teacher's points for one part of every person of an image, and the proposal they came from.

    ``source``: the source code of every point, or (K,) codes when points differ (the
    estimated small toe), or (P, K) codes per person and point (an ensemble); ``points`` (P, K, 3): x, y in image pixels and confidence (0 = no prediction);
    ``proposed`` (P,): whether a crop was proposed (and the teacher run) for the person;
    ``boxes`` (P, 4): the proposal boxes [x0, y0, x1, y1]; ``flags``: the teacher's per-person
    flags (:class:`labeltool.teachers.base.PartPrediction`), e.g. ``handedness_contradicts``.
    """

    source: int | np.ndarray
    points: np.ndarray
    proposed: np.ndarray
    boxes: np.ndarray
    flags: dict[str, np.ndarray] = field(default_factory=dict)


def combine_candidates(
    candidates: list[PartCandidate],
    part: str = "",
    rules: MergeRules | None = None,
    ensemble_codes: dict[frozenset[int], int] | None = None,
) -> PartCandidate:
    """The one candidate the rules judge for ``part``, from every teacher that filled it.

    One teacher: its candidate unchanged. Several (an **ensemble**), per person and point
    (docs/distill.md, "Ensembles"):

    - the models that *ran* are those whose crop was proposed for the person (``n`` of them);
      a model whose handedness contradicts the body side gives no points for that person
      (when ``rules.reject_handedness_mismatch``), but still counts in ``n``;
    - two predictions (confidence > 0) *agree* when they lie within ``rules.ensemble_agree_dist``
      x the part size, the median over the models of the diagonal of the box around their
      predicted points of the part (of one foot for the foot points; the smallest proposal
      box's diagonal when no model predicted two points);
    - the agreeing set is the largest set of predictions within that distance of one of them
      (ties: the larger summed confidence, then the first model); its members' mean position
      is the point, ``len(set) / n x mean(their confidences)`` its confidence, and its source the
      ensemble of its members (``ensemble_codes[frozenset(member codes)]``), or the member's own
      source when one model alone gives the point.

    The combined candidate is proposed where any model ran; its box (read by the face rule) is
    the smallest proposed box; its handedness flag is set when every model that ran contradicts.
    """
    if len(candidates) == 1:
        return candidates[0]
    rules = rules or MergeRules()
    ensemble_codes = ensemble_codes or {}
    num, k = candidates[0].points.shape[:2]
    proposed = np.stack([c.proposed for c in candidates])  # (T, P)
    codes = np.stack([np.broadcast_to(np.asarray(c.source), (num, k)) if np.ndim(c.source) < 2 else c.source
                      for c in candidates]).astype(np.int64)  # (T, P, K)
    pts = np.stack([np.asarray(c.points, dtype=np.float64) for c in candidates])  # (T, P, K, 3)
    pts = np.where(proposed[:, :, None, None], pts, 0.0)
    contradicts = np.stack([c.flags.get(HANDEDNESS_CONTRADICTS, np.zeros(num, dtype=bool)) for c in candidates])
    if rules.reject_handedness_mismatch:
        pts = np.where(contradicts[:, :, None, None], 0.0, pts)
    areas = np.stack([np.prod(np.clip(c.boxes[:, 2:] - c.boxes[:, :2], 0, None), axis=1) for c in candidates])
    areas = np.where(proposed, areas, np.inf)
    smallest = areas.argmin(axis=0)
    boxes = np.stack([candidates[t].boxes[p] for p, t in enumerate(smallest)]) if num else candidates[0].boxes
    groups = list(FOOT_SIDES.values()) if part == "foot" else [np.arange(k)]
    out = np.zeros((num, k, 3))
    source = np.full((num, k), SOURCE_NONE, dtype=np.int64)
    for p in range(num):
        ran = int(proposed[:, p].sum())
        if ran == 0:
            continue
        diagonal = float(np.linalg.norm(boxes[p, 2:] - boxes[p, :2]))
        for idx in groups:
            radius = rules.ensemble_agree_dist * _part_size(pts[:, p, idx], diagonal)
            for j in idx:
                out[p, j], source[p, j] = _agree(pts[:, p, j], codes[:, p, j], radius, ran, ensemble_codes)
    flags = {HANDEDNESS_CONTRADICTS: (contradicts | ~proposed).all(axis=0) & proposed.any(axis=0)}
    return PartCandidate(source, out, proposed.any(axis=0), boxes, flags)


def _part_size(points: np.ndarray, fallback: float) -> float:
    """Median over the models (T, K, 3) with 2+ predicted points of their points' box diagonal; else ``fallback``."""
    sizes = []
    for model in points:
        xy = model[model[:, 2] > 0, :2]
        if len(xy) >= 2:
            sizes.append(float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0))))
    return float(np.median(sizes)) if sizes else fallback


def _agree(point: np.ndarray, codes: np.ndarray, radius: float, ran: int,
           ensemble_codes: dict[frozenset[int], int]) -> tuple[np.ndarray, int]:
    """One point from the models' predictions (T, 3): the agreeing set's mean, confidence and source."""
    found = np.flatnonzero(point[:, 2] > 0)
    if not len(found):
        return np.zeros(3), SOURCE_NONE
    xy, conf = point[found, :2], point[found, 2]
    close = np.linalg.norm(xy[:, None] - xy[None], axis=-1) <= radius  # (F, F)
    support = close.sum(axis=1)
    weight = close @ conf
    best = max(range(len(found)), key=lambda i: (support[i], weight[i], -i))
    members = np.flatnonzero(close[best])
    mean_xy = xy[members].mean(axis=0)
    confidence = len(members) / ran * float(conf[members].mean())
    member_codes = frozenset(int(codes[found[m]]) for m in members)
    code = next(iter(member_codes)) if len(members) == 1 else ensemble_codes.get(member_codes)
    if code is None:
        raise ValueError(f"no source name for the ensemble of source codes {sorted(member_codes)}")
    return np.array([mean_xy[0], mean_xy[1], confidence]), code


@dataclass
class MergedPersons:
    """133-point labels of P persons: keypoints (P, 133, 3), confidence (P, 133), source (P, 133)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    source: np.ndarray
    status: dict[str, list[str]] = field(default_factory=dict)  # part -> one status per person

    @classmethod
    def empty(cls, num: int) -> MergedPersons:
        return cls(
            keypoints=np.zeros((num, 133, 3), dtype=np.float64),
            confidence=np.zeros((num, 133), dtype=np.float32),
            source=np.zeros((num, 133), dtype=np.int8),
            status={part: [NOT_RUN] * num for part in MERGED_PARTS},
        )


def body_from_teacher(
    points: np.ndarray, source: int, image_size: tuple[int, int], rules: MergeRules
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body teacher output (P, 17, 3 with confidence) -> (keypoints with v, confidence, source codes).

    A point is kept when its confidence reaches ``body_min_conf`` and it lies inside the image
    of ``image_size`` (height, width).
    """
    points = np.asarray(points, dtype=np.float64)
    height, width = image_size
    keep = points[:, :, 2] >= rules.body_min_conf
    keep &= np.stack([_inside(p, width, height) for p in points]) if len(points) else keep
    kpts = np.where(keep[:, :, None], points, 0.0)
    kpts[:, :, 2] = np.where(keep, TEACHER_VISIBILITY, 0.0)
    conf = np.where(keep, points[:, :, 2], 0.0).astype(np.float32)
    src = np.where(keep, source, SOURCE_NONE).astype(np.int8)
    return kpts, conf, src


def merge_persons(
    body: np.ndarray,
    body_conf: np.ndarray,
    body_source: np.ndarray,
    parts: dict[str, PartCandidate],
    image_size: tuple[int, int],
    rules: MergeRules,
) -> MergedPersons:
    """Merge body keypoints (P, 17, 3) with the part predictions of an image of ``image_size`` (height, width).

    ``parts`` maps 'foot', 'face', 'lefthand', 'righthand' to a :class:`PartCandidate`;
    a missing key leaves that part unlabelled (status ``not_run``).
    """
    body = np.asarray(body, dtype=np.float64)
    num = len(body)
    out = MergedPersons.empty(num)
    body_idx = WHOLEBODY133.parts["body"]
    out.keypoints[:, body_idx] = body
    out.confidence[:, body_idx] = np.where(body[:, :, 2] > 0, body_conf, 0.0)
    out.source[:, body_idx] = np.where(body[:, :, 2] > 0, body_source, SOURCE_NONE)
    height, width = image_size
    for part, pred in parts.items():
        idx = WHOLEBODY133.parts[part]
        for p in range(num):
            if part == "foot":
                status, accepted = _foot(body[p], pred, p, rules)
            elif part == "face":
                status, accepted = _face(pred, p, rules)
            else:
                status, accepted = _hand(body[p], pred, p, part, rules)
            if accepted is not None:
                accepted &= _inside(pred.points[p], width, height)
                need = {"face": rules.face_min_points, "foot": 1}.get(part, rules.hand_min_points)
                if accepted.sum() < need:
                    status, accepted = TOO_FEW_POINTS, None
                elif part != "foot" and _degenerate(pred.points[p, accepted, :2], pred.boxes[p], rules.min_spread):
                    status, accepted = DEGENERATE, None
            out.status[part][p] = status
            if accepted is None:
                continue
            pts = pred.points[p]
            out.keypoints[p, idx[accepted], :2] = pts[accepted, :2]
            out.keypoints[p, idx[accepted], 2] = TEACHER_VISIBILITY
            out.confidence[p, idx[accepted]] = pts[accepted, 2]
            source = pred.source[p] if np.ndim(pred.source) == 2 else pred.source
            out.source[p, idx[accepted]] = np.broadcast_to(source, accepted.shape)[accepted]
    return out


def _degenerate(xy: np.ndarray, box: np.ndarray, min_spread: float) -> bool:
    """Whether points (N, 2) span less than ``min_spread`` x the diagonal of ``box`` [x0, y0, x1, y1]."""
    spread = float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0)))
    return spread < min_spread * float(np.linalg.norm(np.asarray(box[2:]) - np.asarray(box[:2])))


def _inside(points: np.ndarray, width: int, height: int) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return (x >= 0) & (y >= 0) & (x <= width - 1) & (y <= height - 1)


def _common(pred: PartCandidate, p: int, min_score: float) -> tuple[str | None, np.ndarray]:
    """Status when the part fails the shared checks (proposal, detection, confidence), else None."""
    conf = pred.points[p, :, 2]
    predicted = conf > 0
    if not pred.proposed[p]:
        return NO_PROPOSAL, predicted
    if not predicted.any():
        return NO_DETECTION, predicted
    if conf[predicted].mean() < min_score:
        return LOW_CONFIDENCE, predicted
    return None, predicted


def _face(pred: PartCandidate, p: int, rules: MergeRules) -> tuple[str, np.ndarray | None]:
    status, predicted = _common(pred, p, rules.face_min_score)
    if status is not None:
        return status, None
    cx, cy = pred.points[p, predicted, :2].mean(axis=0)
    x0, y0, x1, y1 = pred.boxes[p]
    if not (x0 <= cx <= x1 and y0 <= cy <= y1):
        return OUTSIDE_PROPOSAL, None
    return ACCEPTED, predicted.copy()


def _hand(
    body: np.ndarray, pred: PartCandidate, p: int, part: str, rules: MergeRules
) -> tuple[str, np.ndarray | None]:
    status, predicted = _common(pred, p, rules.hand_min_score)
    if status is not None:
        return status, None
    contradicts = pred.flags.get(HANDEDNESS_CONTRADICTS)
    if rules.reject_handedness_mismatch and contradicts is not None and contradicts[p]:
        return HANDEDNESS_MISMATCH, None
    wrist = body[WRIST[part.removesuffix("hand")]]
    pts = pred.points[p]
    if wrist[2] > 0 and predicted[0]:
        xy = pts[predicted, :2]
        size = float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0)))
        if np.linalg.norm(pts[0, :2] - wrist[:2]) > rules.hand_root_max_dist * max(size, 1.0):
            return FAR_FROM_WRIST, None
    return ACCEPTED, predicted.copy()


def _foot(body: np.ndarray, pred: PartCandidate, p: int, rules: MergeRules) -> tuple[str, np.ndarray | None]:
    if not pred.proposed[p]:
        return NO_PROPOSAL, None
    conf = pred.points[p, :, 2]
    if not (conf > 0).any():
        return NO_DETECTION, None
    accepted = conf >= rules.foot_min_conf
    if not accepted.any():
        return LOW_CONFIDENCE, None
    for side, sel in FOOT_SIDES.items():
        ankle, knee = body[ANKLE[side]], body[KNEE[side]]
        if ankle[2] <= 0:
            accepted[sel] = False
            continue
        shin = np.linalg.norm(ankle[:2] - knee[:2]) if knee[2] > 0 else np.inf
        dist = np.linalg.norm(pred.points[p, sel, :2] - ankle[:2], axis=1)
        accepted[sel] &= dist <= rules.foot_max_dist * shin
    if not accepted.any():
        return FAR_FROM_ANKLE, None
    return ACCEPTED, accepted
