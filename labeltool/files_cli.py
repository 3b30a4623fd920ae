"""`wbt convert` and `wbt render`: commands on label files."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
