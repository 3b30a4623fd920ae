"""Running ``wbt`` in this process and checking its one-line errors (the hostile-use tests share these)."""

from __future__ import annotations

from click.testing import CliRunner

from labeltool.cli import main


def run_wbt(*args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``wbt ARGS``; an exception other than SystemExit is raised (a traceback)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: fail with it
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *fragments: str, exit_code: int = 2) -> str:
    """``stderr`` is one ``wbt: error:`` line holding every fragment, no traceback, and the exit code is
    ``exit_code``; returns the line."""
    assert code == exit_code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wbt: error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
