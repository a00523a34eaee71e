"""The SMS conversation through signed webhooks, exactly as Twilio posts them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from gateway.config import Settings
from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import (
    Answer,
    AuditEvent,
    Customer,
    Interaction,
    Message,
    SurveySession,
    SurveyStatus,
)
from ivr_flows import load_flows
from sms import texts
from sms.providers import ConsoleSmsProvider
from sms.service import send_first_sms
from tests.conftest import ACCOUNT_SID
from tests.sms.conftest import minutes, new_sid, record_visit, survey_of

PHONE = "+79161234567"
SURVEY_NUMBER = "+15005550006"
FLOW = load_flows()["post_call"]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # The webhooks read the real clock: no quiet hours to depend on the time of day.
    return {"quiet_hours": None, "sms_rate_per_second": 1000.0}


def start_survey(
    session: Session, settings: Settings, phone: str = PHONE, language: str = "ru"
) -> Interaction:
    """A visit whose first SMS went out just now (console provider)."""
    now = utcnow()
    visit = record_visit(
        session, settings, ended_at=now - minutes(61), phone=phone, language=language
    )
    sweep(session, settings, now)
    session.commit()
    outcome = send_first_sms(
        session, settings, ConsoleSmsProvider(), visit.survey.id, now, lambda _s: None
    )
    assert outcome.result == "sent"
    return visit


def inbound_params(body: str, phone: str = PHONE, sid: str | None = None) -> dict[str, str]:
    sid = sid or new_sid()
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "RU",
        "To": SURVEY_NUMBER,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": phone,
        "ApiVersion": "2010-04-01",
    }


def replied(response: TestResponse) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/xml"
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


@pytest.fixture
def text(twilio_post: Callable[..., TestResponse]) -> Callable[..., list[str]]:
    """The customer texts `body`; returns the gateway's reply messages."""

    def send(body: str, phone: str = PHONE, sid: str | None = None) -> list[str]:
        return replied(twilio_post("/sms/inbound", inbound_params(body, phone, sid)))

    return send


def question(key: str, language: str = "ru") -> str:
    return FLOW.question(key).text_for("sms", language)


def answers_of(session: Session, survey_id: int) -> dict[str, int | None]:
    rows = session.scalars(select(Answer).where(Answer.session_id == survey_id)).all()
    return {a.question_key: a.value for a in rows}


def test_a_customer_answers_question_by_question_and_the_api_shows_the_scores(
    session: Session,
    settings: Settings,
    text: Callable[..., list[str]],
    client: Any,
    auth: dict[str, str],
) -> None:
    visit = start_survey(session, settings)
    assert text("5") == [question("cost")]
    assert text(" 4 ") == [question("speed")]
    assert text("5 - отлично") == [question("politeness")]
    assert text("оценка 4") == [question("quality")]
    assert text("5!") == [FLOW.prompt("thanks", "ru")]

    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.COMPLETED
    body = client.get(f"/api/v1/interactions/{visit.id}", headers=auth).get_json()
    assert body["survey"]["status"] == "completed"
    assert body["scores"] == {"overall": 5, "cost": 4, "speed": 5, "politeness": 4, "quality": 5}


def test_one_reply_answers_several_questions_at_once(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings, language="en")
    assert text("4") == [question("cost", "en")]
    assert text("4,5,3,5") == [FLOW.prompt("thanks", "en")]
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.COMPLETED
    assert answers_of(session, survey.id) == {
        "overall": 4,
        "cost": 4,
        "speed": 5,
        "politeness": 3,
        "quality": 5,
    }


def test_a_reply_that_is_no_answer_gets_one_reprompt_then_the_question_is_skipped(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings)
    assert text("очень хорошо") == [FLOW.prompt("sms_reprompt_rating", "ru")]
    assert text("7") == [question("cost")]
    assert text("3") == [question("speed")]
    assert answers_of(session, survey_of(session, visit).id) == {"overall": None, "cost": 3}


