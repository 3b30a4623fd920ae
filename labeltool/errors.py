"""The one exception type for user mistakes (bad files, bad options).

The CLI prints a ``UserError`` as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input: say which file and what is wrong, in one line."""


def first_line(message: str, limit: int = 400) -> str:
    """The first non-empty line of a library's error message, for a one-line :class:`UserError`.

    Long enough to keep what torch or onnxruntime name (a tensor, a record, a node); the lines
    after it are their advice about their own API.
    """
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[:limit] + "..."
