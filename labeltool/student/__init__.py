"""The student: an RTMPose top-down whole-body model trained on the pseudo-labels, and what runs it.

- :mod:`labeltool.student.model`, :mod:`labeltool.student.codec`: the network and its SimCC targets,
  kept apart; :mod:`labeltool.student.data`, :mod:`labeltool.student.augment`: the label table and
  on-device augmentation.
- :mod:`labeltool.student.train`: the ``Trainer`` (resume, build, run_epoch, validate, save);
  :mod:`labeltool.student.checkpoint`: the checkpoint format and every load of one.
- :mod:`labeltool.student.predict`, :mod:`labeltool.student.nms`, :mod:`labeltool.student.export`:
  ``wbt predict`` and ``wbt export``.

Imports torch, never mediapipe or the teachers: it runs on a GPU machine that has only torch.
"""
