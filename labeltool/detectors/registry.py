"""The detector registry: backend name -> how to build, check and describe it; the one place ``--detector`` is looked up.

``wbt distill --images DIR`` (without ``--ann`` / ``--boxes``) and ``wbt predict --images DIR``
(without ``--gt`` / ``--boxes``) parse ``--detector BACKEND[:ARG]`` with :func:`parse_detector`
and build it with :func:`build_detector`. Adding a detector: a class implementing
:class:`labeltool.detectors.base.Detector` in its own module (heavy imports inside it) and one
:func:`register` line below, as for the teachers (:mod:`labeltool.teachers.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labeltool.detectors.base import (
    DEFAULT_MAX_PERSONS,
    DEFAULT_MIN_SCORE,
    DEFAULT_NMS,
    Detector,
    DetectorSpec,
)
from labeltool.errors import UserError

DEFAULT_DETECTOR = "mediapipe"


@dataclass(frozen=True)
class DetectorBackend:
    """A registered detector backend."""

    name: str
    build: Callable[[DetectorSpec, int | None], Detector]  # (spec, threads)
    describe: Callable[[DetectorSpec], dict]  # without loading the model
    needs_arg: bool = False  # the spec must carry ':ARG' (a model file)
    arg_help: str = ""  # what an optional ':ARG' is, for a backend that takes one (else it takes none)
    check: Callable[[DetectorSpec], None] | None = None  # opens the model file before any work
    help: str = ""


DETECTORS: dict[str, DetectorBackend] = {}


def register(backend: DetectorBackend) -> DetectorBackend:
    if backend.name in DETECTORS:
        raise ValueError(f"detector backend {backend.name!r} registered twice")
    DETECTORS[backend.name] = backend
    return backend


def choices_text() -> str:
    """'mediapipe (built-in), onnx:FILE (...)' for --help texts."""
    return ", ".join(f"{n}{':FILE' if b.needs_arg else f'[:{b.arg_help}]' if b.arg_help else ''} ({b.help})"
                     for n, b in DETECTORS.items())


def parse_detector(text: str | None = None, min_score: float = DEFAULT_MIN_SCORE, nms: float = DEFAULT_NMS,
                   max_persons: int = DEFAULT_MAX_PERSONS, check_files: bool = True) -> DetectorSpec:
    """``BACKEND[:ARG]`` (None: the built-in default) and the thresholds -> a checked :class:`DetectorSpec`.

    ``check_files``: open the model file now, so a wrong one fails (one line) before any work.
    """
    name, colon, arg = (text or DEFAULT_DETECTOR).strip().partition(":")
    entry = DETECTORS.get(name)
    if entry is None:
        raise UserError(f"--detector {text!r}: unknown backend {name!r} (choose from {choices_text()})")
    if entry.needs_arg and not (colon and arg):
        raise UserError(f"--detector {name} needs its model file: --detector {name}:FILE")
    if colon and not entry.needs_arg and not entry.arg_help:
        raise UserError(f"--detector {name} takes no ':{arg}'")
    if not 0.0 <= min_score <= 1.0:
        raise UserError(f"--min-box-score {min_score}: must be in [0, 1]")
    if not 0.0 < nms <= 1.0:
        raise UserError(f"--det-nms {nms}: must be in (0, 1] (1 keeps every box)")
    if max_persons < 1:
        raise UserError(f"--max-persons {max_persons}: must be at least 1")
    spec = DetectorSpec(name, arg if colon else None, float(min_score), float(nms), int(max_persons))
    if check_files and entry.check is not None:
        entry.check(spec)
    return spec


def build_detector(spec: DetectorSpec, threads: int | None = None) -> Detector:
    """Build the detector of ``spec`` (loads its model)."""
    return DETECTORS[spec.backend].build(spec, threads)


def describe_detector(spec: DetectorSpec) -> dict:
    """What :meth:`Detector.describe` returns (model, version, files with sha256, thresholds), without building it."""
    return {"detector": str(spec), **DETECTORS[spec.backend].describe(spec)}


def _blazepose(spec: DetectorSpec, threads: int | None) -> Detector:
    from labeltool.detectors.blazepose import BlazePoseDetector

    return BlazePoseDetector(spec, threads)


def _describe_blazepose(spec: DetectorSpec) -> dict:
    from labeltool.detectors.blazepose import describe_blazepose

    return describe_blazepose(spec)


def _check_blazepose(spec: DetectorSpec) -> None:
    from labeltool.detectors.blazepose import min_tile, model_paths

    min_tile(spec)
    model_paths()
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        raise UserError("the mediapipe detector needs ai-edge-litert (pip install 'ai-edge-litert>=1.2')") from None


def _onnx(spec: DetectorSpec, threads: int | None) -> Detector:
    from labeltool.detectors.onnx import OnnxDetector

    return OnnxDetector(spec, threads)


def _describe_onnx(spec: DetectorSpec) -> dict:
    from labeltool.detectors.onnx import describe_onnx_detector

    return describe_onnx_detector(spec)


def _check_onnx(spec: DetectorSpec) -> None:
    from labeltool.detectors.onnx import load_detector_model

    load_detector_model(spec.arg, threads=1)


register(DetectorBackend("mediapipe", _blazepose, _describe_blazepose, check=_check_blazepose, arg_help="MIN_TILE",
                         help="built-in: MediaPipe BlazePose from the mediapipe wheel, offline; MIN_TILE: the "
                              "smallest image tile in pixels, 160; 112 finds smaller people, slower, more false boxes"))
register(DetectorBackend("onnx", _onnx, _describe_onnx, needs_arg=True, check=_check_onnx,
                         help="a YOLOX or RTMDet ONNX file in rtmlib's convention, FILE[:WxH][:yolox|rtmdet]"))
