"""The teacher registry and protocol: spec strings, source codes, one teacher per part, and a
whole-body teacher (person crops, several parts from one call) going through the real distill work."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from labeltool.distill.body import AnnotatedBody, ImageTask
from labeltool.distill.teacher_choice import TeacherChoice
from labeltool.distill.work import DistillConfig, Distiller
from labeltool.errors import UserError
from labeltool.label_codes import ACCEPTED, SOURCE_GT
from labeltool.layouts import WHOLEBODY133
from labeltool.teachers import registry
from labeltool.teachers.base import CROP_PERSON, Backend, PartPrediction, Teacher, TeacherSpec
from labeltool.teachers.registry import build_teacher, parse_spec

DEFAULT_SOURCES = [
    "none", "gt", "derived", "mapped", "body:mediapipe", "face:facemesh", "hand:mediapipe", "foot:mediapipe",
    "foot:mediapipe:small_toe_estimated",
]  # fmt: skip  -- the codes of a default run ('mapped' took code 3 with the body-dataset readers;
#   every file stores the names beside the codes, and readers look sources up by name)


def test_default_source_codes_are_those_of_earlier_outputs():
    assert TeacherChoice().sources() == DEFAULT_SOURCES
    assert TeacherChoice.parse("face=dlib,small_toe=none").sources()[5] == "face:dlib"
    assert TeacherChoice.parse("face=dlib,small_toe=none").as_dict() == {
        "body": "mediapipe", "face": "dlib", "hand": "mediapipe", "foot": "mediapipe", "small_toe": "none"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("face=magic", "unknown face backend 'magic' (choose from facemesh, dlib, fan, onnx, none)"),
        ("body=none", "unknown body backend 'none' (choose from mediapipe, onnx)"),
        ("elbow=x", "expected PART=BACKEND[:ARG][,...] with PART in body, face, hand, foot, wholebody, small_toe"),
        ("face", "expected PART=BACKEND[:ARG][,...]"),
        ("face=dlib:model.dat", "face=dlib takes no ':model.dat'"),
        ("small_toe=maybe", "unknown small_toe choice 'maybe'"),
    ],
)
def test_bad_teacher_specs_are_one_line_errors(text, message):
    with pytest.raises(UserError) as err:
        TeacherChoice.parse(text)
    assert message in str(err.value) and "\n" not in str(err.value)


class FakeWholeBody:
    """A whole-body teacher without a model: feet, face and hands placed from the person box it is given."""

    fills = ("foot", "face", "lefthand", "righthand")
    crop = CROP_PERSON
    point_sources: dict = {}
    built_with: list = []

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.calls = []

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        self.calls.append(np.array(boxes))
        pts = np.zeros((len(boxes), 6 + 68 + 21 + 21, 3))
        angle = np.linspace(0, 2 * np.pi, pts.shape[1], endpoint=False)
        for i, b in enumerate(boxes):  # points on a circle of radius 40 around the box centre: inside the image
            pts[i, :, 0] = (b[0] + b[2]) / 2 + 40 * np.cos(angle)  # (all on one pixel would be 'degenerate')
            pts[i, :, 1] = (b[1] + b[3]) / 2 + 40 * np.sin(angle)
            pts[i, :, 2] = 0.9
        pts[:, :6] = 0.0  # no feet found
        return PartPrediction(pts)

    def describe(self) -> dict:
        return {"model": "fake", "version": "0", "files": []}

    def close(self) -> None:
        pass


@pytest.fixture()
def wholebody_backend(monkeypatch):
    """Register ``wholebody=fake:ARG`` for the test (the registry is a plain dict)."""

    def build(spec, options):
        FakeWholeBody.built_with.append(spec.arg)
        return FakeWholeBody(spec)

    entry = Backend("wholebody", "fake", FakeWholeBody, build, lambda spec: {"model": "fake"}, needs_arg=True)
    monkeypatch.setitem(registry.BACKENDS, ("wholebody", "fake"), entry)
    FakeWholeBody.built_with = []
    return entry


def test_spec_argument_goes_unchanged_to_the_factory(wholebody_backend):
    spec = parse_spec("wholebody=fake:/models/rtmw:x.onnx")
    assert spec == TeacherSpec("wholebody", "fake", "/models/rtmw:x.onnx")
    teacher = build_teacher(spec)
    assert FakeWholeBody.built_with == ["/models/rtmw:x.onnx"] and isinstance(teacher, Teacher)
    with pytest.raises(UserError, match="wholebody=fake needs its model file: wholebody=fake:FILE"):
        parse_spec("wholebody=fake")


def test_a_whole_body_model_replaces_unnamed_part_teachers_and_ensembles_named_ones(wholebody_backend):
    alone = TeacherChoice.parse("wholebody=fake:m.onnx")
    assert {p: [str(s) for s in v] for p, v in alone.fillers().items()} == dict.fromkeys(
        ("foot", "face", "lefthand", "righthand"), ["wholebody=fake:m.onnx"]
    )
    named = TeacherChoice.parse("foot=mediapipe,wholebody=fake:m.onnx")  # two teachers for the feet: an ensemble
    assert [str(s) for s in named.fillers()["foot"]] == ["foot=mediapipe", "wholebody=fake:m.onnx"]
    assert [str(s) for s in named.fillers()["face"]] == ["wholebody=fake:m.onnx"]
    choice = TeacherChoice.parse("face=none,hand=none,foot=none,wholebody=fake:m.onnx")
    assert choice.sources()[-1] == "wholebody:fake:m"  # appended (named by the model file): the default codes do not move


def standing_body() -> np.ndarray:
    """(1, 17, 3): a labelled person standing in a 640x480 image, wrists at (375, 260) and (265, 260)."""
    body = np.zeros((1, 17, 3))
    body[0, :, :2] = [(320, 100), (330, 90), (310, 90), (340, 95), (300, 95), (360, 150), (280, 150), (370, 210),
                      (270, 210), (375, 260), (265, 260), (350, 270), (290, 270), (352, 350), (288, 350), (354, 430),
                      (286, 430)]  # fmt: skip
    body[0, :, 2] = 2
    return body


def test_a_whole_body_teacher_fills_its_parts_through_the_distill_work(wholebody_backend, tmp_path):
    """One call per image on the person boxes; the merge judges each filled part with the teacher's source."""
    image = np.full((480, 640, 3), 128, np.uint8)
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), image)
    body = standing_body()
    choice = TeacherChoice.parse("face=none,hand=none,foot=none,wholebody=fake:m.onnx")
    teacher = FakeWholeBody(choice.spec("wholebody"))
    task = ImageTask(1, str(path), np.array([7]), body, np.array([[250.0, 80, 140, 360]]), np.array([5e4]))
    with Distiller(DistillConfig(choice), AnnotatedBody(), teachers=[teacher]) as distiller:
        result = distiller.label_image(task)
    assert result.error is None and len(teacher.calls) == 1
    (box,) = teacher.calls[0]  # the person box: the body points' extent grown by 15 % per side
    np.testing.assert_allclose(box, [265 - 0.15 * 110, 90 - 0.15 * 340, 375 + 0.15 * 110, 430 + 0.15 * 340])
    labels = result.labels
    code = choice.sources().index("wholebody:fake:m")
    face = WHOLEBODY133.parts["face"]
    # every point around the person box centre (320, 260): the merge judges each part by its own rules.
    # face: centre inside the box the teacher ran on (the person box) -> accepted, with its source
    assert labels.status["face"] == [ACCEPTED] and (labels.source[0, face] == code).all() and code == 8
    angle = np.linspace(0, 2 * np.pi, 116, endpoint=False)[6:74]
    np.testing.assert_allclose(labels.keypoints[0, face, :2], np.stack([320 + 40 * np.cos(angle),
                                                                         260 + 40 * np.sin(angle)], axis=1))
    assert (labels.keypoints[0, face, 2] == 2).all()
    assert labels.status["foot"] == ["no_detection"]
    # hands: the root must lie near the wrist; beside the person centre it is far from both wrists
    assert labels.status["lefthand"] == ["far_from_wrist"] and labels.status["righthand"] == ["far_from_wrist"]
    assert (labels.source[0, :17] == SOURCE_GT).all()


