"""``wbt report``: a self-contained HTML label-quality report (every image inline as base64 PNG).

Sections: per-part counts and acceptance rates (the merge outcome per part when the labels
come from ``labels.parquet``), histograms of labelled points per person and of the teachers'
confidence (matplotlib, Agg), the review queue's most suspicious persons with rendered crops,
and with ``--gt`` the per-part AP of the labels against that ground truth (``labeltool.eval``).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.io.atomic import write_bytes_atomic
from labeltool.io.paths import image_path
from labeltool.io.pose import PoseDataset
from labeltool.label_codes import ACCEPTED
from labeltool.review.labels import ReviewLabels
from labeltool.review.queue import QueueEntry, review_queue

CROP_SIZE = 224

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.note { color: #666; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { width: 232px; border: 1px solid #ccc; padding: 4px; font-size: 12px; }
.card img { width: 224px; height: 224px; display: block; }
"""


def png_data_uri(rgb: np.ndarray) -> str:
    """An RGB uint8 image as a ``data:image/png;base64`` URI."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _figure_uri(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def part_counts(labels: ReviewLabels) -> list[list]:
    """Rows: part, persons with the part labelled, acceptance rate, mean labelled points, mean confidence."""
    ds = labels.dataset
    persons = ~ds.iscrowd.astype(bool)
    n = int(persons.sum())
    teacher = labels.is_teacher_point() if labels.confidence is not None else None
    rows = []
    for part, idx in ds.layout.parts.items():
        labelled = ds.keypoints[persons][:, idx, 2] > 0
        has = labelled.any(axis=1)
        mean_pts = float(labelled[has].sum(axis=1).mean()) if has.any() else 0.0
        conf = "-"
        if teacher is not None:
            sel = teacher[persons][:, idx]
            if sel.any():
                conf = f"{float(labels.confidence[persons][:, idx][sel].mean()):.3f}"
        rate = f"{100 * has.sum() / n:.1f}%" if n else "-"
        rows.append([part, int(has.sum()), rate, f"{mean_pts:.1f} / {len(idx)}", conf])
    return rows


def status_rows(labels: ReviewLabels) -> tuple[list[str], list[list]]:
    """The merge outcome per part (labels.parquet): header and one row per part."""
    statuses = sorted({s for values in labels.part_status.values() for s in values}, key=lambda s: (s != ACCEPTED, s))
    rows = []
    for part, values in labels.part_status.items():
        counts = Counter(values)
        rows.append([part, *[counts.get(s, 0) for s in statuses]])
    return ["part", *statuses], rows


def histograms_uri(labels: ReviewLabels) -> str:
    """One PNG: labelled points per person for each part, and teacher confidence per part when known."""
    from matplotlib.figure import Figure

    ds = labels.dataset
    parts = list(ds.layout.parts)
    rows = 2 if labels.confidence is not None else 1
    fig = Figure(figsize=(3.0 * len(parts), 2.6 * rows), dpi=80)
    axes = fig.subplots(rows, len(parts), squeeze=False)
    persons = ~ds.iscrowd.astype(bool)
    teacher = labels.is_teacher_point() if labels.confidence is not None else None
    for col, part in enumerate(parts):
        idx = ds.layout.parts[part]
        counts = (ds.keypoints[persons][:, idx, 2] > 0).sum(axis=1)
        ax = axes[0, col]
        ax.hist(counts, bins=np.arange(len(idx) + 2) - 0.5, color="#4363d8")
        ax.set_title(f"{part}: labelled points", fontsize=9)
        ax.tick_params(labelsize=7)
        if teacher is not None:
            ax = axes[1, col]
            values = labels.confidence[persons][:, idx][teacher[persons][:, idx]]
            if len(values):
                ax.hist(values, bins=np.linspace(0, 1, 21), color="#f58231")
            else:
                ax.text(0.5, 0.5, "no teacher points", ha="center", va="center", fontsize=9, transform=ax.transAxes)
                ax.set_yticks([])
            ax.set_title(f"{part}: teacher confidence (n={len(values)})", fontsize=9)
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _figure_uri(fig)


def crop_cards(ds: PoseDataset, entries: list[QueueEntry], images_dir: str | os.PathLike) -> str:
    """HTML cards of the queue's persons: a rendered crop each, with the reasons."""
    from labeltool.images import read_rgb
    from labeltool.review.render import render_person_crop

    images = ds.image_index()
    cards, cache = [], {}
    for rank, e in enumerate(entries, 1):
        im = images[e.image_id]
        if e.image_id not in cache:
            path = image_path(images_dir, im)
            if not path.is_file():
                raise UserError(f"{path}: image file not found (image id {e.image_id} in {ds.path})")
            cache = {e.image_id: read_rgb(path)}  # keep one decoded image: entries of an image are often adjacent
        crop = render_person_crop(
            cache[e.image_id], ds.keypoints[e.index], ds.layout, ds.bboxes[e.index], size=CROP_SIZE
        )
        reasons = "".join(f"<li>{html.escape(f'{f.kind} {f.part}: {f.detail}')}</li>" for f in e.flags)
        score = detector_score(ds, e.index)
        det = f" &middot; detector box {score:.2f}" if score is not None else ""
        cards.append(
            f'<div class="card"><img alt="person {e.ann_id}" src="{png_data_uri(crop)}">'
            f"<b>#{rank}</b> ann {e.ann_id} &middot; {html.escape(str(im['file_name']))}<br>"
            f"suspicion {e.suspicion:.3f}{det}<ul>{reasons}</ul></div>"
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def detector_score(ds: PoseDataset, i: int) -> float | None:
    """The detector's score of person ``i``'s box (``score`` of a detected person's annotation), else None."""
    score = ds.annotations[i].get("score") if ds.annotations else None
    return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


def detector_rows(ds: PoseDataset) -> list[list] | None:
    """[[persons with a detector box, min, median, max score]] when the persons come from a detector, else None."""
    scores = [s for s in (detector_score(ds, i) for i in range(len(ds))) if s is not None]
    if not scores:
        return None
    return [[len(scores), f"{min(scores):.2f}", f"{float(np.median(scores)):.2f}", f"{max(scores):.2f}"]]


def ap_table(labels: ReviewLabels, gt_path: str | os.PathLike) -> tuple[str, dict]:
    """Per-part AP of the labels (as detections) against ``gt_path``, on the images both share."""
    from labeltool.eval.evaluator import STAT_NAMES, evaluate, load_ground_truth
    from labeltool.eval.predictions import predictions_from_arrays

    gt = load_ground_truth(gt_path)
    ds = labels.dataset
    confidence = labels.confidence
    if ds.layout is not gt.layout:
        from labeltool.convert import convert_dataset

        ds = convert_dataset(ds, gt.layout)
        confidence = None
    gt_images = {int(im["id"]) for im in gt.images}
    keep = np.array([int(i) in gt_images for i in ds.image_ids], dtype=bool) & ~ds.iscrowd.astype(bool)
    if not keep.any():
        raise UserError(f"{gt_path}: shares no image id with the labels ({ds.path})")
    kpts = ds.keypoints[keep].copy()
    labelled = kpts[:, :, 2] > 0
    scores = confidence[keep] if confidence is not None else np.ones(labelled.shape)
    kpts[:, :, 2] = np.where(labelled, np.maximum(scores, 1e-3), 0.0)
    person_score = np.array([kpts[i, labelled[i], 2].mean() if labelled[i].any() else 0.0 for i in range(len(kpts))])
    preds = predictions_from_arrays(kpts, ds.image_ids[keep], person_score, ds.category_ids[keep])
    shared = set(ds.image_ids[keep].tolist())
    gt_sub = replace(
        gt.subset(np.nonzero(np.isin(gt.image_ids, list(shared)))[0]),
        images=[im for im in gt.images if int(im["id"]) in shared],
    )
    report = evaluate(gt_sub, preds)
    rows = [[part, *[f"{100 * v:.1f}" if v >= 0 else "-" for v in report.results[part].stats]] for part in report.parts]
    note = (
        f'<p class="note">{int(keep.sum())} labelled persons on {len(gt_sub.images)} images of {html.escape(str(gt_path))} '
        f"({len(gt_sub)} GT persons); point scores are the teachers' confidence (1 without it).</p>"
    )
    return note + _table(["part", *STAT_NAMES], rows), report.as_dict()


def build_report(
    labels: ReviewLabels, images_dir: str | os.PathLike, gt_path: str | os.PathLike | None = None, top: int = 12
) -> tuple[str, str]:
    """(html, one-line summary) of the report."""
    ds = labels.dataset
    entries = review_queue(labels)
    shown = entries[:top]
    # the parts that read other files first: a bad --gt or image fails before the plots are drawn
    ap = ap_table(labels, gt_path) if gt_path is not None else None
    cards = crop_cards(ds, shown, images_dir) if shown else "<p>Nothing flagged.</p>"
    sections = [
        f"<h1>wbt label-quality report</h1><p>{html.escape(str(ds.path))}: {len(ds)} persons on "
        f"{len(ds.images)} images, {ds.layout.name} layout; "
        + ("teacher confidence and sources present." if labels.has_confidence else "no teacher confidence (json).")
        + "</p>",
        "<h2>Parts</h2>"
        + _table(
            ["part", "persons labelled", "acceptance", "points per labelled person", "mean teacher conf."],
            part_counts(labels),
        )
        + '<p class="note">Acceptance: persons (not crowd) with at least one labelled point of the part.</p>',
    ]
    detected = detector_rows(ds)
    if detected is not None:
        sections.append("<h3>Person detector boxes</h3>" + _table(["persons", "min score", "median", "max"], detected)
                        + '<p class="note">Boxes and scores of the detector the persons came from '
                          "(wbt distill --images; OUT/detections.json).</p>")
    if labels.part_status:
        header, rows = status_rows(labels)
        sections.append("<h3>Merge outcome per part</h3>" + _table(header, rows))
    sections.append(f'<h2>Histograms</h2><img alt="histograms" src="{histograms_uri(labels)}">')
    sections.append(
        f"<h2>Review queue</h2><p>{len(entries)} of {len(ds)} persons flagged; the {len(shown)} most suspicious:</p>"
        + cards
    )
    summary = f"{len(ds)} persons, {len(entries)} flagged"
    if ap is not None:
        table, stats = ap
        sections.append("<h2>AP against the ground truth</h2>" + table)
        if "wholebody" in stats:
            summary += f", wholebody AP {100 * stats['wholebody']['AP']:.1f}"
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>wbt label-quality report</title>'
        f"<style>{STYLE}</style></head><body>" + "\n".join(sections) + "</body></html>\n"
    )
    return page, summary


def write_report(
    labels: ReviewLabels,
    images_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    gt_path: str | os.PathLike | None = None,
    top: int = 12,
) -> str:
    """Write the HTML report atomically; returns a one-line summary."""
    if not Path(images_dir).is_dir():
        raise UserError(f"{images_dir}: image directory not found")
    page, summary = build_report(labels, images_dir, gt_path, top)
    write_bytes_atomic(page.encode("utf-8"), out_path)
    return summary
