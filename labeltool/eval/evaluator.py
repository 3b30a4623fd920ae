"""The COCO-WholeBody keypoint evaluation (xtcocotools' COCOeval as mmpose drives it), vectorised.

For every part (the layout's parts, then ``wholebody`` = all points) one COCOeval-style pass
with that part's sigmas and ``use_area=True``:

* ground truth: a person is ignored for the part when crowd or when none of the part's points
  has v > 0; for the medium / large ranges also when its ``area`` is outside the range;
* detections: dropped for the part when all their part point scores are <= 0; ranked per
  image by the part score (``foot_score``, ...; body uses ``score``), else ``score``; top 20;
* OKS with the part's sigmas and the person's ``area``; to a person with no labelled point
  it is the distance outside its box grown by its width / height on every side;
* greedy matching per image and OKS threshold (.50:.05:.95), then precision at 101 recall
  points; area ranges all / medium (32^2..96^2) / large (96^2..), maxDets 20.

All images are processed at once: OKS over every (detection, person) pair of the same image,
and the greedy matching advances one detection rank (at most 20 steps) for every image,
threshold and area range together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from labeltool.coco import PoseDataset, load_pose_dataset
from labeltool.errors import UserError
from labeltool.eval.oks import compute_oks
from labeltool.eval.predictions import Predictions, load_predictions
from labeltool.layouts import Layout, layout_for

STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
OKS_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0, 1e5**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
MAX_DETS = 20
_PAIR_CHUNK = 1 << 16  # keypoint values per OKS chunk: small enough to stay in cache


@dataclass
class PartResult:
    """One part's accumulated curves. precision: (T, R, C, A); recall: (T, C, A); -1 = undefined."""

    stats: np.ndarray  # (10,) in STAT_NAMES order; -1 where undefined (no ground truth)
    precision: np.ndarray
    recall: np.ndarray
    num_gt: int  # persons not ignored for this part (area range "all")
    num_dets: int  # detections evaluated for this part (after dropping and the top 20)


@dataclass
class EvalReport:
    """Results of :func:`evaluate`: per part the ten COCO stats (fractions, -1 = undefined)."""

    layout: str
    parts: tuple[str, ...]
    results: dict[str, PartResult]
    sigmas_float32: bool = False
    name: str = ""
    num_images: int = 0
    num_gt: int = 0
    num_dets: int = 0
    category_ids: tuple[int, ...] = field(default_factory=tuple)

    def stat(self, part: str, name: str) -> float:
        """One statistic, e.g. ``report.stat("face", "AP")``."""
        return float(self.results[part].stats[STAT_NAMES.index(name)])

    def as_dict(self) -> dict[str, dict[str, float]]:
        """{part: {stat: value}} with plain floats."""
        return {p: dict(zip(STAT_NAMES, self.results[p].stats.tolist())) for p in self.parts}


# --------------------------------------------------------------------------- public API


