"""What a teacher is: the :class:`Teacher` protocol every backend implements, and its output.

A teacher is built once per process from a :class:`TeacherSpec` (``face=dlib``,
``hand=mediapipe``, ``wholebody=onnx:FILE``) by :mod:`labeltool.teachers.registry`, the
one place ``--teachers``, ``wbt teach`` and distill look backends up. Each backend module
says how to build and describe its teachers with a module-level ``BACKENDS`` tuple of
:class:`Backend` entries, which the registry collects. Every teacher is called the same way::

    prediction = teacher.predict(image, boxes, body, sides)   # -> PartPrediction(points, flags, values)

so the callers (the distill worker, ``wbt teach``) hold no per-part code paths: what differs
between parts is data on the teacher (:attr:`Teacher.fills`, :attr:`Teacher.crop`,
:attr:`Teacher.point_sources`).

Parts are the COCO-WholeBody-133 part names of :data:`labeltool.layouts.WHOLEBODY133`
('body', 'foot', 'face', 'lefthand', 'righthand').
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Protocol, runtime_checkable

import numpy as np

from labeltool.layouts import WHOLEBODY133

Sides = str | Sequence[str | None] | None  # 'left' / 'right' for every box, or one per box

# The crops a teacher can ask for (``Teacher.crop``); the distill worker builds them from the
# body keypoints (labeltool.proposals) and calls the teacher once per request:
CROP_PERSON = "person"  # person boxes; one call per image predicts every part of ``fills``
CROP_FACE = "face"  # face boxes from the body's head points
CROP_HAND = "hand"  # one call per side, hand boxes from the forearm, ``sides`` set
CROP_FEET = "feet"  # the person box grown to hold both foot boxes, one call for both feet
CROPS = (CROP_PERSON, CROP_FACE, CROP_HAND, CROP_FEET)


@dataclass(frozen=True)
class TeacherSpec:
    """One ``PART=BACKEND[:ARG]`` item: the registry key (part, backend) and the backend's argument.

    ``arg`` is everything after the first ':' of the backend (a model file for
    ``wholebody=onnx:FILE``), handed unchanged to the backend's factory; None when absent.
    """

    part: str
    backend: str
    arg: str | None = None

    def __str__(self) -> str:
        return f"{self.part}={self.backend}" + (f":{self.arg}" if self.arg is not None else "")

    @property
    def source(self) -> str:
        """The source name of this teacher's points in the outputs ('face:dlib').

        A spec with a model file adds the file's name without its extension (and without a
        trailing ``:WxH``): ``wholebody=onnx:models/rtmw-x.onnx:288x384`` -> 'wholebody:onnx:rtmw-x',
        so two models of one backend keep apart.
        """
        if self.arg is None:
            return f"{self.part}:{self.backend}"
        return f"{self.part}:{self.backend}:{PurePath(re.sub(r':[0-9]+x[0-9]+$', '', self.arg)).stem}"


@dataclass
class PartPrediction:
    """A teacher's output for M boxes.

    ``points`` (M, K, 3): x, y in image pixels and the per-point confidence in [0, 1]
    (0 = no prediction, x = y = 0 then). K covers the parts the call was for: one part for
    a part crop (68 face, 21 for one hand, 6 feet, 17 body), every part of ``fills`` in
    that order for a person crop (:func:`split_parts` cuts them apart).
    ``flags``: per-box booleans the merge reads by name (:data:`HANDEDNESS_CONTRADICTS`).
    ``values``: per-box numbers for reports and ``wbt teach`` (a hand's ``right_prob``, ...).
    """

    points: np.ndarray
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)


def split_parts(points: np.ndarray, parts: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(M, K, 3) points of ``parts`` concatenated in that order -> {part: (M, k, 3)}."""
    out, start = {}, 0
    for p in parts:
        size = len(WHOLEBODY133.parts[p])
        out[p] = points[:, start : start + size]
        start += size
    if start != points.shape[1]:
        raise ValueError(f"{points.shape[1]} points do not split into the parts {parts} ({start} points)")
    return out


HANDEDNESS_CONTRADICTS = "handedness_contradicts"  # flag: the model's handedness contradicts the given side


@runtime_checkable
class Teacher(Protocol):
    """A model that predicts some whole-body parts on crops of an image.

    Attributes (class-level data, read by the callers instead of branching on the part):

    - ``spec``: the :class:`TeacherSpec` it was built from (workers rebuild it from this).
    - ``fills``: the 133-layout parts its points go to, e.g. ``('face',)``,
      ``('lefthand', 'righthand')``, ``('body',)``; a whole-body model fills
      ``('foot', 'face', 'lefthand', 'righthand')``.
    - ``crop``: which boxes it wants (one of :data:`CROPS`).
    - ``point_sources``: points of its output that get their own source name
      ``'<part>:<backend>:<name>'`` (the foot teacher's estimated small toes), ``{name: indices}``.
    """

    spec: TeacherSpec
    fills: tuple[str, ...]
    crop: str
    point_sources: dict[str, tuple[int, ...]]

    def predict(
        self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None, sides: Sides = None
    ) -> PartPrediction:
        """Predict on ``boxes`` (M, 4) ``[x0, y0, x1, y1]`` of an RGB uint8 image (H, W, 3).

        ``body`` (M, 17, 3): COCO-17 keypoints of each box's person when known (they level
        crops, anchor hands at the wrist, check feet against the ankles). ``sides``:
        for a sided crop (hands), the person's side of the boxes: 'left' / 'right' for
        all, or one per box (None: unknown); other teachers ignore it.
        """
        ...

    def describe(self) -> dict:
        """The model behind the points, for summary.json: model, version, files with their sha256."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


class Closable:
    """A model or teacher holding native resources (interpreters, sessions): ``close()`` frees them, and
    ``with`` closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class BuildOptions:
    """How the caller wants a teacher built (the same model, other run-time settings)."""

    threads: int | None = None  # None: the library's default; distill workers use 1
    small_toe: bool = True  # foot teachers: estimate the small toe (False: leave it unlabelled)


@dataclass(frozen=True)
class Backend:
    """One registry entry: how to build, check and describe the teachers of (part, name).

    A backend module lists its entries in a module-level ``BACKENDS`` tuple; the registry
    collects them (:data:`labeltool.teachers.registry.BACKEND_MODULES`). ``build`` and ``check``
    import the heavy library; ``describe`` must not (it runs in the main process for run.json).
    """

    part: str
    name: str
    teacher_class: type  # its class-level fills / crop / point_sources are read without building it
    build: Callable[[TeacherSpec, BuildOptions], Teacher]
    describe: Callable[[TeacherSpec], dict]  # what Teacher.describe() returns, without loading the model
    needs_arg: bool = False  # the spec must carry ':ARG' (a model file)
    check: Callable[[TeacherSpec], None] | None = None  # opens the spec's model file before any work


class ModelTeacher(Closable):
    """Base of the built-in teachers: a model class with an array ``predict`` behind the :class:`Teacher` protocol.

    The model classes (``FaceMeshModel``, ``HandModel``, ...) are what the benchmarks and unit
    tests call directly; a subclass per part turns their arrays into a :class:`PartPrediction`.
    """

    fills: tuple[str, ...] = ()
    crop: str = CROP_PERSON
    point_sources: dict[str, tuple[int, ...]] = {}

    def __init__(self, spec: TeacherSpec, model, describe: Callable[[TeacherSpec], dict]):
        self.spec = spec
        self.model = model
        self._describe = describe

    def predict(self, image: np.ndarray, boxes: np.ndarray, body: np.ndarray | None = None,
                sides: Sides = None) -> PartPrediction:
        raise NotImplementedError

    def describe(self) -> dict:
        return self._describe(self.spec)

    def close(self) -> None:
        self.model.close()
