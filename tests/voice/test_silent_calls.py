"""Calls whose end never reached us, and callers who said STOP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import Customer, Interaction, SurveySession, SurveyStatus
from tests.voice.conftest import CALLER, Call


def test_a_call_survey_without_a_status_callback_is_closed_by_the_sweep_keeping_answers(
    app, make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    call.press("4")
    call.press("5")  # no status callback ever arrives
    survey = session.scalar(select(SurveySession).where(SurveySession.provider_id == call.call_sid))
    settings = app.config["SETTINGS"]

    sweep(session, settings, survey.started_at + timedelta(minutes=30))
    assert survey.status is SurveyStatus.ACTIVE  # a long call is not cut short

    later = survey.started_at + timedelta(minutes=settings.ivr_session_timeout_minutes + 1)
    report = sweep(session, settings, later)
    assert survey.id in report.expired
    assert survey.status is SurveyStatus.PARTIAL
    assert {a.question_key: a.value for a in survey.answers} == {"overall": 4, "cost": 5}


def test_a_caller_who_opted_out_by_sms_is_not_surveyed_on_the_phone(
    make_call: Callable[..., Call], session: Session
) -> None:
    session.add(Customer(phone=CALLER, opted_out_at=utcnow(), opt_out_source="sms:STOP"))
    session.commit()
    call = make_call()
    call.start()
    assert call.verbs() == ["Hangup"]
    assert session.scalar(select(SurveySession)) is None
    assert session.scalar(select(Interaction.external_id)) == call.call_sid
