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

import pytest
import torch
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.images import MAX_IMAGE_PIXELS, ImageReadError, image_size, read_rgb
from labeltool.student.model import Student, StudentConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_hostile_distill import distill_args, wbt, write_dataset  # noqa: E402
from test_hostile_inputs import _doc  # noqa: E402  (a COCO-WholeBody doc, 133 points per person)
from test_student_mmpose import _as_mmpose  # noqa: E402  (the student's weights under mmpose's names)


def _run(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: fail with it
    return result.exit_code, result.stdout, result.stderr


def _assert_one_line_error(code: int, stderr: str, *fragments: str) -> str:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wbt: error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


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
}


@pytest.mark.parametrize("case", list(MMPOSE_CASES))
def test_hostile_mmpose_checkpoints_are_one_line_before_allocating(case, mmpose_state, tmp_path):
    path = _hostile_mmpose(case, mmpose_state, tmp_path)
    out = tmp_path / "out" / "model.onnx"
    code, _, err = _run("export", "--model", path, "--onnx", out, "--no-check")
    line = _assert_one_line_error(code, err, str(path), *MMPOSE_CASES[case])
    assert len(line) < 400
    assert not out.parent.exists()


def test_the_same_checkpoint_without_the_hostile_part_exports(mmpose_state, tmp_path):
    path = _hostile_mmpose("good", mmpose_state, tmp_path)
    code, out, err = _run("export", "--model", path, "--onnx", tmp_path / "model.onnx", "--no-check")
    assert code == 0, err
    assert (tmp_path / "model.onnx").stat().st_size > 1_000_000


def _student_checkpoint(tmp_path: Path, config: StudentConfig, state: dict, name: str = "last.pt") -> Path:
    path = tmp_path / name
    torch.save({"config": config.to_dict(), "model": state, "ema": None, "epoch": 1}, path)
    return path


STUDENT_CASES = {
    "split ratio 0.001 in config": (lambda s: s, {"split_ratio": 0.001},
                                    ["tensor head.cls_x.weight is (384, 256)", "its config's student has (0, 256)"]),
    "stride-0 model tensor": (lambda s: {**s, "head.cls_y.weight": torch.zeros(1).expand(10**6, 10**6)}, {},
                              ["model tensor head.cls_y.weight (1000000, 1000000)", "declares"]),
    "unknown config key": (lambda s: s, {"frobnicate": 1}, ["'config' does not build a student", "frobnicate"]),
    "complex model tensor": (lambda s: {**s, "head.cls_y.weight": s["head.cls_y.weight"].to(torch.complex64)}, {},
                             ["model tensor head.cls_y.weight", "complex64"]),
}


@pytest.mark.parametrize("case", list(STUDENT_CASES))
def test_hostile_student_checkpoints_are_one_line(case, tmp_path):
    edit_state, edit_config, fragments = STUDENT_CASES[case]
    torch.manual_seed(0)
    state = edit_state(Student(TINY).state_dict())
    config = {**TINY.to_dict(), **edit_config}
    path = tmp_path / "last.pt"
    torch.save({"config": config, "model": state, "ema": None}, path)
    code, _, err = _run("export", "--model", path, "--onnx", tmp_path / "m.onnx", "--no-check")
    _assert_one_line_error(code, err, str(path), *fragments)
    assert not (tmp_path / "m.onnx").exists()


def test_a_failed_export_check_keeps_the_previous_onnx(mmpose_state, tmp_path):
    good = _hostile_mmpose("good", mmpose_state, tmp_path)
    out = tmp_path / "exports" / "model.onnx"
    code, _, err = _run("export", "--model", good, "--onnx", out)
    assert code == 0, err
    before = out.read_bytes()
    broken = dict(mmpose_state)
    broken["head.cls_x.weight"] = torch.full_like(broken["head.cls_x.weight"], float("nan"))
    bad = tmp_path / "nan.pth"
    torch.save({"state_dict": broken}, bad)
    code, _, err = _run("export", "--model", bad, "--onnx", out)
    _assert_one_line_error(code, err, str(out), "not written", "non-finite")
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
    code, _, err = _run("render", ann, "--images", images, "--out", tmp_path / "render")
    _assert_one_line_error(code, err, str(images / "bomb.png"), "over wbt's limit")
    for im in doc["images"]:  # no sizes in the file: the export reads them from the image headers
        del im["width"], im["height"]
    ann.write_text(json.dumps(doc))
    for tool in ("labelstudio", "cvat"):
        code, _, err = _run("review", "export", ann, "--to", tool, "--images", images, "--out", tmp_path / tool)
        _assert_one_line_error(code, err, str(images / "bomb.png"), "over wbt's limit")
        assert not (tmp_path / tool).exists()
