"""The reference: run xtcocotools' COCOeval exactly as mmpose's CocoWholeBodyMetric drives it.

Used by the parity tests and the speed benchmark; needs ``xtcocotools`` (a test-only
dependency, imported here lazily). For a layout other than COCO-WholeBody-133 (Halpe-136),
ground truth and results are first written in the split COCO-WholeBody keys part by part
(``keypoints`` = the layout's body part, ``foot_kpts``, ``face_kpts``, ...), which is what
"the same protocol with Halpe sigmas" means.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings

import numpy as np

from labeltool.layouts import PART_NAMES, WHOLEBODY_KPT_KEYS, Layout

STAT_COUNT = 10


def split_document(doc: dict, layout: Layout) -> dict:
    """A GT json whose annotations carry one key per part (COCO-WholeBody keys) in ``layout``'s parts."""
    out = dict(doc)
    out["annotations"] = [_split(ann, layout) for ann in doc["annotations"]]
    return out


def split_results(results: list[dict], layout: Layout) -> list[dict]:
    """Results with one key per part, as mmpose's ``results2json`` writes them from flat points."""
    return [_split(r, layout) for r in results]


def _split(ann: dict, layout: Layout) -> dict:
    out = dict(ann)
    if "foot_kpts" in ann and len(ann["keypoints"]) == 3 * len(layout.parts["body"]):
        return out  # already split
    flat = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    for part in PART_NAMES:
        idx = layout.parts.get(part, np.zeros(0, np.int64))
        out[WHOLEBODY_KPT_KEYS[part]] = flat[idx].reshape(-1).tolist()
    return out


def xtcocotools_stats(
    gt_doc: dict,
    results: list[dict],
    layout: Layout,
    parts: tuple[str, ...] | None = None,
    sigmas_float32: bool = False,
) -> dict[str, np.ndarray]:
    """{part: the ten stats} from xtcocotools for a GT json (split keys) and a results list.

    Inputs are deep-copied (xtcocotools writes into them). ``sigmas_float32`` passes the sigmas
    as float32 like mmpose; the default float64 matches the official COCO-WholeBody scripts.
    """
    from xtcocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coco = COCO()
        coco.dataset = copy.deepcopy(gt_doc)
        coco.createIndex()
        coco_det = coco.loadRes(copy.deepcopy(results))
    return xtcocotools_passes(coco, coco_det, layout, parts, sigmas_float32)


def xtcocotools_passes(
    coco,
    coco_det,
    layout: Layout,
    parts: tuple[str, ...] | None = None,
    sigmas_float32: bool = False,
) -> dict[str, np.ndarray]:
    """{part: the ten stats} from one xtcocotools COCOeval pass per part (``use_area=True``) on
    loaded ``COCO`` ground truth and ``loadRes`` detections (split part keys)."""
    from xtcocotools.cocoeval import COCOeval

    part_idx = dict(layout.parts)
    if len(part_idx) > 1:
        part_idx["wholebody"] = np.arange(layout.num_keypoints)
    parts = parts or tuple(part_idx)
    sigmas = layout.sigmas.astype(np.float32) if sigmas_float32 else layout.sigmas
    out = {}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in parts:
            iou_type = "keypoints_body" if part == "body" else f"keypoints_{part}"
            ev = COCOeval(coco, coco_det, iou_type, sigmas[part_idx[part]], use_area=True)
            ev.params.useSegm = None
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[part] = np.asarray(ev.stats, dtype=np.float64)
    return out
