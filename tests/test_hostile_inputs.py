"""Hostile input, as a new user would give it, against every command that reads labels.

Each bad input must end with exit code 2 (a user mistake) or 1 (the machine: a full disk, a
read-only folder), exactly one line on stderr that names the file, no traceback, and no file
left in the output folder that was not there before. The commands run in-process (CliRunner).
"""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_wbt
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.errors import UserError
from labeltool.io import atomic
from labeltool.io.atomic import write_bytes_atomic
from labeltool.io.jsonfile import read_json
from labeltool.io.paths import image_path, resolve_inside
from labeltool.layouts import WHOLEBODY133


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


# --------------------------------------------------------------------------- a small valid dataset


def _person(ann_id: int, image_id: int, x0: float) -> dict:
    """A 133-point person (COCO-WholeBody keys) inside a 100 x 100 box at x0."""
    rng = np.random.default_rng(ann_id)
    pts = np.zeros((133, 3))
    pts[:, 0] = x0 + rng.uniform(10, 90, 133)
    pts[:, 1] = rng.uniform(10, 90, 133)
    pts[:, 2] = 2
    flat = {part: pts[WHOLEBODY133.parts[part]].reshape(-1).round(2).tolist() for part in WHOLEBODY133.parts}
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [x0, 0, 100, 100], "area": 10000.0,
        "iscrowd": 0, "keypoints": flat["body"], "foot_kpts": flat["foot"], "face_kpts": flat["face"],
        "lefthand_kpts": flat["lefthand"], "righthand_kpts": flat["righthand"],
    }  # fmt: skip


