"""Database engine and sessions: SQLAlchemy 2, PostgreSQL in production, SQLite embedded.

`Database` is created unbound and bound by `init_app`, as Flask extensions are. Domain
services never touch it: they receive a `Session` and leave the commit to their caller
unless their docstring says otherwise.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

from flask import current_app
from sqlalchemy import DateTime, Engine, MetaData, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the gateway stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def utcnow() -> datetime:
    return datetime.now(UTC)


# A pooled connection that sat idle longer than this is pinged before use. One in steady use
# is not: the ping would be a round trip more on every webhook. Should the server restart
# while a connection is in steady use, its next statement fails once and SQLAlchemy then
# discards every pooled connection of that engine.
PING_IDLE_SECONDS = 5.0


def make_engine(url: str, ping_idle_seconds: float = PING_IDLE_SECONDS, **kwargs: Any) -> Engine:
    """An engine with the per-dialect settings the gateway relies on."""
    parsed = make_url(url)
    # A failed statement's error names its parameters (phone numbers, names, SMS bodies);
    # they stay out of exception messages and so out of every log.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; we issue it ourselves.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Embedded mode serialises transactions: a read that later writes would
            # otherwise fail with SQLITE_BUSY when another writer got there first.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        _fresh_pool_after_fork(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_idle_seconds)
    _fresh_pool_after_fork(engine)
    return engine


def _fresh_pool_after_fork(engine: Engine) -> None:
    """A forked child (Celery's prefork pool forks the worker after the app connected at
    start-up) opens connections of its own instead of sharing its parent's pooled sockets,
    which would interleave two processes' statements on one connection. SQLAlchemy's
    documented remedy: dispose of the pool in the child without closing the parent's."""
    reference = weakref.ref(engine)

    def _in_child() -> None:
        forked = reference()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=_in_child)


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it has been idle `idle_seconds`; a dead
    one is replaced by a new connection (SQLAlchemy's documented checkout-event pattern)."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # new, or in steady use
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("pooled connection is gone; reconnecting") from exc


class Database:
    """Engine plus a scoped session, bound to one Flask app (or used bare by the CLI)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None
        self.session: scoped_session[Session] | None = None

    def configure(self, url: str) -> None:
        self.engine = make_engine(url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.session = scoped_session(self.session_factory)

    def init_app(self, app: Any) -> None:
        self.configure(app.config["SETTINGS"].database_url)
        app.extensions["database"] = self

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            if self.session is not None:
                self.session.remove()

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on error."""
        if self.session is None:
            raise RuntimeError("Database.init_app() was not called")
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self.session.remove()

    def dispose(self) -> None:
        if self.session is not None:
            self.session.remove()
        if self.engine is not None:
            self.engine.dispose()


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def insert_new(
    session: Session, model: type[Base], row: Mapping[str, Any], unique: Sequence[str]
) -> bool:
    """Insert `row` into `model`'s table unless one with the same `unique` columns exists;
    True when it was new.

    One statement (INSERT ... ON CONFLICT DO NOTHING), where an ORM insert guarded by a
    savepoint takes three round trips. Not seen by ORM flush hooks: for rows no hook follows.
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = cast(Table, model.__table__)
    statement = (
        dialect.insert(table)
        .values(dict(row))
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(*table.primary_key.columns)
    )
    return session.execute(statement).first() is not None


def current_database() -> Database:
    """The current app's database (inside an app context: a request, a task, a command)."""
    return cast(Database, current_app.extensions["database"])


def current_session() -> Session:
    """The current app's session: one per request or task, removed at its end."""
    session = current_database().session
    if session is None:
        raise RuntimeError("the app's database is not configured")
    return session()
