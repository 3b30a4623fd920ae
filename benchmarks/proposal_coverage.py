"""Coverage of the crop proposals on real COCO-WholeBody GT.

For each part: the share of labelled GT points that fall inside the box proposed from the
GT body keypoints, the IoU of the proposal with the GT part box (face / hands), and the
box side relative to the GT part box (how much larger than needed the proposal is).

    .venv/bin/python benchmarks/proposal_coverage.py --data ../shared/realdata
    .venv/bin/python benchmarks/proposal_coverage.py --gt coco_wholebody_val_v1.0.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import WHOLEBODY133
from labeltool.proposals import (
    box_iou,
    face_boxes_from_body,
    foot_boxes_from_body,
    hand_boxes_from_body,
    points_in_boxes,
    xywh_to_xyxy,
)

REPO = Path(__file__).resolve().parents[1]


def part_report(name: str, points: np.ndarray, boxes: np.ndarray, valid: np.ndarray, gt_boxes=None) -> dict:
    """Coverage / IoU / size figures of one part. points (N, K, 3) GT, boxes (N, 4) proposals."""
    labelled = points[:, :, 2] > 0
    has_part = labelled.any(axis=1)
    proposed = valid & has_part
    inside = points_in_boxes(points, boxes) & labelled & valid[:, None]
    row = {
        "part": name,
        "persons": int(has_part.sum()),
        "proposed": int(proposed.sum()),
        "points": int(labelled.sum()),
        "coverage": inside.sum() / max(labelled.sum(), 1),
        "coverage_proposed": inside.sum() / max(labelled[valid].sum(), 1),
        "iou": float("nan"),
        "size_ratio": float("nan"),
    }
    if gt_boxes is not None:
        gt = xywh_to_xyxy(gt_boxes)
        use = proposed & (gt_boxes[:, 2] > 0)
        if use.any():
            row["iou"] = float(box_iou(boxes[use], gt[use]).mean())
            gt_side = np.sqrt(gt_boxes[use, 2] * gt_boxes[use, 3])
            row["size_ratio"] = float(np.median((boxes[use, 2] - boxes[use, 0]) / np.maximum(gt_side, 1e-9)))
    return row


def coverage_table(gt_path: Path) -> list[dict]:
    ds = load_pose_dataset(gt_path)
    if ds.layout is not WHOLEBODY133:
        raise SystemExit(f"{gt_path}: expected a COCO-WholeBody file")
    kp = ds.keypoints
    body = kp[:, WHOLEBODY133.parts["body"]]
    parts = WHOLEBODY133.parts
    rows = []
    boxes, valid = face_boxes_from_body(body)
    face_gt = np.array([a.get("face_box", [0, 0, 0, 0]) for a in ds.annotations], dtype=np.float64)
    rows.append(part_report("face", kp[:, parts["face"]], boxes, valid, face_gt))
    for side in ("left", "right"):
        boxes, valid = hand_boxes_from_body(body, side)
        gt = np.array([a.get(f"{side}hand_box", [0, 0, 0, 0]) for a in ds.annotations], dtype=np.float64)
        rows.append(part_report(f"{side}hand", kp[:, parts[f"{side}hand"]], boxes, valid, gt))
    foot = kp[:, parts["foot"]]
    for side, idx in (("left", [0, 1, 2]), ("right", [3, 4, 5])):
        boxes, valid = foot_boxes_from_body(body, side)
        rows.append(part_report(f"{side}foot", foot[:, idx], boxes, valid))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--gt", type=Path, help="a COCO-WholeBody json (default: DATA/coco_wholebody/...)")
    args = parser.parse_args()
    gt = args.gt or args.data / "coco_wholebody" / "test_coco_wholebody.json"
    rows = coverage_table(gt)
    print(f"proposal coverage on {gt}")
    print(f"{'part':<10} {'persons':>7} {'proposed':>8} {'points':>6} {'covered':>8} {'cov|prop':>8} {'IoU':>6} {'side/GT':>7}")
    for r in rows:
        print(
            f"{r['part']:<10} {r['persons']:>7} {r['proposed']:>8} {r['points']:>6} {r['coverage']:>8.3f} "
            f"{r['coverage_proposed']:>8.3f} {r['iou']:>6.3f} {r['size_ratio']:>7.2f}"
        )
    print("covered: share of labelled GT points inside the proposal (a missing proposal counts as a miss);")
    print("cov|prop: the same among persons that got a proposal; side/GT: median box side / sqrt(GT box area)")


if __name__ == "__main__":
    main()
