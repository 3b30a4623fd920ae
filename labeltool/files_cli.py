"""`wbt convert` and `wbt render`: commands on label files."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from labeltool.datasets import format_names
from labeltool.errors import UserError
from labeltool.io.atomic import check_output_not_input
from labeltool.io.jsonfile import read_json
from labeltool.io.pose import load_pose_dataset, write_pose_dataset
from labeltool.io.results import read_results, results_dataset


@click.command("convert")
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Choice(["133", "136", "halpe26", "17", "openpose"]),
    help="133: COCO-WholeBody (split part keys); 136: Halpe (flat); halpe26; 17: COCO body; "
    "openpose: a directory of <image stem>_keypoints.json files.",
)
@click.option(
    "--format",
    "dataset_format",
    metavar="DATASET",
    help=f"The dataset IN is from ({format_names()}); default: detected from its content. See docs/formats.md.",
)
def convert_command(src: Path, dst: Path, target: str, dataset_format: str | None) -> None:
    """Convert a label file IN to another layout, written to OUT.

    IN: COCO / COCO-WholeBody / Halpe, or a body dataset (the names --format lists): their
    points go to COCO-17 by name (docs/formats.md).

    \b
    Examples:
      wbt convert coco_wholebody_val_v1.0.json val136.json --to 136
      wbt convert val136.json val133.json --to 133
      wbt convert val133.json openpose_val/ --to openpose
      wbt convert mmpose_crowdpose_test.json crowdpose17.json --to 17
    """
    from labeltool.convert import TARGETS, write_openpose
    from labeltool.datasets import read_body_dataset
    from labeltool.layouts import HALPE136

    check_output_not_input(dst, {"IN": src}, () if target == "openpose" else None, option="OUT")
    body = read_body_dataset(src, dataset_format)
    ds = body.native
    if target == "openpose":
        paths = write_openpose(body.to_layout(HALPE136), dst)
        click.echo(f"wrote {len(paths)} OpenPose files ({len(ds)} persons from {body.format.title}) to {dst}")
        return
    if dst.is_dir():
        raise UserError(f"{dst}: is a directory, expected an output json file name")
    layout = TARGETS[target]
    own = body.format.to_halpe136  # Halpe points the dataset has itself (CrowdPose's head top and neck, ...)
    derived_names = ("head", "neck", "hip") if own else ("neck", "hip")
    counts = dict.fromkeys(derived_names, 0)

    def converted():  # a part at a time: 10^6 persons never exist whole as 136-point arrays and json objects
        for part in body.to_layout_in_parts(layout):
            for name in counts if layout is HALPE136 else ():
                counts[name] += int((part.keypoints[:, HALPE136.index(name), 2] > 0).sum())
            yield part

    write_pose_dataset(converted(), dst)
    derived = ""
    if layout is HALPE136 and ds.layout is not HALPE136 and own:
        derived = "; " + ", ".join(
            f"{n} {c} ({'from the dataset' if n in own else 'unlabelled' if n == 'head' else 'derived'})"
            for n, c in counts.items()
        )
    elif layout is HALPE136 and ds.layout is not HALPE136:
        derived = f"; derived neck {counts['neck']}, hip {counts['hip']} (head top unlabelled)"
    click.echo(f"wrote {dst}: {len(ds)} persons, {ds.layout.name} -> {layout.name}{derived}")


@click.command("render")
@click.argument("labels", type=click.Path(path_type=Path))
@click.option("--images", "images_dir", required=True, type=click.Path(path_type=Path), help="Image directory.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--boxes", is_flag=True, help="Also draw person boxes (white) and part boxes (part colour).")
@click.option("--sheet", is_flag=True, help="Also write contact_sheet.png: crops of many persons in a grid.")
@click.option("--no-overlays", is_flag=True, help="Skip the per-image overlays (with --sheet: the sheet only).")
@click.option("--limit", type=click.IntRange(min=1), help="Render at most this many images.")
@click.option("--sheet-max", type=click.IntRange(min=1), default=100, show_default=True, help="Persons on the sheet.")
@click.option(
    "--gt",
    type=click.Path(path_type=Path),
    help="Ground-truth file whose images LABELS refers to, when LABELS is a results (predictions) list.",
)
@click.option(
    "--min-score",
    type=float,
    default=0.0,
    show_default=True,
    help="Draw points whose visibility / score is above this.",
)
def render_command(
    labels: Path,
    images_dir: Path,
    out_dir: Path,
    boxes: bool,
    sheet: bool,
    no_overlays: bool,
    limit: int | None,
    sheet_max: int,
    gt: Path | None,
    min_score: float,
) -> None:
    """Draw the labels of LABELS on their images: OUT/<file_name>.png per image, one colour per part.

    LABELS is a COCO / COCO-WholeBody / Halpe file (17, 26, 133 or 136 points), or a results
    list of predictions together with --gt for the image entries.

    \b
    Examples:
      wbt render pseudo133.json --images coco/train2017 --out review/ --limit 50 --sheet
      wbt render results.json --gt val133.json --images coco/val2017 --out review_pred/ --min-score 0.3
    """
    from labeltool.review.render import render_dataset

    if no_overlays and not sheet:
        raise UserError("--no-overlays without --sheet would write nothing")
    check_output_not_input(out_dir, {"LABELS": labels, "--images": images_dir, "--gt": gt}, ())
    if _peek_is_list(labels):
        if gt is None:
            read_json(labels)  # a broken file: say what is wrong with it first
            raise UserError(f"{labels}: is a results list; give --gt GT.json for its images")
        truth = load_pose_dataset(gt)
        image_ids = np.array([im["id"] for im in truth.images], dtype=np.int64)
        results = read_results(labels, image_ids=image_ids, gt_name=str(gt), required=("image_id",))
        ds = results_dataset(results, truth.images, truth.categories)
    else:
        ds = load_pose_dataset(labels)
    summary = render_dataset(
        ds,
        images_dir,
        out_dir,
        boxes=boxes,
        sheet=sheet,
        overlays=not no_overlays,
        limit=limit,
        sheet_max=sheet_max,
        min_score=min_score,
    )
    click.echo(f"wrote {len(summary.overlays)} overlays to {out_dir}")
    if summary.sheet:
        click.echo(f"wrote {summary.sheet} ({summary.persons_on_sheet} persons)")


def _peek_is_list(path: Path) -> bool:
    """Whether a json file's top level is a list (a results file), reading only its first bytes."""
    if not path.is_file():
        read_json(path)  # raises the usual one-line error
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[")


COMMANDS: list[click.Command] = [convert_command, render_command]
