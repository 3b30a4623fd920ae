"""Accuracy of the teachers on real labelled images; prints one table per check.

Every figure is computed by ``labeltool.eval`` (``nme``, ``pck``, ``pointwise``; the COCO-WholeBody
protocol for section 4); a hand a teacher does not find misses all its points.

1. Face NME (mean point error / outer-eye-corner distance) on the 300W images, GT face box,
   for every face backend that runs here (FaceMesh with the common and the checked 468->68
   map, with and without the mirrored second fit; dlib; FAN when its weights are cached).
2. Hand PCK@0.2 (of the larger GT box side) and mean error on the Panoptic and OneHand10K
   crops, boxes 1.5x the tight GT box (the size of a proposal), single view vs ours.
3. Small COCO hands: body from GT, hands from the teacher on the proposals: hands found,
   PCK@0.2 (of the GT hand's extent; an unfound hand misses all its points), model runs per
   hand, for the default teacher (re-crop ROI), the rotation search and a single view.
4. COCO-WholeBody: body from GT, face / hands / feet from the teachers on the crops proposed
   from the GT body, evaluated per part with the official protocol (labeltool.eval.evaluate,
   the code behind `wbt eval`). The results file is written so `wbt eval` can re-check it.

    .venv/bin/python benchmarks/teacher_accuracy.py --data ../shared/realdata
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.eval.nme import per_face_nme
from labeltool.eval.pck import bbox_size, pooled_pck
from labeltool.eval.pointwise import PointSet, per_instance_mean
from labeltool.images import read_rgb
from labeltool.io.atomic import write_json_atomic
from labeltool.io.pose import load_pose_dataset
from labeltool.layouts import WHOLEBODY133
from labeltool.proposals import face_boxes_from_body, hand_boxes_from_body, xywh_to_xyxy

REPO = Path(__file__).resolve().parents[1]
FACE_FLOOR = 0.08
HAND_FLOOR = 0.80


def _load(folder: Path, name: str) -> tuple[dict, dict[int, Path]]:
    data = json.loads((folder / name).read_text())
    return data, {im["id"]: folder / im["file_name"] for im in data["images"]}


def face_nme_table(data_dir: Path) -> list[tuple[str, str]]:
    from labeltool.teachers import face as F

    data, files = _load(data_dir / "face300w", "test_300w.json")
    cases = []
    for ann in data["annotations"]:
        gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(68, 3)
        cases.append((read_rgb(files[ann["image_id"]]), xywh_to_xyxy([ann["bbox"]]), gt))
    gts = np.stack([gt for *_, gt in cases])
    boxes = np.array([ann["bbox"] for ann in data["annotations"]], dtype=np.float64)

    def make(name):
        if name == "facemesh, common map, one fit":
            return F.FaceMeshModel(mirror=False, vertex_map=F.COMMON_FACEMESH_TO_IBUG68)
        if name == "facemesh, common map":
            return F.FaceMeshModel(vertex_map=F.COMMON_FACEMESH_TO_IBUG68)
        if name == "facemesh, one fit":
            return F.FaceMeshModel(mirror=False)
        if name == "facemesh (default)":
            return F.FaceMeshModel()
        return {"dlib": F.DlibFaceModel, "fan": F.FanFaceModel}[name]()

    rows = []
    names = ("facemesh, common map, one fit", "facemesh, common map", "facemesh, one fit", "facemesh (default)",
             "dlib", "fan")  # fmt: skip
    for name in names:
        try:
            teacher = make(name)
        except UserError as err:
            rows.append((name, f"not run: {err}"))
            continue
        preds = np.stack([teacher.predict(image, box)[0] for image, box, _ in cases])
        teacher.close()
        points = PointSet(gt=gts, boxes=boxes, ann_ids=np.arange(len(gts)), pred=preds)
        found = (preds[:, :, 2] > 0).any(axis=1)
        nmes = np.where(found, per_face_nme(points, "outer-eye-corners"), np.inf)
        per = " ".join(f"{v:.4f}" for v in nmes)
        rows.append((name, f"NME {np.mean(nmes):.4f}  (per face {per})  floor {FACE_FLOOR}: "
                           f"{'met' if np.mean(nmes) <= FACE_FLOOR else 'MISSED'}"))  # fmt: skip
    return rows


def hand_table(data_dir: Path) -> list[tuple[str, str]]:
    from labeltool.teachers.hand import HandModel

    teachers = {"single view": HandModel(search=False, refine=False), "search only": HandModel(refine=False),
                "ours (search + refine + consensus)": HandModel()}  # fmt: skip
    rows = []
    for folder, name in (("hand_panoptic", "test_panoptic.json"), ("hand_onehand10k", "test_onehand10k.json")):
        data, files = _load(data_dir / folder, name)
        for tname, teacher in teachers.items():
            preds = []
            for ann in data["annotations"]:
                x, y, w, h = ann["bbox"]
                s = 1.5 * max(w, h)
                box = np.array([[x + w / 2 - s / 2, y + h / 2 - s / 2, x + w / 2 + s / 2, y + h / 2 + s / 2]])
                preds.append(teacher.predict(read_rgb(files[ann["image_id"]]), box)[0])
            pred = np.stack(preds)
            found = (pred[:, :, 2] > 0).any(axis=1)
            xy = np.where(found[:, None, None], pred[:, :, :2], np.inf)  # a hand not found misses every point
            gt = np.array([ann["keypoints"] for ann in data["annotations"]], dtype=np.float64).reshape(-1, 21, 3)
            size = bbox_size(np.array([ann["bbox"] for ann in data["annotations"]], dtype=np.float64))
            mask = gt[:, :, 2] > 0
            pck = pooled_pck(xy, gt[:, :, :2], mask, 0.2, size)
            errs = per_instance_mean(xy, gt[:, :, :2], mask, np.ones(len(gt)))[found]
            rel = per_instance_mean(xy, gt[:, :, :2], mask, size)[found]
            rows.append((f"{folder} {tname}",
                         f"PCK@0.2 {pck:.3f}  mean error {np.mean(errs):.1f} px = {np.mean(rel):.3f} of the box  "
                         f"found {int(found.sum())}/{len(data['annotations'])}  floor {HAND_FLOOR}: "
                         f"{'met' if pck >= HAND_FLOOR else 'MISSED'}"))  # fmt: skip
    for t in teachers.values():
        t.close()
    return rows


def _count_runs(teacher) -> list[int]:
    """Wrap the teacher's models so every image they see is counted: [landmark runs, re-crop runs]."""
    counts = [0, 0]
    for k, model in enumerate((teacher.model, teacher.recrop_model)):
        if model is None:
            continue
        run = model.run

        def counted(crops, run=run, k=k):
            counts[k] += len(crops)
            return run(crops)

        model.run = counted
    return counts


