"""Email invitations, caught by a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.dispatch import REASON_COOLDOWN, REASON_OPTED_OUT, SEND_EMAIL_TASK, sweep
from gateway.mail import SmtpMailer
from gateway.models import Customer, SurveySession, SurveyStatus
from gateway.optouts import opt_out_phone
from gateway.privacy import erase_customers
from gateway.websurvey.email import send_invitation
from sms.providers import ConsoleSmsProvider
from sms.service import send_first_sms
from tests.conftest import PUBLIC_BASE_URL
from tests.factories import interaction_payload
from tests.sms.conftest import record_visit
from tests.smtp_sink import REFUSED, Sink, free_port


def _last_noon_in_moscow() -> datetime:
    """The latest 12:00 Moscow time (09:00 UTC) in the past: outside the quiet hours, and
    recent enough that the survey links sent then have not expired."""
    now = datetime.now(UTC)
    noon = now.replace(hour=9, minute=0, second=0, microsecond=0)
    return noon if noon <= now else noon - timedelta(days=1)


NOON_MSK = _last_noon_in_moscow()


@pytest.fixture
def settings_overrides(sink: Sink) -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_starttls": False,
        "mail_from": "Служба качества <quality@utility.example.ru>",
        "survey_cooldown_days": 7,
    }


@pytest.fixture
def settings(app: Any) -> Settings:
    return app.config["SETTINGS"]  # type: ignore[no-any-return]


@pytest.fixture
def post_email(client: FlaskClient, auth: dict[str, str]) -> Callable[..., dict[str, Any]]:
    def post(
        ended_at: datetime = NOON_MSK - timedelta(minutes=61), **customer: Any
    ) -> dict[str, Any]:
        given = {"phone": "+79161234567", "email": "ivan@example.ru", "name": "Иван", **customer}
        payload = interaction_payload(
            channel="request", survey="email", ended_at=ended_at.isoformat(), customer=given
        )
        response = client.post("/api/v1/interactions", json=payload, headers=auth)
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    return post


def due(session: Session, settings: Settings, now: datetime) -> list[int]:
    """One sweep; the ids of the email surveys it handed over."""
    report = sweep(session, settings, now)
    session.commit()
    return [sid for task, sid in report.handed_over if task == SEND_EMAIL_TASK]


def send(session: Session, settings: Settings, survey_id: int, now: datetime) -> str:
    return send_invitation(session, settings, SmtpMailer(settings), survey_id, now).result


def test_an_email_invitation_arrives_with_working_one_tap_buttons(
    post_email: Callable[..., dict[str, Any]],
    session: Session,
    settings: Settings,
    sink: Sink,
    client: FlaskClient,
    auth: dict[str, str],
) -> None:
    resource = post_email()
    assert resource["survey"]["status"] == "scheduled"
    link = resource["survey"]["link"]["url"]
    assert due(session, settings, NOON_MSK - timedelta(minutes=5)) == []  # not before the delay
    (survey_id,) = due(session, settings, NOON_MSK)
    assert send(session, settings, survey_id, NOON_MSK) == "sent"
    assert send(session, settings, survey_id, NOON_MSK) == "skipped"  # at most once

    (message,) = sink.messages
    assert message["To"] == "ivan@example.ru"
    assert message["Subject"] == "Оцените, пожалуйста, наше обслуживание"
    assert message["List-Unsubscribe"].strip() == f"<{link}/unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Здравствуйте, Иван!" in text
    assert link in text
    buttons = re.findall(r'<a href="([^"]+)"[^>]*>(\d+)</a>', html)
    assert [score for _, score in buttons] == ["1", "2", "3", "4", "5"]

    four = dict((s, u) for u, s in buttons)["4"].removeprefix(PUBLIC_BASE_URL)
    assert client.get(four).status_code == 200  # the button opens the one-tap page
    client.post(four)  # which posts it
    body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
    assert body["scores"] == {"overall": 4}
    assert body["survey"]["status"] == "active"
    assert body["survey"]["channel"] == "email"


def test_email_follows_the_sms_rules_quiet_hours_opt_out_and_cooldown_across_channels(
    post_email: Callable[..., dict[str, Any]],
    session: Session,
    settings: Settings,
    sink: Sink,
) -> None:
    late = datetime(2026, 3, 10, 19, 30, tzinfo=UTC)  # 22:30 in Moscow
    post_email(ended_at=late - timedelta(minutes=61))
    report = sweep(session, settings, late)
    session.commit()
    assert report.handed_over == []
    ((_, until),) = report.deferred
    assert until == datetime(2026, 3, 11, 6, 0, tzinfo=UTC)  # 09:00 in Moscow

    # Olga opted out by SMS: no email either.
    olga = post_email(phone="+79161112233", email="olga@example.ru", external_id="crm-olga")
    opt_out_phone(session, "+79161112233", "sms:STOP", NOON_MSK)
    session.commit()
    # Petr answered an SMS survey two days ago: the cooldown holds across channels.
    two_days_ago = NOON_MSK - timedelta(days=2)
    visit = record_visit(
        session, settings, ended_at=two_days_ago - timedelta(minutes=61), phone="+79164445566"
    )
    sweep(session, settings, two_days_ago)
    session.commit()
    sent = send_first_sms(
        session, settings, ConsoleSmsProvider(), visit.survey.id, two_days_ago, lambda _s: None
    )
    assert sent.result == "sent"
    petr = post_email(phone="+79164445566", email="petr@example.ru")

    report = sweep(session, settings, NOON_MSK)
    session.commit()
    reasons = dict(report.not_sent)
    assert reasons[olga["survey"]["id"]] == REASON_OPTED_OUT
    assert reasons[petr["survey"]["id"]] == REASON_COOLDOWN
    assert sink.messages == []


def test_unsubscribing_from_the_email_stops_every_channel(
    post_email: Callable[..., dict[str, Any]],
    session: Session,
    settings: Settings,
    sink: Sink,
    client: FlaskClient,
) -> None:
    resource = post_email()
    (survey_id,) = due(session, settings, NOON_MSK)
    send(session, settings, survey_id, NOON_MSK)
    (message,) = sink.messages
    unsubscribe = message["List-Unsubscribe"].strip().strip("<>").removeprefix(PUBLIC_BASE_URL)

    page = client.get(unsubscribe)  # what a mail scanner does: nothing changes
    assert "Отказаться от опросов" in page.get_data(as_text=True)
    customer = session.get(Customer, session.get(SurveySession, survey_id).customer_id)
    session.refresh(customer)
    assert customer.opted_out_at is None

    # The mail client's one-click unsubscribe (RFC 8058).
    done = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert "опросов больше не будет" in done.get_data(as_text=True)
    session.refresh(customer)
    assert customer.opted_out_at is not None

    # An office visit of the same number later: no SMS survey.
    later = NOON_MSK + timedelta(days=10)
    visit = record_visit(session, settings, ended_at=later - timedelta(minutes=61))
    report = sweep(session, settings, later)
    session.commit()
    assert dict(report.not_sent)[visit.survey.id] == REASON_OPTED_OUT
    assert resource["survey"]["id"] == survey_id


def test_a_refused_mailbox_fails_the_survey_and_an_unreachable_server_retries(
    post_email: Callable[..., dict[str, Any]],
    session: Session,
    settings: Settings,
) -> None:
    post_email(email=REFUSED)
    (survey_id,) = due(session, settings, NOON_MSK)
    assert send(session, settings, survey_id, NOON_MSK) == "failed"
    survey = session.get(SurveySession, survey_id)
    assert survey is not None
    session.refresh(survey)
    assert survey.status is SurveyStatus.FAILED
    assert "550" in (survey.not_sent_reason or "")

    post_email(phone="+79167778899", email="anna@example.ru")
    (survey_id,) = due(session, settings, NOON_MSK)
    down = dataclasses.replace(settings, smtp_port=free_port())  # nobody listens there
    outcome = send_invitation(session, down, SmtpMailer(down), survey_id, NOON_MSK)
    assert outcome.result == "retry"
    survey = session.get(SurveySession, survey_id)
    assert survey is not None
    session.refresh(survey)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.due_at is not None and survey.due_at > NOON_MSK


def test_erasing_a_customer_clears_the_email_address(
    post_email: Callable[..., dict[str, Any]], session: Session
) -> None:
    resource = post_email()
    customer = session.get(
        Customer, session.get(SurveySession, resource["survey"]["id"]).customer_id
    )
    assert customer.email == "ivan@example.ru"
    erase_customers(session, [customer], "admin:dpo", "request of the customer", NOON_MSK)
    session.commit()
    session.refresh(customer)
    assert customer.email is None
    survey = session.get(SurveySession, resource["survey"]["id"])
    session.refresh(survey)
    assert survey.status is SurveyStatus.NOT_SENT  # nobody left to send it to
