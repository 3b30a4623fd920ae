"""Hostile models, checkpoints and images (issue 19, section 4): each is refused in one line before it
costs memory or time, or gives labels a user can trust.

Every hostile file is built here in ``tmp_path`` (torch, onnx.helper, PIL, zipfile, zlib); none is
big on disk. Each case ends with exit code 2, one ``wbt: error:`` line naming the file (and the
tensor or setting at fault), no traceback and no output written.
"""

from __future__ import annotations

import json
import re
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from labeltool.images import MAX_IMAGE_PIXELS, ImageReadError, image_size, read_rgb
from labeltool.student.model import Student, StudentConfig

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import assert_one_line_error, run_wbt  # noqa: E402
from test_hostile_distill import distill_args, wbt, write_dataset  # noqa: E402
from test_hostile_inputs import _doc  # noqa: E402  (a COCO-WholeBody doc, 133 points per person)
from test_student_mmpose import _as_mmpose  # noqa: E402  (the student's weights under mmpose's names)

# --------------------------------------------------------------------------- checkpoints

TINY = StudentConfig(preset="tiny", num_keypoints=17)


@pytest.fixture(scope="module")
def mmpose_state() -> dict[str, torch.Tensor]:
    """A real RTMPose-t body-17 state dict under mmpose's names (as published files hold it)."""
    torch.manual_seed(0)
    state = _as_mmpose(Student(TINY).state_dict())
    return {k: v for k, v in state.items() if "num_batches_tracked" not in k}