def coco_hand_table(data_dir: Path) -> list[tuple[str, str]]:
    """Small COCO hands, body from GT: found count, PCK@0.2 and model runs per hand for each hand teacher."""
    from labeltool.teachers.hand import HandModel

    ds = load_pose_dataset(data_dir / "coco_wholebody" / "test_coco_wholebody.json")
    parts, images = WHOLEBODY133.parts, ds.image_index()
    cases = []
    for i in range(len(ds.ann_ids)):
        body = ds.keypoints[i : i + 1, parts["body"]]
        for side in ("left", "right"):
            gt = ds.keypoints[i, parts[f"{side}hand"]]
            boxes, ok = hand_boxes_from_body(body, side)
            if (gt[:, 2] > 0).any() and ok[0]:
                image = read_rgb(data_dir / "coco_wholebody" / images[int(ds.image_ids[i])]["file_name"])
                cases.append((image, boxes, side, body, gt))
    teachers = {"ours (re-crop ROI + refine + consensus)": HandModel(),
                "rotation search + refine (recrop=False)": HandModel(recrop=False),
                "single view": HandModel(recrop=False, search=False, refine=False)}  # fmt: skip
    rows = []
    sizes = [float(np.ptp(gt[gt[:, 2] > 0, :2], axis=0).max()) for *_, gt in cases]
    for name, teacher in teachers.items():
        counts = _count_runs(teacher)
        pred = np.stack([teacher.predict(image, boxes, side, body)[0] for image, boxes, side, body, _ in cases])
        teacher.close()
        found = (pred[:, :, 2] > 0).any(axis=1)
        xy = np.where(found[:, None, None], pred[:, :, :2], np.inf)  # a hand not found misses every point
        gt = np.stack([gt for *_, gt in cases])
        mask, norm = gt[:, :, 2] > 0, np.asarray(sizes)
        pck = pooled_pck(xy, gt[:, :, :2], mask, 0.2, norm)
        per_hand = [f"{pooled_pck(xy[i : i + 1], gt[i : i + 1, :, :2], mask[i : i + 1], 0.2, norm[i : i + 1]):.2f}"
                    for i in np.nonzero(found)[0]]  # fmt: skip
        runs = f"{counts[0] / len(cases):.1f} landmark + {counts[1] / len(cases):.1f} re-crop runs/hand"
        rows.append((name, f"found {int(found.sum())}/{len(cases)}  PCK@0.2 {pck:.3f}  "
                           f"(found hands: {' '.join(per_hand)})  {runs}"))  # fmt: skip
    rows.append(("GT hand extent", f"{min(sizes):.0f}-{max(sizes):.0f} px"))
    return rows


