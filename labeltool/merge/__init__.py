"""Merging: teacher outputs + body -> one 133-point record per person, and the output files.

- :mod:`labeltool.merge.rules`: the merge rules (body kept, parts accepted or zeroed), pure numpy.
- :mod:`labeltool.merge.assemble`: streamed outputs (wholebody133.json, halpe136.json, labels.parquet).

The pipeline that runs the teachers and calls these is :mod:`labeltool.distill`.
"""
