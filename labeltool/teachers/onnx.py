"""ONNX top-down SimCC models as teachers, in rtmlib's convention (RTMW, DWPose, RTMPose-hand / -face, a wbt export).

The convention is rtmlib's ``RTMPose`` (``rtmlib/tools/pose_estimation``: rtmpose.py,
pre_processings.py, post_processings.py), so any model rtmlib runs is a teacher unchanged:

- crop: the person (or part) box ``[x0, y0, x1, y1]`` -> centre and size x 1.25 (``padding``),
  the size grown to the input's aspect ratio, an affine warp (no rotation) of that region to
  the input size W x H, bilinear, black outside the image (:func:`labeltool.topdown.crop_matrices`);
- input: the **BGR** crop, ``(crop - mean) / std`` with mean (123.675, 116.28, 103.53) and std
  (58.395, 57.12, 57.375) applied to the channels in that (B, G, R) order, float32 (N, 3, H, W);
- outputs ``simcc_x`` (N, K, 2W) and ``simcc_y`` (N, K, 2H), decoded by arg-max / 2 (split
  ratio 2); the score is the mean of the two maxima (rtmlib 0.0.16's ``get_simcc_maximum``;
  older rtmlib took the smaller one), and a point whose score is <= 0 is not predicted. The score, clipped to [0, 1], is the point's
  confidence (a logit maximum: well-trained RTMPose models give 0.3-1 on visible points).

One onnxruntime session per model file and process, shared by the teachers built from it
(the whole-body teacher and the body teacher of a run without body annotations); the crops of
one call (all persons of an image, or all hands of one side) run as one batch when the model's
batch dimension is dynamic, else one run per crop.
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltool import topdown
from labeltool.digests import file_record
from labeltool.errors import UserError, first_line
from labeltool.teachers.base import (
    CROP_FACE,
    CROP_HAND,
    CROP_PERSON,
    Backend,
    BuildOptions,
    Closable,
    PartPrediction,
    Sides,
    TeacherSpec,
)
from labeltool.versions import package_version

SPLIT_RATIO = 2.0  # SimCC bins per input pixel

_SIZE = re.compile(r"^(\d+)x(\d+)$")
# model input sides accepted (pixels): RTMPose / RTMW use 192..384; 4096 x 4096 is 200 MB per crop in float32
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 16, 4096
# the check runs the model once on a blank batch; a real RTMW-x takes ~2 s on one CPU core. A graph that
# takes longer (an ONNX Loop of 10^12 iterations) is stopped and refused, not waited for.
CHECK_SECONDS = 60.0


def parse_arg(arg: str) -> tuple[Path, tuple[int, int] | None]:
    """``FILE[:WxH]`` -> (file, (W, H) or None)."""
    head, colon, tail = arg.rpartition(":")
    match = _SIZE.match(tail) if colon else None
    if match and head:
        return Path(head), (int(match.group(1)), int(match.group(2)))
    return Path(arg), None


# ------------------------------------------------------------------ geometry and decoding (rtmlib's)


def box_center_scale(boxes: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Centres (M, 2) and region sizes (M, 2) of ``[x0, y0, x1, y1]`` boxes for a W x H input (rtmlib's
    ``bbox_xyxy2cs``, padding 1.25, then grown to the input aspect): :func:`labeltool.topdown.box_center_scale`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return topdown.box_center_scale(np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1),
                                    input_size[0] / input_size[1])  # fmt: skip


def rtmlib_input(image_rgb: np.ndarray, matrices: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The network input (M, 3, H, W) float32 for crops of an RGB image: BGR, ``(x - mean) / std``."""
    w, h = input_size
    crops = [topdown.warp_bilinear(image_rgb, m, (w, h))[:, :, ::-1] for m in matrices]
    return topdown.normalise_bgr(np.stack(crops) if crops else np.zeros((0, h, w, 3), np.uint8))


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input-pixel keypoints (M, K, 2) and scores (M, K): arg-max / 2, score = mean of the two maxima (rtmlib 0.0.16)."""
    locs = np.stack([simcc_x.argmax(axis=-1), simcc_y.argmax(axis=-1)], axis=-1).astype(np.float64) / SPLIT_RATIO
    scores = 0.5 * (simcc_x.max(axis=-1).astype(np.float64) + simcc_y.max(axis=-1))
    return locs, scores


def to_image(locs: np.ndarray, scores: np.ndarray, center: np.ndarray, scale: np.ndarray,
             input_size: tuple[int, int]) -> np.ndarray:
    """(M, K, 3) x, y in image pixels and confidence = score clipped to [0, 1]; zeros where score <= 0 or not
    finite (a NaN / Inf logit is no prediction, never a ``null`` confidence in the labels)."""
    xy = locs / np.asarray(input_size, dtype=np.float64) * scale[:, None] + center[:, None] - scale[:, None] / 2
    conf = np.clip(scores, 0.0, 1.0)
    out = np.concatenate([xy, conf[..., None]], axis=-1)
    out[~(scores > 0) | ~np.isfinite(scores)] = 0.0
    return out


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class ModelInfo:
    """What a checked ONNX file is: input name and size (W, H), batch size (None: dynamic), keypoints, output names."""

    path: Path
    input_name: str
    input_size: tuple[int, int]
    batch: int | None
    num_keypoints: int
    outputs: tuple[str, str]


class OnnxPoseModel:
    """An onnxruntime session of a top-down SimCC model and its rtmlib pre- and post-processing."""

    def __init__(self, arg: str, expected: tuple[int, ...] = (), what: str = "onnx", threads: int | None = None):
        self.info, self.session = load_model(arg, expected, what, threads)

    def predict(self, image_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(M, K, 3) x, y, confidence of the model on ``boxes`` (M, 4) ``[x0, y0, x1, y1]`` of an RGB image."""
        info = self.info
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, info.num_keypoints, 3))
        center, scale = box_center_scale(boxes, info.input_size)
        x = rtmlib_input(image_rgb, topdown.crop_matrices(center, scale, info.input_size), info.input_size)
        step = info.batch or len(x)
        sx, sy = [], []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            if len(chunk) < step:  # a fixed batch larger than 1: pad with zeros
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
            ox, oy = self.session.run(list(info.outputs), {info.input_name: chunk})
            n = min(step, len(x) - start)
            sx.append(ox[:n])
            sy.append(oy[:n])
        locs, scores = decode_simcc(np.concatenate(sx), np.concatenate(sy))
        return to_image(locs, scores, center, scale, info.input_size)


_MODELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_MODELS_LOCK = threading.Lock()


def shared_model(arg: str, expected: tuple[int, ...], what: str, threads: int | None = None) -> OnnxPoseModel:
    """The process's one :class:`OnnxPoseModel` of ``arg`` (built on first use, freed when no teacher holds it).

    Teachers of one file share it (the whole-body and the body teacher); each checks its keypoint count.
    """
    path, size = parse_arg(arg)
    key = (str(path.resolve()), size, threads)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = OnnxPoseModel(arg, expected, what, threads)
            _MODELS[key] = model
    check_keypoints(model.info, expected, what)
    return model


def _hint(what: str, expected: tuple[int, ...]) -> str:
    want = " or ".join(str(k) for k in expected) if expected else "K"
    return f"{what}:FILE[:WxH] expects a top-down SimCC model in rtmlib's convention with {want} keypoints"


def check_keypoints(info: ModelInfo, expected: tuple[int, ...], what: str) -> None:
    """One line naming the file when its keypoint count is not one of ``expected``."""
    if info.num_keypoints not in expected:
        want = " or ".join(str(k) for k in expected)
        raise UserError(f"{info.path}: {info.num_keypoints} keypoints; expected {want} for {what} ({_hint(what, expected)})")


def open_session(path: Path, hint: str, threads: int | None = None):
    """An onnxruntime CPU session of ``path``; a missing or unloadable file is one line naming it (``hint``: what was expected)."""
    if not path.is_file():
        raise UserError(f"{path}: model file not found ({hint})")
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"{path}: ONNX models need onnxruntime (pip install onnxruntime)") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable files
        reason = first_line(str(err)) or type(err).__name__
        raise UserError(f"{path}: not an ONNX model onnxruntime can load ({reason}); {hint}") from None


