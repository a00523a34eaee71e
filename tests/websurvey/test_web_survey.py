"""The web survey as a customer meets it: a link from the API, a page per question, one-tap
first answers, locked once completed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import Answer
from ivr_flows import load_flows
from tests.websurvey.conftest import buttons, path_of, question_key

FLOW = load_flows()["post_call"]


def scores(client: FlaskClient, auth: dict[str, str], resource: dict[str, Any]) -> dict[str, int]:
    body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
    return body["scores"]  # type: ignore[no-any-return]


def test_the_api_returns_an_unguessable_link_its_qr_code_and_a_ready_text(
    post_web: Callable[..., dict[str, Any]], client: FlaskClient, auth: dict[str, str]
) -> None:
    first, second = post_web(), post_web()
    link = first["survey"]["link"]
    token = path_of(first).removeprefix("/r/")
    assert len(token) >= 22  # 128 random bits
    assert token != path_of(second).removeprefix("/r/")
    assert link["url"] in link["text"]
    assert link["text"].startswith("Оцените")
    assert link["qr_svg"].startswith("data:image/svg+xml")
    assert first["survey"]["channel"] == "web"
    assert first["survey"]["status"] == "active"
    expires = link["expires_at"]
    again = client.get(f"/api/v1/interactions/{first['id']}", headers=auth).get_json()
    assert again["survey"]["link"]["url"] == link["url"]
    assert again["survey"]["link"]["expires_at"] == expires


def test_tapping_four_in_the_link_records_the_overall_score_then_the_flow_follows(
    post_web: Callable[..., dict[str, Any]], client: FlaskClient, auth: dict[str, str]
) -> None:
    resource = post_web()
    path = path_of(resource)

    # The link with the score opens a page; opening it records nothing by itself.
    page = client.get(path + "/4")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'action="{path}/4?lang=ru"' in html
    assert "onetap.js" in html
    assert scores(client, auth, resource) == {}

    # Its script (or the button) posts it: the overall score is in, the next question shows.
    response = client.post(path + "/4?lang=ru")
    assert response.status_code == 303
    assert scores(client, auth, resource) == {"overall": 4}
    html = client.get(path).get_data(as_text=True)
    assert question_key(html) == "cost"
    assert FLOW.question("cost").text_for("web", "ru") in html
    assert buttons(html) == ["1", "2", "3", "4", "5"]
    assert "Вопрос 2 из 5" in html

    for key, value in (("cost", "3"), ("speed", "5"), ("politeness", "5")):
        assert client.post(path, data={"question": key, "value": value}).status_code == 303
    client.post(path, data={"question": "quality", "skip": "1"})
    html = client.get(path).get_data(as_text=True)
    assert "Спасибо за ваши оценки!" in html
    body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
    assert body["survey"]["status"] == "completed"
    assert body["scores"] == {"overall": 4, "cost": 3, "speed": 5, "politeness": 5}

    # Locked: neither the one-tap link nor a replayed answer changes anything.
    assert client.post(path + "/1").status_code == 303
    client.post(path, data={"question": "overall", "value": "1"})
    assert client.get(path + "/1").status_code == 303
    assert scores(client, auth, resource) == body["scores"]
    assert "Изменить их уже нельзя" in client.get(path).get_data(as_text=True)


def test_a_double_tap_or_the_back_button_counts_an_answer_once(
    post_web: Callable[..., dict[str, Any]],
    client: FlaskClient,
    auth: dict[str, str],
    session: Session,
) -> None:
    resource = post_web()
    path = path_of(resource)
    client.post(path, data={"question": "overall", "value": "5"})
    client.post(path, data={"question": "overall", "value": "2"})  # the same form again
    client.post(path + "/3")  # the one-tap link, tapped late
    assert scores(client, auth, resource) == {"overall": 5}
    assert question_key(client.get(path).get_data(as_text=True)) == "cost"
    assert session.scalar(select(func.count()).select_from(Answer)) == 1


def test_a_value_the_question_does_not_take_is_refused_and_changes_nothing(
    post_web: Callable[..., dict[str, Any]], client: FlaskClient, auth: dict[str, str]
) -> None:
    resource = post_web()
    path = path_of(resource)
    for value in ("9", "0", "five", ""):
        response = client.post(path, data={"question": "overall", "value": value})
        assert response.status_code == 400
        assert "Выберите один из вариантов" in response.get_data(as_text=True)
    assert client.get(path + "/9").status_code == 303  # no one-tap page for a wrong score
    assert scores(client, auth, resource) == {}


def test_the_nps_question_shows_zero_to_ten_and_the_page_speaks_english(
    post_web: Callable[..., dict[str, Any]], client: FlaskClient
) -> None:
    resource = post_web(
        flow="post_call_nps",
        customer={"phone": "+79161234567", "language": "en", "external_id": "crm-en"},
    )
    path = path_of(resource)
    assert resource["survey"]["link"]["text"].startswith("Please rate")
    for key in ("overall", "cost", "speed", "politeness", "quality"):
        client.post(path, data={"question": key, "value": "5"})
    html = client.get(path).get_data(as_text=True)
    nps = load_flows()["post_call_nps"].question("nps")
    assert nps.text_for("web", "en") in html
    assert buttons(html) == [str(n) for n in range(11)]
    assert "not at all" in html
    assert 'lang="en"' in html
    russian = client.get(path + "?lang=ru").get_data(as_text=True)
    assert nps.text_for("web", "ru") in russian


def test_the_page_works_under_a_strict_content_security_policy(
    post_web: Callable[..., dict[str, Any]], client: FlaskClient
) -> None:
    path = path_of(post_web())
    for response in (client.get(path), client.get(path + "/5")):
        html = response.get_data(as_text=True)
        assert "<script>" not in html and "<style" not in html and "style=" not in html
        assert 'name="viewport"' in html
        csp = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp
        assert response.headers["Referrer-Policy"] == "no-referrer"  # the token stays here
    script = client.get("/r/static/onetap.js")
    assert script.status_code == 200
    assert "form.submit()" in script.get_data(as_text=True)
    script.close()


def test_a_comment_is_taken_once_after_the_scores(
    post_web: Callable[..., dict[str, Any]], client: FlaskClient, session: Session
) -> None:
    path = path_of(post_web())
    for key in ("overall", "cost", "speed", "politeness", "quality"):
        client.post(path, data={"question": key, "value": "4"})
    assert "textarea" in client.get(path).get_data(as_text=True)
    client.post(path + "/comment", data={"comment": "  Очень вежливый оператор  "})
    client.post(path + "/comment", data={"comment": "второй"})
    html = client.get(path).get_data(as_text=True)
    assert "комментарий получен" in html
    assert "textarea" not in html
    comments = session.scalars(
        select(Answer.raw_input).where(Answer.question_key == "comment")
    ).all()
    assert comments == ["Очень вежливый оператор"]


def test_unknown_and_expired_links_say_so_and_the_sweep_closes_expired_surveys(
    post_web: Callable[..., dict[str, Any]],
    client: FlaskClient,
    auth: dict[str, str],
    session: Session,
    app: Any,
) -> None:
    unknown = client.get("/r/not-a-real-token-at-all")
    assert unknown.status_code == 404
    assert "Ссылка не найдена" in unknown.get_data(as_text=True)

    answered, silent = post_web(), post_web()
    client.post(path_of(answered), data={"question": "overall", "value": "2"})
    settings: Settings = app.config["SETTINGS"]
    later = utcnow() + timedelta(days=settings.web_survey_expiry_days, minutes=1)
    sweep(session, settings, later)
    session.commit()
    statuses = [
        client.get(f"/api/v1/interactions/{r['id']}", headers=auth).get_json()["survey"]["status"]
        for r in (answered, silent)
    ]
    assert statuses == ["partial", "expired"]
    closed = client.get(path_of(silent))
    assert closed.status_code == 410
    assert "Опрос завершён" in closed.get_data(as_text=True)


class TestUnlocked:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"web_survey_lock_completed": False}

    def test_with_the_lock_off_a_customer_may_change_the_answers(
        self,
        post_web: Callable[..., dict[str, Any]],
        client: FlaskClient,
        auth: dict[str, str],
    ) -> None:
        resource = post_web(flow="quick_csat")
        path = path_of(resource)
        client.post(path + "/2")
        html = client.get(path).get_data(as_text=True)
        assert "Изменить ответы" in html
        client.post(path + "/again")
        client.post(path, data={"question": "overall", "value": "5"})
        body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
        assert body["scores"] == {"overall": 5}
        assert body["survey"]["status"] == "completed"
