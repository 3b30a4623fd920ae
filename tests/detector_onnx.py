"""Small real ONNX detectors for tests: a random-weight conv net whose outputs have YOLOX / RTMDet shapes.

Not a trained detector: its boxes and scores are real functions of the image (patchify convs at
strides 8, 16 and 32), so the pre-processing, decoding and NMS of ``--detector onnx`` can be
compared with rtmlib's on the same file, box for box.

- raw head: (1, N, 5 + C) ``cx cy log-w log-h`` (grid units), sigmoid objectness and class
  scores, N the cells of the stride 8 / 16 / 32 grids (what rtmlib's YOLOX / RTMDet decode);
- end-to-end: ``dets`` (1, N, 5) ``x0 y0 x1 y1 score`` in input pixels and ``labels`` (1, N)
  int64 (arg-max of the class scores), as an mmdeploy export with NMS inside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)


def make_detector_onnx(path: str | Path, size: tuple[int, int] = (128, 96), classes: int = 1,
                       end2end: bool = False, seed: int = 0, pixel_scale: float = 1.0 / 255) -> Path:
    """Write the model to ``path``; ``size`` (W, H); ``pixel_scale``: what one input unit is worth (1/255 for
    YOLOX's raw pixels, ~1/58 for RTMDet's normalised input) so that the outputs stay in a useful range."""
    rng = np.random.default_rng(seed)
    w, h = size
    ch = 5 + classes
    nodes, inits, heads = [], [], []
    for s in STRIDES:
        weight = rng.normal(0.0, 1.0, (ch, 3, s, s)).astype(np.float32) * np.float32(pixel_scale * 4.0 / s)
        weight[:4] *= 0.3  # box offsets and log sizes of order 1
        weight[4:] *= 0.5
        bias = np.zeros(ch, np.float32)
        bias[4:] = 0.5  # objectness / classes around sigmoid(0.5 + noise): many boxes above 0.3
        inits += [numpy_helper.from_array(weight, f"w{s}"), numpy_helper.from_array(bias, f"b{s}")]
        n = (h // s) * (w // s)
        nodes += [
            helper.make_node("Conv", ["input", f"w{s}", f"b{s}"], [f"c{s}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Reshape", [f"c{s}", f"shape{s}"], [f"r{s}"]),
            helper.make_node("Transpose", [f"r{s}"], [f"t{s}"], perm=[0, 2, 1]),
        ]
        inits.append(numpy_helper.from_array(np.array([1, ch, n], np.int64), f"shape{s}"))
        heads.append(f"t{s}")
    nodes.append(helper.make_node("Concat", heads, ["head"], axis=1))
    inits += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
              (("s0", [0]), ("s4", [4]), ("sC", [ch]), ("ax", [2]))]
    nodes += [
        helper.make_node("Slice", ["head", "s0", "s4", "ax"], ["box"]),
        helper.make_node("Slice", ["head", "s4", "sC", "ax"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["prob"]),
    ]
    n_all = sum((h // s) * (w // s) for s in STRIDES)
    if not end2end:
        nodes.append(helper.make_node("Concat", ["box", "prob"], ["output"], axis=2))
        outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_all, ch])]
    else:
        # boxes in input pixels: x0 = sig(a) W / 2, y0 = sig(b) H / 2, x1 = x0 + sig(c) W / 2, y1 = y0 + sig(d) H / 2
        inits += [numpy_helper.from_array(np.array([w / 2, h / 2, w / 2, h / 2], np.float32), "half"),
                  numpy_helper.from_array(np.array([0], np.int64), "z0"),
                  numpy_helper.from_array(np.array([2], np.int64), "z2"),
                  numpy_helper.from_array(np.array([1], np.int64), "z1"),
                  numpy_helper.from_array(np.array([6], np.int64), "z6")]
        nodes += [
            helper.make_node("Sigmoid", ["box"], ["sbox"]),
            helper.make_node("Mul", ["sbox", "half"], ["pbox"]),
            helper.make_node("Slice", ["pbox", "z0", "z2", "ax"], ["lo"]),
            helper.make_node("Slice", ["pbox", "z2", "s4", "ax"], ["ext"]),
            helper.make_node("Add", ["lo", "ext"], ["hi"]),
            helper.make_node("Slice", ["prob", "z0", "z1", "ax"], ["obj"]),
            helper.make_node("Slice", ["prob", "z1", "z6", "ax"], ["cls"]),
            helper.make_node("ReduceMax", ["cls", "z2"], ["clsmax"], keepdims=1),
            helper.make_node("Mul", ["obj", "clsmax"], ["score"]),
            helper.make_node("Concat", ["lo", "hi", "score"], ["dets"], axis=2),
            helper.make_node("ArgMax", ["cls"], ["labels"], axis=2, keepdims=0),
        ]
        outputs = [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, n_all, 5]),
                   helper.make_tensor_value_info("labels", TensorProto.INT64, [1, n_all])]
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, h, w])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
