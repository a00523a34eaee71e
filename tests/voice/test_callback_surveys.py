"""Call-back surveys: outbound calls through the real Twilio SDK to a fake Twilio on loopback."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.interactions import CustomerInput, InteractionInput, OperatorInput, record_interaction
from gateway.models import InteractionChannel, SurveyAttempt, SurveySession, SurveyStatus
from gateway.voice import callback_surveys
from gateway.voice.tasks import place_survey_call as place_survey_call_task
from gateway.voice.tasks import twilio_client
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_test_app
from tests.fake_twilio import FakeTwilio
from tests.twilio_openapi import assert_matches_twilio_openapi, openapi_available
from tests.voice.conftest import Call, query_of

CUSTOMER = "+79161112233"
SURVEY_NUMBER = "+74950000000"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=AUTH_TOKEN) as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": SURVEY_NUMBER,
        "twilio_timeout_seconds": 5.0,
        "ivr_callback_max_attempts": 3,
        "ivr_callback_retry_minutes": 30,
        "ivr_max_concurrent_calls": 10,
    }


def claimed_survey(
    session: Session, external_id: str = "req-1", phone: str = CUSTOMER, language: str | None = None
) -> SurveySession:
    """A call-back survey as the dispatcher hands it over: status sending, leased."""
    interaction, _ = record_interaction(
        session,
        InteractionInput(
            external_id=external_id,
            channel=InteractionChannel.REQUEST,
            ended_at=utcnow(),
            operator=OperatorInput("op-3"),
            customer=CustomerInput(phone=phone, language=language),
            survey="ivr_callback",
        ),
        current_app.config["SETTINGS"],
        utcnow(),
    )
    survey = interaction.survey
    assert survey is not None
    survey.status = SurveyStatus.SENDING
    survey.claimed_until = utcnow() + timedelta(minutes=5)
    session.commit()
    return survey


def place(app: Flask, survey_id: int, now: datetime | None = None) -> str | None:
    """The task's body, as a worker runs it."""
    database = app.extensions["database"]
    return callback_surveys.place_survey_call(
        database.session_scope,
        app.config["SETTINGS"],
        survey_id,
        lambda: now or utcnow(),
        twilio_client,
    )


def refreshed(session: Session, survey_id: int) -> SurveySession:
    survey = session.scalar(
        select(SurveySession)
        .where(SurveySession.id == survey_id)
        .execution_options(populate_existing=True)
    )
    assert survey is not None
    return survey


def attempts(session: Session, survey_id: int) -> list[SurveyAttempt]:
    return list(
        session.scalars(
            select(SurveyAttempt)
            .where(SurveyAttempt.session_id == survey_id)
            .order_by(SurveyAttempt.number)
            .execution_options(populate_existing=True)
        )
    )


def answered_call(app: Flask, call_sid: str) -> Call:
    return Call(
        app.test_client(),
        caller=SURVEY_NUMBER,
        called=CUSTOMER,
        direction="outbound-api",
        call_sid=call_sid,
    )


def test_the_call_is_placed_with_machine_detection_and_status_callbacks(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session, language="en")
    call_sid = place(app, survey.id)
    assert call_sid is not None and call_sid.startswith("CA")

    (request,) = fake.calls()
    assert request.authenticated
    assert request.params["To"] == CUSTOMER
    assert request.params["From"] == SURVEY_NUMBER
    assert request.params["MachineDetection"] == "Enable"
    assert request.params["StatusCallback"] == f"{PUBLIC_BASE_URL}/voice/status"
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert request.params["Url"].startswith(f"{PUBLIC_BASE_URL}/voice/survey?")
    assert query_of(request.params["Url"]) == {
        "session": str(survey.id),
        "flow": "post_call",
        "lang": "en",
    }
    assert int(request.params["Timeout"]) > 0
    if openapi_available():
        assert_matches_twilio_openapi(request)

    survey = refreshed(session, survey.id)
    assert survey.status is SurveyStatus.SENDING
    assert survey.provider_id == call_sid
    assert survey.attempts == 1
    (attempt,) = attempts(session, survey.id)
    assert attempt.provider_id == call_sid and attempt.outcome is None


