"""Peak memory of ``wbt convert`` on a large label file, per person and in all.

Builds a synthetic COCO person-keypoints file of N persons (17 points each, one person per
image, streamed to a temp dir), then runs ``wbt convert IN OUT --to 136`` (and ``--to 133``)
in a fresh process and reads that process's peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``
of a child that does nothing else), minus the peak of a child that only imports wbt.
Prints the peak, bytes per person, and the ratio to the input file's size. Run:

    python benchmarks/convert_memory.py --persons 100000
    python benchmarks/convert_memory.py --persons 1000000   # the issue's case (minutes, GBs)

The peak before streaming (issue 19: 10^6 persons, 10 GB) was the converted float64 arrays with
their padded / index-mapped temporaries and the output document as Python lists. Measured on the
shared build machine: 10^5 persons 1275 MB before, 527 MB after; 10^6 persons 4768 MB after (what
remains is orjson's parse of the input).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys
from labeltool.cli import main
sys.argv = ["wbt", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    if e.code:
        raise
"""


def write_synthetic(path: Path, persons: int, seed: int = 0) -> None:
    """A COCO person-keypoints file of ``persons`` persons (one per image), streamed in chunks."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write('{"images":[')
        for start in range(0, persons, 10_000):
            ids = range(start + 1, min(persons, start + 10_000) + 1)
            f.write(("," if start else "") + ",".join(
                json.dumps({"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}) for i in ids))
        f.write('],"annotations":[')
        for start in range(0, persons, 10_000):
            n = min(persons, start + 10_000) - start
            pts = np.round(rng.uniform(0, 400, (n, 17, 3)), 2)
            pts[..., 2] = rng.integers(0, 3, (n, 17))
            rows = []
            for j in range(n):
                i = start + j + 1
                rows.append(json.dumps({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 20000.0,
                                        "bbox": [10.0, 20.0, 100.0, 200.0], "num_keypoints": 17,
                                        "keypoints": [int(v) if k % 3 == 2 else float(v)
                                                      for k, v in enumerate(pts[j].reshape(-1))]}))
            f.write(("," if start else "") + ",".join(rows))
        f.write('],"categories":[{"id":1,"name":"person","supercategory":"person"}]}')


def peak_rss_mb(args: list[str]) -> float:
    """Peak RSS (MB) of a fresh python running ``wbt ARGS`` (ru_maxrss of that child only)."""
    code = CHILD + "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    return int(res.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=100_000)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "persons17.json"
        write_synthetic(src, a.persons)
        size_mb = src.stat().st_size / 2**20
        base = peak_rss_mb(["--version"])
        print(f"{a.persons} persons, input {size_mb:.0f} MB; python + wbt imports {base:.0f} MB")
        for target in ("136", "133"):
            out = Path(tmp) / f"out{target}.json"
            peak = peak_rss_mb(["convert", str(src), str(out), "--to", target])
            out_mb = out.stat().st_size / 2**20
            print(f"convert --to {target}: peak RSS {peak:.0f} MB ({(peak - base) * 2**20 / a.persons:.0f} bytes "
                  f"per person above imports; {(peak - base) / size_mb:.1f} x the input, output {out_mb:.0f} MB)")
            out.unlink()


if __name__ == "__main__":
    main()
