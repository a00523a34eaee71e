"""An IVR call reaches the reports once: its contact when the survey starts, its frozen score
when it ends, whether the call's first and last steps are written with the ORM or without it;
a webhook Twilio retries counts nothing twice; a subscribed receiver gets survey.completed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Operator, SurveySession, SurveyStatus, Team
from gateway.reports import service
from gateway.reports.rollup import verify
from gateway.webhooks.models import OutboxEvent
from gateway.webhooks.service import create_subscription
from tests.voice.conftest import Call, signed_post

pytestmark = pytest.mark.both_databases


def today(app: Flask) -> service.ReportFilter:
    zone = app.config["SETTINGS"].report_zone
    day = datetime.now(zone).date()
    return service.ReportFilter(day, day, zone=zone)


def report_of(session: Session, app: Flask, operator: str) -> tuple[dict, dict]:
    """The operator's row of today's operators report and of the survey funnel."""
    session.expire_all()
    flt = today(app)
    settings = app.config["SETTINGS"]
    (row,) = [
        r
        for r in service.operators_report(session, flt, settings)
        if r["operator"]["external_id"] == operator
    ]
    (funnel,) = [
        r for r in service.funnel_report(session, flt) if r["operator"]["external_id"] == operator
    ]
    return row, funnel


def no_difference(session: Session, app: Flask) -> None:
    flt = today(app)
    assert verify(session, flt.start, flt.end, flt.zone) == []


def walk(call: Call, keys: str) -> None:
    for digit in keys:
        assert call.press(digit).status_code == 200


@pytest.fixture
def known_operator(session: Session) -> Operator:
    """An operator the gateway knows, in a team: their calls take the usual first step."""
    operator = Operator(external_id="op-known", team=Team(name="Hotline"))
    session.add(operator)
    session.commit()
    return operator


def test_a_completed_call_counts_once_with_its_frozen_score(
    app: Flask, session: Session, make_call: Callable[..., Call], known_operator: Operator
) -> None:
    call = make_call()
    assert call.start("operator=op-known").status_code == 200
    row, funnel = report_of(session, app, "op-known")
    assert (funnel["contacts"], funnel["surveys_sent"], funnel["surveys_completed"]) == (1, 1, 0)
    assert row["responses"] == 0  # running: its score counts once it ends
    no_difference(session, app)

    walk(call, "54345")
    last_step, keys = call.action, {"RecordingUrl": "", "Digits": "#"}
    call.record("https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1", 12)
    assert call.verbs() == ["Play", "Hangup"]
    ended = call.bodies[-1]
    # Twilio retries the last step (a timeout on its side): the same answer, nothing again.
    again = signed_post(call.client, last_step, {**call.base_params(), **keys})
    assert again.get_data(as_text=True) == ended
    assert call.status("completed").status_code == 200

    row, funnel = report_of(session, app, "op-known")
    assert (funnel["contacts"], funnel["surveys_sent"], funnel["surveys_completed"]) == (1, 1, 1)
    assert funnel["surveys_started"] == 1
    assert row["responses"] == 1
    assert row["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}
    assert row["parameters"] == {"cost": 4.0, "politeness": 4.0, "quality": 5.0, "speed": 3.0}
    survey = session.scalar(select(SurveySession).where(SurveySession.provider_id == call.call_sid))
    assert survey is not None
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.score_overall == 5
    assert survey.score_spec is not None  # the weights used, frozen with the score
    no_difference(session, app)


def test_an_operators_first_call_and_a_hang_up_mid_survey_count_once(
    app: Flask, session: Session, make_call: Callable[..., Call]
) -> None:
    call = make_call()
    call.start("operator=op-new")  # an operator the gateway has not seen yet
    walk(call, "43")
    assert call.status("completed").status_code == 200  # the caller hung up

    row, funnel = report_of(session, app, "op-new")
    assert (funnel["contacts"], funnel["surveys_completed"], funnel["surveys_started"]) == (1, 0, 1)
    assert row["responses"] == 1
    assert row["parameters"] == {"cost": 3.0}
    no_difference(session, app)


def test_a_subscribed_receiver_gets_the_calls_survey_completed(
    app: Flask, session: Session, make_call: Callable[..., Call], known_operator: Operator
) -> None:
    create_subscription(
        session,
        url="https://crm.example.com/hooks",
        events=["survey.completed"],
        actor="admin:test",
        now=datetime.now().astimezone(),
    )
    session.commit()
    call = make_call()
    call.start("operator=op-known")
    walk(call, "55555")
    call.silence()  # no comment recorded: Twilio follows the <Redirect> with nothing
    assert call.verbs() == ["Play", "Hangup"]

    session.expire_all()
    (event,) = session.scalars(select(OutboxEvent)).all()
    assert event.type == "survey.completed"
    assert '"overall":5' in event.body.replace(" ", "")
    row, _funnel = report_of(session, app, "op-known")
    assert row["responses"] == 1
    no_difference(session, app)