def coco_pseudo_labels(data_dir: Path, out_path: Path) -> tuple[list[tuple[str, str]], Path]:
    """Body from GT, parts from the teachers on proposals; per-part AP with the official protocol."""
    from labeltool.eval import evaluate
    from labeltool.teachers.face import FaceMeshModel
    from labeltool.teachers.foot import FootModel
    from labeltool.teachers.hand import HandModel

    gt_path = data_dir / "coco_wholebody" / "test_coco_wholebody.json"
    ds = load_pose_dataset(gt_path)
    parts = WHOLEBODY133.parts
    images = ds.image_index()
    results = []
    errors: dict[str, list[float]] = {"face": [], "lefthand": [], "righthand": [], "foot": []}
    with FaceMeshModel() as face, HandModel() as hand, FootModel() as foot:
        for image_id, idx in ds.persons_by_image().items():
            image = read_rgb(data_dir / "coco_wholebody" / images[image_id]["file_name"])
            body = ds.keypoints[idx][:, parts["body"]]
            pred = np.zeros((len(idx), 133, 3))
            pred[:, parts["body"], :2] = body[:, :, :2]
            pred[:, parts["body"], 2] = (body[:, :, 2] > 0).astype(float)
            boxes, ok = face_boxes_from_body(body)
            if ok.any():
                pred[np.ix_(np.nonzero(ok)[0], parts["face"])] = face.predict(image, boxes[ok], body[ok])
            for side in ("left", "right"):
                boxes, ok = hand_boxes_from_body(body, side)
                if ok.any():
                    pts = hand.predict(image, boxes[ok], side, body[ok])
                    pred[np.ix_(np.nonzero(ok)[0], parts[f"{side}hand"])] = pts
            pred[:, parts["foot"]] = foot.predict(image, xywh_to_xyxy(ds.bboxes[idx]), body=body)
            for j, i in enumerate(idx):
                r = {"image_id": int(image_id), "category_id": 1, "keypoints": pred[j].reshape(-1).round(3).tolist(),
                     "score": 1.0}  # fmt: skip
                for part in ("foot", "face", "lefthand", "righthand"):
                    conf = pred[j, parts[part], 2]
                    r[f"{part}_score"] = float(conf[conf > 0].mean()) if (conf > 0).any() else 0.0
                    g = ds.keypoints[i, parts[part]]
                    lab = (g[:, 2] > 0) & (conf > 0)
                    if lab.any():
                        scale = np.sqrt(ds.areas[i])
                        d = np.linalg.norm(pred[j, parts[part]][lab, :2] - g[lab, :2], axis=1)
                        errors[part].append(float(d.mean() / scale))
                conf = pred[j, :, 2]
                r["wholebody_score"] = float(conf[conf > 0].mean()) if (conf > 0).any() else 0.0
                results.append(r)
    write_json_atomic(results, out_path)
    report = evaluate(ds, results)
    rows = []
    for part in report.parts:
        num_gt = report.results[part].num_gt
        err = errors.get(part, [])
        extra = f"  mean error {np.mean(err):.3f} of sqrt(area) over {len(err)} persons" if err else ""
        rows.append((part, f"AP {report.stat(part, 'AP'):.3f}  AR {report.stat(part, 'AR'):.3f}  "
                           f"(GT persons with the part: {num_gt}){extra}"))  # fmt: skip
    return rows, out_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--out", type=Path, default=Path("/tmp/wbt_teacher_pseudo_labels.json"),
                        help="where to write the COCO pseudo-label results (for `wbt eval`)")  # fmt: skip
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: real labelled data not found (give --data)")
    start = time.perf_counter()
    sections = [("Face NME on 300W (GT box; lower is better)", face_nme_table(args.data)),
                ("Hand PCK@0.2 (box 1.5x the tight GT box)", hand_table(args.data)),
                ("Small COCO hands, body from GT, proposals from the body", coco_hand_table(args.data))]  # fmt: skip
    coco_rows, out = coco_pseudo_labels(args.data, args.out)
    sections.append(("COCO-WholeBody pseudo-labels, body from GT, parts from teachers on proposals", coco_rows))
    for title, rows in sections:
        print(f"\n{title}")
        width = max(len(r[0]) for r in rows)
        for name, text in rows:
            print(f"  {name:<{width}}  {text}")
    gt = args.data / "coco_wholebody" / "test_coco_wholebody.json"
    print(f"\nre-check: .venv/bin/wbt eval --gt {gt} --pred {out}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