def test_a_whole_body_teacher_near_the_body_is_accepted(wholebody_backend, tmp_path):
    """Points where the parts are: every filled part accepted with the whole-body teacher's source code."""

    class Placed(FakeWholeBody):
        def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
            pts = np.zeros((len(boxes), 116, 3))
            angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
            pts[:, 6:74, 0] = 320 + 15 * np.cos(angle)
            pts[:, 6:74, 1] = 105 + 18 * np.sin(angle)
            for start, wrist in ((74, body[:, 9, :2]), (95, body[:, 10, :2])):
                pts[:, start : start + 21, :2] = wrist[:, None] + np.linspace(0, 20, 21)[None, :, None]
            pts[:, 0:3, :2] = body[:, 15, :2][:, None] + [5, 10]  # left foot points near the left ankle
            pts[:, 3:6, :2] = body[:, 16, :2][:, None] + [5, 10]
            pts[:, :, 2] = 0.9
            return PartPrediction(pts)

    image = np.full((480, 640, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    body = standing_body()
    choice = TeacherChoice.parse("face=none,hand=none,foot=none,wholebody=fake:m.onnx")
    task = ImageTask(1, str(tmp_path / "a.jpg"), np.array([7]), body, np.zeros((1, 4)), np.zeros(1))
    with Distiller(DistillConfig(choice), AnnotatedBody(), teachers=[Placed(choice.spec("wholebody"))]) as d:
        labels = d.label_image(task).labels
    code = choice.sources().index("wholebody:fake:m")
    assert all(labels.status[p] == [ACCEPTED] for p in ("foot", "face", "lefthand", "righthand"))
    for part in ("foot", "face", "lefthand", "righthand"):
        idx = WHOLEBODY133.parts[part]
        assert (labels.source[0, idx] == code).all() and (labels.keypoints[0, idx, 2] == 2).all()
    np.testing.assert_allclose(labels.keypoints[0, WHOLEBODY133.parts["lefthand"][0], :2], [375, 260])  # left wrist


def test_describe_names_the_model_files_with_their_hash():
    pytest.importorskip("mediapipe")
    described = TeacherChoice().describe(body=True)
    assert list(described) == ["body:mediapipe", "face:facemesh", "hand:mediapipe", "foot:mediapipe"]
    files = {f["name"]: f["sha256"] for d in described.values() for f in d["files"]}
    assert set(files) == {"pose_detection.tflite", "pose_landmark_full.tflite", "face_detection_short_range.tflite",
                          "face_landmark.tflite", "hand_recrop.tflite", "hand_landmark_full.tflite"}  # fmt: skip
    assert all(len(h) == 64 for h in files.values()) and "mediapipe" in described["face:facemesh"]["version"]


@pytest.mark.slow
def test_distill_runs_a_teacher_the_caller_built(realdata, tmp_path):
    """distill(..., teachers=[...]) with a real teacher gives the bytes of the same run built from --teachers."""
    pytest.importorskip("dlib")
    from click.testing import CliRunner

    from labeltool.cli import main
    from labeltool.distill.inputs import from_annotations
    from labeltool.distill.pipeline import distill

    src = realdata / "coco_wholebody"
    ann = src / "test_coco_wholebody.json"
    teachers = "face=dlib,hand=none,foot=none"
    args = ["distill", "--ann", ann, "--images", src, "--teachers", teachers, "--workers", 1, "--no-progress"]
    result = CliRunner().invoke(main, [str(a) for a in [*args, "--out", tmp_path / "cli"]])
    assert result.exit_code == 0, result.output
    choice = TeacherChoice.parse(teachers)
    with build_teacher(choice.spec("face")) as face:
        summary = distill(from_annotations(ann, src), tmp_path / "api", DistillConfig(choice), teachers=[face],
                          progress=False)  # fmt: skip
    assert summary["parts"]["face"]["accepted"] > 0
    for name in ("wholebody133.json", "halpe136.json", "labels.parquet"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes(), name
    assert json.loads((tmp_path / "api" / "summary.json").read_text())["models"]["face:dlib"]["files"]
