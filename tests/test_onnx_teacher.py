"""ONNX teachers in rtmlib's convention, ensembles of teachers, and the self-training round.

The real model is a wbt student trained for a few steps on the real COCO-WholeBody sample
(../shared/realdata) and exported with ``wbt export --onnx`` (rtmlib's convention): an honest,
under-trained model, so the tests check wiring and invariants (geometry against rtmlib itself,
sources, confidences in range, the GT body untouched, the agreement rule), not accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.distill.teacher_choice import TeacherChoice
from labeltool.errors import UserError
from labeltool.label_codes import SOURCE_NONE
from labeltool.layouts import WHOLEBODY133
from labeltool.merge.rules import MergeRules, PartCandidate, combine_candidates
from labeltool.teachers.base import HANDEDNESS_CONTRADICTS, TeacherSpec
from labeltool.teachers.onnx import box_center_scale, decode_simcc, parse_arg, to_image
from labeltool.teachers.registry import build_teacher, parse_spec
from labeltool.topdown import crop_matrices

PART_KEYS = ("foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts", "face_box", "lefthand_box",
             "righthand_box", "foot_valid", "face_valid", "lefthand_valid", "righthand_valid")  # fmt: skip
RTMLIB_VENV = Path(os.environ.get("WBT_RTMLIB_VENV", Path.home() / ".cache/wbt/rtmlib-venv"))


# ------------------------------------------------------------------ rtmlib's geometry and decoding, known answers


def test_spec_argument_is_a_file_and_an_optional_input_size():
    assert parse_arg("models/rtmw-x.onnx:288x384") == (Path("models/rtmw-x.onnx"), (288, 384))
    assert parse_arg("C:/m.onnx") == (Path("C:/m.onnx"), None)
    assert parse_arg("student.onnx") == (Path("student.onnx"), None)
    assert TeacherSpec("wholebody", "onnx", "models/rtmw-x.onnx:288x384").source == "wholebody:onnx:rtmw-x"


def test_crop_geometry_is_rtmlibs():
    """Box [10, 20, 110, 220] for a 192x256 input: x 1.25 -> 125 x 250, grown to aspect 0.75 -> 187.5 x 250."""
    center, scale = box_center_scale(np.array([[10.0, 20.0, 110.0, 220.0]]), (192, 256))
    np.testing.assert_allclose(center, [[60.0, 120.0]])
    np.testing.assert_allclose(scale, [[187.5, 250.0]])
    m = crop_matrices(center, scale, (192, 256))[0]
    # rtmlib's get_warp_matrix (rot 0): three point pairs through cv2.getAffineTransform, in float32
    src = np.float32([[60, 120], [60, 120 - 187.5 / 2], [60 - 187.5 / 2, 120 - 187.5 / 2]])
    dst = np.float32([[96, 128], [96, 128 - 96], [0, 32]])
    np.testing.assert_allclose(m, cv2.getAffineTransform(src, dst), atol=1e-5)


def test_simcc_decoding_is_rtmlibs():
    """arg-max / 2 per axis; score = the mean of the two maxima; a point with score <= 0 is not predicted."""
    sx = np.zeros((1, 3, 8))
    sy = np.zeros((1, 3, 6))
    sx[0, 0, 5], sy[0, 0, 2] = 0.9, 0.7  # -> (2.5, 1.0), score 0.8
    sx[0, 1, 1], sy[0, 1, 4] = 1.6, 1.2  # -> (0.5, 2.0), score 1.4, confidence clipped to 1
    sy[0, 2] = -0.7
    sx[0, 2, 3], sy[0, 2, 3] = 0.5, -0.6  # score -0.05: no prediction
    locs, scores = decode_simcc(sx, sy)
    np.testing.assert_allclose(locs[0, :2], [[2.5, 1.0], [0.5, 2.0]])
    np.testing.assert_allclose(scores[0], [0.8, 1.4, -0.05])
    center, scale = np.array([[100.0, 50.0]]), np.array([[40.0, 30.0]])  # a 4x3 input over a 40x30 region
    out = to_image(locs, scores, center, scale, (4, 3))
    np.testing.assert_allclose(out[0, 0], [2.5 / 4 * 40 + 80, 1.0 / 3 * 30 + 35, 0.8])
    np.testing.assert_allclose(out[0, 1, 2], 1.0)
    assert not out[0, 2].any()


# ------------------------------------------------------------------ the agreement rule on known inputs


def candidate(points, source, proposed=None, boxes=None, flags=None) -> PartCandidate:
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    proposed = np.ones(n, dtype=bool) if proposed is None else np.asarray(proposed)
    boxes = np.tile([0.0, 0.0, 100.0, 100.0], (n, 1)) if boxes is None else np.asarray(boxes, dtype=np.float64)
    return PartCandidate(source, points, proposed, boxes, flags or {})


def hand(offset=(0.0, 0.0), conf=0.8) -> np.ndarray:
    """21 points on a 40 x 40 square grid (diagonal 56.6 -> agreement radius 0.15 x 56.6 = 8.5 px)."""
    g = np.linspace(0, 40, 5)
    xy = np.array([(x, y) for x in g for y in g][:21]) + offset
    return np.concatenate([xy, np.full((21, 1), conf)], axis=1)


def test_one_teacher_passes_through_unchanged():
    c = candidate([hand()], 5)
    assert combine_candidates([c], "lefthand") is c


def test_two_agreeing_models_give_the_mean_and_their_mean_confidence():
    a, b = candidate([hand((0, 0), 0.8)], 5), candidate([hand((4, 0), 0.6)], 6)  # 4 px apart: agree
    out = combine_candidates([a, b], "lefthand", MergeRules(), {frozenset({5, 6}): 9})
    np.testing.assert_allclose(out.points[0, :, :2], hand((2, 0))[:, :2])
    np.testing.assert_allclose(out.points[0, :, 2], 0.7)  # 2/2 agree x mean(0.8, 0.6)
    assert (out.source == 9).all()


def test_disagreeing_models_keep_the_surer_one_at_half_its_confidence():
    a, b = candidate([hand((0, 0), 0.8)], 5), candidate([hand((20, 0), 0.6)], 6)  # 20 px > 8.5 px
    out = combine_candidates([a, b], "lefthand", MergeRules(), {frozenset({5, 6}): 9})
    np.testing.assert_allclose(out.points[0], np.concatenate([hand()[:, :2], np.full((21, 1), 0.4)], axis=1))
    assert (out.source == 5).all()


def test_a_model_that_ran_and_found_nothing_halves_the_confidence_one_not_proposed_does_not():
    found, empty = hand(conf=0.8), np.zeros((21, 3))
    a = candidate([found, found], 5)
    b = candidate([empty, found], 6, proposed=[True, False])  # person 0: ran, nothing; person 1: no crop
    out = combine_candidates([a, b], "lefthand", MergeRules(), {frozenset({5, 6}): 9})
    np.testing.assert_allclose(out.points[:, :, 2], [[0.4] * 21, [0.8] * 21])
    assert (out.source == 5).all() and out.proposed.all()


def test_two_of_three_agree():
    a, b, c = candidate([hand((0, 0), 0.9)], 5), candidate([hand((2, 2), 0.6)], 6), candidate([hand((30, 0), 1.0)], 7)
    out = combine_candidates([a, b, c], "lefthand", MergeRules(), {frozenset({5, 6}): 9, frozenset({5, 7}): 10,
                                                                       frozenset({6, 7}): 11, frozenset({5, 6, 7}): 12})
    np.testing.assert_allclose(out.points[0, :, :2], hand((1, 1))[:, :2])
    np.testing.assert_allclose(out.points[0, :, 2], 2 / 3 * 0.75)
    assert (out.source == 9).all()


def test_a_contradicting_handedness_drops_that_models_points_only():
    flags = {HANDEDNESS_CONTRADICTS: np.array([True])}
    a, b = candidate([hand((0, 0), 0.8)], 5, flags=flags), candidate([hand((30, 0), 0.6)], 6)
    out = combine_candidates([a, b], "lefthand", MergeRules(), {frozenset({5, 6}): 9})
    np.testing.assert_allclose(out.points[0, :, :2], hand((30, 0))[:, :2])
    np.testing.assert_allclose(out.points[0, :, 2], 0.3)
    assert not out.flags[HANDEDNESS_CONTRADICTS][0] and (out.source == 6).all()


def test_feet_agree_per_foot_with_per_point_sources():
    """Each foot's own size sets its radius; the estimated small toe keeps its own source code in the ensemble key."""
    left = [[0, 0, 0.9], [5, 5, 0.45], [30, 0, 0.9]]  # foot length ~30: radius 4.5
    right = [[200, 0, 0.9], [205, 5, 0.45], [230, 0, 0.9]]
    a = candidate([left + right], np.array([5, 8, 5, 5, 8, 5]))  # 8: the small toe's own code
    moved = np.array(left + right, dtype=float) + [[3, 0, 0], [3, 0, 0], [10, 0, 0], [0] * 3, [0] * 3, [0] * 3]
    b = candidate([moved], 6)
    codes = {frozenset({5, 6}): 9, frozenset({8, 6}): 10}
    out = combine_candidates([a, b], "foot", MergeRules(), codes)
    np.testing.assert_array_equal(out.source[0], [9, 10, 5, 9, 10, 9])  # the heel 10 px off disagrees
    np.testing.assert_allclose(out.points[0, 0], [1.5, 0, 0.9])
    np.testing.assert_allclose(out.points[0, 2], [30, 0, 0.45])


