"""The `survey-gateway` command line."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import click

from audio import cli as audio_cli
from gateway import accounts_cli, demo_cli, privacy_cli
from gateway.cli_context import app_session, command_app, echo_table
from gateway.config import ConfigError, load_settings
from gateway.models import ApiRole
from gateway.reports import cli as reports_cli
from gateway.voice import cli as voice_cli
from gateway.webhooks import cli as webhooks_cli
from gateway.websurvey import service as websurvey_service
from sms import cli as sms_cli


@click.group()
def main() -> None:
    """survey-gateway: post-contact satisfaction surveys over IVR and SMS."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from gateway.migrate import upgrade

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    upgrade(settings.database_url)
    click.echo("database is up to date")


@main.group()
def apikey() -> None:
    """API keys for integrations, supervisors and admins."""


@apikey.command("create")
@click.option("--name", required=True, help="who or what uses the key, e.g. 'crm'")
@click.option(
    "--role",
    type=click.Choice([r.value for r in ApiRole]),
    required=True,
    help="integration: writes interactions, reads scores; supervisor: reads its team's "
    "reports; operator: reads one operator's own figures; admin: everything",
)
@click.option("--team", default=None, help="the team a supervisor key is limited to")
@click.option("--operator", default=None, help="the operator (external id) an operator key reads")
@click.option(
    "--expires",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
    default=None,
    help="the key stops working at this UTC date (or date and time); default: never",
)
def apikey_create(
    name: str, role: str, team: str | None, operator: str | None, expires: datetime | None
) -> None:
    """Create a key and print it once; only its hash is stored. The team or operator must
    exist already."""
    from gateway.apikeys import create_api_key
    from gateway.db import utcnow

    expires_at = expires.replace(tzinfo=UTC) if expires else None
    with app_session() as (_, session):
        try:
            row, key = create_api_key(
                session, name, ApiRole(role), team, utcnow(), expires_at, operator=operator
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(key)
    until = f", until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    whose = f", team {team}" if team else (f", operator {operator}" if operator else "")
    click.echo(
        f"key {row.prefix}… for {name!r} ({role}{whose}{until}) created; it is shown only now",
        err=True,
    )


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


@apikey.command("list")
def apikey_list() -> None:
    """Every key: name, prefix, role, team or operator, created, expires, last used, state."""
    from gateway.apikeys import key_is_live, list_api_keys
    from gateway.db import utcnow

    with app_session() as (_, session):
        now = utcnow()
        rows = [
            (
                key.name,
                key.prefix + "…",
                key.role.value,
                key.team.name if key.team else (key.operator.external_id if key.operator else "-"),
                _when(key.created_at),
                _when(key.expires_at),
                _when(key.last_used_at),
                "live" if key_is_live(key, now) else ("revoked" if key.revoked_at else "expired"),
            )
            for key in list_api_keys(session)
        ]
    header = ("name", "prefix", "role", "scope", "created", "expires", "last used", "state")
    echo_table(header, rows)


@apikey.command("revoke")
@click.argument("name")
def apikey_revoke(name: str) -> None:
    """Revoke every live key of this name; its requests and dashboard sessions stop at once."""
    from gateway.apikeys import revoke_api_keys
    from gateway.db import utcnow

    with app_session() as (_, session):
        revoked = revoke_api_keys(session, name, "cli", utcnow())
        prefixes = [key.prefix for key in revoked]
    if not prefixes:
        raise click.ClickException(f"no live key is named {name!r} (see: apikey list)")
    click.echo(f"revoked {len(prefixes)} key(s) named {name!r}: {', '.join(prefixes)}")


@main.group()
def surveys() -> None:
    """Survey scheduling."""


@surveys.command("dispatch-due")
def surveys_dispatch_due() -> None:
    """One sweep of due surveys: claim, apply the rules, queue the sends; prints what it did."""
    from gateway.db import utcnow
    from gateway.dispatch import run_sweep

    with app_session() as (app, session):
        report = run_sweep(session, app.config["SETTINGS"], utcnow())
    click.echo(report.summary())
    for task_name, survey_id in report.handed_over:
        click.echo(f"  survey {survey_id}: queued {task_name}")
    for survey_id, reason in report.not_sent:
        click.echo(f"  survey {survey_id}: not sent ({reason})")
    for survey_id, until in report.deferred:
        click.echo(f"  survey {survey_id}: deferred to {until.isoformat()} (quiet hours)")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment
        return "unknown"


def _period_bound(text: str, *, end: bool, zone: tzinfo) -> datetime:
    """A local date in `zone` (the whole day; `--to` inclusive) or an ISO 8601 date-time with
    offset."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(0), zone)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise click.BadParameter(f"{text!r}: use 2026-11-01 or 2026-11-01T09:00:00+03:00") from exc
    if moment.tzinfo is None:
        raise click.BadParameter(f"{text!r}: a date-time needs its UTC offset")
    return moment


@surveys.command("retry")
@click.option(
    "--status",
    type=click.Choice(["failed"]),
    required=True,
    help="which surveys: failed (refused by the provider, or given up)",
)
@click.option(
    "--from", "from_", required=True, help="contacts ended on or after (date in REPORT_TIMEZONE)"
)
@click.option(
    "--to", required=True, help="contacts ended on or before (date in REPORT_TIMEZONE, inclusive)"
)
@click.option("--reason", default=None, help="only those whose failure reason contains this")
@click.option("--dry-run", is_flag=True, help="say what would be sent again, change nothing")
def surveys_retry(status: str, from_: str, to: str, reason: str | None, dry_run: bool) -> None:
    """Send failed surveys again (never one that may have reached the customer); audited."""
    from gateway.db import utcnow
    from gateway.models import SurveyStatus
    from gateway.retries import retry_surveys

    with app_session() as (app, session):
        zone = app.config["SETTINGS"].report_zone
        start = _period_bound(from_, end=False, zone=zone)
        end = _period_bound(to, end=True, zone=zone)
        report = retry_surveys(
            session,
            app.config["SETTINGS"],
            status=SurveyStatus(status),
            ended_from=start,
            ended_before=end,
            reason=reason,
            actor=f"cli:{_user()}",
            now=utcnow(),
            dry_run=dry_run,
        )
        if dry_run:
            session.rollback()
    click.echo(("dry run: " if dry_run else "") + report.summary())
    for why, ids in sorted(report.skipped.items()):
        click.echo(
            f"  {why}: surveys {', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}"
        )


@main.command("run")
@click.option("--port", type=int, default=None, help="web port (default: $PORT or 8000)")
def run(port: int | None) -> None:
    """Migrate, then run web app, Celery worker and beat together; Ctrl-C stops all."""
    from gateway.devserver import run_all

    sys.exit(run_all(port))


@main.command("sip")
def sip() -> None:
    """Answer the PBX's survey calls over SIP until Ctrl-C (needs SIP_LISTEN)."""
    from gateway.sip.server import run as run_sip

    app = command_app()
    try:
        if not app.config["SETTINGS"].sip_listen:
            raise click.ClickException(
                "SIP_LISTEN is not set: give the address the PBX sends its calls to, "
                "e.g. SIP_LISTEN=0.0.0.0:5060 (see docs/telephony.md)"
            )
        run_sip(app)
    except OSError as exc:
        raise click.ClickException(f"SIP_LISTEN: {exc}") from exc
    finally:
        app.extensions["database"].dispose()


@main.group()
def simulate() -> None:
    """Try a survey without a phone: drive a running gateway through signed webhooks."""


@main.group()
def audio() -> None:
    """Voice prompts: build placeholders, check that every prompt exists."""


# The commands that live with their domain, added to the groups above: this module is the
# command line's composition root, as `create_app` is the web app's.
for domain_cli in (
    voice_cli,
    sms_cli,
    audio_cli,
    reports_cli,
    webhooks_cli,
    privacy_cli,
    accounts_cli,
):
    domain_cli.register(main)
# The demo's customers answer web surveys through the web survey channel, handed in here so
# that the demo, a feature, imports no channel.
demo_cli.register(main, web=websurvey_service)
