"""Teacher models that label one part on crops proposed from body keypoints.

Contract shared by every teacher (the distill pipeline relies on it):

- A teacher is a plain class built once per process (it loads its model in ``__init__``)
  and reused for every image; ``close()`` frees the model.
- ``predict(image, boxes, ...) -> np.ndarray`` takes an RGB uint8 image (H, W, 3) and
  boxes (M, 4) as float ``[x0, y0, x1, y1]`` in image pixels, and returns (M, K, 3):
  x, y in image pixels and a confidence in [0, 1]; confidence 0 means "no prediction"
  for that point (x = y = 0 then).
- Face: K = 68 (iBUG-300W order). Hand: K = 21 (root, thumb..pinky 4 each), with the
  body's side per box; the hand teacher also reports per box whether the model's
  handedness contradicts that side. Foot: K = 6 in COCO-WholeBody order
  (L big toe, L small toe, L heel, R big toe, R small toe, R heel). Body: K = 17 (COCO).
- Heavy backends (mediapipe, dlib, face-alignment) are imported inside the teacher,
  never at package import.
"""
