"""Test fixtures: real PostgreSQL and Redis, schema built by the migrations, a transaction
per test. Twilio is faked only at its HTTP boundary (tests/fake_twilio.py) or by signing
webhook requests exactly as Twilio does (`twilio_post`).

Tests marked `both_databases` run once on PostgreSQL and once on SQLite, the embedded
default. Under CI=true an unreachable PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from gateway import create_app
from gateway.apikeys import create_api_key
from gateway.db import Base, utcnow
from gateway.flows import Flows
from gateway.logs import mask_handler
from gateway.models import ApiRole, Operator, Team
from gateway.reports import rollup
from ivr_flows import load_flows
from tests import database_templates

# The SMTP sink (`sink`), shared by the email invitation and the incident alert tests; the
# browser fixtures (`dashboard` and the rest), one Chromium for every browser test of a process;
# what makes each test process cheaper.
pytest_plugins = ["tests.smtp_sink", "tests.browser", "tests.speed"]

IN_CI = os.environ.get("CI") == "true"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "0" * 32
PUBLIC_BASE_URL = "https://surveys.example.com"
_SCHEMA_TEMPLATES = pytest.StashKey[threading.Thread]()


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is unreachable: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def _psycopg_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run on PostgreSQL and on SQLite (the embedded default)"
    )
    if not hasattr(config, "workerinput"):  # the controller, before it starts any worker
        database_templates.start_run()
        if getattr(config.option, "numprocesses", None):
            making = database_templates.start_schema_templates(pg_server_url())
            config.stash[_SCHEMA_TEMPLATES] = making


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        making = config.stash.get(_SCHEMA_TEMPLATES, None)
        if making is not None:
            making.join()  # before they are dropped
        try:
            database_templates.drop_templates(pg_server_url())
        except Exception as exc:  # PostgreSQL gone: nothing of ours is left to drop there
            logging.getLogger(__name__).warning("templates not dropped: %s", exc)


def pg_server_url() -> str:
    return _psycopg_url(os.environ.get("DATABASE_URL") or PG_DEFAULT)


# The tests that take seconds, longest first, by the start of their node id (wall time with 3
# workers on 2 cores). Run first, they overlap each other and the short tests instead of ending
# the run together on one worker; several wait more than they compute (audio played in real
# time, a browser, timeouts). A test missing here only starts later. The longest runs of all
# are marked slow: `make test-slow`.
LONG_FIRST = (
    # Slow only: the random runs and the demo walked in a browser (minutes, then 15 s).
    "tests/reports/test_rollup_stateful.py",
    "tests/fuzz/test_openapi_fuzz.py",
    "tests/incidents/test_demo_walkthrough.py",
    "tests/test_demo.py",  # 4-6 s: four days of demo
    "tests/sms/test_faults.py",  # 6 s
    "tests/sms/test_reconcile.py",  # 6 s, mostly timeouts
    "tests/incidents/test_browser.py",
    "tests/reports/test_dashboard_browser.py",
    "tests/websurvey/test_browser.py",  # 4 s
    "tests/sip/",  # 1-4 s each, waiting on audio played in real time
    "tests/test_migrations.py",
    "tests/voice/test_audio.py",
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first (LONG_FIRST's order), the others as collected: xdist hands the
    tests out in this order as workers free up, so the long ones start at once, side by side.
    The browser tests go to one worker (`--dist loadgroup`): one Chromium, not one each."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("browser"))

    def rank(item: pytest.Item) -> int:
        for position, prefix in enumerate(LONG_FIRST):
            if item.nodeid.startswith(prefix):
                return position
        return len(LONG_FIRST)

    items.sort(key=rank)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_databases") is not None
        params = ["postgresql", "sqlite"] if both else ["postgresql"]
        metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "postgresql")


class LogLines(logging.Handler):
    """Every record the suite logs, formatted as the gateway's own handlers write it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def unmasked_numbers(text: str) -> list[str]:
    """Phone numbers written out whole in `text` (any writing libphonenumber recognises)."""
    matcher = phonenumbers.PhoneNumberMatcher(text, "RU", leniency=phonenumbers.Leniency.VALID)
    return [match.raw_string for match in matcher]


@pytest.fixture(scope="session", autouse=True)
def log_lines() -> Iterator[LogLines]:
    """A root handler set up as the gateway sets up every handler it finds at start-up."""
    handler = LogLines()
    mask_handler(handler)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture(autouse=True)
def no_phone_number_in_logs(log_lines: LogLines) -> Iterator[None]:
    """Every test of the suite: no line it logged shows a phone number whole."""
    start = len(log_lines.lines)
    yield
    leaked = [line for line in log_lines.lines[start:] if unmasked_numbers(line)]
    if leaked:
        pytest.fail("a phone number reached the logs unmasked:\n" + "\n".join(leaked[:5]))


