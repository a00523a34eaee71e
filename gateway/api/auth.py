"""Bearer API keys and roles. Every API view is closed unless it names the roles it admits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, g, request

from gateway.apikeys import authenticate
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


def _allowed_roles() -> frozenset[ApiRole]:
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, request.method.lower(), None)
    return getattr(view, "_allowed_roles", frozenset({ApiRole.ADMIN}))


def authenticate_request() -> None:
    """before_request hook of every API blueprint: 401 without a valid key, 403 without the role."""
    if request.endpoint is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        abort(401, "send an API key as 'Authorization: Bearer <key>'")
    db = current_app.extensions["database"]
    key = authenticate(db.session(), presented.strip())
    if key is None:
        abort(401, "the API key is unknown or revoked")
    if key.role not in _allowed_roles():
        abort(403, f"a {key.role.value} key may not do this")
    g.api_key = key
