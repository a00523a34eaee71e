"""Pooled PostgreSQL connections: a connection killed while idle is replaced, not used."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from gateway.db import make_engine


def test_a_connection_killed_while_idle_is_replaced_before_a_request_uses_it(
    pg_database_url: str,
) -> None:
    engine = make_engine(pg_database_url, ping_idle_seconds=0, pool_size=1, max_overflow=0)
    admin = create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            first = conn.scalar(text("SELECT pg_backend_pid()"))
        with admin.connect() as conn:  # a server restart, as the pooled connection sees it
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        with engine.connect() as conn:
            second = conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_in_steady_use_is_not_pinged(
    pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ping would be one more round trip on every webhook."""
    engine = make_engine(pg_database_url, ping_idle_seconds=60, pool_size=1, max_overflow=0)
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def recording(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return original(cursor, query, *args, **kwargs)

    try:
        with engine.connect() as conn:
            conn.scalar(text("SELECT 1"))
        monkeypatch.setattr(psycopg.Cursor, "execute", recording)
        with engine.connect() as conn:
            conn.scalar(text("SELECT 2"))
        assert sent == ["SELECT 2"]
    finally:
        engine.dispose()


def test_a_forked_worker_process_opens_connections_of_its_own(pg_database_url: str) -> None:
    """Celery's prefork pool forks the worker after the app connected at start-up: a child
    using its parent's pooled connection would interleave both processes' statements."""
    engine = make_engine(pg_database_url)
    try:
        with engine.connect() as conn:
            parents = conn.scalar(text("SELECT pg_backend_pid()"))
        child = os.fork()
        if child == 0:  # the forked worker: exit 0 only on a connection of its own
            code = 2
            try:
                with engine.connect() as conn:
                    code = 0 if conn.scalar(text("SELECT pg_backend_pid()")) != parents else 1
            finally:
                os._exit(code)
        _pid, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child used its parent's connection"
        with engine.connect() as conn:  # and the parent's own is intact
            assert conn.scalar(text("SELECT pg_backend_pid()")) == parents
    finally:
        engine.dispose()
