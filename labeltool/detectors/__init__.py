"""Person detectors: every person of a whole image, for ``wbt distill --images`` and ``wbt predict --images``.

``base.py``: the :class:`~labeltool.detectors.base.Detector` protocol, its spec (``--detector
BACKEND[:ARG]`` + ``--min-box-score``, ``--det-nms``, ``--max-persons``) and box NMS;
``registry.py``: the backends by name; ``blazepose.py``: the built-in MediaPipe detector;
``onnx.py``: YOLOX / RTMDet files in rtmlib's convention; ``folder.py``: a detector over an
image folder, its boxes kept in a resumable ``detections.json``.
"""
