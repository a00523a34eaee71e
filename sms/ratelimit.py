"""A per-sender send rate (SMS_RATE_PER_SECOND) that holds across every worker and machine.

How: the table `rate_limit_slots` keeps, per sender (the From number or Messaging Service
SID), the earliest moment the next message may go (`next_free_at`). A worker reserves a slot
in one short transaction: it locks the sender's row (`SELECT ... FOR UPDATE` on PostgreSQL;
SQLite's `BEGIN IMMEDIATE` serialises writers anyway), takes `max(next_free_at, now)` as its
slot, pushes `next_free_at` one interval (1 / rate) past it and commits at once. Concurrent
workers queue on that row lock for microseconds and come out with distinct slots one interval
apart; then each waits for its own slot before calling the provider. The database is already
required and shared; a separate Redis limiter would add a second source of truth for a rate
of a few messages per second, which a row lock serves easily.

A slot that goes unused (the send fails, the worker stops) is lost: the limit errs on the
slow side, never the fast one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import is_sqlite
from gateway.interactions import get_or_create
from gateway.models import RateLimitSlot


def reserve_slot(session: Session, sender: str, rate_per_second: float, now: datetime) -> datetime:
    """The moment this worker may send from `sender`; commits the reservation at once."""
    return reserve_slots(session, sender, rate_per_second, now, 1)[0]


def reserve_slots(
    session: Session, sender: str, rate_per_second: float, now: datetime, count: int
) -> tuple[datetime, timedelta]:
    """`count` consecutive slots for a batch of sends from `sender`: the first slot and the
    interval between them (slot i is first + i x interval); commits the reservation at once.
    One row lock for the whole batch, not one per message."""
    interval = timedelta(seconds=1.0 / rate_per_second)

    def find() -> RateLimitSlot | None:
        stmt = select(RateLimitSlot).where(RateLimitSlot.sender == sender)
        if not is_sqlite(session):
            stmt = stmt.with_for_update()
        # populate_existing: a row this session saw before is read again, under the lock.
        return session.scalar(stmt.execution_options(populate_existing=True))

    # Found: locked by find(). Created: our uncommitted insert holds it (a concurrent insert
    # waits on the key, fails, and finds it under the lock).
    row = get_or_create(session, find, lambda: RateLimitSlot(sender=sender, next_free_at=now))
    first = max(row.next_free_at, now)
    row.next_free_at = first + interval * max(count, 1)
    session.commit()
    return first, interval
