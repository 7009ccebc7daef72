"""Commands of this family are added by their own issue; see the README."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