def _deflated(src: Path, dst: Path) -> Path:
    """``src`` with its zip members deflated (what a re-zip does; torch.save stores them uncompressed)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return dst


def _hostile_mmpose(case: str, state: dict, tmp_path: Path) -> Path:
    state = dict(state)
    cfg = "codec = dict(type='SimCCLabel', simcc_split_ratio=2.0)"
    ratio = re.fullmatch(r"ratio=(.*)", case)
    if ratio:
        cfg = f"codec = dict(type='SimCCLabel', simcc_split_ratio={ratio[1]})"
    elif case == "stride-0":  # one number viewed as 10^12: a 4 TB copy on load_state_dict
        state["head.cls_x.weight"] = torch.zeros(1).expand(10**6, 10**6)
    elif case == "zero-size head":
        final = state["head.final_layer.weight"]
        state["head.final_layer.weight"] = torch.zeros(0, *final.shape[1:])
        state["head.final_layer.bias"] = torch.zeros(0)
    elif case == "sparse":
        state["head.cls_x.weight"] = state["head.cls_x.weight"].to_sparse()
    elif case == "meta":
        state["head.cls_x.weight"] = torch.empty(state["head.cls_x.weight"].shape, device="meta")
    elif case == "complex":
        state["head.cls_x.weight"] = state["head.cls_x.weight"].to(torch.complex64)
    elif case == "NaN weights":  # a diverged training: NaN keypoints, written as null, that eval refuses
        state["head.cls_x.weight"] = torch.full_like(state["head.cls_x.weight"], float("nan"))
    path = tmp_path / f"{re.sub(r'[^a-z0-9]+', '_', case)}.pth"
    extra = {}
    if case == "deflated":  # 40 MB of optimizer zeros: 40 KB once deflated
        extra["optimizer"] = {"state": {0: {"exp_avg": torch.zeros(10_000_000)}}}
    torch.save({"meta": {"cfg": cfg}, "state_dict": state, **extra}, path)
    if case == "deflated":
        path = _deflated(path, tmp_path / "rezipped.pth")
    return path


MMPOSE_CASES = {  # case -> what the one line must say
    "ratio=0.001": ["head.mlp.1.weight", "tensors of other shapes"],  # 16 GB head before this
    "ratio=0": ["simcc_split_ratio=0", "positive number"],
    "ratio=1.2.3": ["simcc_split_ratio=1.2.3"],
    "ratio=1e400": ["simcc_split_ratio=1e400"],
    "ratio=100000": ["input 0x0"],
    "stride-0": ["head.cls_x.weight (1000000, 1000000)", "declares 1000000000000 elements", "holds 1"],
    "zero-size head": ["head.final_layer.weight (0, 384, 7, 7)", "0 keypoints"],
    "sparse": ["head.cls_x.weight", "sparse_coo"],
    "meta": ["head.cls_x.weight", "meta tensor"],
    "complex": ["head.cls_x.weight", "complex64"],
    "deflated": ["expands from", "to 40000000 bytes"],
    "NaN weights": ["head.cls_x.weight (384, 256) has 98304 NaN or Inf values"],
}


@pytest.mark.parametrize("case", list(MMPOSE_CASES))
def test_hostile_mmpose_checkpoints_are_one_line_before_allocating(case, mmpose_state, tmp_path):
    path = _hostile_mmpose(case, mmpose_state, tmp_path)
    out = tmp_path / "out" / "model.onnx"
    code, _, err = run_wbt("export", "--model", path, "--onnx", out, "--no-check")
    line = assert_one_line_error(code, err, str(path), *MMPOSE_CASES[case])
    assert len(line) < 400
    assert not out.parent.exists()


def test_the_same_checkpoint_without_the_hostile_part_exports(mmpose_state, tmp_path):
    path = _hostile_mmpose("good", mmpose_state, tmp_path)
    code, out, err = run_wbt("export", "--model", path, "--onnx", tmp_path / "model.onnx", "--no-check")
    assert code == 0, err
    assert (tmp_path / "model.onnx").stat().st_size > 1_000_000


def _student_checkpoint(tmp_path: Path, config: StudentConfig, state: dict, name: str = "last.pt") -> Path:
    path = tmp_path / name
    torch.save({"config": config.to_dict(), "model": state, "ema": None, "epoch": 1}, path)
    return path


STUDENT_CASES = {
    "split ratio 0.001 in config": (lambda s: s, {"split_ratio": 0.001},
                                    ["bad student 'config'", "split_ratio 0.001"]),  # the config check comes first
    "stride-0 model tensor": (lambda s: {**s, "head.cls_y.weight": torch.zeros(1).expand(10**6, 10**6)}, {},
                              ["model tensor head.cls_y.weight (1000000, 1000000)", "declares"]),
    "unknown config key": (lambda s: s, {"frobnicate": 1}, ["bad student 'config'", "frobnicate"]),
    "complex model tensor": (lambda s: {**s, "head.cls_y.weight": s["head.cls_y.weight"].to(torch.complex64)}, {},
                             ["model tensor head.cls_y.weight", "complex64"]),
    "NaN model tensor": (lambda s: {**s, "head.cls_y.weight": torch.full_like(s["head.cls_y.weight"], float("nan"))},
                         {}, ["model tensor head.cls_y.weight (512, 256) has 131072 NaN or Inf values"]),
}


@pytest.mark.parametrize("case", list(STUDENT_CASES))
def test_hostile_student_checkpoints_are_one_line(case, tmp_path):
    edit_state, edit_config, fragments = STUDENT_CASES[case]
    torch.manual_seed(0)
    state = edit_state(Student(TINY).state_dict())
    config = {**TINY.to_dict(), **edit_config}
    path = tmp_path / "last.pt"
    torch.save({"config": config, "model": state, "ema": None}, path)
    code, _, err = run_wbt("export", "--model", path, "--onnx", tmp_path / "m.onnx", "--no-check")
    assert_one_line_error(code, err, str(path), *fragments)
    assert not (tmp_path / "m.onnx").exists()


def test_a_failed_export_check_keeps_the_previous_onnx(mmpose_state, tmp_path):
    good = _hostile_mmpose("good", mmpose_state, tmp_path)
    out = tmp_path / "exports" / "model.onnx"
    code, _, err = run_wbt("export", "--model", good, "--onnx", out)
    assert code == 0, err
    before = out.read_bytes()
    broken = dict(mmpose_state)  # finite weights whose logits overflow float32: the check sees Inf / NaN
    for name in ("head.gau.res_scale.scale", "head.cls_x.weight"):
        broken[name] = torch.full_like(broken[name], 3e38)
    bad = tmp_path / "overflow.pth"
    torch.save({"state_dict": broken}, bad)
    code, _, err = run_wbt("export", "--model", bad, "--onnx", out)
    assert_one_line_error(code, err, str(out), "not written", "non-finite")
    assert out.read_bytes() == before  # the earlier good export is still there, whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]  # no temp file left


# --------------------------------------------------------------------------- images


def _png_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A valid one-colour grey PNG of width x height: under 1 MB on disk, 2.7 GB once decoded as BGR."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's grey values
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = _png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")
    assert path.stat().st_size < 1_000_000
    return path


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(bomb, tmp_path):
    for read in (read_rgb, image_size):
        with pytest.raises(ImageReadError, match=rf"900000000 pixels is over wbt's limit of "
                                                 rf"{MAX_IMAGE_PIXELS} pixels \(refused before decoding\)"):
            read(bomb)
    normal = _png_bomb(tmp_path / "wide.png", 20000, 100)  # many pixels per row, few in all: read as usual
    assert image_size(normal) == (20000, 100) and read_rgb(normal).shape == (100, 20000, 3)


def _with_bomb(tmp_path: Path, bomb: Path) -> tuple[Path, Path]:
    ann, images = write_dataset(tmp_path / "data", ["a.jpg", "bomb.png"])
    (images / "bomb.png").write_bytes(bomb.read_bytes())
    return ann, images


def test_distill_logs_an_image_over_the_limit_and_labels_the_others(bomb, tmp_path):
    ann, images = _with_bomb(tmp_path, bomb)
    out = tmp_path / "out"
    result = wbt(*distill_args(ann, images, out, "--workers", 1))
    assert result.returncode == 0, result.stderr
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["file_name"] for e in errors] == ["bomb.png"]
    assert "900000000 pixels is over wbt's limit" in errors[0]["error"]
    assert json.loads((out / "summary.json").read_text())["images"]["labelled"] == 1


def test_render_and_review_export_refuse_an_image_over_the_limit_in_one_line(bomb, tmp_path):
    _, images = _with_bomb(tmp_path, bomb)
    ann = tmp_path / "wholebody133.json"
    doc = _doc(["a.jpg", "bomb.png"])
    ann.write_text(json.dumps(doc))
    code, _, err = run_wbt("render", ann, "--images", images, "--out", tmp_path / "render")
    assert_one_line_error(code, err, str(images / "bomb.png"), "over wbt's limit")
    for im in doc["images"]:  # no sizes in the file: the export reads them from the image headers
        del im["width"], im["height"]
    ann.write_text(json.dumps(doc))
    for tool in ("labelstudio", "cvat"):
        code, _, err = run_wbt("review", "export", ann, "--to", tool, "--images", images, "--out", tmp_path / tool)
        assert_one_line_error(code, err, str(images / "bomb.png"), "over wbt's limit")
        assert not (tmp_path / tool).exists()


# --------------------------------------------------------------------------- ONNX teachers


def _onnx_model(path: Path, k: int = 68, size: int = 64, input_shape: list | None = None, fill: float | None = None,
                loop: int | None = None, batch_one_out: bool = False, nan_on_content: bool = False) -> Path:
    """A small rtmlib-convention SimCC model: constant logits (peak at the crop centre) + 0 x mean(input).

    ``fill``: every logit this value (NaN); ``loop``: the mean first goes through an ONNX Loop of that many
    iterations; ``batch_one_out``: the input batch is dynamic but the outputs' batch is fixed at 1;
    ``nan_on_content``: + sqrt(-|mean|), 0 on the check's blank input, NaN on a real crop.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=1)]  # (N, 1)
    inits = [numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.array(0, np.float32), "zero")]
    source = "mean"
    if loop:
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
            "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [None, 1])],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [None, 1])],
            [numpy_helper.from_array(np.array(1, np.float32), "one")])
        inits += [numpy_helper.from_array(np.array(loop, np.int64), "trips"),
                  numpy_helper.from_array(np.array(True), "cond")]
        nodes.append(helper.make_node("Loop", ["trips", "cond", "mean"], ["looped"], body=body))
        source = "looped"
    nodes += [helper.make_node("Unsqueeze", [source, "axis2"], ["mean3"]),  # (N, 1, 1)
              helper.make_node("Mul", ["mean3", "zero"], ["nothing"] if not nan_on_content else ["zeros"])]
    if nan_on_content:
        nodes += [helper.make_node("Abs", ["mean3"], ["abs"]), helper.make_node("Neg", ["abs"], ["neg"]),
                  helper.make_node("Sqrt", ["neg"], ["root"]), helper.make_node("Add", ["zeros", "root"], ["nothing"])]
    outputs = []
    for name in ("simcc_x", "simcc_y"):
        logits = np.zeros((1, k, 2 * size), np.float32)
        logits[..., size] = 1.0  # bin size = input pixel size / 2: the crop centre
        if fill is not None:
            logits[:] = fill
        inits.append(numpy_helper.from_array(logits, f"{name}_logits"))
        nodes.append(helper.make_node("Add", ["zero" if batch_one_out else "nothing", f"{name}_logits"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, k, 2 * size]))
    graph = helper.make_graph(nodes, "pose", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, input_shape or ["N", 3, size, size])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _face_dataset(folder: Path, persons: int = 1) -> tuple[Path, Path]:
    """folder/images/p.jpg (240 x 200, textured) and folder/ann.json: ``persons`` people facing the camera."""
    images = folder / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "p.jpg"), rng.integers(0, 255, (200, 240, 3), dtype=np.uint8))
    head = [(0, 0), (-6, -6), (6, -6), (-12, -3), (12, -3), (-20, 25), (20, 25)]  # nose, eyes, ears, shoulders
    anns = []
    for i in range(persons):
        cx = 60 + 120 * i
        kpts = [0.0] * 51
        for j, (dx, dy) in enumerate(head):
            kpts[3 * j : 3 * j + 3] = [cx + dx, 50 + dy, 2]
        anns.append({"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [cx - 40, 20, 80, 170], "area": 13600.0,
                     "iscrowd": 0, "num_keypoints": 7, "keypoints": kpts})
    doc = {"images": [{"id": 1, "file_name": "p.jpg", "width": 240, "height": 200}], "annotations": anns,
           "categories": [{"id": 1, "name": "person"}]}
    (folder / "ann.json").write_text(json.dumps(doc))
    return folder / "ann.json", images


