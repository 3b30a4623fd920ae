"""Our CVAT export through datumaro, the library CVAT's "COCO Keypoints 1.0" import / export runs on.

CVAT's server needs Docker; its COCO Keypoints format code is datumaro's ``coco_person_keypoints``
(CVAT ships a fork; the PyPI ``datumaro`` is its upstream). datumaro pins its own dependencies,
so it lives in a virtual environment of its own (``install.sh --test``:
``~/.cache/wbt/datumaro-venv``, or ``WBT_DATUMARO_PYTHON`` = its python).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.io.pose import load_pose_dataset

DEFAULT_PYTHON = Path.home() / ".cache" / "wbt" / "datumaro-venv" / "bin" / "python"
ROUND_TRIP = """
import sys
from datumaro.components.dataset import Dataset
ds = Dataset.import_from(sys.argv[1], "coco_person_keypoints")
ds.export(sys.argv[2], "coco_person_keypoints", save_media=False)
"""


@pytest.mark.slow
def test_export_through_datumaro(realdata, tmp_path):
    python = Path(os.environ.get("WBT_DATUMARO_PYTHON", DEFAULT_PYTHON))
    if not python.is_file():
        pytest.skip(f"datumaro not installed at {python} (python3 -m venv ~/.cache/wbt/datumaro-venv && "
                    "~/.cache/wbt/datumaro-venv/bin/pip install datumaro==1.13.12)")  # fmt: skip
    images = realdata / "coco_wholebody"
    gt_path = images / "test_coco_wholebody.json"
    out = tmp_path / "review"
    r = CliRunner().invoke(
        main, ["review", "export", str(gt_path), "--to", "cvat", "--images", str(images), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    # the COCO layout datumaro expects: annotations/person_keypoints_<subset>.json and images/<subset>/
    src = tmp_path / "dataset"
    (src / "images" / "default").mkdir(parents=True)
    shutil.copytree(out / "annotations", src / "annotations")
    for im in load_pose_dataset(gt_path).images:
        shutil.copy(images / im["file_name"], src / "images" / "default" / im["file_name"])  # datumaro refuses symlinks
    dst = tmp_path / "datumaro_out"
    run = subprocess.run(
        [str(python), "-c", ROUND_TRIP, str(src), str(dst)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    written = dst / "annotations" / "person_keypoints_default.json"
    doc = json.loads(written.read_text())
    assert len(doc["categories"][0]["keypoints"]) == 133
    assert all("wbt_id" in a["attributes"] and len(a["keypoints"]) == 399 for a in doc["annotations"])
    val = tmp_path / "val.json"
    r = CliRunner().invoke(
        main, ["review", "import", str(written), "--to", "133", "--out", str(val), "--ref", str(gt_path)]
    )
    assert r.exit_code == 0, r.output
    gt, back = load_pose_dataset(gt_path), load_pose_dataset(val)
    a, b = gt.subset(np.argsort(gt.ann_ids)), back.subset(np.argsort(back.ann_ids))
    assert a.ann_ids.tolist() == b.ann_ids.tolist() and a.image_ids.tolist() == b.image_ids.tolist()
    np.testing.assert_array_equal(b.keypoints, a.keypoints)
    np.testing.assert_array_equal(b.bboxes, a.bboxes)
