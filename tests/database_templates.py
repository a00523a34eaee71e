"""Databases made once per test run and copied by every test process: the schema migrated to
head, the reports' seeded month. Migrating takes about a second of CPU on PostgreSQL and
seeding the month two; copying a template takes a few milliseconds.

The first process that needs a template makes it under a file lock; the others wait for the
lock and copy what it made. PostgreSQL copies with `CREATE DATABASE ... TEMPLATE`, SQLite
with its backup API. The controller process drops them all when the run ends
(`drop_templates`, from `pytest_unconfigure`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.migrate import upgrade

RUN_VARIABLE = "SURVEY_GATEWAY_TEST_RUN"
TEMPLATE_PREFIX = "sg_tpl_"
SCHEMA = "schema_"  # the label of the templates of the bare schema


def start_run() -> None:
    """Name this run's templates; called by the controller before it starts any worker,
    which inherit the name through the environment."""
    os.environ[RUN_VARIABLE] = uuid.uuid4().hex[:12]


def _run() -> str:
    return os.environ[RUN_VARIABLE]  # set by start_run, from pytest_configure


def _run_dir(run: str) -> Path:
    return Path(tempfile.gettempdir()) / f"sg-test-{run}"


def once(name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What `make` returned the one time it ran in this test run, whichever process ran it."""
    folder = _run_dir(_run())
    folder.mkdir(exist_ok=True)
    made = folder / f"{name}.json"
    with (folder / f"{name}.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if made.exists():
                return dict(json.loads(made.read_text()))
            result = make()
            made.write_text(json.dumps(result))
            return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pg_template(
    server_url: str, label: str, fill: Callable[[str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A PostgreSQL database migrated to head (then given to `fill`, whose result is kept
    beside its name) to be copied: {"name": ..., **fill's}."""

    def make() -> dict[str, Any]:
        name = f"{TEMPLATE_PREFIX}{label}{_run()}"
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return {"name": name, **(fill(url) if fill else {})}

    return once(f"pg-{label}", make)


def sqlite_template(
    label: str, fill: Callable[[str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A SQLite file migrated to head (then given to `fill`) to be copied: {"path": ...}."""

    def make() -> dict[str, Any]:
        path = _run_dir(_run()) / f"{label}.sqlite3"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        upgrade(url)
        return {"path": str(path), **(fill(url) if fill else {})}

    return once(f"sqlite-{label}", make)


def start_schema_templates(server_url: str) -> threading.Thread:
    """Make the schema's templates in a thread of the controller while its workers start and
    collect, which takes them seconds of CPU: the first test of each worker then copies them
    at once (or waits on their lock) instead of the first to get there migrating, measured
    by coverage, while the others wait. A template the thread could not make is made by the
    first test that needs it, which says why."""

    def make() -> None:
        with suppress(Exception):  # PostgreSQL unreachable: its tests skip, or fail under CI
            pg_template(server_url, SCHEMA)
        sqlite_template(SCHEMA)

    thread = threading.Thread(target=make, name="schema-templates", daemon=True)
    thread.start()
    return thread


def copy_sqlite(template: dict[str, Any], to: Path) -> str:
    """A copy of the template through SQLite's backup API: whole even if the template's
    write-ahead log still held pages (the gateway runs SQLite in WAL mode)."""
    with closing(sqlite3.connect(template["path"])) as source, closing(sqlite3.connect(to)) as copy:
        source.backup(copy)
    return f"sqlite:///{to}"


def drop_templates(server_url: str) -> None:
    """Drop this run's PostgreSQL templates and remove its folder."""
    run = os.environ.get(RUN_VARIABLE)
    if not run:
        return
    folder = _run_dir(run)
    names = []
    for made in folder.glob("pg-*.json") if folder.exists() else ():
        names.append(json.loads(made.read_text())["name"])
    if names:
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                for name in names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
    shutil.rmtree(folder, ignore_errors=True)
