"""Teacher models that label one part on crops proposed from body keypoints.

Contract shared by every teacher (the distill pipeline relies on it):

- A teacher is a plain class built once per process (it loads its model in ``__init__``)
  and reused for every image; ``close()`` frees the model (teachers are also context managers).
- ``predict(image, boxes, ...) -> np.ndarray`` takes an RGB uint8 image (H, W, 3) and
  boxes (M, 4) as float ``[x0, y0, x1, y1]`` in image pixels, and returns (M, K, 3):
  x, y in image pixels and a confidence in [0, 1]; confidence 0 means "no prediction"
  for that point (x = y = 0 then).
- Face (``face.make_face_teacher('facemesh' | 'dlib' | 'fan')``): K = 68 (iBUG-300W order);
  ``predict(image, face_boxes, body=None)``, ``body`` (M, 17, 3) COCO-17 whose eyes level the crop.
- Hand (``hand.HandTeacher``): K = 21 (root, thumb..pinky 4 each);
  ``predict(image, hand_boxes, sides=None, body=None)``, ``sides`` 'left' / 'right' / None
  or one per box (the body's side). ``predict_hands(...)`` returns a ``HandResult`` with
  ``keypoints`` (M, 21, 3), ``right_prob`` (M,), ``contradicts`` (M,) bool (the model's
  handedness contradicts the given side: flagged, never swapped) and ``views_found`` (M,).
- Foot (``foot.FootTeacher``): ``predict(image, person_boxes, body=None)`` -> K = 6 in
  COCO-WholeBody order (L big toe, L small toe, L heel, R big toe, R small toe, R heel);
  ``predict(image, foot_boxes, side, body)`` -> (M, 3, 3) for one side (Pose runs on the
  person around ``body``). The small toe is estimated with half the confidence
  (``FootTeacher(small_toe=False)`` leaves it at 0).
- Body (``body.BodyTeacher``): ``predict(image, person_boxes)`` -> K = 17 (COCO).
- Heavy backends (mediapipe, ai-edge-litert, dlib, face-alignment) are imported inside the
  teacher, never at package import.
"""
