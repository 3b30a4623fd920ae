"""Which teachers a distill run uses: :class:`TeacherChoice`, from ``--teachers``, and the source names they give.

The registry (:mod:`labeltool.teachers.registry`) knows the backends; this is the run's
choice among them: the specs per part, the ensembles where several teachers fill one part,
and the source names the outputs store per keypoint (:meth:`TeacherChoice.sources`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import PurePath

from labeltool.errors import UserError
from labeltool.label_codes import FIXED_SOURCES, MERGED_PARTS
from labeltool.teachers.base import BuildOptions, Teacher, TeacherSpec
from labeltool.teachers.registry import (
    BACKENDS,
    DEFAULT_BACKENDS,
    NONE,
    build_teacher,
    check_model_files,
    describe_spec,
    parse_spec,
    parts,
    teacher_class,
)

OPTIONS = {"small_toe": ("estimate", NONE)}  # --teachers items that set an option, not a teacher
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
        return {p: [s for s in self.active() if p in _fills(s)] for p in MERGED_PARTS}

    def ensembles(self) -> dict[str, tuple[str, ...]]:
        """{ensemble source name: its members' source names}, for every subset of 2+ teachers of a part that can agree.

        A member is named by the source of the point it gave (the foot teacher's estimated small
        toe has its own), so 'foot:ensemble(mediapipe:small_toe_estimated+wholebody:onnx:A)'
        still says the small toe was estimated. Members of one spec part drop that prefix:
        ``hand=mediapipe,hand=onnx:A.onnx`` gives 'hand:ensemble(mediapipe+onnx:A)'; a whole-body
        model beside a hand teacher gives 'hand:ensemble(mediapipe+wholebody:onnx:A)'.
        """
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
    return teacher_class(spec).fills


def _point_sources(spec: TeacherSpec) -> tuple[str, ...]:
    return tuple(teacher_class(spec).point_sources)
