"""Command-line commands of the reports, added to `survey-gateway surveys` by gateway.cli."""

from __future__ import annotations

from datetime import datetime

import click

from gateway.db import utcnow


def register(main: click.Group) -> None:
    """Add the reports' commands to the groups of `main`."""
    surveys = main.commands["surveys"]
    if not isinstance(surveys, click.Group):
        raise TypeError("'surveys' must be a command group")

    @surveys.command("rebuild-scores")
    @click.option(
        "--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="first UTC day"
    )
    @click.option(
        "--to",
        "end",
        required=True,
        type=click.DateTime(["%Y-%m-%d"]),
        help="last UTC day, inclusive",
    )
    def rebuild_scores(start: datetime, end: datetime) -> None:
        """Recompute the reports' daily rollup of these days from the raw answers.

        Needed after upgrading to the reports schema, or after a flow's weights change.
        """
        from gateway.cli import app_session
        from gateway.reports.rollup import rebuild

        if end < start:
            raise click.BadParameter("--to is before --from")
        with app_session() as (_app, session):
            written = rebuild(session.connection(), start.date(), end.date(), utcnow())
        click.echo(f"rebuilt {written} operator-day rows from {start:%Y-%m-%d} to {end:%Y-%m-%d}")
