"""wbt: whole-body pose labels (133 COCO-WholeBody / 136 Halpe points) from body-only data."""

__version__ = "0.1.0"
