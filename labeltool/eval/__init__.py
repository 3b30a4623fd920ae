"""Evaluation with the official COCO-WholeBody protocol (xtcocotools' COCOeval as mmpose drives it), vectorised,
and AlphaPose's Halpe protocol (halpecocotools) on one engine, and face NME / hand PCK; each protocol is
one entry of ``PROTOCOLS`` (labeltool/eval/protocols.py).

Public API::

    evaluate(gt, results, *, protocol="coco-wholebody", layout=None, sigmas_float32=False, parts=None, name="")
        -> EvalReport; protocol="halpe": halpecocotools' parts body, foot, face, hand, fullbody;
        protocol may also be an EvalProtocol (the COCOeval-style entries of PROTOCOLS).
        gt: json path or PoseDataset (133 COCO-WholeBody, 136 Halpe, 26 Halpe, 17 COCO);
        results: json path, list of result dicts, or Predictions. report.stat("face", "AP"),
        report.as_dict() -> {part: {"AP": ..., ..., "ARL": ...}} (fractions; -1 = undefined).

    compute_oks(pred, gt, areas, sigmas, boxes=None, *, sigmas_float32=False) -> ndarray
        pred (..., K, 2|3), gt (..., K, 3) with visibility, areas (...), sigmas (K,), boxes (..., 4)
        xywh or None; leading axes broadcast, so compute_oks(p[:, None], g[None], a[None], s) is
        the (D, G) OKS matrix (e.g. for OKS-NMS) and equal leading shapes give one OKS per pair.
        Only points with visibility > 0 count; a reference with none counts 0 (or, with boxes,
        the COCOeval distance to its box grown 3x).

    predictions_from_arrays(keypoints, image_ids, scores, category_ids=None, part_scores=None)
        -> Predictions, to evaluate a model's output without writing json.

    labeltool.eval.nme.evaluate_nme(gt, results) / labeltool.eval.pck.evaluate_pck(gt, results, thr=0.2)
        -> MetricReport: face NME and hand PCK / AUC / EPE, one result per GT instance, with
        mmpose's numbers (keypoint_nme, keypoint_pck_accuracy, keypoint_auc, keypoint_epe).

Importing this package needs numpy only (no mediapipe, no torch).
"""

from labeltool.eval.evaluator import STAT_NAMES, EvalReport, PartResult, evaluate
from labeltool.eval.oks import compute_oks
from labeltool.eval.predictions import Predictions, load_predictions, predictions_from_arrays
from labeltool.eval.protocols import PROTOCOLS, EvalProtocol

__all__ = [
    "STAT_NAMES",
    "PROTOCOLS",
    "EvalProtocol",
    "EvalReport",
    "PartResult",
    "Predictions",
    "compute_oks",
    "evaluate",
    "load_predictions",
    "predictions_from_arrays",
]
