"""`survey-gateway simulate call` against a real gateway server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from gateway.apikeys import create_api_key
from gateway.cli import main
from gateway.db import utcnow
from gateway.models import ApiRole
from tests.conftest import AUTH_TOKEN, empty_database, make_test_app
from tests.serving import serving


class Server:
    def __init__(self, app: Flask, url: str) -> None:
        self.app, self.url = app, url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """The gateway served over HTTP on loopback, PUBLIC_BASE_URL being its own address."""
    holder: list[Flask] = []
    httpd = make_server("127.0.0.1", 0, lambda env, start: holder[0](env, start), threaded=True)
    url = f"http://127.0.0.1:{httpd.server_port}"
    app = make_test_app(database_url, tmp_path / "var", public_base_url=url)
    holder.append(app)
    try:
        with serving(httpd):
            yield Server(app, url)
    finally:
        database = app.extensions["database"]
        database.session.remove()
        empty_database(database.engine)
        database.dispose()


def api_get(app: Flask, path: str, **query: Any) -> Any:
    with app.app_context():
        session = app.extensions["database"].session()
        _row, key = create_api_key(session, "test", ApiRole.ADMIN, None, utcnow())
        session.commit()
    response = app.test_client().get(
        path, query_string=query, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    return response.get_json()


def simulate(*args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(main, ["simulate", "call", *args], input=input)
    return result


def test_simulated_call_completes_the_survey_and_the_api_shows_the_scores(
    server: Server,
) -> None:
    result = simulate(
        "--operator",
        "op-1",
        "--url",
        server.url,
        "--auth-token",
        AUTH_TOKEN,
        "--from",
        "+79161234567",
        "--interaction",
        "sim-1",
        "--lang",
        "en",
        "--keys",
        "5,4,3,5,4",
    )
    assert result.exit_code == 0, result.output
    # what the caller hears: the prompt texts, from the manifest of the recordings played
    assert "How satisfied are you with our service overall?" in result.output
    assert "Thank you for your answers! Goodbye." in result.output
    assert "interaction: channel=call external_id=sim-1" in result.output
    (item,) = api_get(server.app, "/api/v1/interactions", channel="call", external_id="sim-1")[
        "items"
    ]
    assert item["survey"]["status"] == "completed"
    assert item["scores"] == {"overall": 5, "cost": 4, "speed": 3, "politeness": 5, "quality": 4}
    assert item["operator"]["external_id"] == "op-1"
    assert item["customer"]["phone"] == "+79161234567"


def test_typed_keys_wrong_key_then_hang_up_leaves_a_partial_survey(server: Server) -> None:
    result = simulate(
        "--operator",
        "op-2",
        "--url",
        server.url,
        "--auth-token",
        AUTH_TOKEN,
        "--interaction",
        "sim-2",
        "--lang",
        "en",
        input="9\n4\n\nhangup\n",
    )
    assert result.exit_code == 0, result.output
    assert "Please press a key from 1 to 5" in result.output  # the re-prompt after 9
    assert "caller hung up" in result.output
    (item,) = api_get(server.app, "/api/v1/interactions", channel="call", external_id="sim-2")[
        "items"
    ]
    assert item["survey"]["status"] == "partial"
    assert item["scores"] == {"overall": 4}


def test_a_wrong_token_is_refused_with_an_explanation(server: Server) -> None:
    result = simulate(
        "--operator", "op-1", "--url", server.url, "--auth-token", "wrong", "--keys", "5"
    )
    assert result.exit_code != 0
    assert "signature was refused" in result.output


def test_an_unknown_flow_is_refused_before_calling(server: Server) -> None:
    result = simulate("--operator", "op-1", "--url", server.url, "--flow", "nosuch", "--keys", "5")
    assert result.exit_code == 2
    assert "no IVR flow 'nosuch'" in result.output
    assert "post_call_nps" in result.output
    assert "calling" not in result.output


def test_nps_flow_over_the_simulator(server: Server) -> None:
    result = simulate(
        "--operator",
        "op-3",
        "--url",
        server.url,
        "--auth-token",
        AUTH_TOKEN,
        "--interaction",
        "sim-3",
        "--lang",
        "ru",
        "--flow",
        "post_call_nps",
        "--keys",
        "5,5,5,5,5,10,1",
    )
    assert result.exit_code == 0, result.output
    assert "Вы ввели десять." in result.output
    (item,) = api_get(server.app, "/api/v1/interactions", channel="call", external_id="sim-3")[
        "items"
    ]
    assert item["scores"]["nps"] == 10
    assert item["survey"]["status"] == "completed"


def test_the_simulator_answers_a_console_call_back(
    server: Server, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import timedelta

    from gateway.interactions import CustomerInput, InteractionInput, record_interaction
    from gateway.models import InteractionChannel, SurveyStatus
    from gateway.voice import callback_surveys
    from gateway.voice.tasks import twilio_client

    app = server.app
    with app.app_context():
        session = app.extensions["database"].session()
        interaction, _ = record_interaction(
            session,
            InteractionInput(
                external_id="req-77",
                channel=InteractionChannel.REQUEST,
                ended_at=utcnow(),
                customer=CustomerInput(phone="+79161230077", language="en"),
                survey="ivr_callback",
            ),
            app.config["SETTINGS"],
            utcnow(),
        )
        survey = interaction.survey
        assert survey is not None
        survey.status = SurveyStatus.SENDING
        survey.claimed_until = utcnow() + timedelta(minutes=5)
        session.commit()
        survey_id = survey.id
        call_sid = callback_surveys.place_survey_call(
            app.extensions["database"].session_scope,
            app.config["SETTINGS"],
            survey_id,
            utcnow,
            twilio_client,
        )
    assert call_sid is not None
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SURVEY_GATEWAY_VAR_DIR", str(tmp_path / "cli-var"))
    result = simulate(
        "--session",
        str(survey_id),
        "--url",
        server.url,
        "--auth-token",
        AUTH_TOKEN,
        "--keys",
        "4,4,4,4,4",
    )
    assert result.exit_code == 0, result.output
    assert f"CallSid {call_sid}" in result.output
    assert "How satisfied are you" in result.output
    (item,) = api_get(app, "/api/v1/interactions", channel="request", external_id="req-77")["items"]
    assert item["survey"]["status"] == "completed"
    assert item["survey"]["kind"] == "ivr_callback"
    assert item["scores"]["overall"] == 4
