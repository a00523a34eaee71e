"""API keys: random, shown once, stored as SHA-256 only.

A key carries 256 bits of randomness, so a fast hash is enough: there is nothing to
brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.interactions import get_or_create
from gateway.models import ApiKey, ApiRole, AuditEvent, Team

KEY_PREFIX = "sgw_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session, name: str, role: ApiRole, team: str | None, now: datetime
) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is never stored."""
    if role is ApiRole.SUPERVISOR and not team:
        raise ValueError("a supervisor key needs --team: it reads only that team's reports")
    team_row = None
    if team:
        team_row = get_or_create(
            session,
            lambda: session.scalar(select(Team).where(Team.name == team)),
            lambda: Team(name=team),
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=key[:12],
        key_hash=hash_key(key),
        role=role,
        team=team_row,
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.add(
        AuditEvent(
            at=now,
            actor="cli",
            action="apikey.create",
            subject_type="api_key",
            subject_id=str(row.id),
            detail={"name": name, "role": role.value, "team": team},
        )
    )
    return row, key


def authenticate(session: Session, presented: str) -> ApiKey | None:
    """The live key matching `presented`, or None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    digest = hash_key(presented)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    # The lookup is by hash already; compare again in constant time for good measure.
    return row if hmac.compare_digest(row.key_hash, digest) else None