@pytest.fixture(scope="session")
def pg_database_url(worker_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test process, migrated to head."""
    with pg_database(worker_id) as (url, _template):
        yield url


@contextmanager
def pg_database(
    worker_id: str,
    label: str = "",
    fill: Callable[[str], dict[str, Any]] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A new PostgreSQL database migrated to head (and filled by `fill`), dropped at the end
    of the block; with what `fill` returned (database_templates.pg_template)."""
    server_url = pg_server_url()
    name = f"sg_test_{label}{worker_id}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except Exception as exc:
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    # Outside the check above: a migration that fails is a failure, not a missing server.
    template = database_templates.pg_template(server_url, label or database_templates.SCHEMA, fill)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template["name"]}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, template
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sqlite_database(tmp_path_factory)


def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A new SQLite database file migrated to head."""
    template = database_templates.sqlite_template(database_templates.SCHEMA)
    return database_templates.copy_sqlite(
        template, tmp_path_factory.mktemp("sqlite") / "gateway.sqlite3"
    )


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    name = "pg_database_url" if backend == "postgresql" else "sqlite_database_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis for the tests that need it; reachable or the test fails under CI."""
    url = os.environ.get("REDIS_URL") or REDIS_DEFAULT
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    finally:
        client.close()
    return url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its `app`."""
    return {}


@pytest.fixture
def app_flows() -> Flows | None:
    """Override in a test module to build its `app` with these flows (None: the shipped)."""
    return None


@functools.cache
def shipped_flows() -> Flows:
    """The flows the gateway ships, parsed once per test process: a flow is immutable, and
    most of the suite's apps run these."""
    return load_flows()


def make_test_app(
    database_url: str, var_dir: Path, *, flows: Flows | None = None, **overrides: Any
) -> Flask:
    if flows is None and "flows_dir" not in overrides and "FLOWS_DIR" not in os.environ:
        flows = shipped_flows()
    config: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "var_dir": var_dir,
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_auth_token": AUTH_TOKEN,
        "log_level": "WARNING",
        **overrides,
    }
    return create_app(test_config=config, flows=flows)


# Where a test's fake provider listens (Twilio's API, SMSC's, an SMTP server): a new port for
# each test. The app reads these when it sends, never when it is built, so a module's tests
# share one app and each test has its own port put in the app's settings.
PER_TEST_SETTINGS = frozenset({"twilio_api_base_url", "smsc_api_base_url", "smtp_port"})


@pytest.fixture(scope="session")
def built_apps() -> Iterator[dict[str, Flask]]:
    """Apps built by this test process, one per database and settings: building one costs
    more than most tests (routes, the API, the rollup's check), and each test rolls back."""
    apps: dict[str, Flask] = {}
    try:
        yield apps
    finally:
        for built in apps.values():
            built.extensions["database"].dispose()


@contextmanager
def shared_app(
    built: dict[str, Flask],
    database_url: str,
    settings_overrides: dict[str, Any],
    app_flows: Flows | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Flask, bool]]:
    """The app in `built` for this database and settings, built first if there is none yet
    (the bool: whether it was), with the test's own PER_TEST_SETTINGS put in and taken out
    after."""
    lasting = sorted((k, v) for k, v in settings_overrides.items() if k not in PER_TEST_SETTINGS)
    key = repr((database_url, lasting, app_flows))
    flask_app = built.get(key)
    new = flask_app is None
    if flask_app is None:
        var_dir = tmp_path_factory.mktemp("app") / "var"
        flask_app = built[key] = make_test_app(
            database_url, var_dir, flows=app_flows, **settings_overrides
        )
    settings = flask_app.config["SETTINGS"]
    per_test = {k: v for k, v in settings_overrides.items() if k in PER_TEST_SETTINGS}
    flask_app.config["SETTINGS"] = dataclasses.replace(settings, **per_test)
    try:
        yield flask_app, new
    finally:
        flask_app.config["SETTINGS"] = settings


@pytest.fixture
def app(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    settings_overrides: dict[str, Any],
    app_flows: Flows | None,
    built_apps: dict[str, Flask],
) -> Iterator[Flask]:
    """An app whose every session joins one outer transaction, rolled back after the test.

    Code under test commits as usual; its commits release savepoints only. The app is shared
    by the tests of this process with the same database and settings; a test that changes
    its settings has them put back.
    """
    with shared_app(built_apps, database_url, settings_overrides, app_flows, tmp_path_factory) as (
        flask_app,
        _new,
    ):
        database = flask_app.extensions["database"]
        connection = database.engine.connect()
        outer = connection.begin()
        # Reconfigured, not replaced: the listeners the app bound to it (the rollup) stay.
        database.session_factory.configure(
            bind=connection, join_transaction_mode="create_savepoint"
        )
        database.session = scoped_session(database.session_factory)
        try:
            yield flask_app
        finally:
            database.session.remove()
            outer.rollback()
            connection.close()
            database.session_factory.configure(
                bind=database.engine, join_transaction_mode="conditional_savepoint"
            )


