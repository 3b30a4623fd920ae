"""Priority queue for reviewers: which persons' labels are most likely wrong.

Each person gets a list of :class:`Flag` s, each with a severity in [0, 1], and a suspicion
``1 - prod(1 - severity)`` (0: nothing suspicious, 1: certainly worth a look). Signals:

- ``low_confidence``: a part's teacher points have a mean confidence below
  ``min_confidence`` (needs ``labels.parquet``; ground-truth points are never suspicious).
- ``hand_side``: a hand's root lies much closer to the other side's body wrist than to its
  own (a left/right swap), measured on the points, so it works on any json.
- ``outside_box``: labelled points outside the person box grown by ``box_margin``.
- ``part_size``: the face or a hand is implausibly small or large for the body: the
  diagonal of its points' box over sqrt(person box area) outside the part's range.
  The ranges are about 3x around what the COCO-WholeBody sample GT shows
  (face 0.14-0.23, hands 0.08-0.20).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labeltool.layouts import WRIST
from labeltool.review.labels import ReviewLabels

HAND_WRIST = {f"{side}hand": wrist for side, wrist in WRIST.items()}  # body index (the same in 133 and 136)
OTHER_HAND = {"lefthand": "righthand", "righthand": "lefthand"}


@dataclass(frozen=True)
class QueueRules:
    """Thresholds of the queue's signals."""

    min_confidence: float = 0.6  # mean teacher confidence of a part below this is suspicious
    hand_side_ratio: float = 2.0  # hand root this many times closer to the other wrist than to its own
    box_margin: float = 0.1  # points outside the person box grown by this fraction of its size per side
    outside_full: int = 3  # this many outside points give severity 1
    face_size: tuple[float, float] = (0.05, 0.6)  # face points' box diagonal / sqrt(person box area)
    hand_size: tuple[float, float] = (0.03, 0.5)
    min_part_points: int = 3  # fewer labelled points: no size check


@dataclass
class Flag:
    """One reason to review a person."""

    kind: str  # low_confidence | hand_side | outside_box | part_size
    part: str
    severity: float  # in [0, 1]
    detail: str


@dataclass
class QueueEntry:
    """A person in the queue: its index in the labels, ids and why it is there."""

    index: int
    ann_id: int
    image_id: int
    file_name: str
    suspicion: float
    flags: list[Flag] = field(default_factory=list)

    def reasons(self) -> str:
        return "; ".join(f"{f.kind} {f.part}: {f.detail}" for f in self.flags)


def _labelled(points: np.ndarray) -> np.ndarray:
    return points[:, 2] > 0


def person_flags(labels: ReviewLabels, i: int, rules: QueueRules) -> list[Flag]:
    """The flags of person ``i``."""
    ds = labels.dataset
    layout = ds.layout
    kpts = ds.keypoints[i]
    flags: list[Flag] = []
    if labels.confidence is not None:
        teacher = labels.is_teacher_point()[i]
        for part, idx in layout.parts.items():
            sel = idx[teacher[idx]]
            if len(sel) == 0:
                continue
            mean = float(labels.confidence[i, sel].mean())
            if mean < rules.min_confidence:
                severity = (rules.min_confidence - mean) / rules.min_confidence
                flags.append(
                    Flag("low_confidence", part, severity, f"mean confidence {mean:.2f} over {len(sel)} points")
                )
    for part, wrist in HAND_WRIST.items():
        if part not in layout.parts:  # 17 / 26 points: no hands to check
            continue
        root = kpts[layout.parts[part][0]]
        own, other = kpts[wrist], kpts[HAND_WRIST[OTHER_HAND[part]]]
        if root[2] > 0 and own[2] > 0 and other[2] > 0:
            d_own = float(np.hypot(*(root[:2] - own[:2])))
            d_other = float(np.hypot(*(root[:2] - other[:2])))
            if d_own > rules.hand_side_ratio * d_other:
                flags.append(
                    Flag("hand_side", part, 1.0, f"root {d_own:.0f} px from its wrist, {d_other:.0f} px from the other")
                )
    x, y, w, h = ds.bboxes[i]
    if w > 0 and h > 0:
        mx, my = rules.box_margin * w, rules.box_margin * h
        for part, idx in layout.parts.items():
            pts = kpts[idx]
            lab = _labelled(pts)
            out = lab & (
                (pts[:, 0] < x - mx) | (pts[:, 0] > x + w + mx) | (pts[:, 1] < y - my) | (pts[:, 1] > y + h + my)
            )
            n_out = int(out.sum())
            if n_out:
                severity = min(1.0, n_out / rules.outside_full)
                flags.append(Flag("outside_box", part, severity, f"{n_out} of {int(lab.sum())} points outside the box"))
        scale = float(np.sqrt(w * h))
        for part, (lo, hi) in (
            ("face", rules.face_size),
            ("lefthand", rules.hand_size),
            ("righthand", rules.hand_size),
        ):
            if part not in layout.parts:
                continue
            pts = kpts[layout.parts[part]]
            lab = _labelled(pts)
            if lab.sum() < rules.min_part_points:
                continue
            extent = pts[lab, :2].max(axis=0) - pts[lab, :2].min(axis=0)
            ratio = float(np.hypot(*extent)) / scale
            if ratio < lo or ratio > hi:
                bound = lo if ratio < lo else hi
                severity = min(1.0, abs(np.log(max(ratio, 1e-6) / bound)) / np.log(2.0))
                flags.append(Flag("part_size", part, severity, f"size {ratio:.3f} of the body, expected {lo}-{hi}"))
    return flags


def review_queue(labels: ReviewLabels, rules: QueueRules | None = None) -> list[QueueEntry]:
    """Every flagged person, most suspicious first (ties: by annotation id)."""
    rules = rules or QueueRules()
    ds = labels.dataset
    names = {int(im["id"]): im.get("file_name", "") for im in ds.images}
    entries = []
    for i in range(len(ds)):
        if ds.iscrowd[i]:
            continue
        flags = person_flags(labels, i, rules)
        if not flags:
            continue
        suspicion = 1.0 - float(np.prod([1.0 - f.severity for f in flags]))
        flags.sort(key=lambda f: -f.severity)
        image_id = int(ds.image_ids[i])
        entries.append(QueueEntry(i, int(ds.ann_ids[i]), image_id, names.get(image_id, ""), suspicion, flags))
    entries.sort(key=lambda e: (-e.suspicion, e.ann_id))
    return entries


def person_suspicion(labels: ReviewLabels, rules: QueueRules | None = None) -> np.ndarray:
    """(N,) suspicion of every person (0 for the unflagged)."""
    out = np.zeros(len(labels.dataset))
    for entry in review_queue(labels, rules):
        out[entry.index] = entry.suspicion
    return out


def format_queue(entries: list[QueueEntry]) -> str:
    """The queue as a text table, one person per line."""
    lines = [f"{'rank':>4}  {'ann_id':>10}  {'image_id':>10}  {'suspicion':>9}  file / reasons"]
    for rank, e in enumerate(entries, 1):
        lines.append(f"{rank:>4}  {e.ann_id:>10}  {e.image_id:>10}  {e.suspicion:>9.3f}  {e.file_name}: {e.reasons()}")
    return "\n".join(lines)
