"""Faults injected end to end, with the same accounting each time: every customer gets the
survey once; 0 sent twice, 0 never.

Compressed by settings: seconds of backoff and probes stand for minutes, and a simulated clock
moves forward between sweeps, so each test runs in seconds.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.dispatch import SEND_SMS_TASK, run_sweep, sweep, task_messages
from gateway.models import SurveySession, SurveyStatus
from sms.providers import TwilioSmsProvider
from sms.service import send_first_sms
from tests.conftest import make_test_app
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import NOON_MSK, minutes, record_visit

SURVEYS = 12


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(hold_cap_seconds=3) as running:
        yield running


def _twilio(fake: FakeTwilio) -> dict[str, object]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": "+15005550006",
        "twilio_timeout_seconds": 1.0,
        "sms_rate_per_second": 1000.0,
        "sms_retry_base_seconds": 5.0,  # the backoff doubles to 160 s at most
        "provider_probe_seconds": 30.0,
    }


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, object]:
    return _twilio(fake)


def _visits(session: Session, settings: Settings) -> list[str]:
    phones = [f"+791612347{n:02d}" for n in range(SURVEYS)]
    for phone in phones:
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=phone)
    return phones


def _circuit_open(client: FlaskClient) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "survey_gateway_provider_circuit_open":
                return sample.value
    raise AssertionError("no circuit metric")


def _sweep_and_send(session: Session, settings: Settings, now: datetime) -> list[str]:
    report = sweep(session, settings, now)
    session.commit()
    provider = TwilioSmsProvider(settings)
    try:
        return [
            send_first_sms(session, settings, provider, i, now, lambda _s: None).result
            for task, i in report.handed_over
            if task == SEND_SMS_TASK
        ]
    finally:
        provider.close()


@pytest.mark.parametrize("outage", [4, pytest.param(15, marks=pytest.mark.slow)])
def test_minutes_of_500s_then_of_401s_lose_no_survey_and_send_none_twice(
    client: FlaskClient, session: Session, settings: Settings, fake: FakeTwilio, outage: int
) -> None:
    phones = _visits(session, settings)
    outage_end = NOON_MSK + minutes(2 * outage)
    now, saw_open, results, delivered = NOON_MSK, False, Counter[str](), Counter[str]()
    while now < NOON_MSK + timedelta(hours=2):
        # `outage` minutes of 500s, then as many of a rotated token, then Twilio is back.
        for _ in range(SURVEYS):
            if now < NOON_MSK + minutes(outage):
                fake.fail_next("messages", 500)
            elif now < outage_end:
                fake.fail_next("messages", 401, 20003)
        results.update(_sweep_and_send(session, settings, now))
        if NOON_MSK + minutes(outage) <= now < outage_end and not saw_open:
            saw_open = _circuit_open(client) == 1
        delivered.update(r.params["To"] for r in fake.messages() if r.sid)
        fake.reset()  # unused failures do not outlive their 30 seconds
        now += timedelta(seconds=30)
        done = session.scalar(
            select(func.count()).where(SurveySession.status == SurveyStatus.ACTIVE)
        )
        if done == SURVEYS:
            break
    assert saw_open, "the alert metric showed the 401 outage"
    assert _circuit_open(client) == 0, "and the recovery"
    assert results["failed"] == 0
    assert now < outage_end + minutes(5), "sent within minutes of the recovery"
    assert delivered == Counter(phones), "0 twice, 0 never"


@pytest.fixture
def redis_gateway(
    database_url: str, redis_url: str, tmp_path: Path, fake: FakeTwilio, live_app: Flask
) -> Iterator[tuple[Flask, str]]:
    prefix = f"sg-test-{uuid.uuid4().hex[:8]}."
    app = make_test_app(
        database_url,
        tmp_path / "redis",
        redis_url=redis_url,
        task_queue_prefix=prefix,
        dispatch_lease_seconds=60,
        **_twilio(fake),
    )
    client = redis.Redis.from_url(redis_url)
    try:
        yield app, prefix
    finally:
        client.delete(prefix + "celery", prefix + "sweeps")
        client.close()
        app.extensions["database"].dispose()


def test_a_broker_that_lost_its_queue_loses_no_survey(
    redis_gateway: tuple[Flask, str], redis_url: str, fake: FakeTwilio
) -> None:
    app, prefix = redis_gateway
    broker = redis.Redis.from_url(redis_url)
    with app.app_context():
        database = app.extensions["database"]
        settings = app.config["SETTINGS"]
        session = database.session()
        phones = _visits(session, settings)
        report = run_sweep(session, settings, NOON_MSK)
        assert len(report.handed_over) == SURVEYS
        # The sends go in batches: one task message for several surveys.
        assert broker.llen(prefix + "celery") == len(task_messages(report.handed_over))
        broker.delete(prefix + "celery")  # Redis restarted without its data

        # Claimed and never sent: nothing happens until the lease expires, then due again.
        assert run_sweep(session, settings, NOON_MSK + timedelta(seconds=30)).handed_over == []
        later = NOON_MSK + timedelta(seconds=61)
        again = run_sweep(session, settings, later)
        assert len(again.recovered) == SURVEYS and len(again.handed_over) == SURVEYS
        queued = broker.lrange(prefix + "celery", 0, -1)
        assert len(queued) == len(task_messages(again.handed_over))
        provider = TwilioSmsProvider(settings)
        try:
            for _, survey_id in again.handed_over:  # what the workers do with the new messages
                send_first_sms(session, settings, provider, survey_id, later, lambda _s: None)
        finally:
            provider.close()
        session.close()
    broker.close()
    delivered = Counter(r.params["To"] for r in fake.messages() if r.sid)
    assert delivered == Counter(phones), "0 twice, 0 never"
