"""Two real Celery workers sweeping the same outbox at once, delivering to a real receiver."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway.db import utcnow
from gateway.tasking import BEAT_WEBHOOKS
from gateway.webhooks.events import emit
from gateway.webhooks.models import WebhookDelivery
from gateway.webhooks.service import create_subscription
from tests.conftest import make_test_app
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_signature import verify_signature
from tests.workers import Workers

EVENTS = 40


class SlowReceiver(Receiver):
    """Takes a moment over each request, so that the workers' sweeps overlap, and counts
    how many requests it held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self._count = threading.Lock()
        self.status = 200

    def start(self) -> SlowReceiver:
        super().start()
        handler = self._server.RequestHandlerClass  # type: ignore[union-attr]
        receiver, answer = self, handler.do_POST

        def slow_post(request_handler: object) -> None:
            with receiver._count:
                receiver.in_flight += 1
                receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
            try:
                time.sleep(0.05)  # a receiver's own work, not a wait for the test
                answer(request_handler)  # type: ignore[arg-type]
            finally:
                with receiver._count:
                    receiver.in_flight -= 1

        handler.do_POST = slow_post
        return self


@pytest.fixture
def workers(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(
        {
            "DATABASE_URL": database_url,
            "SURVEY_GATEWAY_VAR_DIR": str(tmp_path / "workers"),
            "WEBHOOK_BATCH_SIZE": "3",  # many small sweeps, so the two workers share the work
        },
        redis_url,
        tmp_path / "logs",
    )
    try:
        yield running
    finally:
        running.stop_all()


@pytest.mark.slow
def test_two_workers_delivering_at_once_send_each_event_exactly_once(
    live_app: Flask, database_url: str, workers: Workers, tmp_path: Path
) -> None:
    receiver = SlowReceiver().start()
    try:
        database = live_app.extensions["database"]
        with live_app.app_context():
            session = database.session_factory()
            subscription = create_subscription(
                session, url=receiver.url, events=["survey.completed"], actor="test", now=utcnow()
            )
            secret = subscription.secret
            for n in range(EVENTS):
                emit(session, "survey.completed", {"n": n}, utcnow(), subscriptions=[subscription])
            session.commit()

        nodes = [
            workers.start("hooks-a", "background", 2),
            workers.start("hooks-b", "background", 2),
        ]
        workers.wait_ready(nodes)
        publisher = make_test_app(
            database_url,
            tmp_path / "publisher",
            redis_url=workers.redis_url,
            task_queue_prefix=workers.prefix,
        )
        celery = publisher.extensions["celery"]
        for _ in range(24):  # beat's sweeps, piled up behind a busy moment
            celery.send_task(BEAT_WEBHOOKS)
        publisher.extensions["database"].dispose()

        deadline = time.monotonic() + 60
        delivered = 0
        while delivered < EVENTS and time.monotonic() < deadline:
            time.sleep(0.2)
            session.expire_all()
            delivered = (
                session.scalar(select(func.count()).where(WebhookDelivery.status == "delivered"))
                or 0
            )
        attempts = session.scalar(select(func.sum(WebhookDelivery.attempts)))
        session.close()
    finally:
        receiver.stop()

    assert delivered == EVENTS
    per_event = Counter(r.json()["id"] for r in receiver.received)
    assert len(per_event) == EVENTS and set(per_event.values()) == {1}, "each once"
    assert attempts == EVENTS, "no request that was not needed"
    assert receiver.most_in_flight >= 2, "the workers really sent side by side"
    for request in receiver.received:
        assert verify_signature(secret, request.headers["Survey-Gateway-Signature"], request.body)
