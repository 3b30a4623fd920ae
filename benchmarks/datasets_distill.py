"""`wbt distill` on the body datasets, made from the real COCO-WholeBody sample: what each one gets.

Writes the sample (4 images, 14 persons) as COCO-17, CrowdPose, AI Challenger, MPII,
PoseTrack18 and Human-Art files (tests/datasets_fixtures.py: each with only the points that
dataset has), distils each with the default teachers (built once, 1 worker) and prints per
dataset: persons labelled, COCO-17 points filled by the body teacher, faces / hands / feet
accepted of proposed (summary.json), and each part's AP against the real COCO-WholeBody GT.

    PYTHONPATH=. .venv/bin/python benchmarks/datasets_distill.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from datasets_fixtures import PART_KEYS, write_dataset  # noqa: E402

from labeltool.distill.inputs import from_annotations  # noqa: E402
from labeltool.distill.pipeline import distill  # noqa: E402
from labeltool.distill.teacher_choice import TeacherChoice  # noqa: E402
from labeltool.distill.work import DistillConfig  # noqa: E402
from labeltool.eval import evaluate  # noqa: E402

SAMPLE = REPO.parent / "shared" / "realdata" / "coco_wholebody"
DATASETS = ("coco17", "crowdpose", "aic", "mpii", "posetrack18", "humanart")


def coco17_file(tmp: Path) -> tuple[Path, Path]:
    doc = json.loads((SAMPLE / "test_coco_wholebody.json").read_text())
    for ann in doc["annotations"]:
        for key in PART_KEYS:
            ann.pop(key, None)
    path = tmp / "coco17.json"
    path.write_text(json.dumps(doc))
    return path, SAMPLE


def main() -> None:
    config = DistillConfig(teachers=TeacherChoice())
    teachers = config.teachers.build(body=True, threads=1)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for name in DATASETS:
                ann, images = coco17_file(tmp) if name == "coco17" else write_dataset(name, SAMPLE, tmp / name)[:2]
                out = tmp / name / "out"
                summary = distill(from_annotations(ann, images), out, config, workers=1, progress=False,
                                  teachers=teachers)  # fmt: skip
                doc = json.loads((out / "wholebody133.json").read_text())
                # PoseTrack's frames have their own ids and names: back to the sample's, by frame order
                truth = json.loads((SAMPLE / "test_coco_wholebody.json").read_text())
                if name == "posetrack18":
                    ids = sorted(im["id"] for im in truth["images"])
                    back = {10000010000 + k: i for k, i in enumerate(ids)}
                    for a in doc["annotations"]:
                        a["image_id"] = back[a["image_id"]]
                report = evaluate(SAMPLE / "test_coco_wholebody.json", [dict(a, score=1.0) for a in doc["annotations"]])
                ap = {part: stats["AP"] for part, stats in report.as_dict().items()}
                parts = summary["parts"]
                rows.append((name, summary["persons"]["labelled"], summary["points_by_source"].get("body:mediapipe", 0),
                             *(f"{parts[p]['accepted']}/{parts[p]['proposed']}" for p in ("face", "lefthand", "righthand", "foot")),
                             *(f"{ap[p]:.2f}" for p in ("body", "face", "foot", "wholebody"))))  # fmt: skip
    finally:
        for t in teachers:
            t.close()
    head = ("dataset", "labelled", "body-teacher pts", "face", "lefthand", "righthand", "foot",
            "AP body", "AP face", "AP foot", "AP wholebody")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
