"""The importance x quality survey (`post_call_csi`) by phone, end to end: signed webhooks,
the answers stored, and the CSI the reports compute from them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.models import SurveyStatus
from tests.conftest import PUBLIC_BASE_URL
from tests.voice.conftest import Call, query_of
from tests.voice.test_voice_survey import answers, survey_of

# (question, key pressed); None: silence, three times (two re-prompts, then skipped)
WALK = [
    ("overall", "4"),
    ("cost", "1"),
    ("importance_cost", "5"),
    ("speed", "5"),
    ("importance_speed", "2"),
    ("politeness", "4"),
    ("importance_politeness", None),
    ("quality", "3"),
    ("importance_quality", "4"),
]


def test_a_caller_rates_each_parameter_and_its_importance_and_the_csi_weighs_them(
    make_call: Callable[..., Call],
    client: FlaskClient,
    make_api_key: Callable[..., str],
    session: Session,
) -> None:
    call = make_call()
    call.start("operator=op-csi&interaction=pbx-csi-1&flow=post_call_csi")
    for key, digit in WALK:
        assert query_of(call.action)["q"] == key
        assert call.heard()[-1] == f"{PUBLIC_BASE_URL}/audio/ru/post_call_csi/q/{key}.wav"
        if digit is None:
            for _ in range(2):
                call.silence()
                assert call.heard() == [
                    f"{PUBLIC_BASE_URL}/audio/ru/post_call_csi/reprompt_importance.wav"
                ]
            call.silence()
        else:
            call.press(digit)
    assert call.verbs() == ["Play", "Hangup"]
    assert call.heard() == [f"{PUBLIC_BASE_URL}/audio/ru/post_call_csi/thanks.wav"]
    call.status("completed")

    assert survey_of(session, call).status is SurveyStatus.COMPLETED
    assert answers(session, call) == {
        key: None if digit is None else int(digit) for key, digit in WALK
    }

    today = utcnow().date()
    response = client.get(
        "/api/v1/reports/operators",
        query_string={
            "from": (today - timedelta(days=1)).isoformat(),
            "to": (today + timedelta(days=1)).isoformat(),
        },
        headers={"Authorization": f"Bearer {make_api_key('admin')}"},
    )
    assert response.status_code == 200, response.json
    (row,) = [r for r in response.json["operators"] if r["operator"]["external_id"] == "op-csi"]
    # The operator's CSI: speed 100, politeness 75, quality 50, weighed 2, 3 and 4, where 3
    # stands in for the skipped importance of politeness: the mean of speed's and quality's
    # importance, never cost's 5. (2*100 + 3*75 + 4*50) / 9
    assert row["csi"] == pytest.approx(625 / 9, abs=0.005)
    # The company's: cost 0 weighs 5, and the stand-in is (5 + 2 + 4) / 3.
    stand_in = 11 / 3
    company = (5 * 0 + 2 * 100 + stand_in * 75 + 4 * 50) / (5 + 2 + stand_in + 4)
    assert row["csi_all_parameters"] == pytest.approx(company, abs=0.005)
    assert row["parameters"] == {"cost": 1.0, "politeness": 4.0, "quality": 3.0, "speed": 5.0}
    assert row["distribution"]["4"] == 1
