"""rtmlib's RTMPose on given person boxes, with its defaults; runs in the rtmlib test venv.

    python tests/rtmlib_pose.py REQUEST.json OUT.json

REQUEST: ``{"models": [ONNX, ...], "input_size": [W, H], "persons": [{"file": IMAGE, "bbox_xyxy": [...]}]}``.
OUT: ``{ONNX: {"keypoints": [[[x, y], ...], ...], "scores": [[...], ...]}}`` per model, per person in order.
Images are read as rtmlib's users read them (``cv2.imread``, BGR). Made by ``install.sh --test`` at
``~/.cache/wbt/rtmlib-venv``; ``tests/test_export_rtmlib.py`` starts it.
"""

from __future__ import annotations

import json
import sys

import cv2
import rtmlib
from rtmlib import RTMPose


def main(request_path: str, out_path: str) -> None:
    with open(request_path) as f:
        request = json.load(f)
    images = {p["file"]: cv2.imread(p["file"]) for p in request["persons"]}
    results = {}
    for onnx in request["models"]:
        model = RTMPose(onnx_model=onnx, model_input_size=tuple(request["input_size"]))  # defaults otherwise
        keypoints, scores = [], []
        for person in request["persons"]:
            kp, sc = model(images[person["file"]], bboxes=[person["bbox_xyxy"]])
            keypoints.append(kp[0].tolist())
            scores.append(sc[0].tolist())
        results[onnx] = {"keypoints": keypoints, "scores": scores}
    with open(out_path, "w") as f:
        json.dump(results, f)
    print(f"rtmlib {rtmlib.__version__ if hasattr(rtmlib, '__version__') else '?'}: "
          f"{len(request['persons'])} persons x {len(request['models'])} models")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
