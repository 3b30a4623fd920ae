"""The evaluation protocols, as data: one entry each in :data:`PROTOCOLS`, which ``wbt eval --protocol``
(its choices, help and dispatch) and ``evaluate(..., protocol=NAME)`` read.

Two kinds:

* :class:`EvalProtocol`: a COCOeval-style keypoint protocol (detections matched to persons by
  OKS, AP / AR per part), run by the shared engine in :mod:`labeltool.eval.evaluator`; the entry
  says what differs (parts and sigmas, which persons are ignored, which detections enter a part,
  how they are ranked, how their area is measured, the float precision of the points);
* :class:`InstanceProtocol`: one prediction per GT instance (face NME, hand PCK), a function
  returning a :class:`MetricReport`.

Adding a protocol: its module (a part table, or an ``evaluate_*`` function) and one entry here
(docs/layout.md, "Adding an eval protocol").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labeltool.errors import UserError
from labeltool.eval.halpe import halpe_parts
from labeltool.eval.nme import evaluate_nme
from labeltool.eval.pck import evaluate_pck
from labeltool.eval.pointwise import MetricReport
from labeltool.layouts import Layout


@dataclass(frozen=True)
class EvalProtocol:
    """What one COCOeval-style keypoint protocol does differently; the engine (evaluator.py) is shared."""

    name: str  # as `wbt eval --protocol` spells it
    title: str  # one line for reports
    description: str  # one line for `wbt eval --help`
    # layout -> {part: (point indices, float64 sigmas)} in report order
    part_table: Callable[[Layout], dict[str, tuple[np.ndarray, np.ndarray]]]
    layouts: tuple[int, ...] = (17, 26, 133, 136)  # point counts the protocol accepts
    crowd_ignored: bool = True  # iscrowd persons are ignored (False: they are positives)
    ignore_key: str | None = None  # annotation key whose truthy value ignores the person
    drop_per_part: bool = True  # a detection leaves a part with no positive score there (else: overall)
    rank_by_part_score: bool = True  # rank by foot_score, ... when given (else always ``score``)
    area_from_all_points: bool = False  # detection area: extent of all points (else the body points)
    coords_float32: bool = False  # points read as float32 for the OKS
    zero_id_unmatched: bool = False  # a match to a person with annotation id 0 counts as no match
    allow_sigmas_float32: bool = True


@dataclass(frozen=True)
class InstanceProtocol:
    """A protocol scoring one prediction per GT instance; ``run(gt_path, results_path, name, thr)``."""

    name: str  # as `wbt eval --protocol` spells it
    description: str  # one line for `wbt eval --help`
    run: Callable[[str, str, str, float], MetricReport]


def coco_wholebody_parts(layout: Layout) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The layout's parts with its sigmas, then ``wholebody`` (all points) for a multi-part layout."""
    parts = dict(layout.parts)
    if len(parts) > 1:
        parts["wholebody"] = np.arange(layout.num_keypoints)
    return {part: (idx, layout.sigmas[idx]) for part, idx in parts.items()}


COCO_WHOLEBODY = EvalProtocol(
    name="coco-wholebody",
    title="COCO-WholeBody protocol (xtcocotools, use_area=True)",
    description="xtcocotools as mmpose drives it",
    part_table=coco_wholebody_parts,
)

PROTOCOLS: dict[str, EvalProtocol | InstanceProtocol] = {
    p.name: p
    for p in (
        COCO_WHOLEBODY,
        # AlphaPose's halpecocotools; how and why each flag differs: halpe.py and docs/eval.md
        EvalProtocol(
            name="halpe",
            title="Halpe protocol (AlphaPose's halpecocotools)",
            description="AlphaPose's halpecocotools (136 or 133 points)",
            part_table=halpe_parts,
            layouts=(136, 133),
            crowd_ignored=False,
            ignore_key="ignore",
            drop_per_part=False,
            rank_by_part_score=False,
            area_from_all_points=True,
            coords_float32=True,
            zero_id_unmatched=True,
            allow_sigmas_float32=False,
        ),
        InstanceProtocol(
            name="nme",
            description="face landmarks (68 / 98 / 29 points), one result per GT instance",
            run=lambda gt, results, name, thr: evaluate_nme(gt, results, name=name),
        ),
        InstanceProtocol(
            name="pck",
            description="hands (PCK, AUC, EPE), one result per GT instance",
            run=lambda gt, results, name, thr: evaluate_pck(gt, results, thr=thr, name=name),
        ),
    )
}


def eval_protocol(name: str | EvalProtocol) -> EvalProtocol:
    """The COCOeval-style protocol called ``name`` (coco-wholebody, halpe); one-line UserError if none is."""
    if isinstance(name, EvalProtocol):
        return name
    protocol = PROTOCOLS.get(name)
    if not isinstance(protocol, EvalProtocol):
        choices = ", ".join(n for n, p in PROTOCOLS.items() if isinstance(p, EvalProtocol))
        kind = "" if protocol is None else " detection-matching"
        raise UserError(f"unknown{kind} evaluation protocol '{name}' (choose from {choices})")
    return protocol