def test_no_prediction_anywhere_is_source_none():
    a, b = candidate([np.zeros((21, 3))], 5), candidate([np.zeros((21, 3))], 6)
    out = combine_candidates([a, b], "lefthand", MergeRules(), {frozenset({5, 6}): 9})
    assert not out.points.any() and (out.source == SOURCE_NONE).all()


# ------------------------------------------------------------------ choosing teachers


def test_ensemble_source_names_and_defaults():
    c = TeacherChoice.parse("hand=mediapipe,hand=onnx:A.onnx", check_files=False)
    assert c.sources()[-1] == "hand:ensemble(mediapipe+onnx:A)"
    assert c.ensembles() == {"hand:ensemble(mediapipe+onnx:A)": ("hand:mediapipe", "hand:onnx:A")}
    c = TeacherChoice.parse("wholebody=onnx:m/st.onnx,hand=mediapipe,face=facemesh", check_files=False)
    assert c.as_dict() == {"body": "onnx:m/st.onnx", "face": "facemesh", "hand": "mediapipe", "foot": "none",
                           "wholebody": "onnx:m/st.onnx", "small_toe": "estimate"}  # fmt: skip
    assert c.sources()[-2:] == ["face:ensemble(facemesh+wholebody:onnx:st)", "hand:ensemble(mediapipe+wholebody:onnx:st)"]
    c = TeacherChoice.parse("wholebody=onnx:A.onnx,wholebody=onnx:B.onnx,foot=mediapipe", check_files=False)
    assert c.spec("body") == TeacherSpec("body", "onnx", "A.onnx")
    assert {"wholebody:ensemble(onnx:A+onnx:B)", "foot:ensemble(mediapipe:small_toe_estimated+wholebody:onnx:A)",
            "foot:ensemble(mediapipe+wholebody:onnx:A+wholebody:onnx:B)"} <= set(c.sources())  # fmt: skip
    assert TeacherChoice.parse("", check_files=False).sources() == TeacherChoice().sources()  # defaults unchanged