def evaluate(
    gt: str | os.PathLike | PoseDataset,
    results: str | os.PathLike | list | Predictions,
    *,
    layout: Layout | int | None = None,
    sigmas_float32: bool = False,
    parts: tuple[str, ...] | list[str] | None = None,
    name: str = "",
) -> EvalReport:
    """Evaluate keypoint results against ground truth with the official COCO-WholeBody protocol.

    gt: a COCO-WholeBody (133), Halpe (136), Halpe-26 or COCO (17) json path, or a loaded
        :class:`PoseDataset`. The layout is detected; ``layout`` (a Layout or 133 / 136) forces it.
    results: a results json path, its parsed list of dicts, or :class:`Predictions`.
    sigmas_float32: round the sigmas to float32 as mmpose does (default: float64, as the
        official COCO-WholeBody scripts).
    parts: a subset of the parts to evaluate (default: every part of the layout, then
        ``wholebody`` when the layout has more than one part).
    """
    if isinstance(layout, int):
        layout = layout_for(layout)
    if not isinstance(gt, PoseDataset):
        gt = load_ground_truth(gt, layout)
    elif layout is not None and gt.layout is not layout:
        raise UserError(f"{gt.path or 'ground truth'}: has the {gt.layout.name} layout, not {layout.name}")
    layout = gt.layout
    all_parts = _layout_parts(layout)
    parts = tuple(parts) if parts is not None else tuple(all_parts)
    for part in parts:
        if part not in all_parts:
            raise UserError(f"unknown part '{part}' for the {layout.name} layout (parts: {', '.join(all_parts)})")
    preds = load_results(gt, results)
    image_ids = np.unique(np.asarray([im["id"] for im in gt.images], dtype=np.int64))
    category_ids = _category_ids(gt)

    people = _GroundTruth.build(gt, image_ids, category_ids)
    dets = _Detections.build(preds, image_ids, category_ids, layout)
    out = {}
    for part in parts:
        idx = all_parts[part]
        sigmas = layout.sigmas[idx]
        out[part] = _evaluate_part(people, dets, part, idx, sigmas, sigmas_float32, len(category_ids))
    return EvalReport(
        layout=layout.name,
        parts=parts,
        results=out,
        sigmas_float32=sigmas_float32,
        name=name or str(preds.path or ""),
        num_images=len(image_ids),
        num_gt=len(people.keypoints),
        num_dets=len(preds),
        category_ids=tuple(int(c) for c in category_ids),
    )


def load_results(gt: PoseDataset, results: str | os.PathLike | list | Predictions) -> Predictions:
    """Read and validate results (path, parsed list, or :class:`Predictions`) against ``gt``."""
    gt_name = gt.path or "the ground truth"
    image_ids = np.unique(np.asarray([im["id"] for im in gt.images], dtype=np.int64))
    if not isinstance(results, Predictions):
        return load_predictions(results, gt.layout, image_ids, _category_ids(gt), gt_name=gt_name)
    name = results.path or "predictions"
    if results.keypoints.shape[1:] != (gt.layout.num_keypoints, 3):
        raise UserError(
            f"{name}: {results.keypoints.shape[1]} keypoints per detection, "
            f"the {gt.layout.name} ground truth has {gt.layout.num_keypoints}"
        )
    if not np.isfinite(results.keypoints).all() or not np.isfinite(results.scores).all():
        raise UserError(f"{name}: keypoints or scores contain NaN or infinity")
    if len(np.setdiff1d(results.image_ids, image_ids)):
        raise UserError(f"{name}: detections on images that are not in {gt_name}")
    return results


def load_ground_truth(path: str | os.PathLike, layout: Layout | int | None = None) -> PoseDataset:
    """Load a GT file; ``layout`` forces the layout of a file that has no annotations, and must
    otherwise agree with the detected one (one-line :class:`UserError` if not)."""
    if isinstance(layout, int):
        layout = layout_for(layout)
    gt = load_pose_dataset(path)
    if layout is None and len(gt) == 0:  # the layout would default to 17 points and blame the predictions
        raise UserError(f"{path}: the ground truth has no annotations (give --layout to evaluate against it anyway)")
    if layout is None or gt.layout is layout:
        return gt
    if len(gt) == 0:
        return replace(gt, layout=layout, keypoints=np.zeros((0, layout.num_keypoints, 3)))
    raise UserError(
        f"{path}: holds {gt.layout.num_keypoints}-point annotations ({gt.layout.name}), "
        f"not the {layout.num_keypoints}-point layout asked for"
    )


def _layout_parts(layout: Layout) -> dict[str, np.ndarray]:
    parts = dict(layout.parts)
    if len(parts) > 1:
        parts["wholebody"] = np.arange(layout.num_keypoints)
    return parts


def _category_ids(gt: PoseDataset) -> np.ndarray:
    """Ids in the ground truth's ``categories`` (those xtcocotools evaluates), else the ids its people use."""
    if gt.categories:
        return np.unique(np.asarray([c["id"] for c in gt.categories], dtype=np.int64))
    return np.unique(gt.category_ids) if len(gt.category_ids) else np.ones(1, np.int64)


