"""A circuit breaker per provider, shared by every worker through the database.

When the provider refuses a request for the whole account (a rotated auth token, a suspended
account or sender: `FailureKind.ACCOUNT`), every other message would be refused the same way,
and failing surveys for it would punish customers for an operator's problem. So the first
such refusal opens the provider's circuit:

* the sweep hands over nothing for that provider while it is open, except one probe every
  PROVIDER_PROBE_SECONDS: a real due survey, sent as usual (if the provider still refuses it,
  the survey goes back to the schedule, untouched by the refusal);
* a send task that was queued before the circuit opened puts its survey back in the
  schedule without calling the provider;
* the first successful send closes it again, and the backlog drains at SMS_RATE_PER_SECOND.

Opening and closing are logged at ERROR and WARNING, and `/metrics` shows the state
(`survey_gateway_provider_circuit_open`), which is what the alert rule watches. The row is
the only state; a probe is taken with a compare-and-set on `next_probe_at`, so concurrent
sweeps on several machines send one probe, not one each.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import is_sqlite
from gateway.interactions import get_or_create
from gateway.models import ProviderCircuit

logger = logging.getLogger(__name__)

OPEN = "open"
CLOSED = "closed"


def circuit_of(session: Session, provider: str) -> ProviderCircuit | None:
    """The provider's circuit row as committed now (None: never opened)."""
    return session.scalar(
        select(ProviderCircuit)
        .where(ProviderCircuit.provider == provider)
        .execution_options(populate_existing=True)
    )


def is_open(circuit: ProviderCircuit | None) -> bool:
    return circuit is not None and circuit.state == OPEN


def _locked(session: Session, provider: str, now: datetime) -> ProviderCircuit:
    def find() -> ProviderCircuit | None:
        stmt = select(ProviderCircuit).where(ProviderCircuit.provider == provider)
        if not is_sqlite(session):
            stmt = stmt.with_for_update()
        return session.scalar(stmt.execution_options(populate_existing=True))

    row = get_or_create(
        session,
        find,
        lambda: ProviderCircuit(provider=provider, state=CLOSED, refusals=0, updated_at=now),
    )
    if not is_sqlite(session):
        session.refresh(row, with_for_update=True)
    return row


def trip(
    session: Session,
    provider: str,
    reason: str,
    code: str | None,
    now: datetime,
    probe_seconds: float,
) -> ProviderCircuit:
    """An account-level refusal: open the circuit (or keep it open), next probe later."""
    row = _locked(session, provider, now)
    if row.state != OPEN:
        row.state = OPEN
        row.opened_at = now
        row.closed_at = None
        row.refusals = 0
        logger.error(
            "provider %s refused the account (%s): sending paused; a probe every %ss",
            provider,
            reason,
            int(probe_seconds),
        )
    row.refusals += 1
    row.reason = reason[:200]
    row.error_code = code
    row.probe_session_id = None
    row.next_probe_at = now + timedelta(seconds=probe_seconds)
    return row


def close(session: Session, provider: str, now: datetime) -> bool:
    """A request went through: close an open circuit; True when it was open."""
    result = session.execute(
        update(ProviderCircuit)
        .where(ProviderCircuit.provider == provider, ProviderCircuit.state == OPEN)
        .values(state=CLOSED, closed_at=now, probe_session_id=None, next_probe_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult
        return False
    logger.warning("provider %s accepted a message again: sending resumed", provider)
    return True


def take_probe(
    session: Session, provider: str, session_id: int, now: datetime, probe_seconds: float
) -> bool:
    """Make `session_id` the probe of an open circuit whose probe is due; False when another
    sweep took it, or it is not due yet."""
    result = session.execute(
        update(ProviderCircuit)
        .where(
            ProviderCircuit.provider == provider,
            ProviderCircuit.state == OPEN,
            ProviderCircuit.next_probe_at <= now,
        )
        .values(
            probe_session_id=session_id,
            next_probe_at=now + timedelta(seconds=probe_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def may_call(circuit: ProviderCircuit | None, session_id: int) -> bool:
    """Whether a send task may call the provider now: closed, or this survey is the probe."""
    return not is_open(circuit) or (circuit is not None and circuit.probe_session_id == session_id)