def _distill_face(ann: Path, images: Path, out: Path, model: str) -> tuple[int, str, str]:
    return run_wbt("distill", "--ann", ann, "--images", images, "--out", out, "--teachers",
                f"face=onnx:{model},hand=none,foot=none", "--no-progress", "--workers", 1)


ONNX_CASES = {  # case -> (model builder kwargs, spec suffix, what the one line says)
    "Loop of 10^12 iterations": ({"loop": 10**12}, "", ["took over 1 s (stopped)"]),
    "NaN outputs": ({"fill": float("nan")}, "", ["NaN or Inf outputs"]),
    "input 65536x65536": ({"input_shape": ["N", 3, "H", "W"]}, ":65536x65536",
                          ["input size 65536x65536 is out of range"]),
    "input 0x0": ({"input_shape": ["N", 3, "H", "W"]}, ":0x0", ["input size 0x0 is out of range"]),
}


@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_hostile_onnx_teachers_are_refused_at_the_check(case, tmp_path, monkeypatch):
    monkeypatch.setattr("labeltool.teachers.onnx.CHECK_SECONDS", 1.0)
    kwargs, suffix, fragments = ONNX_CASES[case]
    model = _onnx_model(tmp_path / "face.onnx", **kwargs)
    ann, images = _face_dataset(tmp_path / "data")
    code, _, err = _distill_face(ann, images, tmp_path / "out", f"{model}{suffix}")
    assert_one_line_error(code, err, str(model), *fragments)
    assert not (tmp_path / "out").exists()