def _doc(file_names: list[str]) -> dict:
    images = [{"id": i + 1, "file_name": name, "width": 240, "height": 120} for i, name in enumerate(file_names)]
    anns = [_person(i + 1, i + 1, 20.0) for i in range(len(file_names))]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def _write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((120, 240, 3), 90, np.uint8))


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """tmp_path with images/ (a.jpg, b.jpg), good.json (133 points), results.json and out/ (one old file)."""
    return _make_work(tmp_path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The same, shared by the tests that only read it (the big table: each test writes to its own out/)."""
    return _make_work(tmp_path_factory.mktemp("inputs"))


def _make_work(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.jpg"):
        _write_image(tmp_path / "images" / name)
    doc = _doc(["a.jpg", "b.jpg"])
    (tmp_path / "good.json").write_text(json.dumps(doc))
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": _flat133(a), "score": 0.9}
               for a in doc["annotations"]]  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("from before")
    return tmp_path


def _flat133(ann: dict) -> list[float]:
    pts = np.zeros((133, 3))
    for part, key in (("body", "keypoints"), ("foot", "foot_kpts"), ("face", "face_kpts"),
                      ("lefthand", "lefthand_kpts"), ("righthand", "righthand_kpts")):  # fmt: skip
        pts[WHOLEBODY133.parts[part]] = np.asarray(ann[key]).reshape(-1, 3)
    return pts.reshape(-1).tolist()


# --------------------------------------------------------------------------- the table of bad inputs


def _mutated(fn: Callable[[dict], None]) -> bytes:
    doc = _doc(["a.jpg", "b.jpg"])
    fn(doc)
    return json.dumps(doc).encode()


def _set_point(doc: dict, value) -> None:
    doc["annotations"][0]["keypoints"][0] = value


def _nan_doc() -> bytes:
    return json.dumps(_doc(["a.jpg"])).replace('"bbox": [20.0', '"bbox": [NaN', 1).encode()


# name -> (file content, fragments the one error line must hold)
JSON_LEVEL: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "parquet file": (b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02" + bytes(200), ("is a parquet file, expected JSON",)),
    "zip file": (b"PK\x03\x04" + bytes(100), ("is a zip file",)),
    "binary junk": (bytes(range(256)) * 4, ("is a binary file",)),
    "UTF-16 text": ('{"images": []}'.encode("utf-16"), ("is UTF-16 text, expected JSON (save it as UTF-8)",)),
    "empty file": (b"", ("is empty",)),
    "text, not json": (b"image_id,x,y\n1,2,3\n", ("not JSON",)),
    "byte-order mark": (b"\xef\xbb\xbf" + json.dumps(_doc(["a.jpg"])).encode(), ("byte-order mark",)),
    "NaN": (_nan_doc(), ("line 1 column", "NaN is not a JSON number")),
    "Infinity on line 3": (b'{"images": [],\n "annotations": [\n {"x": -Infinity}]}', ("line 3 column", "Infinity")),
    "trailing comma": (b'{"images": [], "annotations": [],}', ("line 1 column 33",)),
    "not UTF-8": (b'{"images": [{"file_name": "\xe9.jpg"}]}', ("not UTF-8 text",)),
    "100k deep": (b"[" * 100_000 + b"]" * 100_000, ("nested too deeply",)),
}
DATASET_LEVEL: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "file_name null": (_mutated(lambda d: d["images"][0].update(file_name=None)), ("'file_name' must be",)),
    "file_name a number": (_mutated(lambda d: d["images"][0].update(file_name=12)), ("'file_name' must be",)),
    "string coordinate": (_mutated(lambda d: _set_point(d, "12.5")), ("annotation 1", "must be numbers")),
    "boolean coordinate": (_mutated(lambda d: _set_point(d, True)), ("annotation 1", "must be numbers")),
    "coordinate 1e300": (_mutated(lambda d: _set_point(d, 1e300)), ("annotation 1", "beyond")),
    "bbox 1e300": (_mutated(lambda d: d["annotations"][1].update(bbox=[0, 0, 1e300, 5])), ("annotation 2", "bbox")),
    "bbox with a string": (_mutated(lambda d: d["annotations"][0].update(bbox=[0, 0, "9", 5])), ("'bbox'",)),
    "id beyond 64 bits": (_mutated(lambda d: d["annotations"][0].update(id=2**70)), ("must be an integer",)),
    "area a string": (_mutated(lambda d: d["annotations"][0].update(area="big")), ("'area'",)),
}

# command -> argument list with {bad} for the bad file; "dataset" commands read a label file
# (both tables apply), the others read a json of another kind (the json-level table applies).
COMMANDS: dict[str, tuple[bool, list[str]]] = {
    "convert": (True, ["convert", "{bad}", "{out}/x.json", "--to", "136"]),
    "convert openpose": (True, ["convert", "{bad}", "{out}/op", "--to", "openpose"]),
    "render": (True, ["render", "{bad}", "--images", "{images}", "--out", "{out}"]),
    "render results": (False, ["render", "{bad}", "--gt", "{good}", "--images", "{images}", "--out", "{out}"]),
    "report": (True, ["report", "{bad}", "--images", "{images}", "--out", "{out}/r.html"]),
    "report --gt": (False, ["report", "{good}", "--gt", "{bad}", "--images", "{images}", "--out", "{out}/r.html"]),
    "review export": (True, ["review", "export", "{bad}", "--to", "labelstudio", "--images", "{images}",
                             "--out", "{out}"]),  # fmt: skip
    "review export cvat": (True, ["review", "export", "{bad}", "--to", "cvat", "--images", "{images}",
                                  "--out", "{out}"]),  # fmt: skip
    "review queue": (True, ["review", "queue", "{bad}"]),
    "review import": (False, ["review", "import", "{bad}", "--out", "{out}/r.json"]),
    "review import --ref": (True, ["review", "import", "{good}", "--ref", "{bad}", "--out", "{out}/r.json"]),
    "eval --gt": (True, ["eval", "--gt", "{bad}", "--pred", "{results}", "--out", "{out}/e.txt"]),
    "eval --pred": (False, ["eval", "--gt", "{good}", "--pred", "{bad}", "--out", "{out}/e.txt"]),
    "teach --boxes": (False, ["teach", "--part", "face", "--images", "{images}", "--boxes", "{bad}",
                              "--out", "{out}/t.json"]),  # fmt: skip
    "distill --ann": (True, ["distill", "--ann", "{bad}", "--images", "{images}", "--out", "{out}/d",
                             "--no-progress"]),  # fmt: skip
}

CASES = [(c, b) for c, (ds, _) in COMMANDS.items() for b in [*JSON_LEVEL, *(DATASET_LEVEL if ds else ())]]


def _args(template: list[str], work: Path, bad: Path, out: Path | None = None) -> list[str]:
    names = {"bad": bad, "out": out or work / "out", "images": work / "images", "good": work / "good.json",
             "results": work / "results.json"}  # fmt: skip
    return [a.format(**names) for a in template]


@pytest.mark.parametrize(("command", "bad_input"), CASES, ids=[f"{c}: {b}" for c, b in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(command, bad_input, inputs, tmp_path):
    content, fragments = {**JSON_LEVEL, **DATASET_LEVEL}[bad_input]
    if command == "eval --pred" and bad_input in ("NaN", "Infinity on line 3"):
        fragments = ("expected a json list of detections",)  # results parse NaN, to name the detection
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from before")
    code, _, stderr = run_wbt(*_args(COMMANDS[command][1], inputs, bad, out))
    assert_one_line_error(code, stderr, str(bad), *fragments)
    assert _snapshot(out) == {"old.txt"}
    assert _snapshot(inputs / "out") == {"old.txt"}


def _bad_result(fn: Callable[[list], None]) -> bytes:
    doc = _doc(["a.jpg", "b.jpg"])
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": _flat133(a), "score": 0.9}
               for a in doc["annotations"]]  # fmt: skip
    fn(results)
    return json.dumps(results).encode()


RESULTS_BAD = {
    "string coordinate": (_bad_result(lambda r: r[1]["keypoints"].__setitem__(4, "7")), "numbers"),
    "boolean coordinate": (_bad_result(lambda r: r[1]["keypoints"].__setitem__(4, False)), "numbers"),
    "coordinate 1e300": (_bad_result(lambda r: r[1]["keypoints"].__setitem__(4, 1e300)), "beyond"),
}


@pytest.mark.parametrize("command", ["eval --pred", "render results"])
@pytest.mark.parametrize("case", list(RESULTS_BAD))
def test_bad_numbers_in_results_are_refused(command, case, work):
    content, fragment = RESULTS_BAD[case]
    bad = work / "bad.json"
    bad.write_bytes(content)
    code, _, stderr = run_wbt(*_args(COMMANDS[command][1], work, bad))
    assert_one_line_error(code, stderr, str(bad), fragment)
    assert _snapshot(work / "out") == {"old.txt"}


def test_the_good_inputs_pass(work):
    """The table's commands succeed on the valid files, so the failures above come from the bad ones."""
    good = work / "good.json"
    for command in ("convert", "render", "report", "review export", "review queue", "eval --gt"):
        code, _, stderr = run_wbt(*_args(COMMANDS[command][1], work, good))
        assert code == 0, (command, stderr)


def test_a_large_junk_file_is_refused_from_its_first_bytes(tmp_path, monkeypatch):
    junk = tmp_path / "junk.json"
    with open(junk, "wb") as f:  # 1 GB, sparse: costs no disk
        f.truncate(1 << 30)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the whole file"))
    with pytest.raises(UserError, match="is a binary file, expected JSON"):
        read_json(junk)


def test_deep_json_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    for allow_nan in (False, True):  # True tries Python's json parser too, which recurses
        with pytest.raises(UserError, match="nested too deeply"):
            read_json(deep, allow_nan=allow_nan)


def test_ground_truth_without_annotations_is_blamed_on_the_ground_truth(work):
    gt = work / "gt0.json"
    gt.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}))
    code, _, stderr = run_wbt("eval", "--gt", gt, "--pred", work / "results.json")
    assert_one_line_error(code, stderr, f"{gt}: the ground truth has no annotations")


