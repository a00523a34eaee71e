"""The same inbound SMS delivered twice at the same moment, to two gateway instances."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import Answer, Message
from sms.providers import ConsoleSmsProvider
from sms.service import send_first_sms
from tests.conftest import PUBLIC_BASE_URL, make_test_app, twilio_signature
from tests.sms.conftest import minutes, new_sid, record_visit
from tests.sms.test_conversation import inbound_params, replied


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The survey goes out now, whatever the hour the suite runs at.
    return {"quiet_hours": None}


def test_a_reply_delivered_twice_at_once_is_applied_once_and_answered_the_same(
    live_app: Flask, database_url: str, tmp_path: Path
) -> None:
    settings = live_app.config["SETTINGS"]
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        now = utcnow()
        visit = record_visit(session, settings, ended_at=now - minutes(61), office=None)
        sweep(session, settings, now)
        session.commit()
        send_first_sms(
            session, settings, ConsoleSmsProvider(), visit.survey.id, now, lambda _s: None
        )
        survey_id = visit.survey.id
        session.close()

    other = make_test_app(database_url, tmp_path / "other")
    params = inbound_params("4", sid=new_sid())
    headers = {"X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + "/sms/inbound", params)}
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def deliver(index: int, app: Flask) -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        answers[index] = client.post("/sms/inbound", data=params, headers=headers)

    threads = [
        threading.Thread(target=deliver, args=(i, a)) for i, a in enumerate((live_app, other))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        other.extensions["database"].dispose()

    first, second = (replied(response) for response in answers)
    assert first == second and len(first) == 1
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        assert (
            session.scalar(
                select(func.count()).select_from(Answer).where(Answer.session_id == survey_id)
            )
            == 1
        )
        assert (
            session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.provider_sid == params["MessageSid"])
            )
            == 1
        )
        session.close()
