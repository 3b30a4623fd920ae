"""Every file kind wbt reads and writes, one reader each.

- :mod:`labeltool.io.jsonfile`: any json file (size and format sniffing, one-line errors), JSON number checks.
- :mod:`labeltool.io.atomic`: atomic writers, the run lock, the output-is-not-an-input check.
- :mod:`labeltool.io.paths`: image paths of a label file (kept inside the image folder), COCO's split layout.
- :mod:`labeltool.io.pose`: keypoint label files (COCO, COCO-WholeBody, Halpe; part-only face / hand files)
  as a :class:`~labeltool.io.pose.PoseDataset`, and their writers.
- :mod:`labeltool.io.results`: keypoint results (predictions) files.
- :mod:`labeltool.io.boxes`: box files (detector results, COCO-style boxes).

``labels.parquet`` has its own module, :mod:`labeltool.labels_table`.
"""
