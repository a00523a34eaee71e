"""Bearer API keys and roles. Every API view is closed unless it names the roles it admits."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import abort, current_app, g, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests

from gateway import throttle
from gateway.access import Scope, scope_of_key
from gateway.apikeys import authenticate
from gateway.db import current_session, utcnow
from gateway.models import ApiKey, ApiRole

F = TypeVar("F", bound=Callable[..., Any])


def allow(*roles: ApiRole) -> Callable[[F], F]:
    """Admit these roles to a view (admin is always admitted)."""

    def mark(view: F) -> F:
        view._allowed_roles = frozenset(roles) | {ApiRole.ADMIN}  # type: ignore[attr-defined]
        return view

    return mark


def current_key() -> ApiKey:
    return g.api_key  # type: ignore[no-any-return]


def current_scope() -> Scope:
    """What the current key may see (gateway.access)."""
    return g.scope  # type: ignore[no-any-return]


def actor() -> str:
    """Who the current key is, for audit events: role and name."""
    return current_scope().actor


def audit_number_reads(customer_ids: Iterable[int | None]) -> None:
    """A person's key (not an integration's) was shown these customers' full numbers:
    audited and committed with the response."""
    from gateway.privacy import audit_number_reads as audit

    ids = [i for i in customer_ids if i is not None]
    if not ids or current_key().role is ApiRole.INTEGRATION:
        return
    session = current_session()
    audit(session, actor(), ids, request.path, utcnow())
    session.commit()


def _allowed_roles() -> frozenset[ApiRole]:
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, request.method.lower(), None)
    return getattr(view, "_allowed_roles", frozenset({ApiRole.ADMIN}))


def refuse_while_throttled(session: Session, subjects: list[tuple[str, str]]) -> None:
    """429 with Retry-After while these subjects have failed too often (gateway.throttle)."""
    wait = throttle.retry_after(session, subjects, utcnow())
    if wait is not None:
        raise TooManyRequests("too many failed authentications; try again later", retry_after=wait)


def note_failure(session: Session, subjects: list[tuple[str, str]]) -> None:
    """Count a failed authentication, committed even though the request fails."""
    throttle.record_failure(session, subjects, utcnow())
    session.commit()


def authenticate_request() -> None:
    """before_request hook of every API blueprint: 401 without a valid key, 403 without the role,
    429 after too many failed keys from this client or with this key's prefix."""
    if request.endpoint is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    session = current_session()
    subjects = throttle.subjects(request.remote_addr, presented)
    refuse_while_throttled(session, subjects)
    if scheme.lower() != "bearer" or not presented:
        abort(401, "send an API key as 'Authorization: Bearer <key>'")
    now = utcnow()
    key = authenticate(session, presented, now)
    if key is None:
        note_failure(session, subjects)
        abort(401, "the API key is unknown, revoked or expired")
    if key.last_used_at == now:
        session.commit()  # the key's last use, noted at most once a minute
    if key.role not in _allowed_roles():
        article = "an" if key.role.value[0] in "aeiou" else "a"
        abort(403, f"{article} {key.role.value} key may not do this")
    g.api_key = key
    g.scope = scope_of_key(key)
