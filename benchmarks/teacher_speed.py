"""CPU latency of each teacher: per crop, and per person for the whole distill step.

Teachers are built once (build time printed apart) and reused; each crop is run
``--repeat`` times after one warm-up and the median is printed. The per-person figure runs
face + both hands + feet on the crops proposed from the GT body of every person of the
COCO-WholeBody sample (what `wbt distill` does per person), and the body teacher per person
box (what it adds for images without annotations).

    .venv/bin/python benchmarks/teacher_speed.py --data ../shared/realdata
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from labeltool.errors import UserError
from labeltool.images import read_rgb
from labeltool.io.pose import load_pose_dataset
from labeltool.proposals import face_boxes_from_body, hand_boxes_from_body, xywh_to_xyxy

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def _build(make):
    t = time.perf_counter()
    teacher = make()
    return teacher, 1000.0 * (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from labeltool.teachers.body import BodyModel
    from labeltool.teachers.face import DlibFaceModel, FaceMeshModel
    from labeltool.teachers.foot import FootModel
    from labeltool.teachers.hand import HandModel

    gt = load_pose_dataset(args.data / "coco_wholebody" / "test_coco_wholebody.json")
    images = {i: read_rgb(args.data / "coco_wholebody" / im["file_name"]) for i, im in gt.image_index().items()}
    # The person with face, both hands and feet labelled (image 197388): a typical crop set.
    i = int(np.nonzero(gt.ann_ids == 437295)[0][0])
    image = images[int(gt.image_ids[i])]
    body = gt.keypoints[i : i + 1, :17]
    face_box = face_boxes_from_body(body)[0]
    hand_box = hand_boxes_from_body(body, "right")[0]
    person_box = xywh_to_xyxy(gt.bboxes[i : i + 1])

    print(f"per-crop latency, median of {args.repeat} (ms); build = constructing the teacher once")
    rows = []
    teachers = {}
    ms: dict[str, float] = {}
    for name, make, call in (
        ("face facemesh (2 fits: as is + mirrored)", FaceMeshModel,
         lambda t: t.predict(image, face_box, body)),
        ("face facemesh, one fit", lambda: FaceMeshModel(mirror=False),
         lambda t: t.predict(image, face_box, body)),
        ("face dlib (2 fits)", DlibFaceModel, lambda t: t.predict(image, face_box, body)),
        ("hand ours (re-crop + 5 views + refine 5 views)", HandModel,
         lambda t: t.predict(image, hand_box, "right", body)),
        ("hand rotation search (recrop=False)", lambda: HandModel(recrop=False),
         lambda t: t.predict(image, hand_box, "right", body)),
        ("hand single view", lambda: HandModel(recrop=False, search=False, refine=False),
         lambda t: t.predict(image, hand_box, "right", body)),
        ("foot (pose on the person crop, both feet)", FootModel, lambda t: t.predict(image, person_box, body=body)),
        ("body (pose on the person crop)", BodyModel, lambda t: t.predict(image, person_box)),
    ):  # fmt: skip
        try:
            teacher, build_ms = _build(make)
        except UserError as err:
            rows.append((name, f"not run: {err}"))
            continue
        teachers[name] = teacher
        ms[name] = _median_ms(lambda t=teacher, c=call: c(t), args.repeat)
        rows.append((name, f"{ms[name]:8.1f} ms/crop   build {build_ms:6.0f} ms"))
    width = max(len(r[0]) for r in rows)
    for name, text in rows:
        print(f"  {name:<{width}}  {text}")
    hand_ratio = ms["hand ours (re-crop + 5 views + refine 5 views)"] / ms["hand single view"]
    search_ratio = ms["hand rotation search (recrop=False)"] / ms["hand ours (re-crop + 5 views + refine 5 views)"]
    face_ratio = ms["face facemesh (2 fits: as is + mirrored)"] / ms["face facemesh, one fit"]
    print(f"  ratios in this run: hand multi-view / single view {hand_ratio:.1f}x, rotation search / re-crop "
          f"{search_ratio:.2f}x, face 2 fits / 1 fit {face_ratio:.1f}x")  # fmt: skip

    # Per person over the whole sample: face + 2 hands + feet, as distill runs them.
    face = teachers["face facemesh (2 fits: as is + mirrored)"]
    hand = teachers["hand ours (re-crop + 5 views + refine 5 views)"]
    foot = teachers["foot (pose on the person crop, both feet)"]
    body_teacher = teachers["body (pose on the person crop)"]
    counts = {"face": 0, "hand": 0, "foot": 0}
    spent = {"face": 0.0, "hand": 0.0, "foot": 0.0, "body": 0.0}
    persons = 0
    for image_id, idx in gt.persons_by_image().items():
        img = images[image_id]
        b = gt.keypoints[idx, :17]
        persons += len(idx)
        t = time.perf_counter()
        boxes, ok = face_boxes_from_body(b)
        if ok.any():
            face.predict(img, boxes[ok], b[ok])
        spent["face"] += time.perf_counter() - t
        counts["face"] += int(ok.sum())
        t = time.perf_counter()
        for side in ("left", "right"):
            boxes, ok = hand_boxes_from_body(b, side)
            if ok.any():
                hand.predict(img, boxes[ok], side, b[ok])
            counts["hand"] += int(ok.sum())
        spent["hand"] += time.perf_counter() - t
        t = time.perf_counter()
        foot.predict(img, xywh_to_xyxy(gt.bboxes[idx]), body=b)
        counts["foot"] += len(idx)
        spent["foot"] += time.perf_counter() - t
        t = time.perf_counter()
        body_teacher.predict(img, xywh_to_xyxy(gt.bboxes[idx]))
        spent["body"] += time.perf_counter() - t
    parts_ms = 1000 * (spent["face"] + spent["hand"] + spent["foot"]) / persons
    print(f"\nper person over the COCO-WholeBody sample ({persons} persons, {counts['face']} face crops, "
          f"{counts['hand']} hand crops, {counts['foot']} person crops)")  # fmt: skip
    print(f"  face + hands + feet (body from GT): {parts_ms:7.1f} ms/person"
          f"  (face {1000 * spent['face'] / persons:.1f}, hands {1000 * spent['hand'] / persons:.1f}, "
          f"feet {1000 * spent['foot'] / persons:.1f})")  # fmt: skip
    print(f"  + body teacher (no annotations):    {parts_ms + 1000 * spent['body'] / persons:7.1f} ms/person")
    for t in teachers.values():
        t.close()


if __name__ == "__main__":
    main()
