"""A sweep that keeps up: its own queue, again at once after a full batch, and a broker that
refuses a publish gives the claimed surveys back at once."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from flask import Flask
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.dispatch import SEND_SMS_TASK, run_sweep, sweep_until_caught_up
from gateway.models import SurveyStatus
from tests.conftest import make_test_app
from tests.sms.conftest import NOON_MSK, minutes, record_visit, survey_of


def visits(session: Session, settings: Settings, count: int) -> list[int]:
    return [
        record_visit(
            session, settings, ended_at=NOON_MSK - minutes(61), phone=f"+79161230{n:03d}"
        ).id
        for n in range(count)
    ]


def test_a_refused_publish_gives_the_claimed_surveys_back_at_once(
    session: Session, settings: Settings
) -> None:
    recorded = [
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=f"+7916123450{n}")
        for n in range(3)
    ]
    queued: list[int] = []

    def broker_down_after_one(task: str, survey_ids: int | list[int]) -> None:
        if queued:
            raise ConnectionError("Redis is down")
        assert isinstance(survey_ids, list), "the sends go in batches"
        queued.extend(survey_ids)

    report = run_sweep(session, settings, NOON_MSK, broker_down_after_one)
    assert len(report.handed_over) == 3 and len(queued) == 1
    assert sorted(report.unqueued) == sorted(i for _, i in report.handed_over[1:])
    statuses = {survey_of(session, v).id: survey_of(session, v) for v in recorded}
    assert statuses[queued[0]].status is SurveyStatus.SENDING
    for survey_id in report.unqueued:
        assert statuses[survey_id].status is SurveyStatus.SCHEDULED
        assert statuses[survey_id].claimed_until is None

    # Due again for the very next sweep, not after DISPATCH_LEASE_SECONDS.
    again = run_sweep(session, settings, NOON_MSK + minutes(0.1), lambda _t, _i: None)
    assert sorted(i for _, i in again.handed_over) == sorted(report.unqueued)


def test_a_sweep_that_filled_its_batch_runs_again_at_once(app: Flask, settings: Settings) -> None:
    small = dataclasses.replace(
        settings, dispatch_batch_size=3, sms_rate_per_second=100.0, quiet_hours=None
    )
    database = app.extensions["database"]
    with app.app_context():
        visits(database.session(), small, 8)
        queued: list[int] = []

        @contextmanager
        def transaction() -> Iterator[Session]:
            with database.session_scope() as session:
                yield session

        report = sweep_until_caught_up(
            transaction, small, lambda: NOON_MSK, lambda _t, ids: queued.extend(ids)
        )
    assert len(queued) == len(set(queued)) == 8, "three sweeps of three, at once"
    assert report.claimed == 8
    assert {task for task, _ in report.handed_over} == {SEND_SMS_TASK}


def test_a_sweep_stops_at_the_rate_limits_budget(app: Flask, settings: Settings) -> None:
    slow = dataclasses.replace(
        settings, dispatch_batch_size=2, sms_rate_per_second=0.5, dispatch_interval_seconds=5
    )
    database = app.extensions["database"]
    with app.app_context():
        visits(database.session(), slow, 9)

        @contextmanager
        def transaction() -> Iterator[Session]:
            with database.session_scope() as session:
                yield session

        report = sweep_until_caught_up(transaction, slow, lambda: NOON_MSK, lambda _t, _i: None)
    # Two intervals at the rate limit: 5 s x 0.5/s x 2 = 5 messages; the rest wait.
    assert len(report.handed_over) == 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_app(
    database_url: str, redis_url: str, tmp_path, settings_overrides: dict[str, object]
) -> Iterator[tuple[Flask, str]]:
    prefix = f"sg-test-{uuid.uuid4().hex[:8]}."
    flask_app = make_test_app(
        database_url, tmp_path / "var", redis_url=redis_url, task_queue_prefix=prefix
    )
    client = redis.Redis.from_url(redis_url)
    try:
        yield flask_app, prefix
    finally:
        client.delete(prefix + "celery", prefix + "sweeps", prefix + "background")
        client.close()
        flask_app.extensions["database"].dispose()


def test_sweeps_sends_and_webhook_deliveries_go_to_queues_of_their_own(
    redis_app: tuple[Flask, str], redis_url: str
) -> None:
    """A backlog of sends delays neither the sweeps nor webhook deliveries and the privacy
    sweep, and a slow webhook receiver delays no sweep."""
    flask_app, prefix = redis_app
    celery = flask_app.extensions["celery"]
    for entry in celery.conf.beat_schedule.values():  # what beat publishes, as it does
        celery.send_task(entry["task"], **entry.get("options", {}))
    celery.send_task(SEND_SMS_TASK, args=[1])
    celery.send_task(SEND_SMS_TASK, args=[2])
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(prefix + "sweeps") == 1
        assert client.llen(prefix + "background") == 3  # webhook deliveries, privacy sweep, alerts
        assert client.llen(prefix + "celery") == 2
    finally:
        client.close()


def test_with_redis_down_the_sweep_gives_back_what_it_claimed(
    database_url: str, tmp_path, live_app: Flask
) -> None:
    down = make_test_app(
        database_url, tmp_path / "down", redis_url=f"redis://127.0.0.1:{_free_port()}/0"
    )
    try:
        with down.app_context():
            database = down.extensions["database"]
            settings = down.config["SETTINGS"]
            session = database.session()
            recorded = visits(session, settings, 2)
            report = run_sweep(session, settings, NOON_MSK)
            assert len(report.handed_over) == 2
            assert sorted(report.unqueued) == sorted(i for _, i in report.handed_over)
            for visit_id in recorded:
                from gateway.models import Interaction

                interaction = session.get(Interaction, visit_id)
                assert survey_of(session, interaction).status is SurveyStatus.SCHEDULED
            session.close()
    finally:
        down.extensions["database"].dispose()
