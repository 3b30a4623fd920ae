"""rtmlib's YOLOX / RTMDet on given images; runs in the rtmlib test venv.

    python tests/rtmlib_detect.py REQUEST.json OUT.json

REQUEST: ``{"runs": [{"class": "YOLOX" | "RTMDet", "onnx": FILE, "input_size": [H, W], "score_thr": s,
"nms_thr": t}], "images": [FILE, ...]}``. OUT: ``[[boxes of image 0, ...] per run]``, boxes
``[[x0, y0, x1, y1], ...]`` as rtmlib returns them. Images are read as rtmlib's users read them
(``cv2.imread``, BGR); ``tests/test_detectors.py`` starts it.
"""

from __future__ import annotations

import json
import sys

import cv2
from rtmlib import YOLOX, RTMDet


def main(request_path: str, out_path: str) -> None:
    with open(request_path) as f:
        request = json.load(f)
    images = [cv2.imread(p) for p in request["images"]]
    out = []
    for run in request["runs"]:
        cls = {"YOLOX": YOLOX, "RTMDet": RTMDet}[run["class"]]
        model = cls(run["onnx"], model_input_size=tuple(run["input_size"]), backend="onnxruntime",
                    nms_thr=run["nms_thr"], score_thr=run["score_thr"])
        out.append([[list(map(float, b)) for b in model(img)] for img in images])
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