# --------------------------------------------------------------------------- arrays per set


@dataclass
class _GroundTruth:
    """Persons on evaluated images and categories, sorted by (category, image), file order within."""

    keypoints: np.ndarray  # (G, K, 3)
    boxes: np.ndarray
    areas: np.ndarray
    crowd: np.ndarray  # bool
    group: np.ndarray  # (G,) index of the (category, image) group
    num_images: int

    @classmethod
    def build(cls, gt: PoseDataset, image_ids: np.ndarray, category_ids: np.ndarray) -> _GroundTruth:
        keep = np.isin(gt.image_ids, image_ids) & np.isin(gt.category_ids, category_ids)
        index = np.nonzero(keep)[0]
        group = _group_of(gt.category_ids[index], gt.image_ids[index], category_ids, image_ids)
        order = index[np.argsort(group, kind="stable")]
        return cls(
            keypoints=gt.keypoints[order],
            boxes=gt.bboxes[order],
            areas=gt.areas[order],
            crowd=gt.iscrowd[order] != 0,
            group=np.sort(group, kind="stable"),
            num_images=len(image_ids),
        )


@dataclass
class _Detections:
    keypoints: np.ndarray
    group: np.ndarray
    areas: np.ndarray
    preds: Predictions

    @classmethod
    def build(cls, preds: Predictions, image_ids: np.ndarray, category_ids: np.ndarray, layout: Layout) -> _Detections:
        keep = np.isin(preds.category_ids, category_ids)  # xtcocotools skips other categories
        group = np.full(len(preds), -1, np.int64)
        group[keep] = _group_of(preds.category_ids[keep], preds.image_ids[keep], category_ids, image_ids)
        return cls(keypoints=preds.keypoints, group=group, areas=preds.areas(layout), preds=preds)


