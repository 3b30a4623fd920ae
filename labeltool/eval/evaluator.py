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
for all parts in one pass (a point has the same sigma in every part holding it, so only the
per-part sums differ), and the greedy matching advances one detection rank (at most 20 steps) for every image,
threshold and area range together.

The engine is shared by the COCOeval-style protocols: an :class:`EvalProtocol` entry of
:mod:`labeltool.eval.protocols` says what differs (parts and sigmas, which persons are ignored,
which detections enter a part, how they are ranked, how their area is measured, the float
precision of the points): COCO-WholeBody and AlphaPose's Halpe protocol.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from labeltool.errors import UserError
from labeltool.eval.oks import box_squared_distances, keypoint_vars, point_similarity, squared_distances
from labeltool.eval.predictions import Predictions, load_predictions
from labeltool.eval.protocols import COCO_WHOLEBODY, EvalProtocol, eval_protocol
from labeltool.io.pose import PoseDataset, load_pose_dataset
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
    protocol: str = COCO_WHOLEBODY.name
    protocol_title: str = COCO_WHOLEBODY.title
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
    protocol: str | EvalProtocol = COCO_WHOLEBODY,
    layout: Layout | int | None = None,
    sigmas_float32: bool = False,
    parts: tuple[str, ...] | list[str] | None = None,
    name: str = "",
) -> EvalReport:
    """Evaluate keypoint results against ground truth with the official COCO-WholeBody protocol
    (or ``protocol="halpe"``: AlphaPose's halpecocotools).

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
    protocol = eval_protocol(protocol)
    if layout.num_keypoints not in protocol.layouts:
        raise UserError(
            f"{gt.path or 'ground truth'}: the {protocol.name} protocol evaluates "
            f"{' or '.join(map(str, protocol.layouts))}-point files, not {layout.num_keypoints}-point ones"
        )
    if sigmas_float32 and not protocol.allow_sigmas_float32:
        raise UserError(f"the {protocol.name} protocol has its own float64 sigmas (no --sigmas-float32)")
    all_parts = protocol.part_table(layout)
    parts = tuple(parts) if parts is not None else tuple(all_parts)
    for part in parts:
        if part not in all_parts:
            raise UserError(f"unknown part '{part}' for the {layout.name} layout (parts: {', '.join(all_parts)})")
    preds = load_results(gt, results)
    image_ids = np.unique(np.asarray([im["id"] for im in gt.images], dtype=np.int64))
    category_ids = _category_ids(gt)

    people = _GroundTruth.build(gt, image_ids, category_ids, protocol)
    dets = _Detections.build(preds, image_ids, category_ids, layout, protocol)
    num_groups = len(image_ids) * len(category_ids)
    chosen = {part: _select_detections(dets, part, all_parts[part][0], protocol) for part in parts}
    used = np.unique(np.concatenate([c[0] for c in chosen.values()])) if chosen else np.zeros(0, np.int64)
    table = _OksTable.build(people, dets, used, {p: all_parts[p] for p in parts}, num_groups, sigmas_float32,
                            protocol.coords_float32)  # fmt: skip
    out = {}
    for part in parts:
        idx = all_parts[part][0]
        out[part] = _evaluate_part(people, dets, part, idx, len(category_ids), protocol, chosen[part], table)
    return EvalReport(
        layout=layout.name,
        parts=parts,
        results=out,
        protocol=protocol.name,
        protocol_title=protocol.title,
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
    ann_ids: np.ndarray
    ignored: np.ndarray  # bool: ignored for every part (crowd and / or the protocol's ignore key)
    group: np.ndarray  # (G,) index of the (category, image) group
    num_images: int

    @classmethod
    def build(cls, gt: PoseDataset, image_ids: np.ndarray, category_ids: np.ndarray, protocol: EvalProtocol) -> _GroundTruth:
        keep = np.isin(gt.image_ids, image_ids) & np.isin(gt.category_ids, category_ids)
        index = np.nonzero(keep)[0]
        group = _group_of(gt.category_ids[index], gt.image_ids[index], category_ids, image_ids)
        order = index[np.argsort(group, kind="stable")]
        crowd = gt.iscrowd[order] != 0
        ignored = crowd.copy() if protocol.crowd_ignored else np.zeros(len(order), bool)
        if protocol.ignore_key:
            ignored |= np.array([bool(gt.annotations[i].get(protocol.ignore_key, 0)) for i in order], dtype=bool)
        return cls(
            keypoints=gt.keypoints[order],
            boxes=gt.bboxes[order],
            areas=gt.areas[order],
            crowd=crowd,
            ann_ids=gt.ann_ids[order],
            ignored=ignored,
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
    def build(
        cls, preds: Predictions, image_ids: np.ndarray, category_ids: np.ndarray, layout: Layout, protocol: EvalProtocol
    ) -> _Detections:
        keep = np.isin(preds.category_ids, category_ids)  # xtcocotools skips other categories
        if not protocol.drop_per_part:  # halpecocotools drops a detection with no positive score at all
            keep &= (preds.keypoints[:, :, 2] > 0).any(axis=1)
        group = np.full(len(preds), -1, np.int64)
        group[keep] = _group_of(preds.category_ids[keep], preds.image_ids[keep], category_ids, image_ids)
        areas = preds.areas(layout, all_points=protocol.area_from_all_points)
        return cls(keypoints=preds.keypoints, group=group, areas=areas, preds=preds)


def _group_of(cats: np.ndarray, images: np.ndarray, category_ids: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Group number category_rank * num_images + image_rank (image order = sorted ids, as COCOeval)."""
    return np.searchsorted(category_ids, cats) * len(image_ids) + np.searchsorted(image_ids, images)


