"""ONNX person detectors in rtmlib 0.0.16's conventions: YOLOX and RTMDet (``--detector onnx:FILE[:WxH][:yolox|rtmdet]``).

As rtmlib's ``YOLOX`` / ``RTMDet`` classes (``rtmlib/tools/object_detection``), so a file rtmlib
runs (``yolox_m_8xb8-300e_humanart``, RTMDet-nano / -m) gives the same boxes here:

- input: the **BGR** image resized by ``r = min(H / h, W / w)`` to ``(int(w r), int(h r))``
  (bilinear), pasted at the top left of an H x W canvas of 114; YOLOX feeds the pixel values
  as they are, RTMDet ``(x - mean) / std`` with mean (103.53, 116.28, 123.675) and std
  (57.375, 57.12, 58.395) on the B, G, R channels; float32 (1, 3, H, W);
- output (the first): ``dets`` (1, N, 5) ``x0 y0 x1 y1 score`` of an end-to-end export (NMS
  inside; a second output ``labels`` (1, N) keeps class 0, person), or the raw head
  (1, N, 5 + C) ``cx cy log-w log-h objectness class scores`` on the stride 8 / 16 / 32 grids,
  decoded as rtmlib does, score = objectness x the person class score, NMS with rtmlib's
  ``+ 1`` pixel areas; boxes divided by ``r``.

Which of the two a file is (only the input normalisation differs) comes from ``:yolox`` /
``:rtmdet`` after the file, else from the file name (rtmlib's files are named ``yolox_*`` and
``rtmdet_*``). Unlike rtmlib's YOLOX in ``human`` mode, which returns the boxes of every class
of a raw-head model, only persons (class 0) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labeltool.detectors.base import Detections, DetectorSpec, finish
from labeltool.digests import file_record
from labeltool.errors import UserError
from labeltool.teachers.onnx import image_input, open_session, parse_arg
from labeltool.versions import package_version

KINDS = ("yolox", "rtmdet")
RTMDET_MEAN = (103.53, 116.28, 123.675)  # B, G, R
RTMDET_STD = (57.375, 57.12, 58.395)
PAD_VALUE = 114
STRIDES = (8, 16, 32)
HINT = "--detector onnx:FILE[:WxH][:yolox|rtmdet] expects a YOLOX or RTMDet detector in rtmlib's convention"


@dataclass(frozen=True)
class DetectorModel:
    """A checked detector file: kind, input name and size (W, H), its outputs' layout."""

    path: Path
    kind: str
    input_name: str
    input_size: tuple[int, int]
    end2end: bool  # dets (1, N, 5) [+ labels]; else the raw head (1, N, 5 + C)
    labels: str | None  # the labels output of an end-to-end file


def parse_detector_arg(arg: str) -> tuple[Path, tuple[int, int] | None, str | None]:
    """``FILE[:WxH][:yolox|rtmdet]`` -> (file, (W, H) or None, kind or None)."""
    kind = None
    head, colon, tail = arg.rpartition(":")
    if colon and head and tail.lower() in KINDS:
        arg, kind = head, tail.lower()
    path, size = parse_arg(arg)
    return path, size, kind


def _kind(path: Path, kind: str | None) -> str:
    if kind is not None:
        return kind
    name = path.name.lower()
    found = [k for k in KINDS if k in name]
    if len(found) != 1:
        raise UserError(f"{path}: cannot tell YOLOX from RTMDet by the file name: add :yolox or :rtmdet ({HINT})")
    return found[0]


