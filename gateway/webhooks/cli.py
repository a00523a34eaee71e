"""`survey-gateway webhooks ...`: subscriptions, the delivery log and re-delivery."""

from __future__ import annotations

import json

import click

from gateway.db import utcnow

ACTOR = "cli"


def register(main: click.Group) -> None:
    """Add the `webhooks` group to `main`."""
    main.add_command(webhooks)


@click.group()
def webhooks() -> None:
    """Outgoing webhooks: who gets which events, and how their deliveries went."""


@webhooks.command("create")
@click.option("--url", required=True, help="where to POST the events")
@click.option(
    "--events", required=True, help="comma-separated, e.g. survey.completed,incident.opened"
)
@click.option(
    "--format",
    "format_",
    default="event",
    show_default=True,
    help="event (the signed event), crm.contact or bitrix24.task",
)
@click.option("--option", "options", multiple=True, help="a format's option, NAME=VALUE")
@click.option("--description", default=None)
def create(
    url: str, events: str, format_: str, options: tuple[str, ...], description: str | None
) -> None:
    """Subscribe a URL; prints its id and signing secret (shown only now)."""
    from gateway.cli_context import app_session
    from gateway.webhooks.service import SubscriptionError, create_subscription

    parsed = {}
    for item in options:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--option")
        parsed[name.strip()] = value.strip()
    with app_session() as (app, session):
        try:
            row = create_subscription(
                session,
                url=url,
                events=events.split(","),
                format=format_,
                options=parsed or None,
                description=description,
                actor=ACTOR,
                now=utcnow(),
                allow_http=app.config["SETTINGS"].webhooks_may_use_http(),
            )
        except SubscriptionError as exc:
            raise click.ClickException(str(exc)) from exc
        subscription_id, secret = row.id, row.secret
    click.echo(f"subscription {subscription_id} created")
    click.echo(f"secret: {secret}")
    click.echo("the secret is shown only now; the receiver verifies signatures with it", err=True)


@webhooks.command("list")
def list_() -> None:
    """Every subscription with its deliveries by status."""
    from sqlalchemy import select

    from gateway.cli_context import app_session
    from gateway.webhooks.models import WebhookSubscription
    from gateway.webhooks.service import delivery_counts

    with app_session() as (_app, session):
        for row in session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)):
            counts = ", ".join(f"{k} {v}" for k, v in delivery_counts(session, row.id).items())
            click.echo(
                f"{row.id}\t{row.status}\t{row.format}\t{','.join(row.events)}\t{row.url}"
                f"\t({counts}){'  ' + row.paused_reason if row.paused_reason else ''}"
            )


def _set_status(subscription_id: int, status: str) -> None:
    from gateway.cli_context import app_session
    from gateway.webhooks.models import WebhookSubscription
    from gateway.webhooks.service import pause_subscription, resume_subscription

    with app_session() as (_app, session):
        row = session.get(WebhookSubscription, subscription_id)
        if row is None:
            raise click.ClickException(f"no webhook subscription {subscription_id}")
        if status == "paused":
            pause_subscription(session, row, "paused by cli", ACTOR, utcnow())
            click.echo(f"subscription {subscription_id} paused; events keep collecting")
        else:
            waiting = resume_subscription(session, row, ACTOR, utcnow())
            click.echo(f"subscription {subscription_id} active; {waiting} deliveries due now")


@webhooks.command("pause")
@click.argument("subscription_id", type=int)
def pause(subscription_id: int) -> None:
    """Stop sending to a subscription; its events wait for `resume`."""
    _set_status(subscription_id, "paused")


@webhooks.command("resume")
@click.argument("subscription_id", type=int)
def resume(subscription_id: int) -> None:
    """Send to a paused subscription again, starting with what waited."""
    _set_status(subscription_id, "active")


@webhooks.command("deliveries")
@click.argument("subscription_id", type=int)
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def deliveries(subscription_id: int, status: str | None, limit: int) -> None:
    """A subscription's delivery log, newest first."""
    from gateway.cli_context import app_session
    from gateway.webhooks.service import list_deliveries

    with app_session() as (_app, session):
        for d in list_deliveries(session, subscription_id, status=status, limit=limit):
            click.echo(
                f"{d.id}\t{d.event.event_id}\t{d.event.type}\t{d.status}\t"
                f"tries {d.attempts}\t{d.last_status_code or d.last_error or ''}"
            )


@webhooks.command("redeliver")
@click.option("--delivery", "delivery_id", type=int, help="one delivery, by id")
@click.option("--failed", "subscription_id", type=int, help="every failed one of a subscription")
def redeliver(delivery_id: int | None, subscription_id: int | None) -> None:
    """Send deliveries again at the next sweep, each under its own event id."""
    from gateway.cli_context import app_session
    from gateway.webhooks.models import WebhookDelivery, WebhookSubscription
    from gateway.webhooks.service import redeliver as redeliver_one
    from gateway.webhooks.service import redeliver_failed

    if (delivery_id is None) == (subscription_id is None):
        raise click.UsageError("give either --delivery ID or --failed SUBSCRIPTION_ID")
    with app_session() as (_app, session):
        if delivery_id is not None:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                raise click.ClickException(f"no delivery {delivery_id}")
            redeliver_one(session, delivery, ACTOR, utcnow())
            click.echo(f"delivery {delivery_id} due again")
        else:
            subscription = session.get(WebhookSubscription, subscription_id)
            if subscription is None:
                raise click.ClickException(f"no webhook subscription {subscription_id}")
            count = redeliver_failed(session, subscription, ACTOR, utcnow())
            click.echo(f"{count} failed deliveries due again")


@webhooks.command("deliver")
def deliver() -> None:
    """One sweep of due deliveries now (beat runs it every DISPATCH_INTERVAL_SECONDS)."""
    from gateway.cli_context import app_session
    from gateway.webhooks.service import deliver_due

    with app_session() as (app, session):
        report = deliver_due(session, app.config["SETTINGS"], utcnow)
    click.echo(report.summary())


@webhooks.command("show-event")
@click.argument("event_id")
def show_event(event_id: str) -> None:
    """The body of one event as receivers get it."""
    from sqlalchemy import select

    from gateway.cli_context import app_session
    from gateway.webhooks.models import OutboxEvent

    with app_session() as (_app, session):
        row = session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
        if row is None:
            raise click.ClickException(f"no event {event_id}")
        click.echo(json.dumps(json.loads(row.body), ensure_ascii=False, indent=2))
