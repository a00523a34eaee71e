"""Failed authentication slowed down per client address and per key prefix.

Counts live in the database (`auth_failures`), shared by every worker and machine: after
AUTH_MAX_FAILURES failures within AUTH_FAILURE_WINDOW, a client address (or anyone presenting
keys that begin alike) is refused with 429 until the window has passed, before any key is
looked at. A success does not reset the count: a guesser with one valid key gains nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Table, and_, case, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.db import is_sqlite
from gateway.models import AuthFailure

AUTH_MAX_FAILURES = 10
AUTH_FAILURE_WINDOW = timedelta(minutes=15)
PREFIX_CHARS = 12  # what `api_keys.prefix` keeps: "sgw_" and 8 random characters


def subjects(client: str | None, presented: str) -> list[tuple[str, str]]:
    """What one failed attempt counts against: the client address, and the key's prefix."""
    found = [("client", (client or "unknown")[:100])]
    if presented:
        found.append(("prefix", presented[:PREFIX_CHARS]))
    return found


def retry_after(session: Session, keys: list[tuple[str, str]], now: datetime) -> int | None:
    """Seconds until these subjects may try again, or None when they may try now."""
    rows = session.execute(
        select(AuthFailure.window_start).where(
            or_(*(and_(AuthFailure.scope == s, AuthFailure.subject == v) for s, v in keys)),
            AuthFailure.failures >= AUTH_MAX_FAILURES,
            AuthFailure.window_start > now - AUTH_FAILURE_WINDOW,
        )
    ).all()
    if not rows:
        return None
    until = max(row.window_start for row in rows) + AUTH_FAILURE_WINDOW
    return max(1, int((until - now).total_seconds()))


def record_failure(session: Session, keys: list[tuple[str, str]], now: datetime) -> None:
    """Count one failed attempt against each subject; a window past its end starts anew."""
    table = AuthFailure.__table__
    if not isinstance(table, Table):
        raise TypeError("auth_failures must be a table")
    insert = sqlite_insert if is_sqlite(session) else pg_insert
    expired = table.c.window_start <= now - AUTH_FAILURE_WINDOW
    for scope, subject in keys:
        stmt = insert(table).values(scope=scope, subject=subject, window_start=now, failures=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.scope, table.c.subject],
            set_={
                "failures": case((expired, 1), else_=table.c.failures + 1),
                "window_start": case((expired, now), else_=table.c.window_start),
            },
        )
        session.execute(stmt)
