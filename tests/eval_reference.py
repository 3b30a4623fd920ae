"""The references: xtcocotools' COCOeval exactly as mmpose's CocoWholeBodyMetric drives it, and
halpecocotools' COCOeval as AlphaPose's ``evaluate_mAP(..., halpe=True)`` drives it.

Used by the parity tests and the speed benchmark; needs ``xtcocotools`` / ``halpecocotools``
(test-only dependencies, imported here lazily). For xtcocotools and a layout other than COCO-WholeBody-133 (Halpe-136),
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


def flat_document(doc: dict, layout: Layout) -> dict:
    """A GT json whose annotations hold one flat ``keypoints`` list of all the layout's points
    (what halpecocotools reads); COCO-WholeBody split keys are joined in part order."""
    out = dict(doc)
    out["annotations"] = [_flat(ann, layout) for ann in doc["annotations"]]
    return out


def _flat(ann: dict, layout: Layout) -> dict:
    if len(ann.get("keypoints", ())) == 3 * layout.num_keypoints:
        return dict(ann)
    out = {k: v for k, v in ann.items() if k not in WHOLEBODY_KPT_KEYS.values()}
    flat = np.zeros((layout.num_keypoints, 3))
    for part, idx in layout.parts.items():
        flat[idx] = np.asarray(ann[WHOLEBODY_KPT_KEYS[part]], dtype=np.float64).reshape(-1, 3)
    out["keypoints"] = flat.reshape(-1).tolist()
    return out


@contextlib.contextmanager
def _halpecocotools_shims():
    """halpecocotools predates numpy 1.24 (``np.float``) and imports ``tkinter._flatten`` (unused)
    in its OKS: restore the alias and, where tkinter is absent, stub it, for this call only."""
    import sys
    import types

    had_float = hasattr(np, "float")
    if not had_float:
        np.float = float
    stub = None
    try:
        import tkinter  # noqa: F401
    except ImportError:
        stub = types.ModuleType("tkinter")
        stub._flatten = lambda seq: seq
        sys.modules["tkinter"] = stub
    try:
        yield
    finally:
        if not had_float:
            del np.float
        if stub is not None and sys.modules.get("tkinter") is stub:
            del sys.modules["tkinter"]


def halpecocotools_stats(gt_doc: dict, results: list[dict]) -> dict[str, np.ndarray]:
    """{part: the ten stats} from halpecocotools as AlphaPose's ``evaluate_mAP(res, "keypoints",
    gt, halpe=True)`` runs it (one COCOeval, five parts); see :func:`halpecocotools_eval`."""
    ev = halpecocotools_eval(gt_doc, results)
    return {part: np.asarray(s[part], dtype=np.float64) for s in ev.stats for part in s}


def halpecocotools_eval(gt_doc: dict, results: list[dict]):
    """The summarized halpecocotools ``COCOeval`` (its ``ious`` hold the OKS per image and part).
    ``gt_doc`` and ``results`` hold flat
    136 x 3 or 133 x 3 ``keypoints``. The results go through a json file, as AlphaPose passes
    them (``loadRes`` of a list fails on Python 3: it names ``unicode``); the GT is deep-copied
    (halpecocotools writes into it)."""
    import json
    import tempfile

    with (
        _halpecocotools_shims(),
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
        tempfile.TemporaryDirectory() as tmp,
    ):
        warnings.simplefilter("ignore")
        from halpecocotools.coco import COCO
        from halpecocotools.cocoeval import COCOeval

        res_file = f"{tmp}/results.json"
        with open(res_file, "w") as f:
            json.dump(results, f)
        coco = COCO()
        coco.dataset = copy.deepcopy(gt_doc)
        coco.createIndex()
        coco_det = coco.loadRes(res_file)
        ev = COCOeval(coco, coco_det, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
