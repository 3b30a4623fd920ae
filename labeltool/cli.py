"""The ``wbt`` command line: a click group; each pipeline stage adds its commands from its own module.

Sub-commands import their heavy dependencies (mediapipe, torch) inside the command, so
``wbt --help`` and ``wbt eval`` start fast and work without the teachers installed.
"""

from __future__ import annotations

import errno
import sys

import click

from labeltool import __version__
from labeltool.errors import UserError

# Errors of the machine, not of wbt: a full disk, a read-only or unwritable output folder.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST}
)


class _Group(click.Group):
    """The one place that turns known errors into one line on stderr, for every command.

    A :class:`UserError` (bad input or option) exits 2; a write error of the machine (full
    disk, read-only or unwritable folder) names the path and exits 1; input nested too deep
    for Python exits 2. Anything else is a bug and keeps its traceback.
    """

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Click's usage errors (bad option value, unknown option or command) as one line, exit 2, every command.

        Click prints three lines (usage, hint, error); wbt's rule for a user mistake is one
        ``wbt: error:`` line. ``wbt`` alone still prints its help.
        """
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as err:
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            message = " ".join(err.format_message().split())
            click.echo(f"wbt: error: {message}{where}", err=True)
            sys.exit(2)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"wbt: error: {err}", err=True)
            sys.exit(2)
        except OSError as err:
            if err.errno not in ENVIRONMENT_ERRNOS:
                raise
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"wbt: error: {where}{err.strerror}", err=True)
            sys.exit(1)
        except RecursionError:
            click.echo("wbt: error: input nested too deeply (RecursionError)", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("wbt: interrupted", err=True)
            sys.exit(130)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`wbt --version`: wbt's version, then the libraries that decide its pixels and numbers."""
    if not value or ctx.resilient_parsing:
        return
    from labeltool.versions import version_lines

    click.echo("\n".join([f"wbt, version {__version__}", *version_lines()]))
    ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version of wbt and of the numeric libraries, then exit.")
def main() -> None:
    """wbt: whole-body pose labels (133 / 136 points) from body-only data, a student trainer and an evaluator."""


def _register() -> None:
    from labeltool.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()
