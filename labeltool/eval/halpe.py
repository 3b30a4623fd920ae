"""AlphaPose's Halpe full-body protocol: halpecocotools' COCOeval as ``evaluate_mAP(..., halpe=True)`` drives it.

halpecocotools (PyPI, the "Halpe COCO toolbox" by the Halpe authors) evaluates 136-point Halpe
and 133-point COCO-WholeBody files with one ``COCOeval(gt, dt, "keypoints")``: five parts in one
pass, ``body``, ``foot``, ``face``, ``hand`` (both hands as one part) and ``fullbody`` (all
points), each with the ten keypoint stats (maxDets 20, area ranges all / medium / large). What it
does differently from the COCO-WholeBody protocol (xtcocotools) is reproduced as data: the parts
and sigmas here (:func:`halpe_parts`), the rest as the flags of the ``halpe`` entry of
:data:`labeltool.eval.protocols.PROTOCOLS` (docs/eval.md, "The Halpe protocol"):

* its own sigmas, hard-coded per layout as tenths divided by 10.0: on 136 points they are Halpe's
  (face and hands all 0.015), on 133 points the COCO body sigmas, 0.089 for every foot point and
  0.015 for every face and hand point (not the COCO-WholeBody ones);
* crowd persons are not ignored (they count as persons to find, and several detections may match
  one); an annotation's own ``ignore`` field ignores the person instead;
* a detection is dropped for every part when none of its points has a positive score (not part by
  part), it is ranked by ``score`` in every part (no part scores), and its area is the extent of all
  its points (not the body's), unless the first result has a box;
* points are read as float32 for the OKS;
* a match to a person whose annotation id is 0 counts as no match (COCOeval stores the id).
"""

from __future__ import annotations

import numpy as np

from labeltool.layouts import Layout

# halpecocotools' sigmas, as written there (tenths) and divided by 10.0 (which differs from the
# decimal values in the last bit for five of them, kept so the OKS is the same to the bit).
_BODY_COCO17 = [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]  # fmt: skip
_TENTHS = {
    136: _BODY_COCO17 + [.8, .8, .8] + [.89] * 6 + [.15] * (68 + 42),  # head top, neck, hip; feet
    133: _BODY_COCO17 + [.89] * 6 + [.15] * (68 + 42),
}
HALPE_PARTS = ("body", "foot", "face", "hand", "fullbody")


def halpe_parts(layout: Layout) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """halpecocotools' parts: the body is all points before the last 116 (20 on Halpe, 17 on
    COCO-WholeBody), then 6 foot, 68 face, 42 hand (left then right) points, and all of them."""
    k = layout.num_keypoints
    sigmas = np.array(_TENTHS[k]) / 10.0
    bounds = {"body": (0, k - 116), "foot": (k - 116, k - 110), "face": (k - 110, k - 42), "hand": (k - 42, k),
              "fullbody": (0, k)}  # fmt: skip
    return {part: (np.arange(lo, hi), sigmas[lo:hi]) for part, (lo, hi) in bounds.items()}

