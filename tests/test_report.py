"""``wbt report``: a self-contained HTML page, checked by content and in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from labeltool.cli import main
from labeltool.io.pose import load_pose_dataset, write_pose_dataset
from labeltool.layouts import WHOLEBODY133

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Injected into a copy of the report (the report itself has no script): records load errors and,
# once the page has loaded, how many images decoded.
CHECKER = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(e.message || ('failed to load ' + (e.target && e.target.tagName)));
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var out = document.createElement('pre');
  out.id = 'wbt-check';
  out.textContent = JSON.stringify({images: imgs.length, loaded: loaded, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def wbt(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def planted(realdata, tmp_path_factory):
    """The real GT with three planted errors (a hand on the wrong wrist, a tiny face, a hand out of the box)."""
    gt = load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")
    k = gt.keypoints
    lh, rh, face = (WHOLEBODY133.parts[p] for p in ("lefthand", "righthand", "face"))
    a, b, c = (list(gt.ann_ids).index(i) for i in (437295, 442619, 460541))
    k[a, lh, :2] += k[a, 10, :2] - k[a, lh[0], :2]
    centre = k[b, face, :2].mean(axis=0)
    k[b, face, :2] = centre + (k[b, face, :2] - centre) / 8
    k[c, rh, 0] += 300
    path = tmp_path_factory.mktemp("planted") / "labels.json"
    write_pose_dataset(gt, path)
    return path


@pytest.fixture(scope="module")
def report(planted, realdata, tmp_path_factory):
    images = realdata / "coco_wholebody"
    out = tmp_path_factory.mktemp("report") / "report.html"
    r = wbt("report", planted, "--images", images, "--out", out, "--gt", images / "test_coco_wholebody.json")
    assert r.exit_code == 0, r.output
    assert "3 flagged" in r.output
    return out


def _data_images(page: str) -> list[np.ndarray]:
    out = []
    for uri in re.findall(r'src="([^"]*)"', page):
        assert uri.startswith("data:image/png;base64,"), uri[:60]
        buf = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), dtype=np.uint8)
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR))
    return out


def test_report_content(report):
    page = report.read_text()
    assert "http://" not in page and "https://" not in page and "file:" not in page  # self-contained
    images = _data_images(page)
    assert len(images) == 1 + 3  # histograms + one crop per flagged person
    assert all(im is not None for im in images)
    assert [im.shape for im in images[1:]] == [(224, 224, 3)] * 3
    for ann_id in (437295, 442619, 460541):
        assert f"ann {ann_id}" in page
    assert "hand_side lefthand" in page and "part_size face" in page and "outside_box righthand" in page
    # per-part AP of the labels against the original GT: the unchanged parts are exact
    rows = dict(re.findall(r"<tr><td>(\w+)</td><td>([\d.-]+)</td>", page))
    assert rows["body"] == "100.0" and rows["foot"] == "100.0"
    assert float(rows["face"]) < 100 and float(rows["righthand"]) < 100 and float(rows["wholebody"]) < 100
    # counts: 12 of 14 persons have body points, 4 have a face
    assert "<tr><td>face</td><td>4</td><td>28.6%</td>" in page
    assert "<tr><td>body</td><td>12</td><td>85.7%</td>" in page


def test_report_errors(planted, realdata, tmp_path):
    out = tmp_path / "r.html"
    r = wbt("report", planted, "--images", tmp_path / "nope", "--out", out)
    assert r.exit_code == 2 and r.stderr.strip() == f"wbt: error: {tmp_path / 'nope'}: image directory not found"
    bad_gt = tmp_path / "gt.json"
    bad_gt.write_text(json.dumps({"images": [], "annotations": []}))
    r = wbt("report", planted, "--images", realdata / "coco_wholebody", "--out", out, "--gt", bad_gt)
    assert r.exit_code == 2 and r.stderr.startswith("wbt: error: ") and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium)")
    return exe


def _run_chromium(exe: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def test_report_renders_in_chromium(report, tmp_path):
    exe = _chromium()
    page = report.read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("<head>", "<head>" + CHECKER, 1))
    dom = _run_chromium(
        exe, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<pre id="wbt-check">(.*?)</pre>', dom.stdout)
    assert match, dom.stdout[-500:]
    check = json.loads(match.group(1).replace("&quot;", '"'))
    assert check == {"images": 4, "loaded": 4, "errors": []}
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    shot = tmp_path / "report.png"
    run = _run_chromium(exe, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    png = cv2.imread(str(shot))
    assert png.shape == (2400, 1280, 3)
    assert png.std() > 20  # not a blank page: text, tables, the histogram and the crops are drawn


@pytest.mark.slow
def test_queue_and_report_on_distilled_sample(tmp_path):
    """The labels of ``wbt distill --sample`` (real teachers on the sample photos) go through queue and report."""
    out = tmp_path / "wb"
    r = wbt("distill", "--sample", "--out", out)
    assert r.exit_code == 0, r.output
    r = wbt("review", "queue", out / "labels.parquet", "--top", "5")
    assert r.exit_code == 0, r.output
    assert re.match(r"\d+ of \d+ persons flagged \(confidence, hand sides, box, part sizes\)", r.output)
    html = tmp_path / "sample.html"
    r = wbt("report", out / "labels.parquet", "--images", out / "sample_images", "--out", html)
    assert r.exit_code == 0, r.output
    page = html.read_text()
    assert "teacher confidence and sources present" in page and "Merge outcome per part" in page
    assert all(im is not None for im in _data_images(page))
    ls = tmp_path / "ls"
    r = wbt(
        "review",
        "export",
        out / "labels.parquet",
        "--to",
        "labelstudio",
        "--images",
        out / "sample_images",
        "--out",
        ls,
    )
    assert r.exit_code == 0, r.output
    tasks = json.loads((ls / "tasks.json").read_text())
    scores = [x["score"] for t in tasks for x in t["predictions"][0]["result"] if x["type"] == "keypointlabels"]
    assert scores and all(0 < s <= 1 for s in scores)  # the teachers' confidence per point