@pytest.mark.parametrize(
    "text, message",
    [
        ("hand=onnx:a/m.onnx,hand=onnx:b/m.onnx", "would both be named 'hand:onnx:m'"),
        ("hand=none,hand=mediapipe", "hand=none goes alone"),
        ("hand=mediapipe,hand=mediapipe", "hand=mediapipe is given twice"),
        ("wholebody=onnx", "wholebody=onnx needs its model file"),
    ],
)
def test_bad_choices_are_one_line(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        TeacherChoice.parse(text, check_files=False)


def test_a_missing_or_non_onnx_model_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(UserError, match=f"^{missing}: model file not found .*133 keypoints"):
        TeacherChoice.parse(f"wholebody=onnx:{missing}")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(UserError, match=f"^{text}: not an ONNX model onnxruntime can load"):
        build_teacher(parse_spec(f"hand=onnx:{text}"))
    code, out = wbt_cli("teach", "--part", "face", "--images", tmp_path, "--boxes", tmp_path / "b.json",
                        "--out", tmp_path / "o.json", "--backend", f"onnx:{missing}")  # fmt: skip
    assert code == 2 and out.count("\n") == 1 and f"{missing}: model file not found" in out, out


def wbt_cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


# ------------------------------------------------------------------ a real exported student


@pytest.fixture(scope="module")
def student_onnx(realdata, tmp_path_factory) -> Path:
    """The tiny student after 20 steps on the 12 real persons, exported in rtmlib's convention (64x96 input)."""
    from labeltool.student.export import export_onnx
    from labeltool.student.train import TrainConfig, train

    src = realdata / "coco_wholebody"
    out = tmp_path_factory.mktemp("student")
    cfg = TrainConfig(train=str(src / "test_coco_wholebody.json"), images=str(src), out=str(out), preset="tiny",
                      input_size=(64, 96), epochs=20, batch_size=12, lr=4e-3, lr_base_batch=0, warmup_steps=2, weight_decay=0.0,
                      workers=0, augment=False, ema=False, bn_momentum=0.5, device="cpu", progress=False)  # fmt: skip
    result = train(cfg)
    onnx_path = out / "student.onnx"
    export_onnx(str(result.out / "last.pt"), str(onnx_path))
    return onnx_path


@pytest.mark.slow
def test_wrong_shaped_models_are_one_line(student_onnx):
    with pytest.raises(UserError, match=f"^{student_onnx}: 133 keypoints; expected 21 for hand=onnx"):
        TeacherChoice.parse(f"hand=onnx:{student_onnx}")
    with pytest.raises(UserError, match=f"^{student_onnx}: 133 keypoints; expected 68 for face=onnx"):
        TeacherChoice.parse(f"face=onnx:{student_onnx}")
    with pytest.raises(UserError, match=f"^{student_onnx}: the file's input is 64x96, the spec says 96x128$"):
        TeacherChoice.parse(f"wholebody=onnx:{student_onnx}:96x128")


@pytest.mark.slow
def test_teacher_gives_rtmlibs_keypoints(student_onnx, realdata, tmp_path):
    """Our pre- and post-processing against rtmlib 0.0.16's own RTMPose, defaults, on the real persons' boxes."""
    python = RTMLIB_VENV / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"rtmlib test venv not found at {RTMLIB_VENV} (made by install.sh --test)")
    from labeltool.images import read_rgb
    from labeltool.io.paths import image_path
    from labeltool.io.pose import load_pose_dataset
    from labeltool.proposals import xywh_to_xyxy

    src = realdata / "coco_wholebody"
    ds = load_pose_dataset(src / "test_coco_wholebody.json")
    files = {int(im["id"]): str(image_path(src, im)) for im in ds.images}
    boxes = xywh_to_xyxy(ds.bboxes)
    request = {"models": [str(student_onnx)], "input_size": [64, 96],
               "persons": [{"file": files[int(i)], "bbox_xyxy": b.tolist()} for i, b in zip(ds.image_ids, boxes)]}  # fmt: skip
    (tmp_path / "req.json").write_text(json.dumps(request))
    script = Path(__file__).parent / "rtmlib_pose.py"
    run = subprocess.run([str(python), str(script), str(tmp_path / "req.json"), str(tmp_path / "out.json")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    theirs = json.loads((tmp_path / "out.json").read_text())[str(student_onnx)]
    teacher = build_teacher(parse_spec(f"wholebody=onnx:{student_onnx}"))
    ours = np.concatenate([teacher.predict(read_rgb(files[int(i)]), boxes[[k]]).points
                           for k, i in enumerate(ds.image_ids)])  # fmt: skip
    kp, scores = np.array(theirs["keypoints"]), np.array(theirs["scores"])
    shown = scores > 0
    # one SimCC bin is 1/2 input pixel = box / 64 / 2 image pixels; float rounding may move a tied arg-max by one
    bin_px = box_center_scale(boxes, (64, 96))[1][:, :1] / 64 / 2
    err = np.abs(ours[..., :2] - kp)
    assert (err[shown] <= 1e-3).mean() >= 0.99 and (err <= bin_px[:, :, None] + 1e-3)[shown].all(), err.max()
    np.testing.assert_allclose(ours[..., 2][shown], np.clip(scores, 0, 1)[shown], atol=1e-4)


def body_only(src: Path, dest: Path) -> Path:
    doc = json.loads(src.read_text())
    for ann in doc["annotations"]:
        for key in PART_KEYS:
            ann.pop(key, None)
    dest.write_text(json.dumps(doc))
    return dest


def run_distill(ann: Path, images: Path, out: Path, teachers: str) -> tuple[dict, dict]:
    from labeltool.distill import inputs
    from labeltool.distill.pipeline import distill
    from labeltool.distill.work import DistillConfig
    from labeltool.labels_table import read_labels

    summary = distill(inputs.from_annotations(ann, images), out, DistillConfig(TeacherChoice.parse(teachers)),
                      workers=1, shard_size=2, progress=False)  # fmt: skip
    return summary, read_labels(out / "labels.parquet")


def check_labels(table, gt_body: np.ndarray, allowed: set[str]) -> None:
    """GT body points untouched; every other labelled point from an allowed source, confidence in (0, 1]."""
    names = list(table.source_names)
    body = WHOLEBODY133.parts["body"]
    np.testing.assert_array_equal(table.keypoints[:, body], gt_body)
    labelled = table.keypoints[:, :, 2] > 0
    assert (table.source[:, body][labelled[:, body]] == names.index("gt")).all()
    assert (table.confidence[:, body][labelled[:, body]] == 1).all()
    parts = np.setdiff1d(np.arange(133), body)
    used = {names[s] for s in np.unique(table.source[:, parts][labelled[:, parts]])}
    assert used and used <= allowed, used
    conf = table.confidence[:, parts]
    assert ((conf > 0) & (conf <= 1))[labelled[:, parts]].all() and (conf[~labelled[:, parts]] == 0).all()


@pytest.mark.slow
def test_distill_real_sample_with_the_student_as_whole_body_teacher_and_an_ensemble(student_onnx, realdata, tmp_path):
    from labeltool.io.pose import load_pose_dataset

    src = realdata / "coco_wholebody"
    ann = body_only(src / "test_coco_wholebody.json", tmp_path / "body.json")
    gt_body = load_pose_dataset(ann).keypoints
    single, one = run_distill(ann, src, tmp_path / "one", f"wholebody=onnx:{student_onnx}")
    check_labels(one, gt_body, {"wholebody:onnx:student"})
    sha = hashlib.sha256(student_onnx.read_bytes()).hexdigest()
    assert single["models"]["wholebody:onnx:student"]["files"] == [{"name": "student.onnx", "sha256": sha}]
    assert single["ensembles"] == {} and single["parts"]["foot"]["accepted"] > 0

    # two copies of one model: every point agrees with itself -> the single model's labels, ensemble sources
    twin = tmp_path / "twin.onnx"
    shutil.copy(student_onnx, twin)
    summary, two = run_distill(ann, src, tmp_path / "two", f"wholebody=onnx:{student_onnx},wholebody=onnx:{twin}")
    check_labels(two, gt_body, {"wholebody:ensemble(onnx:student+onnx:twin)"})
    np.testing.assert_allclose(two.keypoints, one.keypoints, atol=1e-9)
    np.testing.assert_allclose(two.confidence, one.confidence, atol=1e-6)
    assert summary["ensembles"]["lefthand"] == ["wholebody:onnx:student", "wholebody:onnx:twin"]
    assert set(summary["models"]) == {"wholebody:onnx:student", "wholebody:onnx:twin"}


@pytest.mark.slow
def test_self_training_round_ensembles_the_student_with_mediapipe(student_onnx, realdata, tmp_path):
    """``--teachers wholebody=onnx:student.onnx,hand=mediapipe,face=facemesh`` through the real CLI."""
    from labeltool.io.pose import load_pose_dataset
    from labeltool.labels_table import read_labels

    pytest.importorskip("mediapipe")
    src = realdata / "coco_wholebody"
    ann = body_only(src / "test_coco_wholebody.json", tmp_path / "body.json")
    out = tmp_path / "self"
    code, text = wbt_cli("distill", "--ann", ann, "--images", src, "--out", out, "--workers", 1, "--no-progress",
                         "--teachers", f"wholebody=onnx:{student_onnx},hand=mediapipe,face=facemesh")  # fmt: skip
    assert code == 0, text
    table = read_labels(out / "labels.parquet")
    student, hands, faces = "wholebody:onnx:student", "hand:mediapipe", "face:facemesh"
    allowed = {student, hands, faces, f"hand:ensemble(mediapipe+{student})", f"face:ensemble(facemesh+{student})"}
    check_labels(table, load_pose_dataset(ann).keypoints, allowed)
    names = list(table.source_names)
    feet = table.source[:, WHOLEBODY133.parts["foot"]]
    assert set(np.unique(feet)) <= {names.index("none"), names.index(student)}  # feet: the student alone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ensembles"] == {"face": [faces, student], "lefthand": [hands, student],
                                    "righthand": [hands, student]}  # fmt: skip
    assert summary["small_toe"].startswith("the small toe is predicted by the whole-body model")


@pytest.mark.slow
def test_teach_with_a_whole_body_model_writes_133_points(student_onnx, realdata, tmp_path):
    src = realdata / "coco_wholebody"
    out = tmp_path / "pred.json"
    code, text = wbt_cli("teach", "--part", "wholebody", "--backend", f"onnx:{student_onnx}", "--images", src,
                         "--boxes", src / "test_coco_wholebody.json", "--out", out)  # fmt: skip
    assert code == 0, text
    results = json.loads(out.read_text())
    assert len(results) == 14 and all(len(r["keypoints"]) == 133 * 3 for r in results)
    conf = np.array([r["keypoints"][2::3] for r in results])
    assert ((conf >= 0) & (conf <= 1)).all() and (conf > 0).any()


@pytest.mark.slow
def test_without_body_keypoints_the_whole_body_model_is_the_body_teacher_too(student_onnx, realdata, tmp_path):
    from labeltool.distill import inputs
    from labeltool.distill.pipeline import distill
    from labeltool.distill.work import DistillConfig
    from labeltool.labels_table import read_labels

    choice = TeacherChoice.parse(f"wholebody=onnx:{student_onnx}")
    assert choice.spec("body") == TeacherSpec("body", "onnx", str(student_onnx))
    body_teacher, whole_teacher = choice.build(body=True)
    assert body_teacher.model is whole_teacher.model  # one onnxruntime session for both
    body_teacher.close()
    whole_teacher.close()
    config = DistillConfig(choice, MergeRules(body_min_conf=0.01))  # the 6-step student's scores are low
    summary = distill(inputs.from_images(realdata / "coco_wholebody"), tmp_path / "out", config, workers=1,
                      progress=False)  # fmt: skip
    table = read_labels(tmp_path / "out" / "labels.parquet")
    names = list(table.source_names)
    body = table.source[:, WHOLEBODY133.parts["body"]]
    assert set(np.unique(body)) <= {names.index("none"), names.index("body:onnx:student")} and (body > 0).any()
    models = summary["models"]
    assert set(models) == {"body:onnx:student", "wholebody:onnx:student"}
    assert models["body:onnx:student"]["files"] == models["wholebody:onnx:student"]["files"]


@pytest.mark.slow
def test_resuming_with_a_changed_model_file_is_refused(student_onnx, realdata, tmp_path):
    import onnx

    src = realdata / "coco_wholebody"
    ann = body_only(src / "test_coco_wholebody.json", tmp_path / "body.json")
    model = tmp_path / "m.onnx"
    shutil.copy(student_onnx, model)
    args = ["distill", "--ann", ann, "--images", src, "--out", tmp_path / "out", "--workers", 1, "--no-progress",
            "--teachers", f"wholebody=onnx:{model}"]  # fmt: skip
    assert wbt_cli(*args)[0] == 0
    proto = onnx.load(str(model))
    onnx.helper.set_model_props(proto, {"note": "same network, other file"})
    onnx.save(proto, str(model))
    code, out = wbt_cli(*args)
    assert code == 2 and "holds a run with different models" in out, out
