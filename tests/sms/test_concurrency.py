"""Several gateway instances on one PostgreSQL database, committing for real."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.dispatch import SEND_SMS_TASK, sweep
from gateway.models import SurveySession, SurveyStatus
from sms.providers import TwilioSmsProvider
from sms.ratelimit import reserve_slot
from sms.service import send_first_sms
from tests.conftest import make_test_app
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import NOON_MSK, minutes, record_visit

SWEEPERS = 3


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, object]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": "+15005550006",
        "sms_rate_per_second": 1000.0,
        "dispatch_batch_size": 7,  # several sweeps each, so they overlap
    }


@pytest.fixture
def instances(
    live_app: Flask, database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]
) -> Iterator[list[Flask]]:
    """The live app and two more instances on the same database, each with its own engine."""
    others = [
        make_test_app(database_url, tmp_path / f"var{n}", **settings_overrides)
        for n in range(1, SWEEPERS)
    ]
    try:
        yield [live_app, *others]
    finally:
        for other in others:
            other.extensions["database"].dispose()


def run_together(apps: list[Flask], work: Callable[[Flask], Any]) -> list[Any]:
    barrier = threading.Barrier(len(apps))
    results: list[Any] = [None] * len(apps)
    errors: list[BaseException] = []

    def run(index: int, app: Flask) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                results[index] = work(app)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_three_concurrent_sweeps_send_each_survey_exactly_once(
    instances: list[Flask], fake: FakeTwilio
) -> None:
    live = instances[0]
    settings = live.config["SETTINGS"]
    with live.app_context():
        session = live.extensions["database"].session()
        phones = [f"+791612345{n:02d}" for n in range(24)]
        for phone in phones:
            record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=phone)
        # Six customers with two due visits each: one survey per customer, whoever sweeps.
        for phone in phones[:6]:
            record_visit(session, settings, ended_at=NOON_MSK - minutes(62), phone=phone)
        session.close()

    def sweep_and_send(app: Flask) -> list[int]:
        database = app.extensions["database"]
        app_settings = app.config["SETTINGS"]
        handed: list[int] = []
        provider = TwilioSmsProvider(app_settings)
        try:
            while True:
                with database.session_scope() as s:
                    report = sweep(s, app_settings, NOON_MSK)
                ids = [i for task, i in report.handed_over if task == SEND_SMS_TASK]
                if not ids and not report.not_sent:
                    return handed
                handed.extend(ids)
                for survey_id in ids:
                    with database.session_scope() as s:
                        send_first_sms(
                            s, app_settings, provider, survey_id, NOON_MSK, lambda _s: None
                        )
        finally:
            provider.close()

    handed = run_together(instances, sweep_and_send)
    all_handed = [i for ids in handed for i in ids]
    assert len(all_handed) == len(set(all_handed)) == 24
    assert sum(1 for ids in handed if ids) >= 2, "the sweeps really ran side by side"

    sent_to = Counter(r.params["To"] for r in fake.messages())
    assert sent_to == Counter(phones), "every number exactly once"
    with live.app_context():
        session = live.extensions["database"].session()
        statuses = Counter(s.status for s in session.scalars(select(SurveySession)))
        assert statuses == {SurveyStatus.ACTIVE: 24, SurveyStatus.NOT_SENT: 6}


def test_the_rate_limit_holds_across_instances(instances: list[Flask]) -> None:
    rate = 5.0

    def reserve(app: Flask) -> list[Any]:
        database = app.extensions["database"]
        slots = []
        for _ in range(10):
            with database.session_scope() as s:
                slots.append(reserve_slot(s, "+15005550006", rate, NOON_MSK))
        return slots

    slots = sorted(s for per_app in run_together(instances, reserve) for s in per_app)
    assert len(slots) == 30
    assert slots[0] == NOON_MSK
    gaps = {b - a for a, b in itertools.pairwise(slots)}
    assert gaps == {timedelta(seconds=1 / rate)}