def test_a_model_giving_nan_on_real_crops_predicts_nothing_and_eval_reads_its_results(tmp_path):
    model = _onnx_model(tmp_path / "nan_on_content.onnx", nan_on_content=True)  # finite on the blank check input
    ann, images = _face_dataset(tmp_path / "data", persons=2)
    boxes = tmp_path / "faces.json"
    boxes.write_text(json.dumps([{"image_id": 1, "file_name": "p.jpg", "bbox": [40, 30, 40, 40]},
                                 {"image_id": 1, "file_name": "p.jpg", "bbox": [160, 30, 40, 40]}]))
    results = tmp_path / "face_pred.json"
    code, _, err = run_wbt("teach", "--part", "face", "--backend", f"onnx:{model}", "--images", images, "--boxes",
                        boxes, "--out", results)
    assert code == 0, err
    assert b"null" not in results.read_bytes() and b"NaN" not in results.read_bytes()
    assert [r["score"] for r in json.loads(results.read_text())] == [0.0, 0.0]  # nothing predicted
    out = tmp_path / "out"  # distill: no face labelled, every confidence finite
    code, _, err = _distill_face(ann, images, out, str(model))
    assert code == 0, err
    assert list(_labels(out)["face_status"]) == ["no_detection", "no_detection"]
    assert all(np.isfinite(c).all() for c in _labels(out)["confidence"])