@pytest.fixture(scope="session")
def built_live_apps() -> Iterator[dict[str, Flask]]:
    """The apps `live_app` built in this test process (see `built_apps`)."""
    apps: dict[str, Flask] = {}
    try:
        yield apps
    finally:
        for built in apps.values():
            built.extensions["database"].dispose()


@pytest.fixture
def live_app(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    settings_overrides: dict[str, Any],
    app_flows: Flows | None,
    built_live_apps: dict[str, Flask],
) -> Iterator[Flask]:
    """An app that really commits, for concurrency and multi-instance tests; the database is
    emptied after each test. Shared by the tests of this process with the same database and
    settings, as `app` is."""
    with shared_app(
        built_live_apps, database_url, settings_overrides, app_flows, tmp_path_factory
    ) as (flask_app, new):
        database = flask_app.extensions["database"]
        if not new:  # what its start-up wrote to the database went with the last test's rows
            zone = ZoneInfo(flask_app.config["SETTINGS"].report_timezone)
            rollup.ensure_built(database.session_factory, zone)
        try:
            yield flask_app
        finally:
            database.session.remove()
            empty_database(database.engine)


def empty_database(engine: Any) -> None:
    """Every table's rows deleted, children first, and PostgreSQL's id sequences restarted.
    DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE gives each of the tables and
    its indexes new files (about 65 ms against 5)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(text(f"DELETE FROM {table}"))
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(c.oid, 1, false) FROM pg_class c"
                    " WHERE c.relkind = 'S' AND c.relnamespace = current_schema()::regnamespace"
                )
            )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """The app's session, inside an app context, for arranging rows and asserting on them."""
    with app.app_context():
        yield app.extensions["database"].session()


@pytest.fixture
def make_api_key(app: Flask) -> Callable[..., str]:
    """Create an API key with a role (and team, or operator) and return the key; the team and
    the operator are created first if the test has none yet (keys refuse unknown ones)."""

    def make(
        role: str = "integration",
        team: str | None = None,
        name: str = "test",
        operator: str | None = None,
    ) -> str:
        with app.app_context():
            database = app.extensions["database"]
            session = database.session()
            if team is not None:
                ensure_team(session, team)
            if (
                operator is not None
                and session.scalar(select(Operator).where(Operator.external_id == operator)) is None
            ):
                session.add(Operator(external_id=operator))
                session.flush()
            _row, key = create_api_key(
                session, name, ApiRole(role), team, utcnow(), operator=operator
            )
            session.commit()
            return key

    return make


ACCOUNT_PASSWORD = "a long test passphrase"


@pytest.fixture
def make_account(app: Flask) -> Callable[..., str]:
    """Create a dashboard account (its teams and operator too, if missing); returns the
    username. Every test account's password is ACCOUNT_PASSWORD."""

    made: list[str] = []

    def make(
        role: str = "admin",
        team: str | list[str] | None = None,
        username: str | None = None,
        operator: str | None = None,
        name: str | None = None,
    ) -> str:
        """`team`: a supervisor's team, or a list of their teams."""
        from gateway.accounts import create_account

        teams = [team] if isinstance(team, str) else list(team or [])
        username = username or f"person{len(made) + 1}"
        made.append(username)

        with app.app_context():
            session = app.extensions["database"].session()
            for one in teams:
                ensure_team(session, one)
            if (
                operator is not None
                and session.scalar(select(Operator).where(Operator.external_id == operator)) is None
            ):
                session.add(Operator(external_id=operator))
                session.flush()
            create_account(
                session,
                username,
                ACCOUNT_PASSWORD,
                ApiRole(role),
                now=utcnow(),
                actor="test",
                name=name,
                teams=teams,
                operator=operator,
            )
            session.commit()
            return username

    return make


def ensure_team(session: Session, name: str) -> Team:
    """The team of this name, created if the test has none yet."""
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        session.add(team)
        session.flush()
    return team


@pytest.fixture
def auth(make_api_key: Callable[..., str]) -> dict[str, str]:
    """Headers of an integration key."""
    return {"Authorization": f"Bearer {make_api_key('integration')}"}


def twilio_signature(url: str, params: dict[str, Any], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


@pytest.fixture
def twilio_post(client: FlaskClient) -> Callable[..., TestResponse]:
    """POST form parameters to a webhook path, signed as Twilio signs them."""

    def post(
        path: str, params: dict[str, Any], *, signature: str | None = None, signed: bool = True
    ) -> TestResponse:
        headers = {}
        if signed:
            url = PUBLIC_BASE_URL + path
            headers["X-Twilio-Signature"] = signature or twilio_signature(url, params)
        return client.post(path, data=params, headers=headers)

    return post
