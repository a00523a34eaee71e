"""The importance x quality survey (`post_call_csi`) by SMS, end to end: signed inbound
webhooks, the answers stored, and the CSI the reports compute from them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import Message, SurveyStatus
from ivr_flows import load_flows
from sms.providers import ConsoleSmsProvider
from sms.service import send_first_sms
from tests.sms.conftest import minutes, record_visit, survey_of
from tests.sms.test_conversation import answers_of, inbound_params, replied

FLOW = load_flows()["post_call_csi"]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # The webhooks read the real clock: no quiet hours to depend on the time of day.
    return {"quiet_hours": None, "sms_rate_per_second": 1000.0}


def question(key: str) -> str:
    return FLOW.question(key).text_for("sms", "ru")


def test_a_texter_rates_each_parameter_and_its_importance_and_the_csi_weighs_them(
    session: Session,
    settings: Settings,
    twilio_post: Callable[..., Any],
    client: Any,
    make_api_key: Callable[..., str],
) -> None:
    def text(body: str) -> list[str]:
        return replied(twilio_post("/sms/inbound", inbound_params(body)))

    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), flow="post_call_csi")
    sweep(session, settings, now)
    session.commit()
    outcome = send_first_sms(
        session, settings, ConsoleSmsProvider(), visit.survey.id, now, lambda _s: None
    )
    assert outcome.result == "sent"
    first = session.scalars(select(Message).where(Message.session_id == visit.survey.id)).one()
    assert question("overall") in first.body

    assert text("5") == [question("cost")]
    assert text("2") == [question("importance_cost")]
    assert text("1") == [question("speed")]
    assert text("4") == [question("importance_speed")]
    # Several answers in one reply: speed's importance, politeness and its importance.
    assert text("5 5 3") == [question("quality")]
    assert text("4") == [question("importance_quality")]
    reprompt = FLOW.prompt("sms_reprompt_importance", "ru")
    assert text("не знаю") == [reprompt]
    assert text("не знаю") == [FLOW.prompt("thanks", "ru")]  # skipped; the survey ends

    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.COMPLETED
    assert answers_of(session, survey.id) == {
        "overall": 5,
        "cost": 2,
        "importance_cost": 1,
        "speed": 4,
        "importance_speed": 5,
        "politeness": 5,
        "importance_politeness": 3,
        "quality": 4,
        "importance_quality": None,
    }

    today = now.date()
    response = client.get(
        "/api/v1/reports/operators",
        query_string={
            "from": (today - timedelta(days=1)).isoformat(),
            "to": (today + timedelta(days=1)).isoformat(),
        },
        headers={"Authorization": f"Bearer {make_api_key('admin')}"},
    )
    assert response.status_code == 200, response.json
    (row,) = response.json["operators"]
    # The operator's CSI: speed 75, politeness 100, quality 75 weighed 5, 3 and the stand-in
    # for quality's skipped importance, (5 + 3) / 2 = 4; cost's importance of 1 plays no part
    # (with it the stand-in would be 3 and the CSI 81.82). (5*75 + 3*100 + 4*75) / 12
    assert row["csi"] == pytest.approx(81.25, abs=0.005)
    # The company's: cost 25 weighs 1; the stand-in is (1 + 5 + 3) / 3 = 3.
    assert row["csi_all_parameters"] == pytest.approx((25 + 375 + 300 + 225) / 12, abs=0.005)