def test_a_human_answer_runs_the_survey_and_completes_the_attempt(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    call_sid = place(app, survey.id)
    assert call_sid is not None
    url = fake.calls()[0].params["Url"]

    call = answered_call(app, call_sid)
    call.post(url, {"AnsweredBy": "human"})
    assert call.twiml is not None and call.twiml.find("Gather") is not None
    assert refreshed(session, survey.id).status is SurveyStatus.ACTIVE
    for digit in "45454":
        call.press(digit)
    call.post(call.action, {})  # no comment
    assert call.verbs()[-1] == "Hangup"
    call.status("completed", AnsweredBy="human")

    survey = refreshed(session, survey.id)
    assert survey.status is SurveyStatus.COMPLETED
    assert {a.question_key: a.value for a in survey.answers} == {
        "overall": 4,
        "cost": 5,
        "speed": 4,
        "politeness": 5,
        "quality": 4,
        "comment": None,
    }
    (attempt,) = attempts(session, survey.id)
    assert attempt.outcome == "answered" and attempt.finished_at is not None


def test_an_answering_machine_is_hung_up_on_and_the_call_retried_later(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    call_sid = place(app, survey.id)
    assert call_sid is not None
    call = answered_call(app, call_sid)
    call.post(fake.calls()[0].params["Url"], {"AnsweredBy": "machine_end_beep"})
    assert call.verbs() == ["Hangup"]
    call.status("completed", AnsweredBy="machine_end_beep")

    survey = refreshed(session, survey.id)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.due_at is not None
    assert survey.due_at >= utcnow() + timedelta(minutes=29)
    assert survey.answers == []
    (attempt,) = attempts(session, survey.id)
    assert attempt.outcome == "machine"


def test_busy_and_no_answer_are_retried_then_the_customer_is_not_reached(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    outcomes = ["busy", "no-answer", "busy"]
    for number, outcome in enumerate(outcomes, start=1):
        call_sid = place(app, survey.id)
        assert call_sid is not None
        answered_call(app, call_sid).status(outcome)
        # a retried status callback changes nothing
        answered_call(app, call_sid).status(outcome)
        survey = refreshed(session, survey.id)
        assert survey.attempts == number
        if number < len(outcomes):
            assert survey.status is SurveyStatus.SCHEDULED
            survey.status = SurveyStatus.SENDING  # the dispatcher claims it again when due
            session.commit()
    assert survey.status is SurveyStatus.NOT_REACHED
    assert survey.finished_at is not None
    assert [a.outcome for a in attempts(session, survey.id)] == outcomes
    assert len(fake.calls()) == 3


def test_at_the_concurrent_call_cap_the_session_waits_and_is_never_dropped(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], ivr_max_concurrent_calls=1)
    first = claimed_survey(session, "req-a", "+79161110001")
    second = claimed_survey(session, "req-b", "+79161110002")
    first_call = place(app, first.id)
    assert first_call is not None
    assert place(app, second.id) is None
    assert len(fake.calls()) == 1
    waiting = refreshed(session, second.id)
    assert waiting.status is SurveyStatus.SCHEDULED
    assert waiting.due_at is not None and waiting.due_at > utcnow()
    assert waiting.attempts == 0 and attempts(session, second.id) == []

    answered_call(app, first_call).status("no-answer")
    waiting.status = SurveyStatus.SENDING
    session.commit()
    assert place(app, second.id) is not None
    assert len(fake.calls()) == 2


def test_a_transient_error_reschedules_with_backoff_without_spending_an_attempt(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    fake.fail_next("calls", 503, 20500)
    now = utcnow()
    assert place(app, survey.id, now) is None
    survey = refreshed(session, survey.id)
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.due_at == now + timedelta(minutes=1)
    assert survey.attempts == 0
    (attempt,) = attempts(session, survey.id)
    assert attempt.outcome == "error" and attempt.error_code == "20500"

    fake.fail_next("calls", 429, 20429)
    survey.status = SurveyStatus.SENDING
    session.commit()
    assert place(app, survey.id, now) is None
    assert refreshed(session, survey.id).due_at == now + timedelta(minutes=2)


def test_a_permanent_error_fails_the_survey_with_the_reason(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    fake.fail_next("calls", 400, 21215)
    assert place(app, survey.id) is None
    survey = refreshed(session, survey.id)
    assert survey.status is SurveyStatus.FAILED
    assert survey.not_sent_reason is not None and "21215" in survey.not_sent_reason
    assert survey.finished_at is not None


def test_a_session_not_claimed_is_not_called(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    survey.status = SurveyStatus.SCHEDULED
    session.commit()
    assert place(app, survey.id) is None
    assert fake.calls() == []


def test_the_task_places_the_call_by_name_with_the_session_id(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    assert place_survey_call_task.name == "gateway.voice.tasks.place_survey_call"
    with app.app_context():
        call_sid = place_survey_call_task.run(survey.id)
    assert call_sid is not None
    assert fake.calls()[0].params["To"] == CUSTOMER


def test_a_call_of_an_older_attempt_is_hung_up_on(
    app: Flask, session: Session, fake: FakeTwilio
) -> None:
    survey = claimed_survey(session)
    place(app, survey.id)
    stale = answered_call(app, "CA" + "f" * 32)
    stale.post(fake.calls()[0].params["Url"], {"AnsweredBy": "human"})
    assert stale.verbs() == ["Hangup"]
    assert refreshed(session, survey.id).status is SurveyStatus.SENDING


def test_console_provider_logs_a_masked_number_and_waits_for_the_simulator(
    app: Flask, session: Session, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], twilio_account_sid=None)
    survey = claimed_survey(session)
    with caplog.at_level(logging.WARNING, logger="gateway.voice.callback_surveys"):
        call_sid = place(app, survey.id)
    assert call_sid is not None
    assert fake.requests == []
    assert CUSTOMER not in caplog.text
    assert "+7********33" in caplog.text
    survey = refreshed(session, survey.id)
    assert survey.provider_id == call_sid
    assert survey.delivery_status == "console"


@pytest.fixture
def live_fake_app(live_app: Flask, fake: FakeTwilio) -> Flask:
    return live_app


def test_the_cap_holds_across_workers_placing_at_once(
    live_fake_app: Flask,
    database_url: str,
    tmp_path: Path,
    fake: FakeTwilio,
    settings_overrides: dict[str, Any],
) -> None:
    apps = [live_fake_app] + [
        make_test_app(
            database_url,
            tmp_path / f"w{i}",
            **{**settings_overrides, "ivr_max_concurrent_calls": 2},
        )
        for i in range(3)
    ]
    apps[0].config["SETTINGS"] = dataclasses.replace(
        apps[0].config["SETTINGS"], ivr_max_concurrent_calls=2
    )
    with apps[0].app_context():
        session = apps[0].extensions["database"].session()
        ids = [claimed_survey(session, f"req-{i}", f"+7916111000{i}").id for i in range(4)]
    barrier = threading.Barrier(4)
    results: list[str | None] = [None] * 4

    def work(index: int) -> None:
        barrier.wait()
        with apps[index].app_context():
            results[index] = place(apps[index], ids[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert sum(r is not None for r in results) == 2
        assert len(fake.calls()) == 2
        with apps[0].app_context():
            session = apps[0].extensions["database"].session()
            statuses = sorted(refreshed(session, i).status.value for i in ids)
        assert statuses == ["scheduled", "scheduled", "sending", "sending"]
    finally:
        for other in apps[1:]:
            other.extensions["database"].dispose()
