"""Two gateway instances on one database serve one call: no state lives in a process."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway.models import Answer, Interaction, SurveySession, SurveyStatus
from tests.conftest import PUBLIC_BASE_URL
from tests.voice.conftest import Call, new_call_sid, post_on_both_at_once

pytestmark = pytest.mark.both_databases


def stored(app: Flask, call_sid: str) -> tuple[SurveySession, dict[str, int | None]]:
    with app.app_context():
        session = app.extensions["database"].session()
        survey = session.scalar(select(SurveySession).where(SurveySession.provider_id == call_sid))
        assert survey is not None
        rows = session.scalars(select(Answer).where(Answer.session_id == survey.id))
        return survey, {a.question_key: a.value for a in rows}


def test_alternate_steps_on_two_instances_complete_one_survey(
    live_app: Flask, other_app: Flask
) -> None:
    clients = [live_app.test_client(), other_app.test_client()]
    call = Call(clients[0])
    call.start("operator=op-1&interaction=pbx-two&flow=post_call_nps&lang=en")
    for turn, digits in enumerate(["5", "4", "3", "2", "1", "8", "1"]):
        call.client = clients[(turn + 1) % 2]
        assert call.press(digits).status_code == 200
    assert call.verbs()[-1] == "Hangup"
    call.client = clients[0]
    call.status("completed")
    survey, answers = stored(other_app, call.call_sid)
    assert survey.status is SurveyStatus.COMPLETED
    assert answers == {"overall": 5, "cost": 4, "speed": 3, "politeness": 2, "quality": 1, "nps": 8}


def test_the_same_step_on_two_instances_at_once_records_one_answer(
    live_app: Flask, other_app: Flask
) -> None:
    call = Call(live_app.test_client())
    call.start("operator=op-1&interaction=pbx-race")
    params = {**call.base_params(), "Digits": "3"}
    bodies = post_on_both_at_once((live_app, other_app), call.action, params)
    assert bodies[0] == bodies[1]
    assert bodies[0][0] == 200
    survey, answers = stored(live_app, call.call_sid)
    assert answers == {"overall": 3}
    assert survey.state == {"index": 1, "reprompts": 0, "pending": None, "step": 1}


def test_the_same_start_on_two_instances_at_once_makes_one_interaction_and_survey(
    live_app: Flask, other_app: Flask
) -> None:
    call = Call(live_app.test_client())
    url = f"{PUBLIC_BASE_URL}/voice/survey?operator=op-4&interaction=pbx-twice"
    params = {**call.base_params(), "DialCallStatus": "completed", "DialCallSid": new_call_sid()}
    bodies = post_on_both_at_once((live_app, other_app), url, params)
    assert bodies[0] == bodies[1]
    assert bodies[0][0] == 200 and b"<Gather" in bodies[0][1]
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        assert session.scalar(select(func.count(Interaction.id))) == 1
        assert session.scalar(select(func.count(SurveySession.id))) == 1
