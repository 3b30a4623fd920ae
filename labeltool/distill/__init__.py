"""`wbt distill`: the pipeline that turns body-only people into whole-body pseudo-labels.

- :mod:`labeltool.distill.inputs`: what a run reads (``--coco``, ``--ann``, ``--images [--boxes]``,
  ``--sample``); each reader picks the input's body source. **A new dataset reader goes here.**
- :mod:`labeltool.distill.teacher_choice`: the run's teachers (``--teachers``), ensembles and source names.
- :mod:`labeltool.distill.body`: body sources (annotations, body teacher on boxes, on the whole image).
- :mod:`labeltool.distill.plan`: which images are labelled, cut into shards, and their tasks.
- :mod:`labeltool.distill.work`: ``Distiller.label_image``, the per-image work every engine runs.
- :mod:`labeltool.distill.shards`: atomic parquet shards and the run record for resuming.
- :mod:`labeltool.distill.assemble`: the output files from the shards (wholebody133.json, halpe136.json,
  labels.parquet), streamed.
- :mod:`labeltool.distill.pipeline`: orchestration (plan, label, assemble) and the local process-pool engine.
- :mod:`labeltool.distill.native_log`: the model libraries' own messages go to ``teacher_messages.log``.
- :mod:`labeltool.distill.summary`: the run's statistics (one read of each shard) and summary.json.
- :mod:`labeltool.distill.ray_engine`: the same work on Ray Data (optional extra).
- :mod:`labeltool.distill.sample`: the built-in sample photos.
- :mod:`labeltool.distill.cli`: the ``wbt distill`` command.

Merging (the rules that turn teacher outputs into one 133-point record) lives in
:mod:`labeltool.merge`; the codes a label carries (parts, sources, statuses) in :mod:`labeltool.label_codes`.
"""