@dataclass
class _OksTable:
    """OKS of every (detection, person) pair of a group for every part at once. A point has the
    same sigma in every part that holds it (``wholebody`` = all points), so the per-point terms
    are computed once per pair and only the sums run per part: the whole-body pass costs no
    second OKS. Rows: detection by detection (ascending index), then its group's persons in order."""

    start: np.ndarray  # (D_all,) first row of each detection's pairs (-1: not in any part's top 20)
    oks: dict[str, np.ndarray]  # part -> (P,) OKS per row

    def lookup(self, part: str, det: np.ndarray, local: np.ndarray) -> np.ndarray:
        return self.oks[part][self.start[det] + local]

    @classmethod
    def build(
        cls,
        gt: _GroundTruth,
        dets: _Detections,
        used: np.ndarray,
        parts: dict[str, tuple[np.ndarray, np.ndarray]],
        num_groups: int,
        sigmas_float32: bool,
        coords_float32: bool,
    ) -> _OksTable:
        """Parts must be index ranges (every layout's and protocol's are) giving each point one sigma."""
        k = dets.keypoints.shape[1]
        sigma_all = np.full(k, np.nan)
        bounds = {}
        for part, (idx, sigmas) in parts.items():
            sl = _as_slice(idx)
            if not isinstance(sl, slice) or np.any((sigma_all[sl] != sigmas) & ~np.isnan(sigma_all[sl])):
                raise ValueError(f"part {part!r}: not an index range, or its sigmas differ from another part's")
            sigma_all[sl] = sigmas
            bounds[part] = (sl.start, sl.stop)
        var = keypoint_vars(np.nan_to_num(sigma_all, nan=1.0), sigmas_float32)
        g_start = np.searchsorted(gt.group, np.arange(num_groups + 1))
        count = np.diff(g_start)[dets.group[used]]
        start = np.full(len(dets.keypoints), -1, np.int64)
        start[used] = np.concatenate(([0], np.cumsum(count)[:-1])) if len(used) else np.zeros(0, np.int64)
        pair_det = np.repeat(used, count)
        local = np.arange(len(pair_det)) - np.repeat(start[used], count)
        pair_gt = g_start[dets.group[pair_det]] + local
        oks = {part: np.empty(len(pair_det)) for part in parts}
        dtype = np.float32 if coords_float32 else np.float64
        g_visible = gt.keypoints[:, :, 2].astype(dtype) > 0  # as the OKS reads it (float32 for Halpe)
        per_person = {  # part -> (visible count, no labelled point) per person
            part: (g_visible[:, a:b].sum(axis=1), ~(gt.keypoints[:, a:b, 2] > 0).any(axis=1))
            for part, (a, b) in bounds.items()
        }
        step = max(1, _PAIR_CHUNK // max(1, k))
        for lo in range(0, len(pair_det), step):
            pd, pg = pair_det[lo : lo + step], pair_gt[lo : lo + step]
            d = dets.keypoints[pd].astype(dtype, copy=False)
            e = point_similarity(squared_distances(d, gt.keypoints[pg].astype(dtype, copy=False)), var, gt.areas[pg])
            e *= g_visible[pg]
            for part, (a, b) in bounds.items():
                count, unlabelled = per_person[part]
                n = count[pg]
                value = np.divide(e[:, a:b].sum(axis=-1), n, out=np.zeros(len(pg)), where=n > 0)
                unl = np.nonzero(unlabelled[pg])[0]
                if len(unl):  # no labelled point in the part: distance to the box grown 3x
                    box = box_squared_distances(d[unl, a:b], gt.boxes[pg[unl]])
                    value[unl] = point_similarity(box, var[a:b], gt.areas[pg[unl]]).sum(axis=-1) / (b - a)
                oks[part][lo : lo + step] = value
        return cls(start=start, oks=oks)


# --------------------------------------------------------------------------- one part


def _select_detections(
    dets: _Detections, part: str, idx: np.ndarray, protocol: EvalProtocol
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The detections evaluated for ``part``: (indices, group, rank in group, ranking score),
    sorted by group then rank; those without a positive point score in the part dropped (when
    the protocol says so), ranked per group by score then file order, the top 20 kept."""
    d_ok = dets.group >= 0
    if protocol.drop_per_part:
        d_ok &= (dets.keypoints[:, _as_slice(idx), 2] > 0).any(axis=1)
    d_all = np.nonzero(d_ok)[0]
    score_all = dets.preds.ranking_scores(part) if protocol.rank_by_part_score else dets.preds.scores
    order = np.lexsort((d_all, -score_all[d_all], dets.group[d_all]))  # stable by file order
    d_sorted = d_all[order]
    d_group = dets.group[d_sorted]
    rank = np.arange(len(d_sorted)) - np.searchsorted(d_group, d_group)
    top = rank < MAX_DETS
    d_sorted, d_group, rank = d_sorted[top], d_group[top], rank[top]
    return d_sorted, d_group, rank, score_all[d_sorted]


def _evaluate_part(
    gt: _GroundTruth,
    dets: _Detections,
    part: str,
    idx: np.ndarray,
    num_categories: int,
    protocol: EvalProtocol,
    chosen: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    table: _OksTable,
) -> PartResult:
    """Match, accumulate and summarise one part, given its detections (:func:`_select_detections`)
    and the OKS of every pair (:class:`_OksTable`)."""
    T, A = len(OKS_THRESHOLDS), len(AREA_RANGES)
    ranges = np.array(list(AREA_RANGES.values()))  # (A, 2)

    # ground truth: ignore flags per area range (A, G)
    idx = _as_slice(idx)
    g_kpts = gt.keypoints[:, idx]
    g_unlabelled = ~(g_kpts[:, :, 2] > 0).any(axis=1)
    g_ignore = gt.ignored | g_unlabelled
    g_ignore_a = g_ignore[None] | (gt.areas[None] < ranges[:, :1]) | (gt.areas[None] > ranges[:, 1:])
    num_groups = gt.num_images * num_categories
    g_start = np.searchsorted(gt.group, np.arange(num_groups + 1))
    g_count = np.diff(g_start)

    # detections: drop those without a positive point score in the part; rank per group; top 20
    d_sorted, d_group, rank, d_score = chosen
    d_area = dets.areas[d_sorted]
    D = len(d_sorted)

    # every (detection, person) pair of a group, ordered by (rank, detection, person order)
    by_rank = np.argsort(rank, kind="stable")
    pair_count = g_count[d_group[by_rank]]
    pair_det = np.repeat(by_rank, pair_count)  # index into the D sorted detections
    seg_start = np.concatenate(([0], np.cumsum(pair_count)))
    local = np.arange(len(pair_det)) - np.repeat(seg_start[:-1], pair_count)
    pair_gt = g_start[d_group[pair_det]] + local
    oks = table.lookup(part, d_sorted[pair_det], local)

    # greedy matching, one detection rank at a time for every group, threshold and area range.
    # COCOeval scans persons non-ignored first, keeps the best OKS (ties: the later person) and
    # stops at the first ignored person once it holds a non-ignored match. So the match is the
    # eligible pair with the largest (not ignored, OKS, person order): one integer key per pair,
    # with OKS replaced by its rank among all pairs (exact: equal OKS, equal rank).
    g_max = max(1, int(g_count.max())) if len(g_count) else 1
    oks_rank = np.unique(oks, return_inverse=True)[1].reshape(-1) if len(oks) else np.zeros(0, np.int64)
    span = (len(oks) + 1) * g_max
    key = (2 - g_ignore_a[:, pair_gt].T) * span + (oks_rank * g_max + local)[:, None]  # (P, A)
    thr = np.minimum(OKS_THRESHOLDS, 1 - 1e-10)  # (T,)
    # pair-major arrays (pairs, A * T), area-major columns: the segment maxima run over rows
    gt_taken = np.zeros((len(g_kpts), A * T), dtype=bool)
    match = np.full((D, A * T), -1, dtype=np.int64)
    pair_rank = rank[pair_det]
    rank_bounds = np.searchsorted(pair_rank, np.arange(MAX_DETS + 1))
    for r in range(MAX_DETS):
        lo, hi = rank_bounds[r], rank_bounds[r + 1]
        if lo == hi:
            continue
        pg, pd = pair_gt[lo:hi], pair_det[lo:hi]
        eligible = (oks[lo:hi, None] >= thr)[:, None, :] & (~gt_taken[pg] | gt.crowd[pg, None]).reshape(-1, A, T)
        candidate = np.where(eligible, key[lo:hi, :, None], -1).reshape(hi - lo, A * T)
        starts = np.nonzero(np.r_[True, pd[1:] != pd[:-1]])[0]  # one segment per detection
        best = np.maximum.reduceat(candidate, starts, axis=0)  # (detections, A * T)
        det = pd[starts]  # each detection has one rank: its match row is filled once, here
        found = best >= 0
        person = np.where(found, g_start[d_group[det], None] + best % g_max, -1)
        match[det] = person
        gt_taken.reshape(-1)[(person * (A * T) + np.arange(A * T))[found]] = True
    match = np.ascontiguousarray(match.T)  # (A * T, D)

    # a matched detection takes its person's ignore flag; an unmatched one is ignored outside the range
    area_row = np.repeat(np.arange(A), T)
    matched = match >= 0
    outside = ((d_area[None] < ranges[:, :1]) | (d_area[None] > ranges[:, 1:]))[area_row]  # (A*T, D)
    d_ignore = outside.copy()
    if len(g_kpts):  # (match -1 reads the last person, masked off by `matched`)
        d_ignore = np.where(matched, g_ignore_a[area_row[:, None], match], outside)
    if protocol.zero_id_unmatched and len(g_kpts):  # COCOeval stores the person's id, and id 0 reads as "no match"
        zero = matched & (gt.ann_ids[match] == 0)
        d_ignore |= zero & outside
        matched &= ~zero
    return _accumulate(gt, g_ignore_a, d_group, d_score, matched, d_ignore, num_categories, D)


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
        all_rows = len(rows) == len(matched)
        keep = np.take(d_ignore if all_rows else d_ignore[rows], dsel, axis=1)
        np.logical_not(keep, out=keep)
        tp = np.take(matched if all_rows else matched[rows], dsel, axis=1)
        tp &= keep
        tp_count = np.cumsum(tp, axis=1)  # integers, so exact in float64 as COCOeval's
        tp_sum = tp_count.astype(np.float64)
        fp_sum = (np.cumsum(keep, axis=1) - tp_count).astype(np.float64)
        nd = tp_sum.shape[1]
        row_npig = np.repeat(npig, T)[rows]
        rc = tp_sum / row_npig[:, None]
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
        a_row, t_row = np.divmod(rows, T)
        recall[t_row, c, a_row] = rc[:, -1] if nd else 0
        # COCOeval: searchsorted(rc, RECALL_THRESHOLDS, "left") per row. rc = tp / npig only takes
        # the values k / npig, so find the least k reaching each threshold (the same division, so
        # exact), then the first detection with tp >= k, for all rows at once in one sorted array
        # (row r's integers offset by r * stride).
        k_needed = np.empty((len(rows), R), np.int64)
        for n in np.unique(row_npig):
            k_needed[row_npig == n] = np.searchsorted(np.arange(n + 1) / n, RECALL_THRESHOLDS, side="left")
        np.minimum(k_needed, nd + 1, out=k_needed)  # tp <= nd (it may exceed npig: matched crowds)
        stride = nd + 2
        offset = np.arange(len(rows))[:, None] * stride
        inds = np.searchsorted((tp_count + offset).reshape(-1), (k_needed + offset).reshape(-1), side="left")
        inds = inds.reshape(len(rows), R) - np.arange(len(rows))[:, None] * nd
        ok = inds < nd
        q = np.zeros((len(rows), R))
        q[ok] = pr[np.nonzero(ok)[0], inds[ok]]
        precision[t_row, :, c, a_row] = q
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
