"""The one exception type for user mistakes (bad files, bad options).

The CLI prints a ``UserError`` as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input: say which file and what is wrong, in one line."""
