"""Merging only: teacher outputs + body -> one 133-point record per person.

- :mod:`labeltool.merge.rules`: the merge rules (body kept, parts accepted or zeroed), pure numpy.

Its source codes and part statuses are :mod:`labeltool.label_codes`; the pipeline that runs the
teachers, calls the rules and writes the output files is :mod:`labeltool.distill`.
"""
