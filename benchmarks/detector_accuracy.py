"""Person detector accuracy and speed on real photos: recall at IoU 0.5, COCO bbox AP (pycocotools), ms per image.

    python benchmarks/detector_accuracy.py [--detector mediapipe] [--min-score 0.3] [--wholebody] [--without-hog]

Sets, all from ../shared/realdata/coco_wholebody (4 COCO val images, 14 labelled persons):

- ``coco``: the 4 images as they are (COCO-like scenes; 2 of the 14 GT persons are under 35 px tall);
- ``mosaic2``: 4 composites of the 4 images at half size in a 2x2 grid (each image once, in
  rotated order, every other one mirrored): 14 persons each, 2x smaller, 4 scenes in one photo;
- ``mosaic3``: 2 composites at a third of the size in a 3x3 grid (the images repeated,
  mirrored): 31-32 persons per photo, 3x smaller (crowded and small people).

GT boxes are the non-crowd COCO boxes (persons without keypoints too, as COCO's bbox
protocol counts them). Recall: share of GT boxes matched one-to-one (greedy by score) by a
detection of IoU >= 0.5, from the detector run as a user runs it (``--min-box-score`` =
``--min-score``, 0.5); false boxes and time from that run too. AP: pycocotools' COCOeval bbox
on a second run keeping boxes down to 0.05 (AP .50:.95, AP50, AR100). ``--wholebody`` also runs wbt distill
(default teachers) on the ``coco`` set from the detector's boxes and from the GT boxes and
prints whole-body AP (wbt eval, COCO-WholeBody protocol) of both. ``--faces`` measures the
alternative the mediapipe wheel offers, its full-range face detector on the same views: the
share of GT persons with a face found in the top 40% of their box (an upper bound of what a
face-based person detector could find, before any body box is made from the face).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL = Path(os.environ.get("WBT_SHARED", REPO.parent / "shared")) / "realdata" / "coco_wholebody"

from labeltool.detectors.registry import build_detector, parse_detector  # noqa: E402
from labeltool.images import read_rgb  # noqa: E402
from labeltool.proposals import box_iou  # noqa: E402


def load_scenes(real: Path = REAL) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, GT boxes (N, 4) x0 y0 x1 y1) of the 4 real images in ``real``, in id order."""
    doc = json.loads((real / "test_coco_wholebody.json").read_text())
    out = []
    for im in sorted(doc["images"], key=lambda im: im["id"]):
        boxes = np.array([a["bbox"] for a in doc["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]])
        boxes[:, 2:] += boxes[:, :2]
        out.append((read_rgb(real / im["file_name"]), boxes))
    return out


def mosaic(scenes, grid: int, order: list[int], cell: tuple[int, int] = (640, 426)) -> tuple[np.ndarray, np.ndarray]:
    """``grid`` x ``grid`` composite: cell k holds scene order[k] resized to fit cell / grid (mirrored when k is odd)."""
    cw, ch = cell[0] // grid, cell[1] // grid
    canvas = np.zeros((ch * grid, cw * grid, 3), dtype=np.uint8)
    boxes = []
    for k, s in enumerate(order):
        image, gt = scenes[s]
        h, w = image.shape[:2]
        r = min(cw / w, ch / h)
        small = cv2.resize(image, (round(w * r), round(h * r)), interpolation=cv2.INTER_AREA)
        b = gt * r
        if k % 2:
            small = small[:, ::-1]
            b = np.stack([small.shape[1] - b[:, 2], b[:, 1], small.shape[1] - b[:, 0], b[:, 3]], axis=1)
        x0, y0 = (k % grid) * cw, (k // grid) * ch
        canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        boxes.append(b + [x0, y0, x0, y0])
    return canvas, np.concatenate(boxes)


def sets(scenes) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    return {
        "coco": scenes,
        "mosaic2": [mosaic(scenes, 2, [(i + k) % 4 for i in range(4)]) for k in range(4)],
        "mosaic3": [mosaic(scenes, 3, [(i + k) % 4 for i in range(9)]) for k in range(2)],
    }


def recall_at(gt: np.ndarray, det: np.ndarray, scores: np.ndarray, thr: float = 0.5) -> int:
    """GT boxes matched one-to-one (greedy by score) by a detection with IoU >= thr."""
    free = np.ones(len(gt), dtype=bool)
    for i in np.argsort(-scores, kind="stable"):
        if not free.any():
            break
        iou = box_iou(np.repeat(det[i][None], len(gt), 0), gt)
        iou[~free] = -1
        j = int(iou.argmax())
        if iou[j] >= thr:
            free[j] = False
    return int((~free).sum())


def coco_ap(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """pycocotools bbox AP, AP50, AR100 of [(gt xyxy, det xyxy, scores)] per image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (gt, det, sc) in enumerate(items, 1):
        images.append({"id": i, "width": 10000, "height": 10000})
        for g in gt:
            w, h = g[2] - g[0], g[3] - g[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "bbox": [g[0], g[1], w, h],
                         "area": w * h, "iscrowd": 0})
        for d, s in zip(det, sc):
            dets.append({"image_id": i, "category_id": 1, "bbox": [d[0], d[1], d[2] - d[0], d[3] - d[1]],
                         "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        gt.createIndex()
        if not dets:
            return 0.0, 0.0, 0.0
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1]), float(ev.stats[8])


def run(detector_text: str | None, min_score: float) -> None:
    """Recall, false boxes and time from the detector as a user runs it (``--min-box-score`` = ``min_score``); AP
    from a second run keeping boxes down to 0.05 (AP needs the ranked list; the lower threshold also sends
    more candidates to the landmark model, so its boxes are not the user's)."""
    scenes = load_scenes()
    user = build_detector(parse_detector(detector_text, min_score=min_score))
    ranked = build_detector(parse_detector(detector_text, min_score=0.05))
    print(f"detector {parse_detector(detector_text)} (recall, false boxes, time: --min-box-score {min_score}; "
          "AP: boxes >= 0.05)")
    print(f"{'set':9s} {'images':>6s} {'persons':>7s} {'found':>5s} {'recall':>6s} {'false+':>6s} "
          f"{'AP':>5s} {'AP50':>5s} {'AR100':>5s} {'ms/img':>7s}")
    user.detect(scenes[0][0])  # warm-up
    for name, items in sets(scenes).items():
        found = total = false = 0
        evals, seconds = [], 0.0
        for image, gt in items:
            start = time.perf_counter()
            res = user.detect(image)
            seconds += time.perf_counter() - start
            hit = recall_at(gt, res.boxes, res.scores)
            found += hit
            false += len(res.scores) - hit
            total += len(gt)
            low = ranked.detect(image)
            evals.append((gt, low.boxes, low.scores))
        ap, ap50, ar = coco_ap(evals)
        print(f"{name:9s} {len(items):6d} {total:7d} {found:5d} {found / total:6.3f} {false:6d} "
              f"{100 * ap:5.1f} {100 * ap50:5.1f} {100 * ar:5.1f} {1000 * seconds / len(items):7.0f}")
    user.close()
    ranked.close()


def wholebody(detector_text: str | None, min_score: float) -> None:
    """wbt distill on the 4 real images from GT boxes and from the detector; wbt eval of both against the GT."""
    from click.testing import CliRunner

    from labeltool.cli import main

    gt_path = REAL / "test_coco_wholebody.json"
    doc = json.loads(gt_path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        boxes = Path(tmp) / "gt_boxes.json"
        boxes.write_text(json.dumps([{"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0}
                                     for a in doc["annotations"] if not a["iscrowd"]]))
        runs = {"GT boxes": ["--boxes", str(boxes)],
                "detector": (["--detector", detector_text] if detector_text else []) + ["--min-box-score",
                                                                                       str(min_score)]}
        for label, extra in runs.items():
            out = Path(tmp) / label.replace(" ", "_")
            start = time.perf_counter()
            r = CliRunner().invoke(main, ["distill", "--images", str(REAL), "--out", str(out), "--workers", "1",
                                          "--no-progress", *extra])
            wall = time.perf_counter() - start
            if r.exit_code:
                raise SystemExit(r.output)
            pred = json.loads((out / "wholebody133.json").read_text())["annotations"]
            results = Path(tmp) / f"{out.name}_results.json"
            results.write_text(json.dumps([{**a, "score": a.get("score", 1.0), "category_id": 1} for a in pred]))
            e = CliRunner().invoke(main, ["eval", "--gt", str(gt_path), "--pred", str(results)])
            print(f"--- whole-body labels from {label} ({len(pred)} persons, distill {wall:.0f} s)")
            print(e.output.strip())


def faces_upper_bound(min_tile: int = 160) -> None:
    """Persons whose head region holds a face found by MediaPipe's full-range face detector (same views, decode, NMS)."""
    from labeltool.detectors import blazepose as bp
    from labeltool.teachers.crops import crop_matrix, to_image, warp
    from labeltool.teachers.hand import CropNetwork, _bundled_model

    options = bp.AnchorOptions(num_layers=1, input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0)
    anchors = bp.ssd_anchors(options)  # face_detection_full_range.pbtxt: 48 x 48 x 1
    net = CropNetwork(_bundled_model("modules/face_detection/face_detection_full_range_sparse.tflite", "face"), 192)
    interp = net._interpreter
    interp.resize_tensor_input(net._input, [1, 192, 192, 3])
    interp.allocate_tensors()

    def faces(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        found, scores = [], []
        for centre, side in bp.views(w, h, min_tile):
            m = crop_matrix(centre, side, 192)
            interp.set_tensor(net._input, warp(image, m, 192)[None].astype(np.float32) / 127.5 - 1.0)
            interp.invoke()
            a, b = (interp.get_tensor(i) for i in net._outputs)
            a, b = (b, a) if a.shape[-1] == 1 else (a, b)
            boxes, kps, sc = bp.decode(a.reshape(-1, 16), b.reshape(-1), anchors, 192)
            keep = sc >= 0.5
            boxes, _, sc = bp.weighted_nms(boxes[keep], kps[keep], sc[keep])
            found.append(to_image(boxes.reshape(-1, 2) * 192, m).reshape(-1, 4))
            scores.append(sc)
        boxes = np.concatenate(found)
        return bp.weighted_nms(boxes, np.zeros((len(boxes), 1, 2)), np.concatenate(scores))[0]

    print(f"face detector (full range, tiles down to {min_tile} px): persons with a face in their head region")
    for name, items in sets(load_scenes()).items():
        hit = total = 0
        seconds = 0.0
        for image, gt in items:
            start = time.perf_counter()
            b = faces(image)
            seconds += time.perf_counter() - start
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            used = np.zeros(len(b), dtype=bool)
            for g in gt:
                ok = (~used) & (cx >= g[0]) & (cx <= g[2]) & (cy >= g[1]) & (cy <= g[1] + 0.4 * (g[3] - g[1]))
                if ok.any():
                    used[np.nonzero(ok)[0][0]] = True
                    hit += 1
            total += len(gt)
        print(f"{name:9s} {hit:3d} / {total:3d} = {hit / total:.2f}   {1000 * seconds / len(items):5.0f} ms/img")
    net.close()


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", help="BACKEND[:ARG] (default: the built-in mediapipe)")
    ap.add_argument("--min-score", type=float, default=0.5, help="the detector's --min-box-score for recall, false boxes and time")
    ap.add_argument("--wholebody", action="store_true", help="also whole-body AP from detected vs GT boxes")
    ap.add_argument("--without-hog", action="store_true",
                    help="the built-in detector without its HOG proposals (BlazePose alone, as before)")
    ap.add_argument("--faces", type=int, metavar="MIN_TILE", help="only the face-detector bound, tiles down to this")
    args = ap.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"{REAL} not found (the real data lives beside the repo in ../shared)")
    if args.faces:
        return faces_upper_bound(args.faces)
    if args.without_hog:  # the wholebody part runs wbt in this process too
        from labeltool.detectors import blazepose

        blazepose.hog_regions = lambda image, hog: (np.zeros((0, blazepose.NUM_KEYPOINTS, 2)), np.zeros(0))
    run(args.detector, args.min_score)
    if args.wholebody:
        wholebody(args.detector, args.min_score)


if __name__ == "__main__":
    main_cli()
