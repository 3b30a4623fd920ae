"""`wbt distill` against hostile input and a hostile machine.

A full disk (a real small tmpfs) or a read-only output ends with one line naming the path,
exit 1, no temp file and no output of this run (the shards stay: they resume); the same
command on a freed disk then finishes with the output of an undisturbed run. File names
that leave --images, FIFOs named *.jpg and images that all fail are per-image errors or one
line, never a read outside the folder, a hang or a silent exit 0. Runs without teachers
(fast) unless marked slow; every run is a subprocess with a timeout, so a hang fails.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from golden_labels import body_only

NO_TEACHERS = "face=none,hand=none,foot=none"
CLI = [sys.executable, "-c", "from labeltool.cli import main; main()"]
OUTPUTS = ("wholebody133.json", "halpe136.json", "labels.parquet", "errors.jsonl", "summary.json")
NUM_IMAGES = 40
TIMEOUT = 120  # seconds; a run that hangs fails the test instead of blocking the suite


def wbt(*args, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wbt {' '.join(map(str, args))} hung for {timeout} s")


def wbt_in_process(*args) -> subprocess.CompletedProcess:
    """For mistakes refused before any work (nothing that could hang): click's runner, no new interpreter."""
    from click.testing import CliRunner

    from labeltool.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: fail with it
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def assert_one_line(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wbt: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _person(ann_id: int, image_id: int) -> dict:
    kpts = [0] * 51
    kpts[0:3] = [40, 30, 2]  # nose
    kpts[15:18] = [30 + ann_id % 7, 20, 2]  # left shoulder
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000.0,
            "iscrowd": 0, "num_keypoints": 2, "keypoints": kpts}  # fmt: skip


def write_dataset(folder: Path, file_names: list[str], with_files: bool = True) -> tuple[Path, Path]:
    """folder/images/<names> (grey 80 x 60 JPEGs) and folder/ann.json, one body-only person each."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in file_names if with_files else ():
        cv2.imwrite(str(images / name), np.full((60, 80, 3), 90, np.uint8))
    doc = {
        "images": [{"id": i + 1, "file_name": n, "width": 80, "height": 60} for i, n in enumerate(file_names)],
        "annotations": [_person(i + 1, i + 1) for i in range(len(file_names))],
        "categories": [{"id": 1, "name": "person"}],
    }
    (folder / "ann.json").write_text(json.dumps(doc))
    return folder / "ann.json", images


def distill_args(ann: Path, images: Path, out: Path, *extra) -> list:
    return ["distill", "--ann", ann, "--images", images, "--out", out, "--teachers", NO_TEACHERS,
            "--shard-size", 4, "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    return write_dataset(tmp_path_factory.mktemp("data"), [f"{i}.jpg" for i in range(1, NUM_IMAGES + 1)])


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    """An undisturbed run on a normal disk."""
    out = tmp_path_factory.mktemp("ref") / "out"
    result = wbt(*distill_args(*dataset, out, "--workers", 1))
    assert result.returncode == 0, result.stderr
    return out


# ------------------------------------------------------------------ a real full disk and a read-only output


@pytest.fixture()
def mount(tmp_path):
    """mount(size_bytes, read_only=False) -> an empty tmpfs folder (unmounted after the test); skips without mount."""
    mounted = []

    def make(size: int, read_only: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", str(where)], check=False)


def _pages(paths) -> int:
    return sum(math.ceil(p.stat().st_size / 4096) * 4096 for p in paths)


def _shard_bytes(reference: Path) -> int:
    return _pages((reference / "shards").iterdir())


def _leftovers(out: Path) -> list[str]:
    """Temp files and outputs of a failed run (shards and their run.json are the resumable state, kept)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.endswith(".tmp") or p.name in OUTPUTS)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("stage", ["shards", "outputs"])
