"""API keys: random, shown once, stored as SHA-256 only.

A key carries 256 bits of randomness, so a fast hash is enough: there is nothing to
brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.access import existing_operator, existing_teams
from gateway.db import utcnow
from gateway.models import ApiKey, ApiRole, AuditEvent

KEY_PREFIX = "sgw_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session,
    name: str,
    role: ApiRole,
    team: str | None,
    now: datetime,
    expires_at: datetime | None = None,
    operator: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is never stored.

    Raises ValueError (gateway.access.UnknownName for a team or operator that does not exist).
    """
    if expires_at is not None and expires_at <= now:
        raise ValueError("the expiry is in the past")
    if role is ApiRole.SUPERVISOR and not team:
        raise ValueError("a supervisor key needs --team: it reads only that team's reports")
    if role is not ApiRole.SUPERVISOR and team:
        raise ValueError(f"--team is for supervisor keys; a {role.value} key has no team")
    if role is ApiRole.OPERATOR and not operator:
        raise ValueError("an operator key needs --operator EXTERNAL_ID: it reads only theirs")
    if role is not ApiRole.OPERATOR and operator:
        raise ValueError(f"--operator is for operator keys, not {role.value} keys")
    team_row = existing_teams(session, [team])[0] if team else None
    operator_row = existing_operator(session, operator) if operator else None
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=key[:12],
        key_hash=hash_key(key),
        role=role,
        team=team_row,
        operator=operator_row,
        created_at=now,
        expires_at=expires_at,
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
            detail={
                "name": name,
                "role": role.value,
                "team": team,
                "operator": operator,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    )
    return row, key


# last_used_at is written at most this often per key: a busy integration's every request
# would otherwise be a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_is_live(key: ApiKey, now: datetime) -> bool:
    """Neither revoked nor expired."""
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def authenticate(session: Session, presented: str, now: datetime | None = None) -> ApiKey | None:
    """The live key matching `presented`, or None; notes when the key was last used."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    now = now or utcnow()
    digest = hash_key(presented)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or not key_is_live(row, now):
        return None
    # The lookup is by hash already; compare again in constant time for good measure.
    if not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        session.refresh(row, ["last_used_at"])
    return row


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every key, live or not, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_api_keys(session: Session, name: str, actor: str, now: datetime) -> list[ApiKey]:
    """Revoke every live key of this name, audited; returns them (empty: none was live)."""
    keys = list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.id)
        )
    )
    for key in keys:
        key.revoked_at = now
        session.add(
            AuditEvent(
                at=now,
                actor=actor,
                action="apikey.revoke",
                subject_type="api_key",
                subject_id=str(key.id),
                detail={"name": key.name, "prefix": key.prefix, "role": key.role.value},
            )
        )
    session.flush()
    return keys
