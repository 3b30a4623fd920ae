"""Evaluation reports as text (table, markdown, csv, json) and precision-recall curve PNGs.

One report: rows = parts, columns = the ten stats. Several (``--compare``): rows = methods,
columns = AP and AR per part, like Table 1 of the COCO-WholeBody paper. Table, markdown and
csv are in percent; json keeps fractions. An undefined stat (no ground truth for the part,
COCOeval's -1) prints as ``-`` (csv: empty, json: null).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from labeltool.eval.evaluator import AREA_RANGES, OKS_THRESHOLDS, RECALL_THRESHOLDS, STAT_NAMES, EvalReport
from labeltool.io.atomic import write_bytes_atomic

FORMATS = ("table", "markdown", "csv", "json")


def format_reports(reports: list[EvalReport], fmt: str = "table") -> str:
    """``reports`` (one per prediction file) as text in ``fmt`` (table, markdown, csv or json)."""
    if fmt == "json":
        return json.dumps(_json(reports), indent=2) + "\n"
    if fmt == "csv":
        return _csv(reports)
    if len(reports) == 1:
        header = ["part", *STAT_NAMES]
        rows = [[part, *(_pct(v) for v in reports[0].results[part].stats)] for part in reports[0].parts]
    else:
        parts = reports[0].parts
        header = ["method", *(f"{part} {s}" for part in parts for s in ("AP", "AR"))]
        rows = [
            [r.name, *(_pct(r.stat(part, s)) for part in parts for s in ("AP", "AR"))]
            for r in reports
        ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    out = [_title(reports)]
    for row in [header, *rows]:
        out.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(out) + "\n"


def _title(reports: list[EvalReport]) -> str:
    r = reports[0]
    sig = "float32 (mmpose)" if r.sigmas_float32 else "float64 (official)"
    dets = ", ".join(f"{x.name}: {x.num_dets} detections" for x in reports)
    return f"{r.protocol_title}, {r.layout}, {r.num_images} images, {r.num_gt} persons; {dets}; sigmas {sig}; stats in %"


def _pct(v: float) -> str:
    return "-" if v < 0 else f"{100 * v:.1f}"


def _json(reports: list[EvalReport]) -> dict:
    r = reports[0]
    return {
        "protocol": f"{r.protocol}: {r.protocol_title}, maxDets 20",
        "layout": r.layout,
        "sigmas": "float32" if r.sigmas_float32 else "float64",
        "num_images": r.num_images,
        "num_persons": r.num_gt,
        "results": [
            {
                "name": x.name,
                "num_detections": x.num_dets,
                "stats": {p: {k: (None if v < 0 else v) for k, v in s.items()} for p, s in x.as_dict().items()},
            }
            for x in reports
        ],
    }


def _csv(reports: list[EvalReport]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "part", *STAT_NAMES])
    for r in reports:
        for part in r.parts:
            w.writerow([r.name, part, *("" if v < 0 else f"{100 * v:.4f}" for v in r.results[part].stats)])
    return buf.getvalue()


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` (UTF-8) through a temp file beside ``path`` and a rename (no half-written file)."""
    write_bytes_atomic(text.encode("utf-8"), path)


def write_pr_curves(reports: list[EvalReport], out_dir: str | os.PathLike) -> list[Path]:
    """One PNG per part (``pr_<part>.png``): precision vs recall, area "all", averaged over categories.

    Each method's solid curve averages the ten OKS thresholds (its area is AP); a single method
    also shows OKS .50 and .75 dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = list(AREA_RANGES).index("all")
    written = []
    for part in reports[0].parts:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for r in reports:
            prec = r.results[part].precision[:, :, :, a]  # (T, R, C)
            if (prec < 0).all():
                continue
            curve = _mean_defined(prec, axis=(0, 2))
            (line,) = ax.plot(RECALL_THRESHOLDS, curve, label=f"{r.name} AP {_pct(r.stat(part, 'AP'))}")
            if len(reports) == 1:
                for t, style in ((0.5, "--"), (0.75, ":")):
                    ti = int(np.nonzero(OKS_THRESHOLDS == t)[0][0])
                    ax.plot(RECALL_THRESHOLDS, _mean_defined(prec[ti], axis=1), style, color=line.get_color(),
                            label=f"OKS {t:.2f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{part} ({reports[0].layout})")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="lower left")
        path = out_dir / f"pr_{part}.png"
        png = io.BytesIO()
        try:
            fig.savefig(png, format="png")
        finally:
            plt.close(fig)
        write_bytes_atomic(png.getvalue(), path)
        written.append(path)
    return written


def _mean_defined(a: np.ndarray, axis) -> np.ndarray:
    ok = a > -1
    n = ok.sum(axis=axis)
    return np.where(n > 0, np.where(ok, a, 0).sum(axis=axis) / np.maximum(n, 1), np.nan)


def format_metric_reports(reports: list, fmt: str = "table") -> str:
    """Per-instance protocol reports (``MetricReport``: NME, PCK / AUC / EPE) as text: one row per
    method, one column per metric; fractions in percent (two decimals), pixels as they are."""
    r = reports[0]
    names = list(r.metrics)
    if fmt == "json":
        doc = {
            "protocol": f"{r.protocol}: {r.title}",
            "num_instances": r.num_instances,
            "num_points": r.num_points,
            "units": {n: r.units[n] for n in names},
            "results": [{"name": x.name, "metrics": x.as_dict()} for x in reports],
        }
        return json.dumps(doc, indent=2) + "\n"

    def cell(x, n: str, digits: int = 2) -> str:
        v = x.metrics[n]
        if v is None:  # undefined (no point counts): not 0.00, which would read as a result
            return "-"
        return f"{100 * v:.{digits}f}" if x.units[n] == "fraction" else f"{v:.{digits}f}"

    heads = [f"{n} ({'%' if r.units[n] == 'fraction' else r.units[n]})" for n in names]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", *heads])
        for x in reports:
            w.writerow([x.name, *(cell(x, n, 6) for n in names)])
        return buf.getvalue()
    header = ["method", *heads]
    rows = [[x.name, *(cell(x, n) for n in names)] for x in reports]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    out = [f"{r.title}, {r.num_instances} instances, {r.num_points} labelled points"]
    for row in [header, *rows]:
        out.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(out) + "\n"