def letterbox(image_bgr: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """rtmlib's detector pre-processing: the (H, W, 3) uint8 canvas of 114 with the resized image at its top left, and r."""
    w, h = input_size
    if image_bgr.shape[:2] == (h, w):
        return image_bgr.copy(), 1.0
    ratio = min(h / image_bgr.shape[0], w / image_bgr.shape[1])
    size = (int(image_bgr.shape[1] * ratio), int(image_bgr.shape[0] * ratio))
    canvas = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[: size[1], : size[0]] = cv2.resize(image_bgr, size, interpolation=cv2.INTER_LINEAR)
    return canvas, ratio


def network_input(image_rgb: np.ndarray, model: DetectorModel) -> tuple[np.ndarray, float]:
    """(1, 3, H, W) float32 input of an RGB image and the resize ratio r."""
    canvas, ratio = letterbox(np.ascontiguousarray(image_rgb[:, :, ::-1]), model.input_size)
    x = canvas.astype(np.float64)
    if model.kind == "rtmdet":
        x = (x - np.asarray(RTMDET_MEAN)) / np.asarray(RTMDET_STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32), ratio


def grid_count(input_size: tuple[int, int]) -> int:
    """Anchor points of the raw head: the cells of the stride 8, 16 and 32 grids."""
    w, h = input_size
    return sum((h // s) * (w // s) for s in STRIDES)


def decode_raw(outputs: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) ``[x0, y0, x1, y1]`` in input pixels and person scores (N,) of a raw head (1, N, 5 + C), as rtmlib."""
    w, h = input_size
    grids, strides = [], []
    for s in STRIDES:
        xv, yv = np.meshgrid(np.arange(w // s), np.arange(h // s))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), s))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    pred = np.asarray(outputs[0], dtype=np.float32)
    centre = (pred[:, :2] + grid) * stride
    size = np.exp(pred[:, 2:4]) * stride
    boxes = np.concatenate([centre - size / 2.0, centre + size / 2.0], axis=1)
    scores = pred[:, 4] * pred[:, 5]
    return boxes, scores


def load_detector_model(arg: str, threads: int | None = None) -> tuple[DetectorModel, object]:
    """Open and check a detector file: (:class:`DetectorModel`, session); every mistake is one line naming the file."""
    path, given, kind = parse_detector_arg(arg)
    session = open_session(path, HINT, threads)
    kind = _kind(path, kind)
    input_name, size, _ = image_input(session, path, given, "--detector onnx", HINT)
    outputs = session.get_outputs()
    probe = np.full((1, 3, size[1], size[0]), 0.0, dtype=np.float32)
    try:
        results = session.run(None, {input_name: probe})
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise UserError(f"{path}: does not run on a {size[0]}x{size[1]} input ({reason}); {HINT}") from None
    first = results[0]
    names = [o.name for o in outputs]
    if first.ndim != 3 or first.shape[0] != 1 or first.shape[2] < 5:
        raise UserError(f"{path}: first output {names[0]} of shape {list(first.shape)}; expected dets (1, N, 5) "
                        f"or a raw YOLOX head (1, N, 5 + classes) ({HINT})")
    end2end = first.shape[2] == 5
    labels = None
    if end2end:
        labels = next((n for n, r in zip(names[1:], results[1:]) if r.ndim == 2 and r.shape[1] == first.shape[1]),
                      None)
    elif first.shape[1] != grid_count(size):
        raise UserError(f"{path}: raw head output with {first.shape[1]} points; a {size[0]}x{size[1]} input has "
                        f"{grid_count(size)} on the stride 8/16/32 grids ({HINT})")
    return DetectorModel(path, kind, input_name, size, end2end, labels), session


class OnnxDetector:
    """A YOLOX / RTMDet ONNX file run as rtmlib runs it (see the module doc)."""

    def __init__(self, spec: DetectorSpec, threads: int | None = None):
        self.spec = spec
        self.model, self.session = load_detector_model(spec.arg or "", threads)

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Boxes (N, 4) in image pixels and scores (N,) before the spec's steps; True when NMS is still to do."""
        m = self.model
        x, ratio = network_input(image, m)
        wanted = [o.name for o in self.session.get_outputs()][:1] + ([m.labels] if m.labels else [])
        results = self.session.run(wanted, {m.input_name: x})
        if m.end2end:
            dets = np.asarray(results[0][0], dtype=np.float64)
            keep = np.ones(len(dets), dtype=bool) if m.labels is None else np.asarray(results[1][0]) == 0
            return dets[keep, :4] / ratio, dets[keep, 4], False
        boxes, scores = decode_raw(results[0], m.input_size)
        return boxes.astype(np.float64) / ratio, scores.astype(np.float64), True

    def detect(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        boxes, scores, needs_nms = self.raw(image)  # an end-to-end file did its NMS: as rtmlib, none again
        return finish(boxes, scores, self.spec, width, height, plus_one=True, apply_nms=needs_nms)

    def describe(self) -> dict:
        return describe_onnx_detector(self.spec)

    def close(self) -> None:
        self.session = None


def describe_onnx_detector(spec: DetectorSpec) -> dict:
    """Model file (name, sha256), onnxruntime version and thresholds, without loading the model."""
    path, size, kind = parse_detector_arg(spec.arg or "")
    out = {"model": f"ONNX person detector, rtmlib convention ({kind or 'kind from the file name'}: {path.name})",
           "version": package_version("onnxruntime", "onnxruntime-gpu"), "files": [file_record(path)],
           **spec.thresholds()}
    if size is not None:
        out["input_size"] = list(size)
    return out
