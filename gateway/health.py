"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, text

from gateway.config import current_settings
from gateway.db import current_database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process answers."""
    return jsonify(status="ok")


def _check_database() -> str | None:
    try:
        with cast(Engine, current_database().engine).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_broker() -> str | None:
    settings = current_settings()
    celery: Any = current_app.extensions["celery"]
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        where = "redis" if settings.redis_url else "embedded broker"
        return f"{where} unreachable: {type(exc).__name__}"
    return None


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready to serve: the database and the broker answer."""
    problems = [p for p in (_check_database(), _check_broker()) if p]
    if problems:
        return jsonify(status="unavailable", problems=problems), 503
    return jsonify(status="ready")
