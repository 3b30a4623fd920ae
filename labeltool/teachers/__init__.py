"""Teacher models that label whole-body parts on crops proposed from body keypoints.

- :mod:`labeltool.teachers.base`: the :class:`~labeltool.teachers.base.Teacher` protocol every
  backend implements (``predict(image, boxes, body, sides) -> PartPrediction``, ``describe()``,
  ``close()``; data attributes ``spec``, ``fills``, ``crop``, ``point_sources``).
- :mod:`labeltool.teachers.registry`: the backends by (part, backend), built from a spec
  string ``PART=BACKEND[:ARG]``; the one place ``--teachers``, ``wbt teach`` and distill look up.
  Each backend module lists its own entries (``BACKENDS``, :class:`~labeltool.teachers.base.Backend`);
  **a new teacher is a module with its class and ``BACKENDS``, named in ``registry.BACKEND_MODULES``.**
- The models behind the built-in backends (plain classes whose ``predict`` returns (M, K, 3)
  arrays; the benchmarks and unit tests call them directly; each module's ``*Teacher`` class
  puts its model behind the protocol):

  - face (``face.FaceMeshModel``, ``DlibFaceModel``, ``FanFaceModel``): K = 68 (iBUG-300W
    order); ``predict(image, face_boxes, body=None)``, ``body`` (M, 17, 3) COCO-17 whose eyes level the crop.
  - hand (``hand.HandModel``): K = 21 (root, thumb..pinky 4 each);
    ``predict_hands(image, hand_boxes, sides=None, body=None)`` returns a ``HandResult`` with
    ``keypoints`` (M, 21, 3), ``right_prob`` (M,), ``contradicts`` (M,) bool (the model's
    handedness contradicts the given side: flagged, never swapped) and ``views_found`` (M,).
  - foot (``foot.FootModel``): ``predict(image, person_boxes, body=None)`` -> K = 6 in
    COCO-WholeBody order (L big toe, L small toe, L heel, R big toe, R small toe, R heel);
    the small toe is estimated with half the confidence (``FootModel(small_toe=False)`` leaves it at 0).
  - body (``body.BodyModel``): ``predict(image, person_boxes)`` -> K = 17 (COCO).

Boxes are float ``[x0, y0, x1, y1]`` in image pixels, images RGB uint8 (H, W, 3); outputs are
x, y in image pixels and a confidence in [0, 1], 0 meaning "no prediction" (x = y = 0 then).
A teacher loads its model in ``__init__`` and is reused for every image. Heavy backends
(mediapipe, ai-edge-litert, dlib, face-alignment) are imported inside the teacher, never at
package import.
"""
