"""`wbt review export|import|queue` and `wbt report`: human review of the labels in CVAT or Label Studio."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from labeltool.errors import UserError


def review_order(labels, top: int | None) -> np.ndarray:
    """Persons to export: every person of the images holding the queue's persons, most suspicious image first.

    Images with no flagged person follow in file order, unless ``top`` limits the export to
    the images of the ``top`` most suspicious persons.
    """
    from labeltool.review.queue import review_queue

    ds = labels.dataset
    entries = review_queue(labels)
    if top is not None:
        entries = entries[:top]
    image_rank: dict[int, int] = {}
    for e in entries:
        image_rank.setdefault(e.image_id, len(image_rank))
    if top is None:
        for image_id in ds.image_ids.tolist():
            image_rank.setdefault(int(image_id), len(image_rank))
    keep = np.array([int(i) in image_rank for i in ds.image_ids], dtype=bool)
    index = np.nonzero(keep)[0]
    ranks = np.array([image_rank[int(ds.image_ids[i])] for i in index], dtype=np.int64)
    return index[np.argsort(ranks, kind="stable")]


@click.group("review")
def review() -> None:
    """Send labels to CVAT / Label Studio for correction and bring the corrections back."""


@review.command("export")
@click.argument("labels", type=click.Path(path_type=Path))
@click.option("--to", "tool", type=click.Choice(["cvat", "labelstudio"]), required=True, help="Annotation tool.")
@click.option("--images", "images_dir", type=click.Path(path_type=Path), required=True, help="Folder of the images.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option(
    "--top", type=click.IntRange(min=1), default=None, help="Only the images of the N most suspicious persons."
)
@click.option(
    "--image-url",
    default="/data/local-files/?d={file_name}",
    show_default=True,
    help="Label Studio: URL of each image ({file_name}, {image_id}).",
)
def export_command(labels: Path, tool: str, images_dir: Path, out_dir: Path, top: int | None, image_url: str) -> None:
    """Export LABELS (json or labels.parquet) for review, most suspicious persons first."""
    from labeltool.io.atomic import check_output_not_input, new_outputs_removed_on_error
    from labeltool.io.paths import check_images_exist
    from labeltool.review.labels import load_labels, with_image_sizes
    from labeltool.review.queue import person_suspicion

    check_output_not_input(out_dir, {"LABELS": labels, "--images": images_dir}, ())
    data = load_labels(labels)
    if data.dataset.layout.num_keypoints not in (133, 136):
        raise UserError(f"{labels}: has {data.dataset.layout.num_keypoints}-point labels; review needs 133 or 136")
    check_images_exist(data.dataset, images_dir)
    order = review_order(data, top)
    ds = with_image_sizes(data.dataset, images_dir)  # labels.parquet has no image sizes
    with new_outputs_removed_on_error(out_dir):  # a failed write (full disk) leaves no partial export
        if tool == "cvat":
            from labeltool.review.cvat import export_cvat

            written = export_cvat(ds, out_dir, order)
        else:
            from labeltool.review.labelstudio import export_labelstudio

            written = export_labelstudio(ds, out_dir, order, data.confidence, person_suspicion(data), image_url)
    n_images = len({int(data.dataset.image_ids[i]) for i in order})
    if not len(order):
        click.echo(
            "no person is flagged: nothing to export with --top (leave --top out to export everything)", err=True
        )
    click.echo(f"exported {len(order)} persons in {n_images} images for {tool}:")
    for path in written:
        click.echo(f"  {path}")


@review.command("import")
@click.argument("exported", type=click.Path(path_type=Path))
@click.option(
    "--to", "points", type=click.Choice(["133", "136"]), default="133", show_default=True, help="Output layout."
)
@click.option(
    "--out", "out_path", type=click.Path(path_type=Path), required=True, help="Output json (the reviewed GT)."
)
@click.option("--ref", "ref_path", type=click.Path(path_type=Path), default=None,
              help="The labels the export was made from: restores ids, boxes and exact values (CVAT needs it).")  # fmt: skip
@click.option("--annotated-only", is_flag=True, help="Label Studio: skip tasks nobody annotated.")
def import_command(exported: Path, points: str, out_path: Path, ref_path: Path | None, annotated_only: bool) -> None:
    """Import EXPORTED (a CVAT COCO Keypoints .zip/.json, or Label Studio's JSON export) as COCO-WholeBody / Halpe json."""
    from labeltool.io.atomic import check_output_not_input
    from labeltool.io.jsonfile import read_json
    from labeltool.io.pose import write_pose_dataset
    from labeltool.layouts import layout_for
    from labeltool.review.labels import load_labels

    check_output_not_input(out_path, {"EXPORTED": exported, "--ref": ref_path})
    ref = load_labels(ref_path).dataset if ref_path is not None else None
    if exported.suffix.lower() == ".zip":
        doc, where = None, str(exported)
    else:
        doc, where = read_json(exported), str(exported)
    if isinstance(doc, list):
        from labeltool.review.labelstudio import labelstudio_import

        ds, report = labelstudio_import(doc, where, ref, annotated_only)
        tool = "Label Studio"
    else:
        from labeltool.review.cvat import cvat_import, read_cvat_export

        if doc is None:
            doc, where = read_cvat_export(exported)
        ds, report = cvat_import(doc, where, ref)
        tool = "CVAT"
        if ref is None:  # after the import: an error stays the only line on stderr
            click.echo(
                "note: no --ref given: image ids, boxes and exact point values come from the CVAT file "
                "(CVAT renumbers images and rounds to 0.01 px)",
                err=True,
            )
    target = layout_for(int(points))
    if ds.layout is not target:
        from labeltool.convert import convert_dataset

        ds = convert_dataset(ds, target)
    write_pose_dataset(ds, out_path)
    click.echo(f"imported from {tool}: {report.summary()} -> {out_path} ({target.name})")


@review.command("queue")
@click.argument("labels", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="How many persons to list.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="Parts whose mean teacher confidence is below this are flagged (labels.parquet only).")  # fmt: skip
def queue_command(labels: Path, top: int, min_confidence: float) -> None:
    """Print the persons of LABELS most likely wrong, most suspicious first."""
    from labeltool.review.labels import load_labels
    from labeltool.review.queue import QueueRules, format_queue, review_queue

    data = load_labels(labels)
    entries = review_queue(data, QueueRules(min_confidence=min_confidence))
    signals = (
        "confidence, hand sides, box, part sizes"
        if data.has_confidence
        else "hand sides, box, part sizes (no confidence in a json)"
    )
    click.echo(f"{len(entries)} of {len(data.dataset)} persons flagged ({signals}); top {min(top, len(entries))}:")
    click.echo(format_queue(entries[:top]))


@click.command("report")
@click.argument("labels", type=click.Path(path_type=Path))
@click.option("--images", "images_dir", type=click.Path(path_type=Path), required=True, help="Folder of the images.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="Output HTML file.")
@click.option(
    "--gt", "gt_path", type=click.Path(path_type=Path), default=None, help="Ground truth: adds the per-part AP table."
)
@click.option(
    "--top", type=click.IntRange(min=0), default=12, show_default=True, help="Flagged persons shown with crops."
)
def report_command(labels: Path, images_dir: Path, out_path: Path, gt_path: Path | None, top: int) -> None:
    """A self-contained HTML label-quality report of LABELS."""
    from labeltool.io.atomic import check_output_not_input
    from labeltool.review.labels import load_labels
    from labeltool.review.report import write_report

    check_output_not_input(out_path, {"LABELS": labels, "--images": images_dir, "--gt": gt_path})
    data = load_labels(labels)
    summary = write_report(data, images_dir, out_path, gt_path=gt_path, top=top)
    click.echo(f"report: {summary} -> {out_path}")


review.add_command(export_command)
review.add_command(import_command)
review.add_command(queue_command)

COMMANDS: list[click.Command] = [review, report_command]