# --------------------------------------------------------------------------- file names outside --images


@pytest.fixture()
def outside(work: Path) -> Path:
    """A real image outside images/, and images/store: a symlink to a folder beside work/."""
    _write_image(work / "secret.jpg")
    (work.parent / "store").mkdir(exist_ok=True)
    os.symlink(work.parent / "store", work / "images" / "store")
    return work / "secret.jpg"


# store/../secret.jpg: '..' after the linked folder climbs from its target (work.parent), so the
# file opened would be work.parent/secret.jpg, outside images/
ESCAPES = ["../secret.jpg", "{abs}", "../../../../../../../../etc/passwd", "sub/../../secret.jpg", "store/../secret.jpg"]
READERS = ["render", "report", "review export", "review export cvat"]


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("escape", ESCAPES)
def test_a_file_name_outside_the_image_folder_is_refused(command, escape, work, outside):
    bad = work / "bad.json"
    bad.write_text(json.dumps(_doc(["a.jpg", escape.format(abs=outside)])))
    before = _snapshot(work / "out")
    code, _, stderr = run_wbt(*_args(COMMANDS[command][1], work, bad))
    assert_one_line_error(code, stderr, "is outside the image folder")
    assert _snapshot(work / "out") == before


def test_resolve_inside(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "store" / "deep").mkdir(parents=True)
    os.symlink(tmp_path / "store" / "deep", root / "linked")
    _write_image(tmp_path / "store" / "x.jpg")
    os.symlink(tmp_path / "store" / "x.jpg", root / "x.jpg")
    assert resolve_inside(root, "a.jpg") == root / "a.jpg"
    assert resolve_inside(root, "sub/a.jpg") == root / "sub" / "a.jpg"
    assert resolve_inside(root, "sub/../a.jpg") == root / "sub/../a.jpg"
    assert resolve_inside(root, str(root / "a.jpg")) == root / "a.jpg"  # absolute, but inside
    # links the folder's owner made are followed: image folders are often links into a store
    assert resolve_inside(root, "x.jpg") == root / "x.jpg"
    assert resolve_inside(root, "linked/a.jpg") == root / "linked" / "a.jpg"
    bad = ("../a.jpg", str(tmp_path / "a.jpg"), "sub/../../a.jpg", "linked/../x.jpg", ".", "", None, 3, "a\x00")
    for name in bad:  # linked/../x.jpg opens store/x.jpg: '..' climbs from the link's target
        assert resolve_inside(root, name) is None, name
    with pytest.raises(UserError, match="'../a.jpg': file_name of image id 7 is outside the image folder"):
        image_path(root, {"id": 7, "file_name": "../a.jpg"})
    linked_root = tmp_path / "linked"
    os.symlink(root, linked_root)  # the folder itself may be a link
    assert resolve_inside(linked_root, "a.jpg") == linked_root / "a.jpg"


