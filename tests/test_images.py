"""The one image reader: raw pixel frame (EXIF orientation ignored) and a truncated file is an error, everywhere."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from labeltool.cli import main
from labeltool.images import NOT_DECODABLE, ImageReadError, image_size, read_rgb

CLI = [sys.executable, "-c", "from labeltool.cli import main; main()"]
RAW_H, RAW_W = 48, 80  # stored frame; EXIF orientation 6 asks viewers to show it rotated, 80 high


def _exif_rotated_jpeg(path) -> np.ndarray:
    """A JPEG stored 80 wide x 48 high with EXIF orientation 6; returns its raw RGB pixels (PIL, no rotation)."""
    rgb = np.zeros((RAW_H, RAW_W, 3), dtype=np.uint8)
    rgb[:10, :30] = (255, 255, 255)  # a white block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", exif=exif, quality=95)
    path.write_bytes(buf.getvalue())
    return np.asarray(Image.open(path).convert("RGB"))


def _truncated_jpeg(path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _labels(path, file_name: str, width: int, height: int) -> None:
    """One person with a nose and two eyes, in the raw frame (COCO convention)."""
    kpts = [0] * 51
    kpts[:9] = [40, 20, 2, 45, 15, 2, 35, 15, 2]
    doc = {
        "images": [{"id": 1, "file_name": file_name, "width": width, "height": height}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 5, 40, 40], "area": 1600,
                         "iscrowd": 0, "num_keypoints": 3, "keypoints": kpts}],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip
    path.write_text(json.dumps(doc))


def test_reader_ignores_exif_orientation_and_sizes_agree(tmp_path):
    raw = _exif_rotated_jpeg(tmp_path / "rot.jpg")
    assert cv2.imread(str(tmp_path / "rot.jpg")).shape[:2] == (RAW_W, RAW_H)  # OpenCV's default rotates
    rgb = read_rgb(tmp_path / "rot.jpg")
    assert rgb.shape == (RAW_H, RAW_W, 3)
    assert np.abs(rgb.astype(int) - raw).max() <= 2  # the same decoder's pixels, unrotated
    assert rgb[:10, :30].min() > 240 and rgb[20:, 40:].max() < 15
    assert image_size(tmp_path / "rot.jpg") == (RAW_W, RAW_H)


def test_truncated_corrupt_missing_and_fifo_are_errors(tmp_path):
    _truncated_jpeg(tmp_path / "cut.jpg")
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # OpenCV's imread pads it with grey
    with pytest.raises(ImageReadError) as err:
        read_rgb(tmp_path / "cut.jpg")
    assert str(err.value) == f"{tmp_path / 'cut.jpg'}: {NOT_DECODABLE}" and err.value.reason == NOT_DECODABLE
    again = pickle.loads(pickle.dumps(err.value))  # crosses worker processes intact
    assert str(again) == str(err.value) and again.reason == NOT_DECODABLE
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    for name in ("junk.jpg", "empty.jpg"):
        (tmp_path / "empty.jpg").write_bytes(b"")
        with pytest.raises(ImageReadError, match="not a decodable image"):
            read_rgb(tmp_path / name)
        with pytest.raises(ImageReadError, match="not a decodable image"):
            image_size(tmp_path / name)
    with pytest.raises(ImageReadError, match="gone.jpg: image file not found"):
        read_rgb(tmp_path / "gone.jpg")
    os.mkfifo(tmp_path / "fifo.jpg")
    with pytest.raises(ImageReadError, match="fifo.jpg: not a regular file"):
        read_rgb(tmp_path / "fifo.jpg")  # returns at once instead of blocking on the pipe


def test_render_draws_in_the_raw_frame_and_refuses_a_truncated_jpeg(tmp_path):
    _exif_rotated_jpeg(tmp_path / "rot.jpg")
    _labels(tmp_path / "rot.json", "rot.jpg", RAW_W, RAW_H)
    r = CliRunner().invoke(main, ["render", str(tmp_path / "rot.json"), "--images", str(tmp_path),
                                  "--out", str(tmp_path / "out")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(tmp_path / "out" / "rot.png")).shape[:2] == (RAW_H, RAW_W)
    _truncated_jpeg(tmp_path / "cut.jpg")
    _labels(tmp_path / "cut.json", "cut.jpg", 300, 200)
    r = CliRunner().invoke(main, ["render", str(tmp_path / "cut.json"), "--images", str(tmp_path),
                                  "--out", str(tmp_path / "out2")])  # fmt: skip
    assert r.exit_code == 2 and r.stderr == f"wbt: error: {tmp_path / 'cut.jpg'}: {NOT_DECODABLE}\n", r.output
    assert not (tmp_path / "out2" / "cut.png").exists()


def test_distill_measures_and_labels_the_raw_frame(tmp_path):
    _exif_rotated_jpeg(tmp_path / "rot.jpg")
    _labels(tmp_path / "rot.json", "rot.jpg", RAW_W, RAW_H)
    doc = json.loads((tmp_path / "rot.json").read_text())
    del doc["images"][0]["width"], doc["images"][0]["height"]  # distill fills them from the decoded image
    (tmp_path / "rot.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    r = subprocess.run([*CLI, "distill", "--ann", str(tmp_path / "rot.json"), "--images", str(tmp_path), "--out",
                        str(out), "--teachers", "face=none,hand=none,foot=none", "--workers", "1", "--no-progress"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    image = json.loads((out / "wholebody133.json").read_text())["images"][0]
    assert (image["width"], image["height"]) == (RAW_W, RAW_H)


def test_student_crops_refuse_a_truncated_jpeg(tmp_path):
    from labeltool.layouts import WHOLEBODY133
    from labeltool.student.data import CropGeometry, ImageCrops, load_json_source

    _truncated_jpeg(tmp_path / "cut.jpg")
    _labels(tmp_path / "cut.json", "cut.jpg", 300, 200)
    table = load_json_source(tmp_path / "cut.json", tmp_path, WHOLEBODY133)
    with pytest.raises(ImageReadError, match="cut.jpg: not a decodable image"):
        ImageCrops(table, CropGeometry((64, 64), 1.25)).read_batch(np.arange(1))
