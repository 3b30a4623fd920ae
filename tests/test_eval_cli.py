"""`wbt eval`: output formats, --compare / --out / --pr-curves, and one-line errors for bad input."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.eval import evaluate
from labeltool.layouts import WHOLEBODY133, WHOLEBODY_KPT_KEYS


@pytest.fixture()
def files(tmp_path):
    """A two-person COCO-WholeBody GT and two results files (small and larger noise)."""
    rng = np.random.default_rng(0)
    people = []
    anns = []
    for i, (x, s) in enumerate(((0.0, 120.0), (200.0, 60.0))):
        pts = np.column_stack([rng.uniform(x, x + s, 133), rng.uniform(0, 2 * s, 133), np.full(133, 2.0)])
        people.append(pts)
        ann = {"id": 10 + i, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": s * 2 * s * 0.6,
               "bbox": [x, 0.0, s, 2 * s]}
        for part, key in WHOLEBODY_KPT_KEYS.items():
            ann[key] = pts[WHOLEBODY133.parts[part]].reshape(-1).tolist()
        anns.append(ann)
    gt = {"images": [{"id": 7, "file_name": "x.jpg"}], "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    for name, noise in (("good", 0.5), ("rough", 4.0)):
        dets = []
        for pts, score in zip(people, (0.9, 0.8)):
            det = {"image_id": 7, "category_id": 1, "score": score}
            noisy = pts.copy()
            noisy[:, :2] += rng.normal(0, noise, (133, 2))
            for part, key in WHOLEBODY_KPT_KEYS.items():
                det[key] = noisy[WHOLEBODY133.parts[part]].reshape(-1).tolist()
            dets.append(det)
        (tmp_path / f"{name}.json").write_text(json.dumps(dets))
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(main, ["eval", *args])


def test_table_rows_are_parts_in_percent(files):
    res = run("--gt", str(files / "gt.json"), "--pred", str(files / "good.json"))
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[1].split() == ["part", "AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
    assert [ln.split()[0] for ln in lines[2:]] == ["body", "foot", "face", "lefthand", "righthand", "wholebody"]
    report = evaluate(files / "gt.json", files / "good.json")
    body = lines[2].split()
    assert body[1] == f"{100 * report.stat('body', 'AP'):.1f}"


def test_json_csv_markdown_and_out(files):
    gt, pred = str(files / "gt.json"), str(files / "good.json")
    report = evaluate(gt, pred)
    res = run("--gt", gt, "--pred", pred, "--format", "json", "--out", str(files / "o" / "r.json"))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["layout"] == "coco_wholebody133" and doc["sigmas"] == "float64"
    assert doc["results"][0]["stats"]["face"]["AP"] == report.stat("face", "AP")
    assert json.loads((files / "o" / "r.json").read_text()) == doc
    rows = list(csv.DictReader(io.StringIO(run("--gt", gt, "--pred", pred, "--format", "csv").output)))
    assert [r["part"] for r in rows] == list(report.parts)
    assert float(rows[0]["AR"]) == pytest.approx(100 * report.stat("body", "AR"), abs=1e-4)
    md = run("--gt", gt, "--pred", pred, "--format", "markdown").output.splitlines()
    assert md[0].startswith("| part | AP |") and md[1].startswith("|:---|")


def test_compare_puts_methods_side_by_side(files):
    gt = str(files / "gt.json")
    res = run("--gt", gt, "--pred", str(files / "good.json"), "--compare", str(files / "rough.json"),
              "--format", "markdown")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split(" | ")[1:3] == ["body AP", "body AR"]
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| good", "| rough"]
    good = float(lines[2].split(" | ")[11])  # wholebody AP
    rough = float(lines[3].split(" | ")[11])
    assert good > rough
    # several files after one --compare, without --pred
    res = run("--gt", gt, "--compare", str(files / "good.json"), str(files / "rough.json"), "--format", "csv")
    assert {r["method"] for r in csv.DictReader(io.StringIO(res.output))} == {"good", "rough"}


def test_pr_curves_and_float32(files):
    res = run("--gt", str(files / "gt.json"), "--pred", str(files / "rough.json"), "--pr-curves",
              str(files / "pr"), "--sigmas-float32")
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in (files / "pr").glob("*.png"))
    assert pngs == sorted(f"pr_{p}.png" for p in ("body", "foot", "face", "lefthand", "righthand", "wholebody"))
    assert (files / "pr" / "pr_face.png").read_bytes()[:4] == b"\x89PNG"
    assert "float32" in res.output.splitlines()[0]


def test_empty_prediction_list_gives_zeros(files):
    (files / "empty.json").write_text("[]")
    res = run("--gt", str(files / "gt.json"), "--pred", str(files / "empty.json"), "--format", "json")
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)["results"][0]["stats"]
    assert stats["body"]["AP"] == 0.0 and stats["wholebody"]["AR"] == 0.0


def _bad(files, content, name="bad.json"):
    path = files / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    res = run("--gt", str(files / "gt.json"), "--pred", str(path))
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("wbt: error: ") and "Traceback" not in res.output
    assert str(path) in err
    return err


def _good_dets(files):
    return json.loads((files / "good.json").read_text())


def test_bad_predictions_are_one_line_errors(files):
    assert "expected a json list" in _bad(files, {"annotations": []})
    assert "detection #1 is a list" in _bad(files, [_good_dets(files)[0], [1, 2]])
    dets = _good_dets(files)
    dets[1]["face_kpts"] = dets[1]["face_kpts"][:-3]
    assert "detection #1: 'face_kpts' has 201 values, expected 204 values (68 x 3)" in _bad(files, dets)
    flat = [{"image_id": 7, "category_id": 1, "score": 1.0, "keypoints": [1.0] * 51}]
    assert "'keypoints' has 51 values, expected 399 values (133 x 3)" in _bad(files, flat)
    dets = _good_dets(files)
    dets[0]["keypoints"][4] = math.nan
    assert "NaN" in _bad(files, json.dumps(dets))  # json.dumps writes the NaN literal
    dets = _good_dets(files)
    dets[1]["foot_kpts"][0] = math.inf
    assert "infinity" in _bad(files, json.dumps(dets))
    dets = _good_dets(files)
    dets[1]["image_id"] = 999
    assert "detection #1 has image_id 999, which is not an image of" in _bad(files, dets)
    dets = _good_dets(files)
    del dets[0]["score"]
    assert "detection #0 is missing 'score'" in _bad(files, dets)
    dets = _good_dets(files)
    dets[0]["score"] = "high"
    assert "'score' must be a finite number" in _bad(files, dets)
    dets = _good_dets(files)
    dets[1]["face_score"] = None
    assert "'face_score' must be a finite number" in _bad(files, dets)
    assert "invalid JSON" in _bad(files, "[{")


def test_bad_ground_truth_and_options(files):
    doc = json.loads((files / "gt.json").read_text())
    doc["annotations"][1]["id"] = doc["annotations"][0]["id"]
    (files / "dup.json").write_text(json.dumps(doc))
    res = run("--gt", str(files / "dup.json"), "--pred", str(files / "good.json"))
    assert res.exit_code == 2 and "duplicate annotation id 10" in res.stderr
    res = run("--gt", str(files / "missing.json"), "--pred", str(files / "good.json"))
    assert res.exit_code == 2 and "missing.json: file not found" in res.stderr
    res = run("--gt", str(files / "gt.json"), "--pred", str(files / "good.json"), "--layout", "136")
    assert res.exit_code == 2 and "not the 136-point layout" in res.stderr
    res = run("--gt", str(files / "gt.json"))
    assert res.exit_code == 2 and "--pred" in res.stderr
    res = run("--gt", str(files / "gt.json"), "--pred", str(files / "good.json"), "extra.json")
    assert res.exit_code == 2 and "unexpected argument" in res.stderr


def test_installed_command_exits_2_without_traceback(files):
    wbt = Path(sys.executable).with_name("wbt")
    if not wbt.is_file():
        pytest.skip(f"the wbt console script is not installed beside {sys.executable} (pip install -e .)")
    (files / "bad.json").write_text('{"not": "a list"}')
    proc = subprocess.run(
        [str(wbt), "eval", "--gt", str(files / "gt.json"), "--pred", str(files / "bad.json")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2, proc.stderr
    expected = f"wbt: error: {files / 'bad.json'}: expected a json list of detections, got an object"
    assert proc.stderr.strip().splitlines() == [expected] and proc.stdout == ""


def test_halpe_protocol_rows_json_and_compare(files):
    gt, good, rough = (str(files / n) for n in ("gt.json", "good.json", "rough.json"))
    res = run("--protocol", "halpe", "--gt", gt, "--pred", good)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("Halpe protocol (AlphaPose's halpecocotools), coco_wholebody133, 1 images, 2 persons")
    assert [ln.split()[0] for ln in lines[2:]] == ["body", "foot", "face", "hand", "fullbody"]
    doc = json.loads(run("--protocol", "halpe", "--gt", gt, "--pred", good, "--format", "json").output)
    assert doc["protocol"].startswith("halpe: ")
    expected = evaluate(gt, good, protocol="halpe").as_dict()
    assert doc["results"][0]["stats"]["hand"]["AP"] == pytest.approx(expected["hand"]["AP"], abs=1e-12)
    res = run("--protocol", "halpe", "--gt", gt, "--pred", good, "--compare", rough, "--format", "markdown")
    assert res.output.splitlines()[0].split(" | ")[1:4] == ["body AP", "body AR", "foot AP"]
    assert [ln.split(" | ")[0] for ln in res.output.splitlines()[2:]] == ["| good", "| rough"]


def test_halpe_protocol_with_float32_sigmas_is_a_one_line_error(files):
    res = run("--protocol", "halpe", "--gt", str(files / "gt.json"), "--pred", str(files / "good.json"),
              "--sigmas-float32")  # fmt: skip
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        "wbt: error: the halpe protocol has its own float64 sigmas (no --sigmas-float32)"
    )


def test_protocols_come_from_the_registry(files):
    """`wbt eval --protocol` offers and describes exactly the PROTOCOLS entries; a new flags entry
    runs on the shared engine unchanged (here: the COCO-WholeBody protocol restricted to the body)."""
    from dataclasses import replace

    from labeltool.eval import PROTOCOLS
    from labeltool.eval.protocols import COCO_WHOLEBODY

    assert list(PROTOCOLS) == ["coco-wholebody", "halpe", "nme", "pck"]
    help_text = " ".join(run("--help").output.split())
    for p in PROTOCOLS.values():
        assert f"{p.name}: {p.description}" in help_text
    res = run("--protocol", "oks-body", "--gt", str(files / "gt.json"), "--pred", str(files / "good.json"))
    assert res.exit_code == 2 and "'oks-body' is not one of 'coco-wholebody', 'halpe', 'nme', 'pck'" in res.output

    body_only = replace(COCO_WHOLEBODY, name="oks-body", title="body only",
                        part_table=lambda layout: {"body": COCO_WHOLEBODY.part_table(layout)["body"]})  # fmt: skip
    report = evaluate(files / "gt.json", files / "rough.json", protocol=body_only)
    full = evaluate(files / "gt.json", files / "rough.json")
    assert report.parts == ("body",) and report.protocol == "oks-body" and report.protocol_title == "body only"
    assert report.as_dict()["body"] == full.as_dict()["body"] and 0 < full.stat("body", "AP") < 1


def test_protocol_kind_mismatches_are_one_line_errors(files):
    from labeltool.errors import UserError

    with pytest.raises(UserError, match=r"^unknown detection-matching evaluation protocol 'nme' \(choose from coco-wholebody, halpe\)$"):
        evaluate(files / "gt.json", files / "good.json", protocol="nme")
    with pytest.raises(UserError, match=r"^unknown evaluation protocol 'oks' \(choose from coco-wholebody, halpe\)$"):
        evaluate(files / "gt.json", files / "good.json", protocol="oks")
    for flag in (["--pr-curves", str(files / "pr")], ["--sigmas-float32"], ["--layout", "133"]):
        res = run("--protocol", "pck", "--gt", str(files / "gt.json"), "--pred", str(files / "good.json"), *flag)
        assert res.exit_code == 2
        assert res.output.strip().splitlines() == [f"wbt: error: {flag[0]} applies to the coco-wholebody and halpe protocols, not pck"]