# --------------------------------------------------------------------------- write errors


def _mount(folder: Path, options: str) -> None:
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture()
def full_disk(tmp_path: Path):
    """A 64 KiB tmpfs, filled to its last byte."""
    folder = tmp_path / "full"
    _mount(folder, "size=64k")
    try:
        with open(folder / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(bytes(4096))
            except OSError as err:
                assert err.errno == errno.ENOSPC
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture()
def read_only(tmp_path: Path):
    folder = tmp_path / "ro"
    _mount(folder, "size=64k,ro")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


WRITERS = {
    "convert": ["convert", "{good}", "{out}/x.json", "--to", "136"],
    "convert openpose": ["convert", "{good}", "{out}/op", "--to", "openpose"],
    "render": ["render", "{good}", "--images", "{images}", "--out", "{out}"],
    "report": ["report", "{good}", "--images", "{images}", "--out", "{out}/r.html"],
    "review export": ["review", "export", "{good}", "--to", "labelstudio", "--images", "{images}", "--out", "{out}"],
    "review export cvat": ["review", "export", "{good}", "--to", "cvat", "--images", "{images}", "--out", "{out}"],
    "eval --out": ["eval", "--gt", "{good}", "--pred", "{results}", "--out", "{out}/e.txt"],
}


def _writer_args(command: str, work: Path, out: Path) -> list[str]:
    names = {"out": out, "images": work / "images", "good": work / "good.json", "results": work / "results.json"}
    return [a.format(**names) for a in WRITERS[command]]


@pytest.mark.parametrize("command", list(WRITERS))
def test_full_disk_is_one_line_exit_1_and_leaves_no_temp_file(command, work, full_disk):
    before = _snapshot(full_disk)
    code, _, stderr = run_wbt(*_writer_args(command, work, full_disk))
    assert_one_line_error(code, stderr, str(full_disk), "No space left on device", exit_code=1)
    assert _snapshot(full_disk) == before


@pytest.mark.parametrize("command", list(WRITERS))
def test_read_only_output_is_one_line_exit_1(command, work, read_only):
    code, _, stderr = run_wbt(*_writer_args(command, work, read_only))
    assert_one_line_error(code, stderr, str(read_only), "Read-only file system", exit_code=1)
    assert _snapshot(read_only) == set()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder: the read-only mount test covers this")
def test_unwritable_output_folder_is_one_line_exit_1(work):
    locked = work / "locked"
    locked.mkdir(mode=0o555)
    code, _, stderr = run_wbt(*_writer_args("convert", work, locked))
    assert_one_line_error(code, stderr, str(locked), "Permission denied", exit_code=1)


@pytest.mark.parametrize("command", ["eval", "report", "convert", "review import"])
def test_out_pointing_at_a_directory_is_exit_2(command, work):
    args = {
        "eval": ["eval", "--gt", "{good}", "--pred", "{results}", "--out", "{out}"],
        "report": ["report", "{good}", "--images", "{images}", "--out", "{out}"],
        "convert": ["convert", "{good}", "{out}", "--to", "136"],
        "review import": ["review", "import", "{ls}", "--out", "{out}"],
    }[command]
    _export_tasks(work)
    names = {"out": work / "out", "images": work / "images", "good": work / "good.json",
             "results": work / "results.json", "ls": work / "ls.json"}  # fmt: skip
    code, _, stderr = run_wbt(*[a.format(**names) for a in args])
    assert_one_line_error(code, stderr, f"{work / 'out'}: is a directory")
    assert _snapshot(work / "out") == {"old.txt"}


class _FailingFile:
    """A file whose write and close both fail with ENOSPC, as on a full disk."""

    def __init__(self, path, *args, **kwargs):
        self.fd = os.open(path, os.O_WRONLY)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self):
        os.close(self.fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_removes_its_temp_file_even_when_close_fails_again(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "open", _FailingFile, raising=False)  # the writer's open() of its temp file
    target = tmp_path / "labels.json"
    with pytest.raises(OSError) as err:
        write_bytes_atomic(b"{}", target)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- render, review, report


def test_render_keeps_the_relative_path_of_same_named_images(work):
    for name in ("x/a.jpg", "y/a.jpg"):
        _write_image(work / "images" / name)
    labels = work / "two.json"
    labels.write_text(json.dumps(_doc(["x/a.jpg", "y/a.jpg"])))
    code, stdout, stderr = run_wbt("render", labels, "--images", work / "images", "--out", work / "out")
    assert code == 0, stderr
    assert _snapshot(work / "out") == {"old.txt", "x", "y", "x/a.png", "y/a.png"}
    assert "wrote 2 overlays" in stdout


def _export_tasks(work: Path, file_names: tuple[str, ...] = ("a.jpg", "b.jpg")) -> list[dict]:
    """Label Studio tasks exported by wbt, each with an annotation (the prediction, as a reviewer saved it)."""
    from labeltool.io.pose import load_pose_dataset
    from labeltool.review.labelstudio import labelstudio_tasks

    doc = _doc(list(file_names))
    (work / "ls_src.json").write_text(json.dumps(doc))
    tasks = labelstudio_tasks(load_pose_dataset(work / "ls_src.json"))
    for k, task in enumerate(tasks):
        task["id"] = 100 + k
        task["annotations"] = [{"id": 7, "result": copy.deepcopy(task["predictions"][0]["result"])}]
    (work / "ls.json").write_text(json.dumps(tasks))
    return tasks


def test_labelstudio_image_urls_encode_the_file_name(work):
    for name in ("a#b.jpg", "c d?.jpg"):
        _write_image(work / "images" / name)
    labels = work / "odd.json"
    labels.write_text(json.dumps(_doc(["a#b.jpg", "c d?.jpg"])))
    code, _, stderr = run_wbt("review", "export", labels, "--to", "labelstudio", "--images", work / "images",
                           "--out", work / "ls")  # fmt: skip
    assert code == 0, stderr
    urls = [t["data"]["image"] for t in json.loads((work / "ls" / "tasks.json").read_text())]
    assert urls == ["/data/local-files/?d=a%23b.jpg", "/data/local-files/?d=c%20d%3F.jpg"]


def _first_region(tasks: list[dict], kind: str) -> dict:
    return next(r for r in tasks[0]["annotations"][0]["result"] if r["type"] == kind)


LS_BAD = {
    "result not a list": (lambda t: t[0]["annotations"][0].update(result={"x": 1}), "task 100: 'result' is dict"),
    "point without x": (lambda t: _first_region(t, "keypointlabels")["value"].pop("x"), "value.x must be a number"),
    "point x a string": (lambda t: _first_region(t, "keypointlabels")["value"].update(x="5"), "value.x"),
    "box width a string": (lambda t: _first_region(t, "rectanglelabels")["value"].update(width="wide"), "value.width"),
    "box without id": (lambda t: _first_region(t, "rectanglelabels").pop("id"), "missing or repeated 'id'"),
    "annotation id a string": (lambda t: t[0]["annotations"].append({"id": "x", "result": []}) or
                               t[0]["annotations"][0].update(id=None), None),  # fmt: skip
    "person id a string": (lambda t: t[0]["data"]["wbt"]["persons"][0].update(id="p1"), "person 'p1' needs"),
    "image without id": (lambda t: t[0]["data"]["wbt"]["image"].pop("id"), "integer 'id'"),
    "point x 1e300 percent": (lambda t: _first_region(t, "keypointlabels")["value"].update(x=1e300), "beyond"),
}


@pytest.mark.parametrize("case", list(LS_BAD))
def test_malformed_labelstudio_export_is_one_line_naming_the_task(case, work):
    tasks = _export_tasks(work)
    fn, fragment = LS_BAD[case]
    fn(tasks)
    exported = work / "ls.json"
    exported.write_text(json.dumps(tasks))
    code, _, stderr = run_wbt("review", "import", exported, "--out", work / "out" / "r.json")
    if fragment is None:  # ids of any type are tolerated: the latest annotation still wins
        assert code == 0, stderr
        return
    task = () if "1e300" in case else ("task 100",)  # checked after grouping: named by its person rectangle
    assert_one_line_error(code, stderr, str(exported), *task, fragment)
    assert _snapshot(work / "out") == {"old.txt"}


def test_cvat_import_refuses_absurd_numbers_without_a_second_line(work):
    from labeltool.io.pose import load_pose_dataset
    from labeltool.review.cvat import cvat_document

    doc = cvat_document(load_pose_dataset(work / "good.json"), None)
    doc["annotations"][0]["keypoints"][0] = 1e300  # crashed at write time before
    exported = work / "cvat.json"
    exported.write_text(json.dumps(doc))
    for ref in ([], ["--ref", work / "good.json"]):
        code, _, stderr = run_wbt("review", "import", exported, *ref, "--out", work / "out" / "r.json")
        assert_one_line_error(code, stderr, str(exported), "beyond")
    assert _snapshot(work / "out") == {"old.txt"}


def test_review_export_refuses_width_0_and_unknown_url_placeholders(work):
    doc = _doc(["a.jpg", "b.jpg"])
    doc["images"][1]["width"] = 0
    labels = work / "w0.json"
    labels.write_text(json.dumps(doc))
    code, _, stderr = run_wbt("review", "export", labels, "--to", "labelstudio", "--images", work / "images",
                           "--out", work / "out")  # fmt: skip
    assert_one_line_error(code, stderr, "image id 2: 'width' must be a positive number, got 0")
    code, _, stderr = run_wbt("review", "export", work / "good.json", "--to", "labelstudio", "--images",
                           work / "images", "--out", work / "out", "--image-url", "/x/{foo}")  # fmt: skip
    assert_one_line_error(code, stderr, "--image-url '/x/{foo}'", "{file_name}")
    assert _snapshot(work / "out") == {"old.txt"}


def test_report_and_queue_on_17_point_labels(work):
    doc = _doc(["a.jpg"])
    for ann in doc["annotations"]:
        for key in ("foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"):
            del ann[key]
        ann["keypoints"][0] = 500.0  # far outside its box: flagged
    labels = work / "body17.json"
    labels.write_text(json.dumps(doc))
    code, stdout, stderr = run_wbt("report", labels, "--images", work / "images", "--out", work / "out" / "r.html")
    assert code == 0, stderr
    assert "1 persons, 1 flagged" in stdout and (work / "out" / "r.html").stat().st_size > 1000
    code, stdout, stderr = run_wbt("review", "queue", labels)
    assert code == 0, stderr
    assert "outside_box body: 1 of 17 points outside the box" in stdout


def test_the_cli_turns_known_errors_into_one_line_and_keeps_bugs_as_tracebacks(work, monkeypatch):
    import labeltool.datasets as files_cli  # convert reads its input through labeltool.datasets

    def deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(files_cli, "read_body_dataset", deep)
    code, _, stderr = run_wbt("convert", work / "good.json", work / "out" / "x.json", "--to", "136")
    assert_one_line_error(code, stderr, "nested too deeply")

    def bug(*args, **kwargs):
        raise ValueError("a bug in wbt")  # not a user mistake: keeps its traceback

    monkeypatch.setattr(files_cli, "read_body_dataset", bug)
    result = CliRunner().invoke(main, ["convert", str(work / "good.json"), str(work / "out" / "x.json"), "--to", "136"])
    assert isinstance(result.exception, ValueError) and str(result.exception) == "a bug in wbt"
