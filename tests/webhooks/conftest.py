"""Helpers of the webhook tests: surveys answered by SMS through signed Twilio webhooks, a
real receiver on loopback, subscriptions made through the API, a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from gateway.config import Settings
from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import Interaction
from gateway.webhooks.service import DeliveryReport, deliver_due
from sms.providers import ConsoleSmsProvider
from sms.service import send_first_sms
from tests.conftest import ACCOUNT_SID
from tests.sms.conftest import new_sid, record_visit
from tests.webhooks.receiver import Receiver

SURVEY_NUMBER = "+15005550006"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Real clock in the SMS webhooks: no quiet hours; several surveys of one number.
    return {"quiet_hours": None, "survey_cooldown_days": 0, "sms_rate_per_second": 1000.0}


@pytest.fixture
def settings(app: Any) -> Settings:
    return app.config["SETTINGS"]  # type: ignore[no-any-return]


@pytest.fixture
def admin(make_api_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key('admin', name='integrations admin')}"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.stop()


def subscribe(
    client: FlaskClient, admin: dict[str, str], url: str, events: list[str], **extra: Any
) -> dict[str, Any]:
    body = {"url": url, "events": events, **extra}
    response = client.post("/api/v1/webhooks/subscriptions", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


class Clock:
    """Now, as the delivery sweep sees it: the real time, moved forward by the test."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deliver(session: Session, settings: Settings, clock: Clock) -> Callable[[], DeliveryReport]:
    """One delivery sweep at the clock's time."""
    return lambda: deliver_due(session, settings, clock)


def sms_params(body: str, phone: str) -> dict[str, str]:
    sid = new_sid()
    return {
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "MessageSid": sid,
        "SmsStatus": "received",
        "NumMedia": "0",
        "NumSegments": "1",
        "Body": body,
        "To": SURVEY_NUMBER,
        "From": phone,
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }


@pytest.fixture
def answer_by_sms(
    session: Session, settings: Settings, twilio_post: Callable[..., TestResponse]
) -> Callable[..., Interaction]:
    """A visit whose SMS survey goes out now and is answered reply by reply, as Twilio posts
    the customer's texts."""

    def run(
        replies: list[str],
        *,
        phone: str = "+79161234567",
        flow: str = "quick_csat",
        customer_id: str | None = None,
    ) -> Interaction:
        now = utcnow()
        visit = record_visit(
            session,
            settings,
            ended_at=now - timedelta(minutes=61),
            phone=phone,
            flow=flow,
            customer_id=customer_id,
        )
        sweep(session, settings, now)
        session.commit()
        outcome = send_first_sms(
            session, settings, ConsoleSmsProvider(), visit.survey.id, now, lambda _s: None
        )
        assert outcome.result == "sent"
        for reply in replies:
            response = twilio_post("/sms/inbound", sms_params(reply, phone))
            assert response.status_code == 200, response.get_data(as_text=True)
        return visit

    return run
