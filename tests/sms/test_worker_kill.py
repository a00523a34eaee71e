"""kill -9 of a real Celery worker in the middle of a send: no customer gets the survey twice,
none never (slow: real worker processes; `make test-slow`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway.db import utcnow
from gateway.dispatch import run_sweep
from gateway.models import SurveySession
from tests.conftest import make_test_app
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import record_visit
from tests.workers import Workers

SURVEYS = 10
LEASE_SECONDS = 5  # compressed: a claimed survey whose worker died is taken back after it


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(hold_cap_seconds=60) as running:
        yield running


def _twilio(fake: FakeTwilio) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_API_BASE_URL": fake.base_url,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_TIMEOUT_SECONDS": "30",
        "SMS_RATE_PER_SECOND": "1000",
        "QUIET_HOURS": "",
        "DISPATCH_LEASE_SECONDS": str(LEASE_SECONDS),  # the send task leases for this long
        "SMS_RECONCILE_AFTER_SECONDS": "2",
    }


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"quiet_hours": None, "sms_rate_per_second": 1000.0}


@pytest.fixture
def workers(
    database_url: str, redis_url: str, tmp_path: Path, fake: FakeTwilio
) -> Iterator[Workers]:
    running = Workers(
        {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path / "workers"),
         **_twilio(fake)},
        redis_url,
        tmp_path / "logs",
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop_all()


@pytest.mark.slow
def test_a_worker_killed_mid_send_leaves_no_survey_sent_twice_and_none_lost(
    live_app: Flask, database_url: str, workers: Workers, fake: FakeTwilio, tmp_path: Path
) -> None:
    settings = live_app.config["SETTINGS"]
    with live_app.app_context():
        session = live_app.extensions["database"].session_factory()
        phones = [f"+791612348{n:02d}" for n in range(SURVEYS)]
        for phone in phones:
            record_visit(session, settings, ended_at=utcnow() - timedelta(minutes=61), phone=phone)
        session.close()

    # The sweeps, as beat's worker runs them, with the lease and the reconciliation compressed.
    sweeper = make_test_app(
        database_url,
        tmp_path / "sweeper",
        redis_url=workers.redis_url,
        task_queue_prefix=workers.prefix,
        dispatch_lease_seconds=LEASE_SECONDS,
        sms_reconcile_after_seconds=2.0,
        sms_rate_per_second=1000.0,
        quiet_hours=None,
    )
    held = fake.hold_next("messages")  # the first send reaches Twilio and waits for its answer
    doomed = workers.start("send-a", "celery")
    workers.wait_ready([doomed])
    with sweeper.app_context():
        database = sweeper.extensions["database"]

        def sweep_once() -> None:
            with database.session_scope() as sweep_session:
                run_sweep(sweep_session, sweeper.config["SETTINGS"], utcnow())

        sweep_once()
        fake.wait_for_requests("messages", 1, timeout=60)
        workers.kill(doomed)  # mid-send: the attempt is committed, its outcome never will be
        held.set()  # ... and Twilio accepts that message all the same
        fake.wait_idle(10)

        survivor = workers.start("send-b", "celery")
        workers.wait_ready([survivor])
        deadline = time.monotonic() + 120
        settled = 0
        while settled < SURVEYS and time.monotonic() < deadline:
            sweep_once()
            time.sleep(0.5)  # the interval between beat's sweeps
            with database.session_scope() as check:
                settled = (
                    check.scalar(select(func.count()).where(SurveySession.provider_id.is_not(None)))
                    or 0
                )
        database.dispose()

    fake.wait_idle(10)
    delivered = Counter(r.params["To"] for r in fake.messages() if r.sid)
    assert settled == SURVEYS, "every survey's message recorded, the killed one by reconciliation"
    assert delivered == Counter(phones), "0 twice, 0 never"
