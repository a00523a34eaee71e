"""A low overall score on the IVR opens one incident, as any low score does: for the contact's
operator, due by the incident calendar, seen by the alerts and the incidents list, reported to
a webhook receiver; a follow-up survey's low score reopens the original incident instead."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.alerts import OPENED, due_alerts
from gateway.db import utcnow
from gateway.incidents import FOLLOW_UP_ACTOR, due_at
from gateway.models import (
    Answer,
    AuditEvent,
    Incident,
    IncidentStatus,
    Operator,
    SurveySession,
    SurveyStatus,
)
from gateway.webhooks.models import OutboxEvent
from tests.conftest import PUBLIC_BASE_URL
from tests.voice.conftest import CALLER, HOTLINE, Call, post_on_both_at_once, query_of
from tests.webhooks.conftest import subscribe


def survey_of(session: Session, call: Call) -> SurveySession:
    survey = session.scalar(
        select(SurveySession)
        .where(SurveySession.provider_id == call.call_sid)
        .execution_options(populate_existing=True)
    )
    assert survey is not None
    return survey


def incidents_of(session: Session, survey: SurveySession) -> list[Incident]:
    return list(
        session.scalars(
            select(Incident)
            .where(Incident.session_id == survey.id)
            .execution_options(populate_existing=True)
        )
    )


def operator_id(session: Session, external_id: str) -> int:
    found = session.scalar(select(Operator.id).where(Operator.external_id == external_id))
    assert found is not None
    return found


def outbox(session: Session, event_type: str) -> list[dict[str, Any]]:
    bodies = session.scalars(
        select(OutboxEvent.body).where(OutboxEvent.type == event_type).order_by(OutboxEvent.id)
    )
    return [json.loads(body)["data"] for body in bodies]


def assert_opened_as_any_low_score(
    app: Flask, session: Session, incident: Incident, survey: SurveySession, score: int
) -> None:
    """The incident every low score opens: open, for the operator, due by the calendar."""
    assert incident.session_id == survey.id
    assert incident.operator_id == survey.interaction.operator_id
    assert incident.score == score
    assert incident.status == IncidentStatus.OPEN
    assert incident.reopened_count == 0
    assert incident.assignee is None and incident.first_action_at is None
    assert incident.due_at == due_at(incident.opened_at, app.config["SETTINGS"])


@pytest.mark.both_databases
def test_a_low_overall_score_opens_one_incident_for_the_operator_due_by_the_calendar(
    app: Flask, make_call: Callable[..., Call], session: Session, client: FlaskClient
) -> None:
    call = make_call()
    call.start("operator=op-5&interaction=pbx-low")
    before = utcnow()
    assert call.press("2").status_code == 200
    after = utcnow()
    assert query_of(call.action)["q"] == "cost"  # the survey goes on to the next question

    survey = survey_of(session, call)
    (incident,) = incidents_of(session, survey)
    assert_opened_as_any_low_score(app, session, incident, survey, 2)
    assert incident.operator_id == operator_id(session, "op-5")
    assert before <= incident.opened_at <= after
    # The alerts' sweep finds it to mail the supervisor.
    assert (incident.id, OPENED, 0) in due_alerts(session, utcnow())

    for digit in "4545":
        call.press(digit)
    call.post(call.action, {})  # no comment
    call.status("completed")
    assert survey_of(session, call).status is SurveyStatus.COMPLETED
    assert incidents_of(session, survey) == [incident]
    assert survey_of(session, call).score_overall == 2


@pytest.mark.both_databases
def test_a_retried_low_score_webhook_opens_no_second_incident(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start("operator=op-5")
    action = call.action
    first = call.press("1")
    again = call.post(action, {"Digits": "1", "FinishedOnKey": "", "msg": "Gather End"})
    assert again.data == first.data
    survey = survey_of(session, call)
    assert len(incidents_of(session, survey)) == 1
    count = select(func.count(Answer.id)).where(Answer.session_id == survey.id)
    assert session.scalar(count) == 1


@pytest.mark.both_databases
def test_two_copies_of_a_low_score_at_once_open_one_incident(
    live_app: Flask, other_app: Flask
) -> None:
    call = Call(live_app.test_client())
    call.start("operator=op-5&interaction=pbx-low-race")
    params = {**call.base_params(), "Digits": "1"}
    bodies = post_on_both_at_once((live_app, other_app), call.action, params)
    assert bodies[0] == bodies[1]
    assert bodies[0][0] == 200
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        survey = survey_of(session, call)
        (incident,) = incidents_of(session, survey)
        assert_opened_as_any_low_score(live_app, session, incident, survey, 1)
        assert {a.question_key: a.value for a in survey.answers} == {"overall": 1}


@pytest.mark.both_databases
def test_a_low_score_as_the_last_answer_opens_its_incident_and_completes_the_survey(
    app: Flask, make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start("operator=op-5&flow=quick_csat")
    call.press("1")
    assert call.verbs()[-1] == "Hangup"
    survey = survey_of(session, call)
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.score_overall == 1
    (incident,) = incidents_of(session, survey)
    assert_opened_as_any_low_score(app, session, incident, survey, 1)


@pytest.mark.both_databases
def test_a_score_above_the_threshold_opens_no_incident(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start("operator=op-5")
    call.press("3")
    assert incidents_of(session, survey_of(session, call)) == []


@pytest.mark.both_databases
def test_a_webhook_receiver_gets_incident_opened_for_a_low_score_on_the_ivr(
    app: Flask,
    make_call: Callable[..., Call],
    session: Session,
    client: FlaskClient,
    make_api_key: Callable[..., str],
) -> None:
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='integrations')}"}
    subscribe(client, admin, "https://crm.example.ru/hooks", ["incident.opened"])
    call = make_call()
    call.start("operator=op-5&interaction=pbx-hooked")
    call.press("1")

    survey = survey_of(session, call)
    (incident,) = incidents_of(session, survey)
    assert_opened_as_any_low_score(app, session, incident, survey, 1)
    (opened,) = outbox(session, "incident.opened")
    assert opened["incident"]["id"] == incident.id
    assert opened["incident"]["score"] == 1
    assert opened["interaction"]["external_id"] == "pbx-hooked"
    assert opened["interaction"]["operator"]["external_id"] == "op-5"
    assert opened["customer"]["phone"] == CALLER


@pytest.mark.both_databases
def test_a_webhook_receiver_gets_the_nps_a_caller_gives_on_the_ivr(
    make_call: Callable[..., Call],
    session: Session,
    client: FlaskClient,
    make_api_key: Callable[..., str],
) -> None:
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='integrations')}"}
    subscribe(client, admin, "https://crm.example.ru/hooks", ["customer.nps_changed"])
    call = make_call()
    call.start("operator=op-5&flow=post_call_nps&lang=en")
    for digits in ["5", "4", "5", "4", "5", "3", "1"]:  # the NPS, 3, then its confirmation
        call.press(digits)
    assert call.verbs()[-1] == "Hangup"
    (changed,) = outbox(session, "customer.nps_changed")
    assert (changed["nps"]["score"], changed["nps"]["class"]) == (3, "detractor")
    assert changed["customer"]["phone"] == CALLER


@pytest.mark.both_databases
def test_an_nps_answer_without_a_receiver_is_stored_and_makes_no_event(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start("operator=op-5&flow=post_call_nps&lang=en")
    for digits in ["5", "4", "5", "4", "5", "10", "1"]:
        call.press(digits)
    survey = survey_of(session, call)
    assert survey.status is SurveyStatus.COMPLETED
    assert {a.question_key: a.value for a in survey.answers}["nps"] == 10
    assert survey.score_nps == 10
    assert session.scalar(select(func.count(OutboxEvent.id))) == 0


def test_a_low_score_on_the_follow_up_call_reopens_the_original_incident(
    app: Flask,
    make_call: Callable[..., Call],
    session: Session,
    client: FlaskClient,
    make_api_key: Callable[..., str],
) -> None:
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='quality')}"}
    call = make_call()
    call.start("operator=op-5&interaction=pbx-fixed")
    call.press("1")
    call.status("completed")
    original = survey_of(session, call)
    (incident,) = incidents_of(session, original)
    resolved = client.post(
        f"/api/v1/incidents/{incident.id}/resolve",
        json={"cause": "process", "note": "Исправили"},
        headers=admin,
    )
    assert resolved.status_code == 200, resolved.json
    asked = client.post(f"/api/v1/interactions/{original.interaction_id}/resurvey", headers=admin)
    assert asked.status_code == 201, asked.json
    created = asked.get_json()
    assert created["kind"] == "ivr_callback"

    # The call-back is placed (the sweep hands it over, Twilio gives the call its sid) and
    # the customer answers it.
    follow_up = session.get(SurveySession, created["id"])
    assert follow_up is not None
    back = Call(client, caller=HOTLINE, called=CALLER, direction="outbound-api")
    assert survey_state.hand_over(session, follow_up.id, utcnow() + timedelta(minutes=5))
    follow_up.provider_id = back.call_sid
    session.commit()
    back.post(
        f"{PUBLIC_BASE_URL}/voice/survey?session={follow_up.id}&flow=post_call",
        {"AnsweredBy": "human"},
    )
    back.press("2")

    session.expire_all()
    assert session.scalar(select(func.count(Incident.id))) == 1
    reopened = session.get(Incident, incident.id)
    assert reopened is not None
    assert (reopened.status, reopened.reopened_count) == (IncidentStatus.OPEN, 1)
    assert reopened.due_at is not None and reopened.due_at > reopened.opened_at
    last = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "incident", AuditEvent.subject_id == str(incident.id))
        .order_by(AuditEvent.id.desc())
    ).first()
    assert last is not None
    assert (last.actor, last.action) == (FOLLOW_UP_ACTOR, "incident.reopen")
    assert (last.detail or {}).get("reason") == "the re-survey after the fix scored 2"
