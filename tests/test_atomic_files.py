"""One atomic writer (labeltool.io.atomic.AtomicFile) behind every output file, and no import-time side effects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labeltool.io.atomic import AtomicFile, write_bytes_atomic


def test_importing_the_package_leaves_the_umask_alone():
    """Every labeltool module is imported with os.umask spied on: nothing may call it (it is process-wide)."""
    code = """
import importlib, os, pkgutil
calls = []
real = os.umask
os.umask = lambda mask: calls.append(mask) or real(mask)
import labeltool
for m in pkgutil.walk_packages(labeltool.__path__, "labeltool."):
    if m.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(m.name)
    except ImportError:
        pass  # an optional backend that is not installed
print(calls)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_writer_gives_umask_permissions_and_leaves_no_temp(tmp_path):
    """write_bytes_atomic, the streaming json and parquet writers and checkpoints: mode 0666 & ~umask (here 027)."""
    code = f"""
import os, pathlib
os.umask(0o027)
import numpy as np
from labeltool.io.atomic import JsonDocumentWriter, write_bytes_atomic
from labeltool.labels_table import LabelsWriter
from labeltool.student.checkpoint import save_checkpoint
d = pathlib.Path({str(tmp_path)!r})
write_bytes_atomic(b"x", d / "a.bin")
w = JsonDocumentWriter(d / "b.json", {{"info": 1}}, "annotations", {{}})
w.write([{{"id": 1}}])
w.close()
LabelsWriter(d / "c.parquet", ["none"]).close()
save_checkpoint({{"w": 1}}, d / "d.pt")
for name in ("a.bin", "b.json", "c.parquet", "d.pt"):
    print(name, oct((d / name).stat().st_mode & 0o777))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["a.bin", "0o640", "b.json", "0o640", "c.parquet", "0o640", "d.pt", "0o640"]
    assert json.loads((tmp_path / "b.json").read_text()) == {"info": 1, "annotations": [{"id": 1}]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json", "c.parquet", "d.pt"]  # no temp left


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.json"
    write_bytes_atomic(b"old", path)
    with pytest.raises(RuntimeError), AtomicFile(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    target = AtomicFile(path)
    assert target.tmp.parent == tmp_path and target.tmp.name.startswith(".out.json.") and target.tmp.exists()
    target.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