def test_full_disk_is_one_line_naming_the_file_then_resumes(dataset, reference, mount, workers, stage):
    shards = _shard_bytes(reference)
    # 'shards': the disk fills while labelling; 'outputs': every shard fits, wholebody133.json (50 kB) does not
    size = shards // 2 if stage == "shards" else shards + 16384
    disk = mount(size)
    out = disk / "out"
    result = wbt(*distill_args(*dataset, out, "--workers", workers))
    line = assert_one_line(result, 1, "No space left on device")
    path = line.removeprefix("wbt: error: ").removesuffix(": No space left on device")
    assert Path(path).parent in (out, out / "shards") and not Path(path).name.endswith(".tmp"), line
    if stage == "outputs":
        assert Path(path).name in OUTPUTS
    assert _leftovers(out) == []

    subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
    result = wbt(*distill_args(*dataset, out, "--workers", workers))
    assert result.returncode == 0, result.stderr
    for name in ("wholebody133.json", "halpe136.json", "errors.jsonl"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_read_only_output_is_one_line(dataset, reference, mount, tmp_path):
    readonly = mount(1 << 20, read_only=True)
    result = wbt(*distill_args(*dataset, readonly / "out", "--workers", 1))
    assert_one_line(result, 1, f"{readonly / 'out'}: Read-only file system")

    # a finished run whose disk became read-only: a rerun that would rewrite it says so in one line
    disk = mount(4 << 20)
    result = wbt(*distill_args(*dataset, disk / "out", "--workers", 1))
    assert result.returncode == 0, result.stderr
    before = {p: p.read_bytes() for p in (disk / "out").rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    result = wbt(*distill_args(*dataset, disk / "out", "--workers", 1, "--overwrite", "--layout", "133"))
    assert_one_line(result, 1, str(disk / "out"), "Read-only file system")
    assert {p: p.read_bytes() for p in (disk / "out").rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_full_disk_with_real_teachers_in_one_process_ends(realdata, mount, tmp_path):
    """The real teachers (MediaPipe graphs) in this process: a full disk ends the run, it does not wait forever."""
    ann = body_only(realdata / "coco_wholebody", tmp_path)
    out = mount(40960) / "out"
    args = ["distill", "--ann", ann, "--images", realdata / "coco_wholebody", "--out", out, "--workers", 1,
            "--shard-size", 1, "--no-progress"]  # fmt: skip
    assert_one_line(wbt(*args), 1, "No space left on device")
    assert _leftovers(out) == []


# ------------------------------------------------------------------ per-image failures and outputs


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def test_file_names_outside_images_are_logged_and_never_read(tmp_path, monkeypatch):
    secret = tmp_path / "secret.jpg"  # a real image outside --images: labelling it would be a leak
    cv2.imwrite(str(secret), np.full((60, 80, 3), 90, np.uint8))
    names = ["ok.jpg", "../secret.jpg", str(secret), "sub/../../secret.jpg", "../" * 12 + "etc/passwd"]
    ann, images = write_dataset(tmp_path / "data", names, with_files=False)
    cv2.imwrite(str(images / "ok.jpg"), np.full((60, 80, 3), 90, np.uint8))
    (images / "sub").mkdir()
    out = tmp_path / "out"
    result = wbt(*distill_args(ann, images, out, "--workers", 1))
    assert result.returncode == 0, result.stderr
    errors = _errors(out)
    assert [(e["image_id"], e["file_name"]) for e in errors] == [(i + 2, n) for i, n in enumerate(names[1:])]
    assert all("outside the image folder" in e["error"] and "(not read)" in e["error"] for e in errors)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"]["labelled"] == 1 and summary["images"]["failed"] == 4
    doc = json.loads((out / "wholebody133.json").read_text())
    sizes = {im["file_name"]: (im.get("width"), im.get("height")) for im in doc["images"]}
    assert sizes["ok.jpg"] == (80, 60)


def test_a_fifo_named_jpg_is_logged_not_waited_for(tmp_path):
    ann, images = write_dataset(tmp_path / "data", ["a.jpg", "pipe.jpg", "b.jpg"])
    (images / "pipe.jpg").unlink()
    os.mkfifo(images / "pipe.jpg")  # opening it for reading would block until a writer comes: never
    for args in (["--ann", ann], []):  # the annotation's file list, and the listing of --images
        out = tmp_path / f"out{len(args)}"
        cmd = ["distill", *args, "--images", images, "--out", out, "--teachers", NO_TEACHERS, "--no-progress",
               "--workers", 1]  # fmt: skip
        if not args:  # --images alone needs the body teacher: only the listing is checked here
            from labeltool.io.paths import list_images

            assert [im["file_name"] for im in list_images(images)] == ["a.jpg", "b.jpg", "pipe.jpg"]
            continue
        result = wbt(*cmd, timeout=60)
        assert result.returncode == 0, result.stderr
        errors = _errors(out)
        assert [(e["file_name"], e["error"].split(": ", 1)[1]) for e in errors] == [("pipe.jpg", "not a regular file")]


def test_every_image_failing_is_an_error_one_failing_is_not(tmp_path):
    ann, images = write_dataset(tmp_path / "data", ["a.jpg", "b.jpg"], with_files=False)
    out = tmp_path / "out"
    result = wbt(*distill_args(ann, images, out, "--workers", 1))
    assert_one_line(result, 2, f"{out}: every image failed (2)", str(out / "errors.jsonl"))
    assert [e["error"].split(": ", 1)[1] for e in _errors(out)] == ["image file not found"] * 2

    cv2.imwrite(str(images / "a.jpg"), np.full((60, 80, 3), 90, np.uint8))
    out = tmp_path / "out2"
    result = wbt(*distill_args(ann, images, out, "--workers", 1))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "1 failed images (errors.jsonl)" in result.stdout
    assert [e["file_name"] for e in _errors(out)] == ["b.jpg"]


def test_overwrite_with_another_layout_removes_the_other_layout(dataset, tmp_path):
    out = tmp_path / "out"
    assert wbt(*distill_args(*dataset, out, "--workers", 1, "--limit", 4)).returncode == 0
    assert (out / "halpe136.json").exists()
    result = wbt(*distill_args(*dataset, out, "--workers", 1, "--overwrite", "--layout", "133"))
    assert result.returncode == 0, result.stderr
    assert not (out / "halpe136.json").exists()
    assert len(json.loads((out / "wholebody133.json").read_text())["images"]) == NUM_IMAGES
    assert json.loads((out / "summary.json").read_text())["outputs"][0] == "wholebody133.json"
    # and the same run resumed with the other layout only
    result = wbt(*distill_args(*dataset, out, "--workers", 1, "--layout", "136"))
    assert result.returncode == 0, result.stderr
    assert not (out / "wholebody133.json").exists() and (out / "halpe136.json").exists()


# ------------------------------------------------------------------ one line, exit 2, for a mistake in the input


def _boxes(entries) -> str:
    return json.dumps(entries)


BOXES = {
    "score a string": ([{"image_id": 1, "bbox": [1, 2, 30, 40], "score": "high"}], "'score' must be a number"),
    "score null": ([{"image_id": 1, "bbox": [1, 2, 30, 40], "score": None}], "'score' must be a number"),
    "image id a string": ([{"image_id": "1", "bbox": [1, 2, 30, 40]}], "'image_id' must be an integer"),
    "image id a boolean": ([{"image_id": True, "bbox": [1, 2, 30, 40]}], "'image_id' must be an integer"),
    "image id a float": ([{"image_id": 1.5, "bbox": [1, 2, 30, 40]}], "'image_id' must be an integer"),
    "bbox 1e300": ([{"image_id": 1, "bbox": [1, 2, 1e300, 40]}], "must be finite and within ±1e+07"),
    "bbox a boolean": ([{"image_id": 1, "bbox": [1, 2, True, 40]}], "'bbox' must be 4 numbers"),
    "file_name a number": ([{"file_name": 3, "bbox": [1, 2, 30, 40]}], "'file_name' must be a non-empty string"),
    "images file_name null": (
        {"images": [{"id": 1, "file_name": None}], "annotations": [{"image_id": 1, "bbox": [1, 2, 30, 40]}]},
        "images[0]: 'file_name' must be a non-empty string",
    ),
    "images id a string": (
        {"images": [{"id": "1", "file_name": "1.jpg"}], "annotations": [{"image_id": 1, "bbox": [1, 2, 30, 40]}]},
        "images[0]: 'id' must be an integer",
    ),
}


@pytest.mark.parametrize("case", list(BOXES))
def test_bad_boxes_are_one_line_exit_2(case, dataset, tmp_path):
    content, fragment = BOXES[case]
    bad = tmp_path / "boxes.json"
    bad.write_text(_boxes(content))
    out = tmp_path / "out"
    result = wbt_in_process("distill", "--images", dataset[1], "--boxes", bad, "--out", out, "--no-progress")
    assert_one_line(result, 2, str(bad), fragment)
    assert not out.exists()


@pytest.mark.parametrize("workers", ["-1", "0"])
def test_workers_below_one_is_one_line_exit_2(workers, dataset, tmp_path):
    result = wbt_in_process(*distill_args(*dataset, tmp_path / "out", "--workers", workers))
    assert_one_line(result, 2, f"--workers {workers}: must be at least 1")
    assert not (tmp_path / "out").exists()
