"""A real Label Studio server: our config and tasks go in through its HTTP API, its JSON export comes back.

Label Studio (PyPI ``label-studio``) pins dependencies that clash with ours (numpy, protobuf),
so it lives in its own virtual environment; ``install.sh --test`` makes it at
``~/.cache/wbt/label-studio-venv`` (or point ``WBT_LABEL_STUDIO`` at a ``label-studio``
executable). The server runs on 127.0.0.1 with a temporary data directory, a user and API
token from LABEL_STUDIO_* variables, and its version check, analytics and Sentry off.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.io.pose import load_pose_dataset

TOKEN = "wbt-test-token-0123456789"
DEFAULT_EXE = Path.home() / ".cache" / "wbt" / "label-studio-venv" / "bin" / "label-studio"
START_TIMEOUT_S = 180


def _executable() -> Path:
    exe = Path(os.environ.get("WBT_LABEL_STUDIO", DEFAULT_EXE))
    if not exe.is_file():
        pytest.skip(
            f"Label Studio not installed at {exe} (install.sh --test makes it: python3 -m venv "
            f"~/.cache/wbt/label-studio-venv && ~/.cache/wbt/label-studio-venv/bin/pip install label-studio==1.23.2)"
        )
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Label Studio process and a tiny client for its REST API."""

    def __init__(self, exe: Path, data_dir: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
            LABEL_STUDIO_USERNAME="wbt@localhost",
            LABEL_STUDIO_PASSWORD="wbt-test-password",
            LABEL_STUDIO_USER_TOKEN=TOKEN,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            LABEL_STUDIO_SENTRY_DSN="",
            LABEL_STUDIO_FRONTEND_SENTRY_DSN="",
        )
        self.log = (data_dir / "server.log").open("w")
        self.proc = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log_path = data_dir / "server.log"

    def wait_up(self) -> float:
        start = time.monotonic()
        while time.monotonic() - start < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                pytest.skip(f"Label Studio exited with {self.proc.returncode}: {self.log_path.read_text()[-500:]}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        pytest.skip(f"Label Studio did not answer on {self.base} within {START_TIMEOUT_S} s")

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path}: HTTP {err.code}: {err.read()[:1000]!r}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _by_id(ds):
    return ds.subset(np.argsort(ds.ann_ids))


@pytest.mark.slow
def test_label_studio_server_round_trip(realdata, tmp_path):
    exe = _executable()
    images = realdata / "coco_wholebody"
    gt_path = images / "test_coco_wholebody.json"
    gt = load_pose_dataset(gt_path)
    runner = CliRunner()
    out = tmp_path / "export"
    r = runner.invoke(
        main, ["review", "export", str(gt_path), "--to", "labelstudio", "--images", str(images), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    timings = {}
    server = Server(exe, tmp_path)
    try:
        timings["server start"] = server.wait_up()
        t0 = time.monotonic()
        project = server.call(
            "POST", "/api/projects", {"title": "wbt review", "label_config": (out / "labeling_config.xml").read_text()}
        )
        tasks = json.loads((out / "tasks.json").read_text())
        imported = server.call("POST", f"/api/projects/{project['id']}/import", tasks)
        assert imported["task_count"] == len(gt.images) and imported["prediction_count"] == len(gt.images)
        timings["project + import"] = time.monotonic() - t0
        export_url = f"/api/projects/{project['id']}/export?exportType=JSON&download_all_tasks=true"

        # 1. nobody touched anything: Label Studio's export imports back to the same labels
        t0 = time.monotonic()
        exported = server.call("GET", export_url)
        timings["export"] = time.monotonic() - t0
        assert len(exported) == len(gt.images) and all(t["annotations"] == [] for t in exported)
        ls0 = tmp_path / "ls_export0.json"
        ls0.write_text(json.dumps(exported))
        val0 = tmp_path / "val0.json"
        t0 = time.monotonic()
        r = runner.invoke(main, ["review", "import", str(ls0), "--to", "133", "--out", str(val0)])
        timings["wbt import"] = time.monotonic() - t0
        assert r.exit_code == 0, r.output
        a, b = _by_id(gt), _by_id(load_pose_dataset(val0))
        assert a.ann_ids.tolist() == b.ann_ids.tolist() and a.image_ids.tolist() == b.image_ids.tolist()
        np.testing.assert_array_equal(b.keypoints, a.keypoints)
        np.testing.assert_array_equal(b.bboxes, a.bboxes)

        # 2. an annotator starts from the prediction: moves the nose, deletes the left wrist, adds a person
        task = next(t for t in exported if t["data"]["wbt"]["image"]["id"] == 785)
        (prediction,) = server.call("GET", f"/api/predictions?task={task['id']}")
        result = copy.deepcopy(prediction["result"])
        nose = next(x for x in result if x["id"] == "p442619_k0")
        nose["value"]["x"] += 100 * 4.0 / 640
        result = [x for x in result if x["id"] != "p442619_k9"]
        common = {"to_name": "image", "original_width": 640, "original_height": 425, "image_rotation": 0}
        result += [
            {"id": "NewP1", "type": "rectanglelabels", "from_name": "person", **common,
             "value": {"x": 10, "y": 20, "width": 15, "height": 40, "rotation": 0, "rectanglelabels": ["person"]}},
            {"id": "NewK1", "type": "keypointlabels", "from_name": "keypoints", "parentID": "NewP1", **common,
             "value": {"x": 12.5, "y": 25, "width": 0.4, "keypointlabels": ["nose"]}},
            {"id": "NewK1", "type": "choices", "from_name": "visibility", **common,
             "value": {"x": 12.5, "y": 25, "width": 0.4, "choices": ["occluded"]}},
        ]  # fmt: skip
        server.call("POST", f"/api/tasks/{task['id']}/annotations", {"result": result, "was_cancelled": False})
        exported = server.call("GET", export_url)
        ls1 = tmp_path / "ls_export1.json"
        ls1.write_text(json.dumps(exported))
        val1 = tmp_path / "val1.json"
        r = runner.invoke(main, ["review", "import", str(ls1), "--to", "133", "--out", str(val1)])
        assert r.exit_code == 0, r.output
        back = load_pose_dataset(val1)
        assert len(back) == len(gt) + 1
        i, j = list(back.ann_ids).index(442619), list(gt.ann_ids).index(442619)
        np.testing.assert_allclose(back.keypoints[i, 0], [371, 81, 2], atol=1e-9)
        assert back.keypoints[i, 9].tolist() == [0, 0, 0]
        same = np.ones(133, bool)
        same[[0, 9]] = False
        np.testing.assert_array_equal(back.keypoints[i, same], gt.keypoints[j, same])
        (k,) = [n for n, a in enumerate(back.ann_ids) if a not in set(gt.ann_ids.tolist())]
        assert back.image_ids[k] == 785 and back.keypoints[k, 0].tolist() == [80, 106.25, 1]
        np.testing.assert_allclose(back.bboxes[k], [64, 85, 96, 170])
    finally:
        server.stop()
    print("label studio timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
