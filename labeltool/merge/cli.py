"""`wbt` commands of this stage (filled in by the stage's work)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