def test_a_retried_delivery_of_the_same_reply_changes_nothing_and_answers_the_same(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings)
    sid = new_sid()
    first = text("5", sid=sid)
    again = text("5", sid=sid)
    assert first == again == [question("cost")]
    assert answers_of(session, survey_of(session, visit).id) == {"overall": 5}
    assert survey_of(session, visit).state["index"] == 1
    inbound = session.scalar(
        select(func.count()).select_from(Message).where(Message.provider_sid == sid)
    )
    assert inbound == 1


def test_a_reply_after_expiry_gets_a_polite_answer_and_changes_nothing(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings)
    assert text("5") == [question("cost")]
    survey = survey_of(session, visit)
    survey.last_sent_at = utcnow() - timedelta(hours=25)
    session.commit()
    assert text("4") == [texts.text("survey_over", "ru")]
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.PARTIAL, "expired, keeping its answer"
    assert answers_of(session, survey.id) == {"overall": 5}
    assert text("3") == [texts.text("survey_over", "ru")]
    assert answers_of(session, survey.id) == {"overall": 5}


def test_a_reply_to_a_finished_survey_gets_a_polite_answer(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings, language="en")
    assert text("5 5 5 5 5") == [FLOW.prompt("thanks", "en")]
    assert text("1") == [texts.text("survey_over", "en")]
    assert answers_of(session, survey_of(session, visit).id)["overall"] == 5


def test_stop_opts_the_number_out_once_closes_the_survey_and_stops_every_channel(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings)
    assert text("5") == [question("cost")]
    assert text("Стоп") == [texts.text("opted_out", "ru")]
    customer = session.scalar(select(Customer).where(Customer.phone == PHONE))
    assert customer is not None and customer.opted_out_at is not None
    assert customer.opt_out_source == "sms:СТОП"
    assert survey_of(session, visit).status is SurveyStatus.PARTIAL
    assert text("STOP") == [], "one confirmation only"
    audit = session.scalars(select(AuditEvent.action)).all()
    assert audit == ["customer.opt_out"]

    now = utcnow()
    call = record_visit(session, settings, ended_at=now - minutes(61), survey="ivr_callback")
    report = sweep(session, settings, now)
    assert report.handed_over == []
    assert survey_of(session, call).not_sent_reason == "customer opted out"


@pytest.mark.parametrize("word", ["START", "unstop", "Старт", "yes"])
def test_start_or_yes_opts_an_opted_out_number_back_in(
    session: Session, settings: Settings, text: Callable[..., list[str]], word: str
) -> None:
    start_survey(session, settings, language="en")
    assert text("stop") == [texts.text("opted_out", "en")]
    assert text(word) == [texts.text("opted_in", "en")]
    customer = session.scalar(select(Customer).where(Customer.phone == PHONE))
    assert customer is not None and customer.opted_out_at is None
    assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all() == [
        "customer.opt_out",
        "customer.opt_in",
    ]


