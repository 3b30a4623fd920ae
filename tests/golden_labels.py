"""Golden labels: `wbt distill` of the real COCO-WholeBody sample, body from GT, default teachers.

The labels must depend only on the inputs and the locked packages (issue 19). This module
distils ../shared/realdata/coco_wholebody (its GT stripped to the 17 body points), reduces the
output to a compact record (per person and part: accepted or not, points to 0.01 px,
confidences to 0.01) plus each part's AP against the real GT, and compares two such records.

    python tests/golden_labels.py            # distil, print the record's summary and the diff to the golden
    python tests/golden_labels.py --write    # regenerate tests/data/golden_labels.json (after a lock refresh)

``tests/test_golden_labels.py`` runs it on the locked stack (requirements/lock-*.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("WBT_SHARED", REPO.parent / "shared")) / "realdata" / "coco_wholebody"  # as conftest.py
GOLDEN = Path(__file__).resolve().parent / "data" / "golden_labels.json"
PARTS = {"body": "keypoints", "foot": "foot_kpts", "face": "face_kpts", "lefthand": "lefthand_kpts",
         "righthand": "righthand_kpts"}  # fmt: skip
VALID = {"foot": "foot_valid", "face": "face_valid", "lefthand": "lefthand_valid", "righthand": "righthand_valid"}


def body_only(sample: Path, out: Path) -> Path:
    """The sample's GT with only the 17 body points per person (what `--ann` would get from COCO)."""
    doc = json.loads((sample / "test_coco_wholebody.json").read_text())
    for ann in doc["annotations"]:
        for key in [k for k in ann if k.endswith(("_kpts", "_box", "_valid"))]:
            del ann[key]
    path = out / "body17.json"
    path.write_text(json.dumps(doc))
    return path


def distill_sample(sample: Path, work: Path) -> tuple[dict, dict]:
    """(wholebody133.json, summary.json) of `wbt distill --ann body17.json` on the sample, 1 worker."""
    from labeltool.distill.inputs import from_annotations
    from labeltool.distill.pipeline import distill
    from labeltool.distill.teacher_choice import TeacherChoice
    from labeltool.distill.work import DistillConfig

    out = work / "out"
    summary = distill(from_annotations(body_only(sample, work), sample), out,
                      DistillConfig(teachers=TeacherChoice()), workers=1, progress=False)  # fmt: skip
    return json.loads((out / "wholebody133.json").read_text()), summary


def compact(doc: dict, sample: Path) -> dict:
    """Per annotation id and part: accepted, points [x, y, conf] rounded to 0.01; and each part's AP."""
    from labeltool.eval import evaluate

    persons = {}
    for ann in sorted(doc["annotations"], key=lambda a: a["id"]):
        rec = {}
        for part, key in PARTS.items():
            pts = np.round(np.asarray(ann[key], dtype=np.float64).reshape(-1, 3), 2)
            rec[part] = {"accepted": bool(ann.get(VALID.get(part, ""), True)), "points": pts.tolist()}
        persons[str(ann["id"])] = rec
    report = evaluate(sample / "test_coco_wholebody.json", [dict(a, score=1.0) for a in doc["annotations"]])
    ap = {part: round(float(stats["AP"]), 4) for part, stats in report.as_dict().items()}
    return {"persons": persons, "ap": ap}


def accepted_counts(record: dict) -> dict[str, int]:
    return {part: sum(p[part]["accepted"] for p in record["persons"].values()) for part in VALID}


def diff(golden: dict, now: dict) -> list[str]:
    """One line per part that changed: persons whose acceptance flipped, points moved, AP before -> after."""
    lines = []
    if set(golden["persons"]) != set(now["persons"]):
        lines.append(f"persons: golden {sorted(golden['persons'])} now {sorted(now['persons'])}")
    common = sorted(set(golden["persons"]) & set(now["persons"]), key=int)
    for part in PARTS:
        flipped, moved, shift = [], [], 0.0
        for pid in common:
            g, n = golden["persons"][pid][part], now["persons"][pid][part]
            if g["accepted"] != n["accepted"]:
                flipped.append(f"{pid}:{'yes' if g['accepted'] else 'no'}->{'yes' if n['accepted'] else 'no'}")
            a, b = np.asarray(g["points"]), np.asarray(n["points"])
            if a.shape != b.shape or not np.array_equal(a, b):
                moved.append(pid)
                both = (a[:, 2] > 0) & (b[:, 2] > 0) if a.shape == b.shape else np.zeros(0, bool)
                if both.any():  # over the points labelled in both (a part turned down has zeros)
                    shift = max(shift, float(np.abs(a[both, :2] - b[both, :2]).max()))
        ap_g, ap_n = golden["ap"].get(part), now["ap"].get(part)
        if flipped or moved or ap_g != ap_n:
            lines.append(f"{part}: accepted changed {flipped or 'nowhere'}; points changed for {len(moved)} persons "
                         f"(largest shift of a point labelled in both {shift:.2f} px); AP {ap_g} -> {ap_n}")  # fmt: skip
    if golden["ap"].get("wholebody") != now["ap"].get("wholebody") and not any(s.startswith("wholebody") for s in lines):
        lines.append(f"wholebody: AP {golden['ap'].get('wholebody')} -> {now['ap'].get('wholebody')}")
    return lines


def record_now(sample: Path = SAMPLE) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        doc, _ = distill_sample(sample, Path(tmp))
    return compact(doc, sample)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="regenerate the golden from the installed stack")
    ap.add_argument("--data", type=Path, default=SAMPLE, help="the real COCO-WholeBody sample")
    args = ap.parse_args(argv)
    from labeltool.versions import installed_versions

    now = record_now(args.data)
    stack = installed_versions()
    print("stack:", " ".join(f"{k} {v}" for k, v in stack.items()))
    print("accepted:", accepted_counts(now), "AP:", now["ap"])
    if args.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(now, stack=stack), indent=None, separators=(",", ":")) + "\n")
        print(f"wrote {GOLDEN}")
        return 0
    if GOLDEN.is_file():
        lines = diff(json.loads(GOLDEN.read_text()), now)
        print("\n".join(lines) if lines else "same as the golden")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
