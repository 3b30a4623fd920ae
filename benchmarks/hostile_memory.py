"""Peak memory and outcome of wbt on hostile models, checkpoints and images (issue 19, section 4.1).

Builds the hostile files of ``tests/test_hostile_models.py`` (same builders) in a temp dir and
runs one wbt command on each in a fresh process, printing that process's peak RSS
(``VmHWM``), its exit code and the first line of its stderr. The child runs under an
address-space limit (``--limit-gb``, 8 by default) so that the old behaviour cannot take the
shared machine's memory: an allocation past it fails there instead (and shows as a traceback).

    python benchmarks/hostile_memory.py                 # this checkout
    PYTHONPATH=/path/to/old/checkout python benchmarks/hostile_memory.py   # another version

A 30000 x 30000 PNG decoded by OpenCV is 2.7 GB, with its RGB copy 5.4 GB; an mmpose file whose
split ratio is 0.001 asks for a 196 GB head (a 16 GB one at other sizes); a stride-0 tensor of
10^12 elements for 4 TB on its first copy; the deflated zip bomb here inflates to 400 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CHILD = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from labeltool.cli import main
sys.argv = ["wbt", *sys.argv[2:]]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code or 0
finally:  # VmHWM: this process image's peak (ru_maxrss would carry the forking parent's over exec)
    hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print("PEAK_KB", hwm, file=sys.stderr)
sys.exit(code)
"""


def _files(tmp: Path) -> dict[str, list[str]]:
    """Case name -> wbt arguments, the hostile files written under ``tmp``."""
    from test_hostile_inputs import _doc
    from test_hostile_models import TINY, _hostile_mmpose, _png_bomb
    from test_student_mmpose import _as_mmpose

    from labeltool.student.model import Student

    torch.manual_seed(0)
    state = {k: v for k, v in _as_mmpose(Student(TINY).state_dict()).items() if "num_batches_tracked" not in k}
    cases = {}
    for case in ("good", "ratio=0.001", "stride-0"):
        path = _hostile_mmpose(case, state, tmp)
        cases[f"export, mmpose checkpoint {case}"] = ["export", "--model", str(path), "--onnx",
                                                       str(tmp / "out.onnx"), "--no-check"]
    bomb = tmp / "bomb"
    bomb.mkdir()
    path = tmp / "bomb_src.pth"
    torch.save({"state_dict": state, "optimizer": {"exp_avg": torch.zeros(100_000_000)}}, path)
    from test_hostile_models import _deflated

    deflated = _deflated(path, bomb / "deflated.pth")
    path.unlink()
    cases[f"export, deflated zip ({deflated.stat().st_size // 1024} KB -> 400 MB)"] = [
        "export", "--model", str(deflated), "--onnx", str(tmp / "out.onnx"), "--no-check"]
    images = tmp / "images"
    images.mkdir()
    _png_bomb(images / "bomb.png")
    _png_bomb(images / "a.jpg", 240, 120)
    ann = tmp / "wholebody133.json"
    ann.write_text(json.dumps(_doc(["a.jpg", "bomb.png"])))
    cases[f"render, 30000x30000 PNG ({(images / 'bomb.png').stat().st_size // 1024} KB)"] = [
        "render", str(ann), "--images", str(images), "--out", str(tmp / "render")]
    return cases


def run(args: list[str], limit: int) -> tuple[float, int, str]:
    res = subprocess.run([sys.executable, "-c", CHILD, str(limit), *args], capture_output=True, text=True)
    lines = res.stderr.strip().splitlines()
    peak = next((int(x.split()[1]) for x in lines if x.startswith("PEAK_KB")), 0) / 1024
    said = [x for x in lines if not x.startswith("PEAK_KB")]
    first = next((x for x in said if x.startswith("wbt: error")), said[-1] if said else res.stdout.strip()[:200])
    return peak, res.returncode, first[:150]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-gb", type=float, default=8.0)
    a = parser.parse_args()
    limit = int(a.limit_gb * 2**30)
    base = run(["--version"], limit)[0]
    print(f"python + wbt imports: {base:.0f} MB peak; child address-space limit {a.limit_gb:g} GB")
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in _files(Path(tmp)).items():
            peak, code, first = run(args, limit)
            print(f"{name}: peak RSS {peak:.0f} MB ({peak / base:.1f}x imports), exit {code}: {first}")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