def _group_of(cats: np.ndarray, images: np.ndarray, category_ids: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Group number category_rank * num_images + image_rank (image order = sorted ids, as COCOeval)."""
    return np.searchsorted(category_ids, cats) * len(image_ids) + np.searchsorted(image_ids, images)


# --------------------------------------------------------------------------- one part


def _evaluate_part(
    gt: _GroundTruth,
    dets: _Detections,
    part: str,
    idx: np.ndarray,
    sigmas: np.ndarray,
    sigmas_float32: bool,
    num_categories: int,
) -> PartResult:
    T, A = len(OKS_THRESHOLDS), len(AREA_RANGES)
    ranges = np.array(list(AREA_RANGES.values()))  # (A, 2)

    # ground truth: ignore flags per area range (A, G)
    idx = _as_slice(idx)
    g_kpts = gt.keypoints[:, idx]
    g_unlabelled = ~(g_kpts[:, :, 2] > 0).any(axis=1)
    g_ignore = gt.crowd | g_unlabelled
    g_ignore_a = g_ignore[None] | (gt.areas[None] < ranges[:, :1]) | (gt.areas[None] > ranges[:, 1:])
    num_groups = gt.num_images * num_categories
    g_start = np.searchsorted(gt.group, np.arange(num_groups + 1))
    g_count = np.diff(g_start)

    # detections: drop those without a positive point score in the part; rank per group; top 20
    d_all = np.nonzero((dets.group >= 0) & (dets.keypoints[:, idx, 2] > 0).any(axis=1))[0]
    score_all = dets.preds.ranking_scores(part)
    order = np.lexsort((d_all, -score_all[d_all], dets.group[d_all]))  # stable by file order
    d_sorted = d_all[order]
    d_group = dets.group[d_sorted]
    rank = np.arange(len(d_sorted)) - np.searchsorted(d_group, d_group)
    top = rank < MAX_DETS
    d_sorted, d_group, rank = d_sorted[top], d_group[top], rank[top]
    d_score = score_all[d_sorted]
    d_area = dets.areas[d_sorted]
    D = len(d_sorted)

    # every (detection, person) pair of a group, ordered by (rank, detection, person order)
    by_rank = np.argsort(rank, kind="stable")
    pair_count = g_count[d_group[by_rank]]
    pair_det = np.repeat(by_rank, pair_count)  # index into the D sorted detections
    seg_start = np.concatenate(([0], np.cumsum(pair_count)))
    local = np.arange(len(pair_det)) - np.repeat(seg_start[:-1], pair_count)
    pair_gt = g_start[d_group[pair_det]] + local
    oks = _pair_oks(dets.keypoints, d_sorted[pair_det], idx, gt, pair_gt, g_unlabelled, sigmas, sigmas_float32)

    # greedy matching, one detection rank at a time for every group, threshold and area range.
    # COCOeval scans persons non-ignored first, keeps the best OKS (ties: the later person) and
    # stops at the first ignored person once it holds a non-ignored match. So the match is the
    # eligible pair with the largest (not ignored, OKS, person order): one integer key per pair,
    # with OKS replaced by its rank among all pairs (exact: equal OKS, equal rank).
    g_max = max(1, int(g_count.max())) if len(g_count) else 1
    oks_rank = np.unique(oks, return_inverse=True)[1].reshape(-1) if len(oks) else np.zeros(0, np.int64)
    span = (len(oks) + 1) * g_max
    key = (2 - g_ignore_a[:, pair_gt]) * span + oks_rank * g_max + local  # (A, P)
    thr = np.tile(np.minimum(OKS_THRESHOLDS, 1 - 1e-10), A)[:, None]  # (A*T, 1), area-major
    area_row = np.repeat(np.arange(A), T)
    gt_taken = np.zeros((A * T, len(g_kpts)), dtype=bool)
    match = np.full((A * T, D), -1, dtype=np.int64)
    pair_rank = rank[pair_det]
    rank_bounds = np.searchsorted(pair_rank, np.arange(MAX_DETS + 1))
    for r in range(MAX_DETS):
        lo, hi = rank_bounds[r], rank_bounds[r + 1]
        if lo == hi:
            continue
        pg, pd = pair_gt[lo:hi], pair_det[lo:hi]
        eligible = (~gt_taken[:, pg] | gt.crowd[pg]) & (oks[lo:hi] >= thr)  # (A*T, S)
        starts = np.nonzero(np.r_[True, pd[1:] != pd[:-1]])[0]  # one segment per detection
        best = np.maximum.reduceat(np.where(eligible, key[area_row, lo:hi], -1), starts, axis=1)
        row, seg = np.nonzero(best >= 0)
        det = pd[starts[seg]]
        chosen = g_start[d_group[det]] + best[row, seg] % g_max
        match[row, det] = chosen
        gt_taken[row, chosen] = True

    # a matched detection takes its person's ignore flag; an unmatched one is ignored outside the range
    matched = match >= 0
    d_ignore = ((d_area[None] < ranges[:, :1]) | (d_area[None] > ranges[:, 1:]))[area_row]  # (A*T, D)
    row, col = np.nonzero(matched)
    d_ignore[row, col] = g_ignore_a[area_row[row], match[row, col]]
    return _accumulate(gt, g_ignore_a, d_group, d_score, matched, d_ignore, num_categories, D)


def _pair_oks(
    d_kpts: np.ndarray,
    pair_det: np.ndarray,
    idx: slice | np.ndarray,
    gt: _GroundTruth,
    pair_gt: np.ndarray,
    g_unlabelled: np.ndarray,
    sigmas: np.ndarray,
    sigmas_float32: bool,
) -> np.ndarray:
    """OKS of each (detection, person) pair, in chunks; persons with no labelled point apart,
    since only they need the box distance."""
    out = np.empty(len(pair_det))
    unl = g_unlabelled[pair_gt]
    step = max(1, _PAIR_CHUNK // max(1, len(sigmas)))
    for sel, boxes in ((np.nonzero(~unl)[0], False), (np.nonzero(unl)[0], True)):
        for lo in range(0, len(sel), step):
            s = sel[lo : lo + step]
            d, g = pair_det[s], pair_gt[s]
            out[s] = compute_oks(
                d_kpts[d, idx],
                gt.keypoints[g, idx],
                gt.areas[g],
                sigmas,
                gt.boxes[g] if boxes else None,
                sigmas_float32=sigmas_float32,
            )
    return out


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """A contiguous index range as a slice (a view, no copy); other index arrays unchanged."""
    idx = np.asarray(idx)
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def _accumulate(
    gt: _GroundTruth,
    g_ignore_a: np.ndarray,
    d_group: np.ndarray,
    d_score: np.ndarray,
    matched: np.ndarray,
    d_ignore: np.ndarray,
    num_categories: int,
    num_dets: int,
) -> PartResult:
    """Precision / recall as COCOeval.accumulate, then the ten summary stats."""
    T, R, A = len(OKS_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES)
    C = num_categories
    precision = -np.ones((T, R, C, A))
    recall = -np.ones((T, C, A))
    g_cat = gt.group // gt.num_images
    d_cat = d_group // gt.num_images
    d_image = d_group % gt.num_images
    # COCOeval concatenates images in id order (each already by score), then sorts stably by score
    order = np.lexsort((np.arange(len(d_group)), d_image, -d_score))
    for c in range(C):
        dsel = order[d_cat[order] == c]
        # persons to find per area range; none (this covers "no image with people or
        # detections" too) leaves the range undefined (-1)
        npig = np.count_nonzero(~g_ignore_a[:, g_cat == c], axis=1)  # (A,)
        rows = np.nonzero(np.repeat(npig > 0, T))[0]  # area-major rows (a * T + t) to accumulate
        if len(rows) == 0:
            continue
        keep = ~d_ignore[rows][:, dsel]
        hit = matched[rows][:, dsel]
        tp_sum = np.cumsum(hit & keep, axis=1).astype(np.float64)
        fp_sum = np.cumsum(~hit & keep, axis=1).astype(np.float64)
        nd = tp_sum.shape[1]
        rc = tp_sum / np.repeat(npig, T)[rows, None]
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
        for i, row in enumerate(rows):
            a, t = divmod(int(row), T)
            recall[t, c, a] = rc[i, -1] if nd else 0
            inds = np.searchsorted(rc[i], RECALL_THRESHOLDS, side="left")
            ok = inds < nd
            q = np.zeros(R)
            q[ok] = pr[i, inds[ok]]
            precision[t, :, c, a] = q
    stats = _summarize(precision, recall)
    return PartResult(
        stats=stats,
        precision=precision,
        recall=recall,
        num_gt=int(np.count_nonzero(~g_ignore_a[0])),
        num_dets=num_dets,
    )


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """The ten keypoint stats of COCOeval.summarize (mean over defined entries, -1 if none)."""
    names = list(AREA_RANGES)
    t50 = np.where(OKS_THRESHOLDS == 0.5)[0]
    t75 = np.where(OKS_THRESHOLDS == 0.75)[0]

    def mean(s: np.ndarray) -> float:
        s = s[s > -1]
        return -1.0 if s.size == 0 else float(np.mean(s))

    a_all, a_med, a_large = names.index("all"), names.index("medium"), names.index("large")
    return np.array(
        [
            mean(precision[:, :, :, a_all]),
            mean(precision[t50][:, :, :, a_all]),
            mean(precision[t75][:, :, :, a_all]),
            mean(precision[:, :, :, a_med]),
            mean(precision[:, :, :, a_large]),
            mean(recall[:, :, a_all]),
            mean(recall[t50][:, :, a_all]),
            mean(recall[t75][:, :, a_all]),
            mean(recall[:, :, a_med]),
            mean(recall[:, :, a_large]),
        ]
    )
