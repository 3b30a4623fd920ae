"""`wbt distill`: teacher outputs -> 133-point records; resumable shards; final json / parquet.

- :mod:`labeltool.merge.inputs`: what a run reads (``--coco``, ``--ann``, ``--images [--boxes]``, ``--sample``).
- :mod:`labeltool.merge.rules`: the merge rules (body kept, parts accepted or zeroed), pure numpy.
- :mod:`labeltool.merge.work`: ``Distiller.label_image``, the per-image work every engine runs.
- :mod:`labeltool.merge.shards`: atomic parquet shards and the run record for resuming.
- :mod:`labeltool.merge.assemble`: streamed outputs (wholebody133.json, halpe136.json, labels.parquet).
- :mod:`labeltool.merge.pipeline`: planning, the local process-pool engine, the summary.
- :mod:`labeltool.merge.ray_engine`: the same work on Ray Data (optional extra).
- :mod:`labeltool.merge.sample`: the built-in sample photos.
"""