def image_input(session, path: Path, given: tuple[int, int] | None, what: str, hint: str
                ) -> tuple[str, tuple[int, int], int | None]:
    """The session's one image input (N, 3, H, W): its name, size (W, H) (the file's, else ``given``) and
    fixed batch size (None: dynamic); one line naming the file when it has no such input or no size."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, "3"):
        shapes = ", ".join(f"{i.name} {list(i.shape)}" for i in inputs)
        raise UserError(f"{path}: input {shapes}; expected one image input (N, 3, H, W) ({hint})")
    shape = inputs[0].shape
    fixed = (shape[3], shape[2]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
    if fixed and given and tuple(given) != fixed:
        raise UserError(f"{path}: the file's input is {fixed[0]}x{fixed[1]}, the spec says {given[0]}x{given[1]}")
    size = fixed or given
    if size is None:
        raise UserError(f"{path}: the input size is not fixed in the file: give it as {what}:{path}:WxH")
    if not all(MIN_INPUT_SIDE <= side <= MAX_INPUT_SIDE for side in size):
        whose = "the file's" if fixed else "the spec's"
        raise UserError(f"{path}: {whose} input size {size[0]}x{size[1]} is out of range (each side "
                        f"{MIN_INPUT_SIDE}..{MAX_INPUT_SIDE} pixels)")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return inputs[0].name, (int(size[0]), int(size[1])), batch


def load_model(arg: str, expected: tuple[int, ...] = (), what: str = "onnx", threads: int | None = None):
    """Open and check ``FILE[:WxH]``: (:class:`ModelInfo`, session). Every mistake is one line naming the file.

    ``expected``: the keypoint counts accepted (empty: any); ``what``: the spec being built
    ('wholebody=onnx'), for messages.
    """
    path, given = parse_arg(arg)
    hint = _hint(what, expected)
    session = open_session(path, hint, threads)
    input_name, size, batch = image_input(session, path, given, what, hint)
    names = [o.name for o in session.get_outputs()]
    if {"simcc_x", "simcc_y"} <= set(names):
        outputs = ("simcc_x", "simcc_y")
    elif len(names) == 2:
        outputs = (names[0], names[1])
    else:
        raise UserError(f"{path}: outputs {names}; expected simcc_x and simcc_y ({hint})")
    # a dynamic batch is probed with 2 crops: a graph that declares a dynamic input but fixes its outputs'
    # batch at 1 (a hard-coded Reshape) is then run one crop at a time, not failed on every image with people
    if batch is None:
        try:
            ox, oy = _probe(session, input_name, outputs, 2, size, path, hint)
        except _DoesNotRun:
            ox = oy = None
        if ox is None or ox.shape[:1] != (2,) or oy.shape[:1] != (2,):
            batch = 1
    if batch is not None:
        ox, oy = _probe(session, input_name, outputs, batch, size, path, hint)
    if ox.ndim != 3 or oy.ndim != 3 or ox.shape[1] != oy.shape[1] or ox.shape[0] != (batch or 2) \
            or oy.shape[0] != (batch or 2):
        raise UserError(f"{path}: outputs of shapes {list(ox.shape)} and {list(oy.shape)} for a batch of "
                        f"{batch or 2}; expected (N, K, bins) ({hint})")
    k = ox.shape[1]
    info = ModelInfo(path, input_name, size, batch, int(k), outputs)
    if expected:
        check_keypoints(info, expected, what)
    if ox.shape[2] != SPLIT_RATIO * size[0] or oy.shape[2] != SPLIT_RATIO * size[1]:
        raise UserError(
            f"{path}: {ox.shape[2]} x {oy.shape[2]} SimCC bins for a {size[0]}x{size[1]} input; "
            f"expected {int(SPLIT_RATIO * size[0])} x {int(SPLIT_RATIO * size[1])} (split ratio 2)"
        )
    if not (np.isfinite(ox).all() and np.isfinite(oy).all()):
        raise UserError(f"{path}: gives NaN or Inf outputs on a blank {size[0]}x{size[1]} input; its weights are "
                        f"broken ({hint})")
    return info, session


class _DoesNotRun(UserError):
    """The model failed on the probe batch (not stopped by the time limit)."""


def _probe(session, input_name: str, outputs: tuple[str, str], batch: int, size: tuple[int, int], path: Path,
           hint: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's outputs on a blank batch, stopped after :data:`CHECK_SECONDS` (onnxruntime's terminate flag,
    which its Loop and Scan kernels check between iterations too)."""
    import onnxruntime as ort

    run_options = ort.RunOptions()
    run_options.log_severity_level = 4  # the refusal below is the one line; no onnxruntime log on stderr
    timer = threading.Timer(CHECK_SECONDS, lambda: setattr(run_options, "terminate", True))
    timer.daemon = True
    probe = np.zeros((batch, 3, size[1], size[0]), dtype=np.float32)
    timer.start()
    try:
        ox, oy = session.run(list(outputs), {input_name: probe}, run_options)
    except Exception as err:
        if run_options.terminate:
            raise UserError(f"{path}: refused: running it once on a blank {size[0]}x{size[1]} input took over "
                            f"{CHECK_SECONDS:g} s (stopped); {hint}") from None
        reason = first_line(str(err))
        raise _DoesNotRun(f"{path}: does not run on a {size[0]}x{size[1]} input ({reason}); {hint}") from None
    finally:
        timer.cancel()
    return np.asarray(ox), np.asarray(oy)


# ------------------------------------------------------------------ teachers


