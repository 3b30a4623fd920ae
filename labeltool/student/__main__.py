"""``python -m labeltool.student CMD ...`` = ``wbt CMD ...``; for torchrun: ``torchrun --nproc_per_node N -m labeltool.student train-student ...``."""

from labeltool.cli import main

if __name__ == "__main__":
    main()
