"""`survey-gateway demo seed`: a month of demo data in an empty gateway, to try the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gateway.demo import WebSurveys


def register(main: click.Group, web: WebSurveys) -> None:
    """Add the `demo` group to `main`; its customers answer web surveys through `web`."""
    from gateway.cli_context import app_session

    @main.group()
    def demo() -> None:
        """Demo data for trying the gateway."""

    @demo.command("seed")
    @click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
    @click.option("--seed", "seed_value", type=int, default=12, help="random seed (same month)")
    def seed(days: int, seed_value: int) -> None:
        """Fill an empty gateway with teams, operators, calls, visits, answers, incidents and
        demo accounts, through the same services as real traffic; prints the accounts."""
        from gateway.db import utcnow
        from gateway.demo import DemoRefused
        from gateway.demo import seed as seed_demo

        with app_session() as (app, session):
            try:
                summary = seed_demo(
                    session,
                    app.config["SETTINGS"],
                    utcnow(),
                    days=days,
                    seed_value=seed_value,
                    web=web,
                )
            except DemoRefused as exc:
                raise click.ClickException(str(exc)) from exc
        for line in summary.lines():
            click.echo(line)
        click.echo("demo accounts (their passwords are shown only now):")
        for username, password, role in summary.accounts:
            click.echo(f"  {username:<12} {password:<20} {role}")