class OnnxTeacher(Closable):
    """Base: an rtmlib-convention ONNX model behind the Teacher protocol; subclasses fix parts, crop and K."""

    fills: tuple[str, ...] = ()
    crop: str = CROP_PERSON
    point_sources: dict[str, tuple[int, ...]] = {}
    keypoints: tuple[int, ...] = ()  # the model output sizes accepted

    def __init__(self, spec: TeacherSpec, threads: int | None = None):
        self.spec = spec
        self.model: OnnxPoseModel | None = shared_model(spec.arg, self.keypoints, f"{spec.part}={spec.backend}", threads)

    def _points(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"teacher {self.spec} is closed")
        return self.model.predict(image, boxes)

    def predict(self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None,
                sides: Sides = None) -> PartPrediction:
        return PartPrediction(self._points(image, boxes))

    def describe(self) -> dict:
        return describe_onnx(self.spec)

    def close(self) -> None:
        self.model = None  # the shared session is freed with its last teacher



class OnnxWholeBodyTeacher(OnnxTeacher):
    """133 COCO-WholeBody points per person box (RTMW, DWPose, RTMPose-wholebody, a wbt export).

    Fills every part; distill merges foot, face and hands (the body is the input's, or the
    body teacher's, which for a run without body annotations is this model by default).
    """

    fills = ("body", "foot", "face", "lefthand", "righthand")
    crop = CROP_PERSON
    keypoints = (133,)


class OnnxBodyTeacher(OnnxTeacher):
    """COCO-17 body points per person box: a body model, or the first 17 points of a whole-body / Halpe model."""

    fills = ("body",)
    crop = CROP_PERSON
    keypoints = (17, 26, 133, 136)  # every layout here starts with the 17 COCO body points

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self._points(image, boxes)[:, :17])


class OnnxHandTeacher(OnnxTeacher):
    """21 hand points on hand boxes (RTMPose-hand convention); the model has no handedness, so no flag."""

    fills = ("lefthand", "righthand")
    crop = CROP_HAND
    keypoints = (21,)


class OnnxFaceTeacher(OnnxTeacher):
    """68 iBUG-300W face points on face boxes."""

    fills = ("face",)
    crop = CROP_FACE
    keypoints = (68,)


# How protobuf encodes an ONNX TensorProto's external_data entry {key: "location", value: FILE}: field 1
# (key, length 8, "location"), then field 2 (value) whose varint length follows.
_LOCATION_ENTRY = b"\x0a\x08location\x12"


def external_data_files(path: str | Path) -> list[Path]:
    """The external-data files an .onnx names (its weights kept beside it), in order of first mention.

    Read from the file's bytes without onnx (not a run-time dependency): each location entry's
    protobuf encoding. Only files inside the model's folder are listed (as onnxruntime reads them).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return []
    found: dict[Path, None] = {}
    start = data.find(_LOCATION_ENTRY)
    while start >= 0:
        i, length, shift = start + len(_LOCATION_ENTRY), 0, 0
        while i < len(data) and shift < 35:  # the value's length: a varint
            length |= (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                break
        name = data[i : i + length].decode("utf-8", "replace")
        if name and path.parent.resolve() in (path.parent / name).resolve().parents:
            found.setdefault(path.parent / name)
        start = data.find(_LOCATION_ENTRY, i)
    return list(found)


def describe_onnx(spec: TeacherSpec) -> dict:
    """Model file and its external-data files (name, sha256) and onnxruntime version, without loading the model.

    The external-data files are what the weights are: a run resumed after one changed is another run.
    """
    path, size = parse_arg(spec.arg or "")
    model = f"ONNX top-down SimCC model, rtmlib convention ({spec.part}={spec.backend}:{path.name})"
    files = [file_record(path), *(file_record(f) for f in external_data_files(path))]
    out = {"model": model, "version": package_version("onnxruntime", "onnxruntime-gpu"), "files": files}
    if size is not None:
        out["input_size"] = list(size)
    return out


def check_onnx(spec: TeacherSpec, teacher_class: type[OnnxTeacher]) -> None:
    """Open and check the model of ``spec`` (in the main process, before any work); one-line UserError when wrong."""
    load_model(spec.arg, teacher_class.keypoints, f"{spec.part}={spec.backend}", threads=1)


def _backend(part: str, teacher_class: type[OnnxTeacher]) -> Backend:
    def build(spec: TeacherSpec, options: BuildOptions) -> OnnxTeacher:
        return teacher_class(spec, threads=options.threads)

    def check(spec: TeacherSpec) -> None:
        check_onnx(spec, teacher_class)

    return Backend(part, "onnx", teacher_class, build, describe_onnx, needs_arg=True, check=check)


# ONNX SimCC models in rtmlib's convention, FILE[:WxH]: whole-body 133 points per person box (RTMW, DWPose, a
# wbt export); 21 points per hand box (RTMPose-hand); 68 per face box; COCO-17 (the first 17 points of a
# 17/26/133/136-point model) per person box
BACKENDS = (
    _backend("wholebody", OnnxWholeBodyTeacher),
    _backend("hand", OnnxHandTeacher),
    _backend("face", OnnxFaceTeacher),
    _backend("body", OnnxBodyTeacher),
)