def _labels(out: Path):
    import pyarrow.parquet as pq

    return pq.read_table(out / "labels.parquet").to_pandas()


def test_a_constant_face_model_is_degenerate_not_accepted(tmp_path):
    model = _onnx_model(tmp_path / "constant.onnx")
    ann, images = _face_dataset(tmp_path / "data", persons=2)
    code, _, err = _distill_face(ann, images, tmp_path / "out", str(model))
    assert code == 0, err
    assert list(_labels(tmp_path / "out")["face_status"]) == ["degenerate", "degenerate"]
    doc = json.loads((tmp_path / "out" / "wholebody133.json").read_text())
    assert all(not a["face_valid"] and not any(a["face_kpts"]) for a in doc["annotations"])


def test_an_output_batch_fixed_at_1_runs_one_crop_at_a_time(tmp_path):
    model = _onnx_model(tmp_path / "batch1.onnx", batch_one_out=True)  # input batch dynamic, output batch 1
    ann, images = _face_dataset(tmp_path / "data", persons=2)
    code, _, err = _distill_face(ann, images, tmp_path / "out", str(model))
    assert code == 0, err
    assert (tmp_path / "out" / "errors.jsonl").read_text() == ""  # no per-image failure
    assert list(_labels(tmp_path / "out")["face_status"]) == ["degenerate", "degenerate"]  # it ran on both


def test_non_finite_logits_are_no_prediction():
    from labeltool.teachers.onnx import decode_simcc, to_image

    sx = np.zeros((1, 3, 8), np.float32)
    sy = np.zeros((1, 3, 8), np.float32)
    sx[0, :, 2] = sy[0, :, 4] = 0.5
    sx[0, 1, 5] = np.nan
    sy[0, 2, 3] = np.inf
    locs, scores = decode_simcc(sx, sy)
    out = to_image(locs, scores, np.array([[50.0, 50.0]]), np.array([[4.0, 4.0]]), (4, 4))
    assert np.isfinite(out).all()
    assert out[0, 0].tolist() == [49.0, 50.0, 0.5] and not out[0, 1:].any()


def test_the_same_model_by_relative_then_absolute_path_resumes(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    model = _onnx_model(tmp_path / "models" / "face.onnx")
    ann, images = _face_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    code, _, err = _distill_face(ann, images, tmp_path / "out", "models/face.onnx")
    assert code == 0, err
    run = json.loads((tmp_path / "out" / "shards" / "run.json").read_text())
    code, _, err = _distill_face(ann, images, tmp_path / "out", str(model))
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "shards" / "run.json").read_text()) == run
    model.write_bytes(_onnx_model(tmp_path / "other.onnx", fill=0.5).read_bytes())  # same name, other content
    code, _, err = _distill_face(ann, images, tmp_path / "out", "models/face.onnx")
    assert_one_line_error(code, err, "run.json", "different models")


