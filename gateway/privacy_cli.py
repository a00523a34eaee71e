"""`survey-gateway customers erase|export`: a customer's requests about their personal data."""

from __future__ import annotations

import json

import click

from gateway.config import current_settings


def _lookup(phone: str | None, external_id: str | None) -> tuple[str | None, str | None]:

    from gateway.phones import InvalidPhoneNumber, normalize_phone

    if bool(phone) == bool(external_id):
        raise click.UsageError("give exactly one of --phone or --external-id")
    if phone:
        try:
            phone = normalize_phone(phone, current_settings().default_region)
        except InvalidPhoneNumber as exc:
            raise click.BadParameter(str(exc), param_hint="--phone") from exc
    return phone, external_id


def register(main: click.Group) -> None:
    """Add the `customers` group to `main`."""
    from gateway.cli_context import app_session

    @main.group()
    def customers() -> None:
        """A customer's personal data: erase it, export it."""

    @customers.command("erase")
    @click.option("--phone", default=None, help="the customer's number, in any common writing")
    @click.option("--external-id", default=None, help="the customer's id in the CRM")
    @click.option("--reason", default="the customer's request", help="kept in the audit log")
    def erase(phone: str | None, external_id: str | None, reason: str) -> None:
        """Erase a customer's personal data everywhere, keeping the anonymous scores; audited,
        and safe to run again."""
        from gateway.db import utcnow
        from gateway.privacy import erase_customers, find_customers

        with app_session() as (_, session):
            phone, external_id = _lookup(phone, external_id)
            found = find_customers(session, phone=phone, external_id=external_id)
            report = erase_customers(session, found, "cli", reason, utcnow())
        click.echo(report.summary())
        if report.recordings:
            click.echo("recordings are deleted at Twilio by the next privacy sweep")

    @customers.command("export")
    @click.option("--phone", default=None, help="the customer's number, in any common writing")
    @click.option("--external-id", default=None, help="the customer's id in the CRM")
    def export(phone: str | None, external_id: str | None) -> None:
        """Everything stored about a customer, as JSON (a request under 152-FZ art. 14);
        the read is audited."""
        from gateway.db import utcnow
        from gateway.models import AuditEvent
        from gateway.privacy import customer_export, find_customers

        with app_session() as (_, session):
            phone, external_id = _lookup(phone, external_id)
            found = find_customers(session, phone=phone, external_id=external_id)
            if not found:
                raise click.ClickException("no customer matches")
            documents = [customer_export(session, customer) for customer in found]
            for customer in found:
                session.add(
                    AuditEvent(
                        at=utcnow(),
                        actor="cli",
                        action="customer.export",
                        subject_type="customer",
                        subject_id=str(customer.id),
                        detail=None,
                    )
                )
        click.echo(json.dumps({"customers": documents}, ensure_ascii=False, indent=2))