def test_yes_from_a_number_that_never_opted_out_is_just_a_reply(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    start_survey(session, settings, language="en")
    assert text("yes") == [FLOW.prompt("sms_reprompt_rating", "en")]


def test_help_explains_and_keeps_the_survey_where_it_was(
    session: Session, settings: Settings, text: Callable[..., list[str]]
) -> None:
    visit = start_survey(session, settings)
    assert text("помощь") == [texts.text("help", "ru")]
    assert text("4") == [question("cost")]
    assert answers_of(session, survey_of(session, visit).id) == {"overall": 4}


def test_a_number_never_surveyed_gets_no_reply_and_its_text_is_kept(
    session: Session, text: Callable[..., list[str]]
) -> None:
    # Not "this survey has already ended": there never was one.
    assert text("5", phone="+79990001122") == []
    kept = session.scalars(select(Message).where(Message.phone == "+79990001122")).all()
    assert [(m.direction, m.body) for m in kept] == [("inbound", "5")]
    assert text("помощь", phone="+79990001122") == [texts.text("help", "ru")]


def test_an_unsigned_or_forged_inbound_is_refused_and_changes_nothing(
    session: Session, settings: Settings, twilio_post: Callable[..., TestResponse]
) -> None:
    visit = start_survey(session, settings)
    assert twilio_post("/sms/inbound", inbound_params("5"), signed=False).status_code == 403
    forged = twilio_post("/sms/inbound", inbound_params("5"), signature="bm9wZQ==")
    assert forged.status_code == 403
    assert answers_of(session, survey_of(session, visit).id) == {}


# -- delivery status callbacks ------------------------------------------------------------


def status_params(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": PHONE,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": SURVEY_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


@pytest.fixture
def report_status(twilio_post: Callable[..., TestResponse]) -> Callable[..., None]:
    def post(sid: str, status: str, error_code: str | None = None) -> None:
        response = twilio_post("/sms/status", status_params(sid, status, error_code))
        assert response.status_code == 200

    return post


def test_status_callbacks_out_of_order_never_move_the_status_backwards(
    session: Session, settings: Settings, report_status: Callable[..., None]
) -> None:
    visit = start_survey(session, settings)
    sid = survey_of(session, visit).provider_id
    for status in ("sent", "delivered", "sending", "sent", "queued", "undelivered"):
        report_status(sid, status)
    survey = survey_of(session, visit)
    message = session.scalar(select(Message).where(Message.provider_sid == sid))
    assert message is not None and message.status == "delivered"
    assert survey.delivery_status == "delivered"
    assert survey.status is SurveyStatus.ACTIVE


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("30006", "twilio 30006: landline or unreachable carrier"),
        ("30007", "twilio 30007: filtered by the carrier"),
    ],
)
def test_a_failed_first_message_fails_the_survey_with_the_reason(
    session: Session,
    settings: Settings,
    report_status: Callable[..., None],
    code: str,
    reason: str,
) -> None:
    visit = start_survey(session, settings)
    sid = survey_of(session, visit).provider_id
    report_status(sid, "sent")
    report_status(sid, "undelivered", code)
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.FAILED
    assert survey.not_sent_reason == reason
    message = session.scalar(select(Message).where(Message.provider_sid == sid))
    assert message is not None and message.error_code == code


def test_a_failed_callback_with_21610_opts_the_number_out(
    session: Session, settings: Settings, report_status: Callable[..., None]
) -> None:
    visit = start_survey(session, settings)
    report_status(survey_of(session, visit).provider_id, "failed", "21610")
    customer = session.scalar(select(Customer).where(Customer.phone == PHONE))
    assert customer is not None and customer.opt_out_source == "twilio:21610"
    assert survey_of(session, visit).status is SurveyStatus.FAILED


def test_an_unreachable_handset_is_tried_again_later(
    session: Session, settings: Settings, report_status: Callable[..., None]
) -> None:
    visit = start_survey(session, settings)
    report_status(survey_of(session, visit).provider_id, "undelivered", "30003")
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.due_at > utcnow()
    assert survey.started_at is None


@pytest.mark.parametrize(
    ("code", "paused"),
    [("30002", True), ("10001", True), ("63038", True), ("30001", False), ("30022", False)],
)
def test_an_account_or_queue_error_in_a_status_callback_fails_no_survey(
    session: Session,
    settings: Settings,
    report_status: Callable[..., None],
    code: str,
    paused: bool,
) -> None:
    """Twilio accepted the message, then could not send it for the account's sake (30002
    suspended, 10001 not active, 63038 its daily limit) or its queue's (30001 overflow, 30022
    a carrier's rate limit): the customer is not at fault, so the survey is sent again later;
    an account error also pauses the provider for every survey until a probe succeeds."""
    from gateway import circuit

    visit = start_survey(session, settings)
    report_status(survey_of(session, visit).provider_id, "sent")
    report_status(survey_of(session, visit).provider_id, "undelivered", code)
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.not_sent_reason is None and survey.started_at is None
    state = circuit.circuit_of(session, "twilio")
    assert circuit.is_open(state) is paused
    if paused:
        assert state is not None and state.error_code == code
        assert survey.due_at == state.next_probe_at
    else:
        assert survey.due_at > utcnow()


def test_a_status_for_an_unknown_message_is_accepted_and_ignored(
    report_status: Callable[..., None], session: Session
) -> None:
    report_status(new_sid(), "delivered")
    assert session.scalar(select(func.count()).select_from(SurveySession)) == 0
