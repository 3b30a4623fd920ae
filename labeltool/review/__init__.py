"""Human review of the labels: round trips through annotation tools, a review queue, renders and reports.

- :mod:`labeltool.review.cvat`, :mod:`labeltool.review.labelstudio`: export tasks to CVAT / Label
  Studio and import the corrections back as a real validation GT.
- :mod:`labeltool.review.labels`: what a review reads (json labels or ``labels.parquet``).
- :mod:`labeltool.review.queue`: which persons to look at first; :mod:`labeltool.review.render`,
  :mod:`labeltool.review.report`: overlays and the HTML report.
"""
