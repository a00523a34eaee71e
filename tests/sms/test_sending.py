"""Sending the first SMS through the real Twilio SDK to a fake of Twilio's REST API."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.dispatch import SEND_SMS_TASK, sweep
from gateway.models import Customer, Message, SurveySession, SurveyStatus
from ivr_flows import load_flows
from sms.configured import provider_for
from sms.providers import ConsoleSmsProvider, TwilioSmsProvider
from sms.service import send_first_sms
from sms.texts import first_message
from tests.conftest import PUBLIC_BASE_URL
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import NOON_MSK, minutes, record_visit, survey_of
from tests.twilio_openapi import assert_matches_twilio_openapi

FROM = "+15005550006"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(hold_cap_seconds=3) as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, object]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": FROM,
        "twilio_timeout_seconds": 1.0,
        "sms_rate_per_second": 100.0,
    }


class Clock:
    """Sleeps recorded, never slept; its time moves by the sleeps only."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def monotonic(self) -> float:
        return sum(self.sleeps)


def claim(session: Session, settings: Settings, now: datetime) -> list[int]:
    report = sweep(session, settings, now)
    session.commit()
    return [survey_id for task, survey_id in report.handed_over if task == SEND_SMS_TASK]


def send(session: Session, settings: Settings, survey_id: int, now: datetime) -> str:
    provider = TwilioSmsProvider(settings)
    try:
        return send_first_sms(session, settings, provider, survey_id, now, Clock().sleep).result
    finally:
        provider.close()


def test_the_first_sms_goes_out_through_the_sdk_with_sender_and_status_callback(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61), language="en")
    [survey_id] = claim(session, settings, NOON_MSK)
    assert send(session, settings, survey_id, NOON_MSK) == "sent"

    [request] = fake.messages()
    assert request.params["To"] == "+79161234567"
    assert request.params["From"] == FROM
    assert request.params["Body"] == first_message(load_flows()["post_call"], "en")
    assert request.params["StatusCallback"] == PUBLIC_BASE_URL + "/sms/status"
    assert request.header("Authorization") is not None
    assert_matches_twilio_openapi(request)

    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.ACTIVE
    assert survey.provider_id == request.sid
    assert survey.started_at == survey.last_sent_at == NOON_MSK
    assert survey.expires_at == NOON_MSK + timedelta(hours=24)
    message = session.scalar(select(Message).where(Message.provider_sid == request.sid))
    assert message is not None and message.direction == "outbound"
    assert message.status == "queued" and message.session_id == survey.id
    assert [a.outcome for a in survey.attempt_log] == ["sent"]

    assert send(session, settings, survey_id, NOON_MSK) == "skipped", "never sent twice"
    assert len(fake.messages()) == 1


