"""The ``wbt`` command line: a click group; each pipeline stage adds its commands from its own module.

Sub-commands import their heavy dependencies (mediapipe, torch) inside the command, so
``wbt --help`` and ``wbt eval`` start fast and work without the teachers installed.
"""

from __future__ import annotations

import sys

import click

from labeltool import __version__
from labeltool.errors import UserError


class _Group(click.Group):
    """Turns a :class:`UserError` into one line on stderr and exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"wbt: error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("wbt: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wbt")
def main() -> None:
    """wbt: whole-body pose labels (133 / 136 points) from body-only data, a student trainer and an evaluator."""


def _register() -> None:
    from labeltool.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()