def test_collapsed_face_and_hand_points_are_degenerate():
    from test_merge_rules import face_prediction, hand_prediction, merge

    from labeltool.label_codes import ACCEPTED, DEGENERATE

    face = face_prediction()
    assert merge({"face": face}).status["face"] == [ACCEPTED]
    face.points[0, :, :2] = [320.0, 105.0]  # every point on one pixel, confidently
    assert merge({"face": face}).status["face"] == [DEGENERATE]
    hand = hand_prediction((375, 260))
    assert merge({"lefthand": hand}).status["lefthand"] == [ACCEPTED]
    # within half a pixel of the body wrist (so the wrist rule passes): a hand of no size
    hand.points[0, :, :2] = [375.0, 260.0] + np.random.default_rng(0).uniform(0, 0.35, (21, 2))
    assert merge({"lefthand": hand}).status["lefthand"] == [DEGENERATE]


def test_predict_writes_no_null_for_logits_that_overflow_and_eval_reads_it(tmp_path):
    """Finite weights whose logits overflow float32 (Inf): no prediction (score 0), as the ONNX teachers do."""
    from test_hostile_inputs import _make_work

    work = _make_work(tmp_path)
    config = StudentConfig(preset="tiny", num_keypoints=133)
    torch.manual_seed(0)
    state = Student(config).state_dict()
    for name in ("head.gau.res_scale", "head.cls_x.weight", "head.cls_y.weight"):
        state[name] = torch.full_like(state[name], 3e38)
    model = tmp_path / "overflow.pt"
    torch.save({"config": config.to_dict(), "model": state, "ema": None}, model)
    results = tmp_path / "results_overflow.json"
    code, _, err = run_wbt("predict", "--model", model, "--images", work / "images", "--gt", work / "good.json",
                        "--out", results, "--workers", 0, "--no-flip")
    assert code == 0, err
    assert b"null" not in results.read_bytes() and b"NaN" not in results.read_bytes()
    scores = [s for r in json.loads(results.read_text()) for s in r["face_kpts"][2::3]]
    assert scores and all(s == 0 for s in scores)
    code, _, err = run_wbt("eval", "--gt", work / "good.json", "--pred", results)
    assert code == 0, err


# --------------------------------------------------------------------------- convert of a large file


def test_convert_converts_and_writes_a_part_at_a_time(tmp_path, monkeypatch):
    """``wbt convert`` never holds every person's converted points (10^6 persons: 10 GB before); same bytes."""
    import orjson

    import labeltool.convert
    import labeltool.io.pose
    from labeltool.convert import convert_dataset
    from labeltool.io.pose import load_pose_dataset, pose_document
    from labeltool.layouts import HALPE136

    src = tmp_path / "wholebody133.json"
    src.write_text(json.dumps(_doc([f"{i}.jpg" for i in range(25)])))
    expected = orjson.dumps(pose_document(convert_dataset(load_pose_dataset(src), HALPE136)),
                            option=orjson.OPT_SERIALIZE_NUMPY)
    largest = []
    convert_points = labeltool.convert.convert_points

    def recording(kpts, *args, **kwargs):
        largest.append(len(kpts))
        return convert_points(kpts, *args, **kwargs)

    monkeypatch.setattr(labeltool.convert, "convert_points", recording)
    monkeypatch.setattr(labeltool.io.pose, "WRITE_CHUNK", 7)
    code, out, err = run_wbt("convert", src, tmp_path / "halpe136.json", "--to", "136")
    assert code == 0, err
    assert "25 persons" in out and "derived neck 25, hip 25" in out
    assert max(largest) == 7 and sum(largest) == 25
    assert (tmp_path / "halpe136.json").read_bytes() == expected