def test_messaging_service_sid_replaces_the_from_number(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    service_settings = dataclasses.replace(
        settings, twilio_from_number=None, twilio_messaging_service_sid="MG" + "1" * 32
    )
    record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    [survey_id] = claim(session, service_settings, NOON_MSK)
    assert send(session, service_settings, survey_id, NOON_MSK) == "sent"
    [request] = fake.messages()
    assert_matches_twilio_openapi(request)
    params = request.params
    assert params["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in params


def test_errors_21610_21211_and_500_in_turn(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    phones = ["+79161234561", "+79161234562", "+79161234563"]
    visits = [
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=phone)
        for phone in phones
    ]
    claimed = claim(session, settings, NOON_MSK)
    ids = [survey_of(session, v).id for v in visits]
    assert sorted(claimed) == sorted(ids)
    fake.fail_next("messages", 400, 21610)
    fake.fail_next("messages", 400, 21211)
    fake.fail_next("messages", 500)

    assert [send(session, settings, i, NOON_MSK) for i in ids] == ["failed", "failed", "retry"]

    unsubscribed, invalid, busy = (survey_of(session, v) for v in visits)
    assert unsubscribed.status is SurveyStatus.FAILED
    assert unsubscribed.not_sent_reason == "twilio 21610: the recipient unsubscribed (STOP)"
    customer = session.scalar(select(Customer).where(Customer.phone == phones[0]))
    assert customer is not None and customer.opted_out_at == NOON_MSK
    assert customer.opt_out_source == "twilio:21610"

    assert invalid.status is SurveyStatus.FAILED
    assert invalid.not_sent_reason == "twilio 21211: invalid phone number"
    assert invalid.attempt_log[0].error_code == "21211"

    # 500 is transient: scheduled again after a backoff, then sent by a later sweep.
    assert busy.status is SurveyStatus.SCHEDULED
    assert busy.attempts == 1 and busy.attempt_log[0].outcome == "retry"
    assert NOON_MSK + timedelta(seconds=15) <= busy.due_at <= NOON_MSK + timedelta(seconds=45)
    assert claim(session, settings, NOON_MSK + timedelta(seconds=10)) == []
    later = NOON_MSK + minutes(1)
    assert claim(session, settings, later) == [busy.id]
    assert send(session, settings, busy.id, later) == "sent"
    assert survey_of(session, visits[2]).status is SurveyStatus.ACTIVE
    assert [r.params["To"] for r in fake.messages() if r.sid] == [phones[2]]

    # An opted-out number is not tried again, on any later visit either.
    again = record_visit(session, settings, ended_at=later, phone=phones[0])
    sweep(session, settings, later + minutes(61))
    assert survey_of(session, again).not_sent_reason == "customer opted out"


def test_a_timeout_after_the_request_is_never_retried(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    fake.hold_next("messages", cap_seconds=2)  # answered after the client's 1 s timeout
    [survey_id] = claim(session, settings, NOON_MSK)
    assert send(session, settings, survey_id, NOON_MSK) == "unknown"
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.ACTIVE, "it may have gone out: open for replies"
    assert survey.delivery_status == "unknown"
    assert claim(session, settings, NOON_MSK + minutes(10)) == []
    fake.wait_idle()
    assert len(fake.messages()) == 1


def test_a_customer_who_opted_out_after_the_claim_gets_nothing(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    [survey_id] = claim(session, settings, NOON_MSK)
    customer = survey_of(session, visit).customer
    customer.opted_out_at, customer.opt_out_source = NOON_MSK, "sms:STOP"
    session.commit()
    assert send(session, settings, survey_id, NOON_MSK) == "not_sent"
    assert fake.messages() == []


def test_the_rate_limit_spaces_messages_of_one_sender(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    slow = dataclasses.replace(settings, sms_rate_per_second=2.0)
    for n in range(3):
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=f"+7916123450{n}")
    ids = claim(session, slow, NOON_MSK)
    assert len(ids) == 3
    clock = Clock()
    provider = TwilioSmsProvider(slow)
    try:
        for survey_id in ids:
            assert (
                send_first_sms(
                    session, slow, provider, survey_id, NOON_MSK, clock.sleep, clock.monotonic
                ).result
                == "sent"
            )
    finally:
        provider.close()
    assert clock.sleeps == [0.5, 1.0]
    starts = sorted(session.get(SurveySession, i).started_at for i in ids)
    assert starts == [NOON_MSK, NOON_MSK + timedelta(seconds=0.5), NOON_MSK + timedelta(seconds=1)]


def test_a_batch_spaces_its_messages_at_the_rate_limit(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    from sms.service import send_first_sms_batch

    slow = dataclasses.replace(settings, sms_rate_per_second=2.0)
    for n in range(3):
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=f"+7916123470{n}")
    ids = claim(session, slow, NOON_MSK)
    clock = Clock()
    provider = TwilioSmsProvider(slow)
    try:
        outcomes = send_first_sms_batch(
            session, slow, provider, ids, NOON_MSK, clock.sleep, clock.monotonic
        )
    finally:
        provider.close()
    assert {o.result for o in outcomes.values()} == {"sent"}
    assert clock.sleeps == [0.5, 0.5], "each message at its own slot, half a second apart"


def test_the_send_task_uses_the_configured_provider(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    from sms.tasks import send_survey_sms

    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    # A real clock here: the task reads the time itself.
    survey = survey_of(session, visit)
    survey.status, survey.claimed_until = SurveyStatus.SENDING, NOON_MSK + timedelta(days=3650)
    session.commit()
    assert send_survey_sms(survey.id) == "sent"
    assert len(fake.messages()) == 1


def test_console_provider_prints_the_message_with_the_number_masked(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    console = provider_for(dataclasses.replace(settings, twilio_account_sid=None))
    assert isinstance(console, ConsoleSmsProvider)
    sent = console.send("+79161234567", "Оцените визит: 1-5", None)
    out = capsys.readouterr().out
    assert "Оцените визит: 1-5" in out
    assert "+7********67" in out and "+79161234567" not in out
    assert sent.sid.startswith("SM") and len(sent.sid) == 34


def test_a_batch_of_sends_decides_each_survey_alone(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    """The send task takes the sweep's surveys in batches: one customer's opt-out or invalid
    number changes nothing for the others, and each goes out once."""
    from gateway.optouts import opt_out_phone
    from sms.service import send_first_sms_batch

    phones = [f"+7916123450{n}" for n in range(4)]
    for phone in phones:
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=phone)
    ids = claim(session, settings, NOON_MSK)
    assert len(ids) == 4
    opt_out_phone(session, phones[2], "sms:STOP", NOON_MSK)  # between the sweep and the send
    session.commit()
    fake.fail_next("messages", 400, 21211)  # the first number is invalid
    provider = TwilioSmsProvider(settings)
    try:
        outcomes = send_first_sms_batch(session, settings, provider, ids, NOON_MSK, Clock().sleep)
    finally:
        provider.close()
    by_phone = {survey_of_id(session, i).customer.phone: outcomes[i].result for i in ids}
    assert by_phone == {
        phones[0]: "failed",
        phones[1]: "sent",
        phones[2]: "not_sent",
        phones[3]: "sent",
    }
    assert [r.params["To"] for r in fake.messages() if r.sid] == [phones[1], phones[3]]
    assert {survey_of_id(session, i).status for i in ids} == {
        SurveyStatus.ACTIVE,
        SurveyStatus.FAILED,
        SurveyStatus.NOT_SENT,
    }
    # Sent again, the same batch sends nothing: no survey is claimed any more.
    provider = TwilioSmsProvider(settings)
    try:
        again = send_first_sms_batch(session, settings, provider, ids, NOON_MSK, Clock().sleep)
    finally:
        provider.close()
    assert {o.result for o in again.values()} == {"skipped"}
    assert len([r for r in fake.messages() if r.sid]) == 2


def test_a_refused_account_stops_the_rest_of_the_batch_and_fails_none(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    from sms.service import send_first_sms_batch

    for n in range(3):
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=f"+7916123460{n}")
    ids = claim(session, settings, NOON_MSK)
    fake.fail_next("messages", 401, 20003)  # a rotated auth token
    provider = TwilioSmsProvider(settings)
    try:
        outcomes = send_first_sms_batch(session, settings, provider, ids, NOON_MSK, Clock().sleep)
    finally:
        provider.close()
    assert {o.result for o in outcomes.values()} == {"paused"}
    assert len(fake.requests_to("messages")) == 1, "the others were not tried"
    surveys = [survey_of_id(session, i) for i in ids]
    assert {s.status for s in surveys} == {SurveyStatus.SCHEDULED}
    assert sorted(s.attempts for s in surveys) == [0, 0, 1]
    assert all(a.outcome is not None for s in surveys for a in s.attempt_log), "none in flight"


def survey_of_id(session: Session, survey_id: int) -> SurveySession:
    survey = session.get(SurveySession, survey_id, populate_existing=True)
    assert survey is not None
    return survey
