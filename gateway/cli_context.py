"""The app and the database a command of `survey-gateway` runs in, for every domain's commands."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click
from flask import Flask
from sqlalchemy.orm import Session

from gateway.config import ConfigError, Settings, load_settings


def command_app() -> Flask:
    from gateway import create_app
    from ivr_flows import FlowError

    try:
        check_database(load_settings())
        return create_app()
    except (ConfigError, FlowError) as exc:
        raise click.ClickException(str(exc)) from exc


def check_database(settings: Settings) -> None:
    """Stop a command with where it looked when the gateway's database is not there."""
    from gateway.migrate import missing_schema

    reason = missing_schema(settings.database_url)
    if reason is None:
        return
    if settings.database_url.startswith("sqlite") and not os.environ.get("DATABASE_URL"):
        looked = (
            f"DATABASE_URL is unset, so the gateway uses the SQLite file in {settings.var_dir} "
            "(SURVEY_GATEWAY_VAR_DIR, else the project's var/)"
        )
    else:
        looked = "from DATABASE_URL"
    raise click.ClickException(
        f"{reason}; {looked}. Start the gateway once with `make run` (it migrates), run "
        "`survey-gateway db upgrade`, or point DATABASE_URL at the gateway's database."
    )


@contextmanager
def app_session() -> Iterator[tuple[Flask, Session]]:
    """An app context and a session committed at the end of the command."""
    app = command_app()
    database = app.extensions["database"]
    try:
        with app.app_context(), database.session_scope() as session:
            yield app, session
    finally:
        database.dispose()


def echo_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest value."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
