"""All ``wbt`` sub-commands: each pipeline stage lists its commands in its own ``cli`` module."""

from __future__ import annotations

import click

from labeltool import files_cli
from labeltool.distill import cli as distill_cli
from labeltool.eval import cli as eval_cli
from labeltool.review import cli as review_cli
from labeltool.student import cli as student_cli
from labeltool.teachers import cli as teachers_cli

COMMANDS: list[click.Command] = [
    *distill_cli.COMMANDS,
    *teachers_cli.COMMANDS,
    *student_cli.COMMANDS,
    *eval_cli.COMMANDS,
    *files_cli.COMMANDS,
    *review_cli.COMMANDS,
]
