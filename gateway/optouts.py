"""Opt-out and opt-in of a phone number, for every channel: an opted-out number gets no survey.

Opt-out belongs to the number it came from (a STOP by SMS, Twilio's error 21610), so every
customer row with that phone is marked, and each change is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from gateway.models import AuditEvent, ConsentEvent, Customer


def customers_with_phone(session: Session, phone: str) -> list[Customer]:
    """Every customer row with this number, locked for the change (one order: by id)."""
    stmt = select(Customer).where(Customer.phone == phone).order_by(Customer.id)
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt))


def _ledger(
    session: Session,
    customer: Customer,
    state: str,
    source: str,
    reference: str | None,
    now: datetime,
) -> None:
    """One line of the customer's consent ledger; an opt-out by number covers every channel."""
    session.add(
        ConsentEvent(
            customer_id=customer.id,
            channel="all",
            state=state,
            source=source[:100],
            reference=reference and reference[:200],
            at=now,
        )
    )


def opt_out_phone(
    session: Session, phone: str, source: str, now: datetime, reference: str | None = None
) -> list[Customer]:
    """Mark every customer with `phone` opted out (time and source, e.g. "sms:STOP", and the
    request, e.g. the MessageSid); returns those that were not opted out before. A second
    opt-out keeps the first's record."""
    changed = []
    for customer in customers_with_phone(session, phone):
        if customer.opted_out_at is not None:
            continue
        customer.opted_out_at = now
        customer.opt_out_source = source[:100]
        changed.append(customer)
        _ledger(session, customer, "opted_out", source, reference, now)
        session.add(
            AuditEvent(
                at=now,
                actor=source[:200],
                action="customer.opt_out",
                subject_type="customer",
                subject_id=str(customer.id),
                detail={"source": source},
            )
        )
    return changed


def opt_in_phone(
    session: Session, phone: str, source: str, now: datetime, reference: str | None = None
) -> list[Customer]:
    """Clear the opt-out of every customer with `phone`; returns those that were opted out."""
    changed = []
    for customer in customers_with_phone(session, phone):
        if customer.opted_out_at is None:
            continue
        previous = customer.opt_out_source
        customer.opted_out_at = None
        customer.opt_out_source = None
        changed.append(customer)
        _ledger(session, customer, "opted_in", source, reference, now)
        session.add(
            AuditEvent(
                at=now,
                actor=source[:200],
                action="customer.opt_in",
                subject_type="customer",
                subject_id=str(customer.id),
                detail={"source": source, "opted_out_by": previous},
            )
        )
    return changed


def phone_opted_out(session: Session, phone: str) -> bool:
    """True when any customer with this phone has opted out (opt-out follows the number)."""
    return bool(
        session.scalar(
            select(exists().where(Customer.phone == phone, Customer.opted_out_at.is_not(None)))
        )
    )


def phones_opted_out(session: Session, phones: Iterable[str]) -> frozenset[str]:
    """Those of `phones` any customer of which has opted out, in one statement."""
    wanted = sorted(set(phones))
    if not wanted:
        return frozenset()
    return frozenset(
        session.scalars(
            select(Customer.phone)
            .where(Customer.phone.in_(wanted), Customer.opted_out_at.is_not(None))
            .distinct()
        )
    )
