"""Dashboard sign-in sessions, kept in the database so that signing out ends them everywhere.

The browser's cookie holds a random session token; only its SHA-256 is stored. A session
ends when its person signs out, when it expires (SESSION_LIFETIME), when its account is
disabled or its password reset; an ended session's cookie signs nobody in, on any worker.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.apikeys import hash_key
from gateway.models import Account, DashboardSession

SESSION_LIFETIME = timedelta(hours=12)


def start_account_session(session: Session, account: Account, now: datetime) -> str:
    """A new session for a signed-in account; returns the token the cookie carries."""
    token = secrets.token_urlsafe(32)
    session.add(
        DashboardSession(
            token_hash=hash_key(token),
            account_id=account.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return token


def session_account(session: Session, token: str | None, now: datetime) -> Account | None:
    """The account of a live session, or None: the session ended or expired, the account was
    disabled, or its password was reset after the session began."""
    if not token:
        return None
    row = session.scalar(
        select(DashboardSession).where(DashboardSession.token_hash == hash_key(token))
    )
    if row is None or row.account_id is None or row.ended_at is not None:
        return None
    if row.expires_at <= now:
        return None
    account = session.scalar(
        select(Account)
        .where(Account.id == row.account_id)
        .execution_options(populate_existing=True)  # a disabling is seen at once
    )
    if account is None or account.disabled_at is not None:
        return None
    if account.password_changed_at > row.created_at:
        return None
    return account


def end_session(session: Session, token: str | None, now: datetime) -> None:
    """Sign this session out for good."""
    if not token:
        return
    session.execute(
        update(DashboardSession)
        .where(DashboardSession.token_hash == hash_key(token), DashboardSession.ended_at.is_(None))
        .values(ended_at=now)
    )
