"""`wbt eval`: evaluate keypoint results with the official COCO-WholeBody protocol, or another named one
(the choices, their help and what runs them come from labeltool.eval.protocols.PROTOCOLS)."""

from __future__ import annotations

from pathlib import Path

import click

from labeltool.errors import UserError
from labeltool.eval.protocols import PROTOCOLS, EvalProtocol

LAYOUT_CHOICES = ("133", "136", "26", "17")
OKS_ONLY_FLAGS = ("--pr-curves", "--sigmas-float32", "--layout")  # options of the COCOeval-style protocols only


@click.command("eval")
@click.option(
    "--gt",
    "gt_path",
    required=True,
    metavar="GT",
    help="Ground truth json: COCO-WholeBody (133) or Halpe (136); a face / hand set for nme / pck.",
)
@click.option("--pred", "pred_path", metavar="PRED", help="Results json: a list of {image_id, category_id, keypoints, score}.")
@click.option(
    "--compare",
    "compare",
    multiple=True,
    metavar="A.json [B.json ...]",
    help="More results files to put side by side (rows = methods).",
)
@click.argument("more", nargs=-1, metavar="")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table", show_default=True)
@click.option("--out", "out_path", metavar="FILE", help="Also write the output to FILE (atomically).")
@click.option(
    "--protocol",
    type=click.Choice(list(PROTOCOLS)),
    default="coco-wholebody",
    show_default=True,
    help="; ".join(f"{p.name}: {p.description}" for p in PROTOCOLS.values()) + ".",
)
@click.option("--thr", type=float, default=0.2, show_default=True, help="PCK threshold, of the GT box's larger side (pck).")
@click.option("--layout", type=click.Choice(LAYOUT_CHOICES), help="Force the GT layout (default: detected).")
@click.option("--sigmas-float32", is_flag=True, help="Round sigmas to float32 like mmpose (default float64, official).")
@click.option("--pr-curves", "pr_dir", metavar="DIR", help="Write a precision-recall PNG per part into DIR.")
def eval_command(
    gt_path: str,
    pred_path: str | None,
    compare: tuple[str, ...],
    more: tuple[str, ...],
    fmt: str,
    out_path: str | None,
    protocol: str,
    thr: float,
    layout: str | None,
    sigmas_float32: bool,
    pr_dir: str | None,
) -> None:
    """Per-part AP / AR (body, foot, face, lefthand, righthand, wholebody), identical to xtcocotools;
    other protocols with --protocol (below), each identical to its reference.

    \b
    wbt eval --gt coco_wholebody_val_v1.0.json --pred results.json
    wbt eval --gt val136.json --pred a.json --compare b.json c.json --format markdown
    wbt eval --protocol halpe --gt halpe_val_v1.json --pred alphapose-results.json
    wbt eval --protocol nme --gt 300w_test.json --pred faces.json
    """
    from labeltool.eval.evaluator import evaluate, load_ground_truth
    from labeltool.eval.report import format_metric_reports, format_reports, write_pr_curves, write_text_atomic

    if more and not compare:
        raise UserError(f"unexpected argument {more[0]!r} (results files go after --pred or --compare)")
    files = [p for p in (pred_path, *compare, *more) if p]
    if not files:
        raise UserError("give the results to evaluate with --pred PRED (and --compare A.json B.json ... for more)")
    names = _method_names(files)
    if out_path:
        from labeltool.io.atomic import check_output_not_input

        check_output_not_input(out_path, {"--gt": gt_path, **{f"results {f}": f for f in files}, "--pr-curves": pr_dir})
    chosen = PROTOCOLS[protocol]
    if isinstance(chosen, EvalProtocol):
        gt = load_ground_truth(gt_path, int(layout) if layout else None)
        reports = [evaluate(gt, f, protocol=chosen, sigmas_float32=sigmas_float32, name=n) for f, n in zip(files, names)]
        text = format_reports(reports, fmt)
    else:
        for flag, given in zip(OKS_ONLY_FLAGS, (pr_dir, sigmas_float32, layout)):
            if given:
                oks_names = [p.name for p in PROTOCOLS.values() if isinstance(p, EvalProtocol)]
                raise UserError(f"{flag} applies to the {' and '.join(oks_names)} protocols, not {protocol}")
        text = format_metric_reports([chosen.run(gt_path, f, n, thr) for f, n in zip(files, names)], fmt)
    if out_path:
        write_text_atomic(text, out_path)
    click.echo(text, nl=False)
    if pr_dir:
        for path in write_pr_curves(reports, pr_dir):
            click.echo(f"wrote {path}", err=True)


def _method_names(files: list[str]) -> list[str]:
    """File stems, or the full paths where two stems coincide."""
    stems = [Path(f).stem for f in files]
    return stems if len(set(stems)) == len(stems) else list(files)


COMMANDS: list[click.Command] = [eval_command]
