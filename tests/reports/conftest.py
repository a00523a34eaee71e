"""A seeded month of surveys for the report tests, and API keys of each role."""

from __future__ import annotations

import itertools
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.orm import Session

from gateway.flows import Flows
from tests import database_templates
from tests.conftest import make_test_app, pg_database
from tests.reports.factories import NPS_FLOWS, Seeder, at

RATED = ("cost", "speed", "politeness", "quality")


@dataclass
class Month:
    start: str
    end: str
    excluded_survey_id: int


@pytest.fixture
def seeder(session: Session) -> Seeder:
    return Seeder(session)


@pytest.fixture
def app_flows(request: pytest.FixtureRequest) -> Flows | None:
    """The test NPS flow beside the shipped ones for a test of the seeded month (seeded with
    it) or one that asks for `with_nps_flow`; the shipped flows for the others."""
    return NPS_FLOWS if {"month", "with_nps_flow"} & set(request.fixturenames) else None


@pytest.fixture
def with_nps_flow() -> None:
    """Asked for by a test whose app runs the test NPS flow too (see `app_flows`)."""


def _answers(rng: random.Random, flow: str) -> dict[str, int | None]:
    """A customer's answers: some skipped, some surveys abandoned part-way."""
    answers: dict[str, int | None] = {}
    keys = ["overall", *(RATED if flow == "post_call" else ("cost", "speed", "politeness"))]
    if flow == "test_nps":
        keys += ["importance_cost", "importance_speed", "importance_politeness", "nps"]
    stop = len(keys) if rng.random() < 0.8 else rng.randrange(1, len(keys))
    for key in keys[:stop]:
        if key != "overall" and rng.random() < 0.12:
            answers[key] = None
        elif key == "nps":
            answers[key] = rng.randrange(0, 11)
        else:
            answers[key] = rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
    return answers


def _seed_month(session: Session) -> int:
    """September 2026 in Moscow days (REPORT_TIMEZONE defaults to DEFAULT_TIMEZONE): four
    operators in two teams, surveys of every status, one excluded rating, and rows just
    outside the month that must not count. Returns the excluded survey's id."""
    # Its own numbers: the tests that add to the copied month number theirs from 1.
    seeder = Seeder(session, itertools.count(900_001))
    rng = random.Random(20260901)
    operators = {
        "op-a": (seeder.operator("op-a", "North", "Anna"), 42),
        "op-b": (seeder.operator("op-b", "North", "Boris"), 36),
        "op-c": (seeder.operator("op-c", "South", "Clara"), 3),
        "op-d": (seeder.operator("op-d", "South", "Dmitri"), 33),
    }
    for external_id, (operator, count) in operators.items():
        office = "central" if external_id in {"op-a", "op-c"} else "port"
        for n in range(count):
            flow = "test_nps" if n % 3 == 0 else "post_call"
            answers = _answers(rng, flow)
            if external_id == "op-c":
                answers = {"overall": 5}  # three perfect scores: listed, never ranked
            complete = len(answers) >= 5 and None not in answers.values()
            ended = at("2026-09-01", 8) + timedelta(hours=rng.randrange(0, 29 * 24 + 12))
            seeder.survey(
                operator,
                answers,
                ended,
                flow=flow,
                office=office,
                channel="office_visit" if n % 4 == 0 else "call",
                status="completed" if complete else "partial",
                flush=False,
            )
        for status in ("expired", "not_sent", "scheduled", "not_reached"):
            seeder.survey(operator, {}, at("2026-09-10"), status=status, office=office, flush=False)
        seeder.survey(
            operator, {"overall": 4}, at("2026-09-11"), status="active", office=office, flush=False
        )
        seeder.contact(operator, at("2026-09-12"), disposition="transferred", office=office)
        # Just outside the month in Moscow (UTC+3): must count nowhere.
        seeder.survey(operator, {"overall": 1, "speed": 1}, at("2026-08-31", 20, 59), office=office)
        seeder.survey(operator, {"overall": 1, "speed": 1}, at("2026-09-30", 21, 0), office=office)
    excluded = seeder.survey(
        operators["op-d"][0],
        {"overall": 1, "cost": 1, "speed": 1},
        at("2026-09-15"),
        office="port",
        excluded="the customer rated the tariff, not the call (appeal 17)",
    )
    session.commit()
    return excluded.id


def _seeded(url: str) -> dict[str, Any]:
    """Commit the month into a database migrated for it: made once per test run and copied
    by each test process (tests/database_templates.py); every test that reads it runs there
    in its own rolled-back transaction, as every other test does."""
    with tempfile.TemporaryDirectory(prefix="sg-month-") as var_dir:
        app = make_test_app(url, Path(var_dir), flows=NPS_FLOWS)
        database = app.extensions["database"]
        try:
            with app.app_context():
                excluded_id = _seed_month(database.session())
        finally:
            database.session.remove()
            database.dispose()
    return {"excluded_id": excluded_id}


@pytest.fixture(scope="session")
def pg_month(worker_id: str) -> Iterator[tuple[str, int]]:
    with pg_database(worker_id, "month_", _seeded) as (url, template):
        yield url, template["excluded_id"]


@pytest.fixture(scope="session")
def sqlite_month(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    template = database_templates.sqlite_template("month", _seeded)
    url = database_templates.copy_sqlite(template, tmp_path_factory.mktemp("month") / "db.sqlite3")
    return url, template["excluded_id"]


def _month_database(backend: str, request: pytest.FixtureRequest) -> tuple[str, int]:
    seeded = request.getfixturevalue("pg_month" if backend == "postgresql" else "sqlite_month")
    return cast(tuple[str, int], seeded)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A test that reads the month runs on the database the month is seeded in."""
    if "month" in request.fixturenames:
        return _month_database(backend, request)[0]
    name = "pg_database_url" if backend == "postgresql" else "sqlite_database_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def month(backend: str, request: pytest.FixtureRequest, database_url: str) -> Month:
    """September 2026, seeded once per test process (see `_seed_month`)."""
    return Month("2026-09-01", "2026-09-30", _month_database(backend, request)[1])


@pytest.fixture
def keys(make_api_key: Callable[..., str]) -> dict[str, dict[str, str]]:
    def bearer(role: str, team: str | None = None, name: str = "test") -> dict[str, str]:
        return {"Authorization": f"Bearer {make_api_key(role, team, name)}"}

    return {
        "admin": bearer("admin", name="head of quality"),
        "north": bearer("supervisor", "North", "north supervisor"),
        "south": bearer("supervisor", "South", "south supervisor"),
        "integration": bearer("integration", name="crm"),
    }
