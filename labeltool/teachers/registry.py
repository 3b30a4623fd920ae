"""The teacher registry: (part, backend) -> how to build and describe it; the one place backends are looked up.

``wbt distill --teachers``, ``wbt teach --part P --backend B`` and the distill workers all
go through :func:`build_teacher` with a :class:`TeacherSpec` parsed by :func:`parse_spec`
(``PART=BACKEND[:ARG]``; ``ARG`` goes unchanged to the backend's factory).

Each backend module registers itself: it lists its entries in a module-level ``BACKENDS``
tuple of :class:`~labeltool.teachers.base.Backend` (part, name, teacher class, factory,
``describe``), and :data:`BACKEND_MODULES` below names the modules whose entries are collected.
Adding a teacher (see docs/teachers.md, "Adding a teacher"):

1. write a module under ``labeltool/teachers/`` with a class implementing
   :class:`labeltool.teachers.base.Teacher` (``predict(image, boxes, body, sides) ->
   PartPrediction``, ``describe()``, ``close()``, and the data attributes ``spec``, ``fills``,
   ``crop``, ``point_sources``) and its ``BACKENDS = (Backend(...),)``; import heavy libraries
   inside the factory, never at module level;
2. add the module to :data:`BACKEND_MODULES`.

A whole-body model (one network giving feet, face and hands per person box, e.g. an ONNX
RTMW) registers under part ``'wholebody'`` with ``fills = ('body', 'foot', 'face', 'lefthand',
'righthand')`` and ``crop = 'person'``; its spec carries the model file as ARG
(``wholebody=onnx:rtmw.onnx``). The distill worker then calls it once per image on the
person boxes and hands each filled part to the merge. Which teachers a run uses (and their
ensembles) is :class:`labeltool.distill.teacher_choice.TeacherChoice`.
"""

from __future__ import annotations

from labeltool.errors import UserError
from labeltool.teachers import body, face, foot, hand, onnx
from labeltool.teachers.base import Backend, BuildOptions, Teacher, TeacherSpec

NONE = "none"  # backend that switches a part off (not for body)

# The modules whose BACKENDS are registered, in this order (it orders the parts and backends in --help texts).
BACKEND_MODULES = (body, face, hand, foot, onnx)
BACKENDS: dict[tuple[str, str], Backend] = {}
DEFAULT_BACKENDS = {"body": "mediapipe", "face": "facemesh", "hand": "mediapipe", "foot": "mediapipe"}


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


def teacher_class(spec: TeacherSpec) -> type:
    """The class of ``spec``'s teachers: its ``fills``, ``crop`` and ``point_sources`` without building one."""
    return BACKENDS[(spec.part, spec.backend)].teacher_class


for _module in BACKEND_MODULES:
    for _backend in _module.BACKENDS:
        register(_backend)
