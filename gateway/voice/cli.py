"""Command-line commands of this domain, added to `survey-gateway` by gateway.cli."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add this domain's commands to the groups of `main`."""
