"""`survey-gateway simulate sms` against a real gateway server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from gateway.cli import main
from gateway.db import utcnow
from gateway.dispatch import SEND_SMS_TASK, run_sweep
from gateway.models import Message, SurveySession, SurveyStatus
from ivr_flows import load_flows
from sms.providers import ConsoleSmsProvider
from sms.service import send_first_sms
from sms.texts import first_message
from tests.conftest import empty_database, make_test_app
from tests.serving import serving
from tests.sms.conftest import minutes, record_visit

FLOW = load_flows()["post_call"]


@dataclass
class Gateway:
    app: Flask
    url: str
    var_dir: Path
    database_url: str


@contextmanager
def served(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[Gateway]:
    """The gateway served over HTTP on 127.0.0.1, as `make run` serves it: console provider
    unless `overrides` say otherwise, webhooks signed with the development token kept under
    var/."""
    holder: dict[str, Any] = {}
    server = make_server(
        "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
    )
    url = f"http://127.0.0.1:{server.port}"
    var_dir = tmp_path / "var"
    app = make_test_app(
        database_url,
        var_dir,
        public_base_url=url,
        twilio_auth_token=None,
        quiet_hours=None,
        **overrides,
    )
    holder["app"] = app
    try:
        with serving(server):
            yield Gateway(app, url, var_dir, database_url)
    finally:
        database = app.extensions["database"]
        database.session.remove()
        empty_database(database.engine)
        database.dispose()


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    with served(database_url, tmp_path) as running:
        yield running


def simulate(gateway: Gateway, *args: str, **settings: str) -> Any:
    env = {
        "DATABASE_URL": gateway.database_url,
        "SURVEY_GATEWAY_VAR_DIR": str(gateway.var_dir),
        "TWILIO_AUTH_TOKEN": "",
        "TWILIO_ACCOUNT_SID": "",
        **settings,
    }
    return CliRunner().invoke(main, ["simulate", "sms", "--url", gateway.url, *args], env=env)


def test_the_simulator_shows_the_first_sms_and_answers_the_survey_to_the_end(
    gateway: Gateway,
) -> None:
    with gateway.app.app_context():
        session = gateway.app.extensions["database"].session()
        settings = gateway.app.config["SETTINGS"]
        now = utcnow()
        visit = record_visit(session, settings, ended_at=now - minutes(61), language="en")
        report = run_sweep(session, settings, now)
        [(task, survey_id)] = report.handed_over
        assert task == SEND_SMS_TASK
        # What the worker does with the console provider.
        send_first_sms(session, settings, ConsoleSmsProvider(), survey_id, now, lambda _s: None)
        session.close()

    result = simulate(gateway, "--phone", "8 916 123-45-67", "--replies", "5,4,3,5,4")
    assert result.exit_code == 0, result.output
    output = result.output
    first = first_message(FLOW, "en").splitlines()[0]
    assert f"gateway> {first}" in output
    for key in ("cost", "speed", "politeness", "quality"):
        assert FLOW.question(key).text_for("sms", "en") in output
    assert output.rstrip().endswith("gateway> " + FLOW.prompt("thanks", "en"))

    with gateway.app.app_context():
        session = gateway.app.extensions["database"].session()
        survey = session.get(SurveySession, survey_id)
        assert survey is not None and survey.status is SurveyStatus.COMPLETED
        assert {a.question_key: a.value for a in survey.answers} == {
            "overall": 5,
            "cost": 4,
            "speed": 3,
            "politeness": 5,
            "quality": 4,
        }
        assert survey.interaction_id == visit.id
        session.close()


@pytest.mark.both_databases
def test_a_survey_sms_not_due_yet_is_named_with_its_local_time_and_nothing_is_sent(
    gateway: Gateway,
) -> None:
    with gateway.app.app_context():
        session = gateway.app.extensions["database"].session()
        settings = gateway.app.config["SETTINGS"]
        ended = utcnow() - minutes(10)
        record_visit(session, settings, ended_at=ended)
        session.commit()
        session.close()
    due = (ended + minutes(settings.sms_survey_delay_minutes)).astimezone(settings.report_zone)

    result = simulate(gateway, "--phone", "+79161234567", "--wait", "0", "--replies", "5")
    assert result.exit_code == 1
    assert "the survey SMS to +79161234567 has not gone out yet" in result.output
    assert f"due at {due:%Y-%m-%d %H:%M} (Europe/Moscow)" in result.output
    with gateway.app.app_context():
        session = gateway.app.extensions["database"].session()
        assert session.scalars(select(Message)).all() == []
        session.close()


def test_with_no_survey_sms_the_simulator_fails_saying_why_and_sends_nothing(
    gateway: Gateway,
) -> None:
    result = simulate(gateway, "--phone", "+79161234567", "--wait", "0", "--replies", "5")
    assert result.exit_code == 1
    assert "no survey SMS is waiting for a reply from +79161234567" in result.output
    assert "surveys dispatch-due" in result.output
    with gateway.app.app_context():
        session = gateway.app.extensions["database"].session()
        assert session.scalars(select(Message)).all() == []
        session.close()


def test_no_database_sends_the_replies_anyway(gateway: Gateway) -> None:
    result = simulate(gateway, "--phone", "+79161234567", "--no-database", "--replies", "help")
    assert result.exit_code == 0, result.output
    assert "gateway> Опрос о качестве обслуживания" in result.output


def test_a_wrong_token_is_refused_with_a_hint(gateway: Gateway) -> None:
    result = simulate(
        gateway,
        "--phone",
        "+79161234567",
        "--auth-token",
        "wrong",
        "--no-database",
        "--replies",
        "5",
    )
    assert result.exit_code != 0
    assert "signature was refused" in result.output


SMSC_SECRET = "smsc-simulator-0123456789abcdef"
SMSC_CHECKSUM_SECRET = "smsc-simulator-md5-0123456789"
SMSC_NUMBER = "79037654321"


def test_with_smsc_the_simulator_plays_smsc_and_shows_the_replies_the_gateway_stores(
    database_url: str, tmp_path: Path
) -> None:
    from sms.configured import provider_for
    from tests.fake_smsc import LOGIN, PASSWORD, FakeSmsc

    smsc_env = {
        "SMS_PROVIDER": "smsc",
        "SMSC_LOGIN": LOGIN,
        "SMSC_PASSWORD": PASSWORD,
        "SMSC_SENDER": SMSC_NUMBER,
        "SMSC_CALLBACK_SECRET": SMSC_SECRET,
        "SMSC_CHECKSUM_SECRET": SMSC_CHECKSUM_SECRET,  # the replies carry SMSC's md5
    }
    with FakeSmsc() as fake:
        settings_overrides = {
            "sms_provider": "smsc",
            "smsc_login": LOGIN,
            "smsc_password": PASSWORD,
            "smsc_sender": SMSC_NUMBER,
            "smsc_callback_secret": SMSC_SECRET,
            "smsc_checksum_secret": SMSC_CHECKSUM_SECRET,
            "smsc_api_base_url": fake.base_url,
        }
        with served(database_url, tmp_path, **settings_overrides) as gateway:
            with gateway.app.app_context():
                session = gateway.app.extensions["database"].session()
                settings = gateway.app.config["SETTINGS"]
                now = utcnow()
                record_visit(session, settings, ended_at=now - minutes(61), language="en")
                report = run_sweep(session, settings, now)
                [(task, survey_id)] = report.handed_over
                assert task == SEND_SMS_TASK
                provider = provider_for(settings)
                send_first_sms(session, settings, provider, survey_id, now, lambda _s: None)
                provider.close()
                session.close()

            result = simulate(
                gateway,
                "--phone",
                "+79161234567",
                "--replies",
                "5,4,3,5,4",
                SMSC_API_BASE_URL=fake.base_url,
                **smsc_env,
            )

            assert result.exit_code == 0, result.output
            assert len(fake.messages()) == 1  # the first SMS; the replies wait for a worker
            output = result.output
            assert f"gateway> {first_message(FLOW, 'en').splitlines()[0]}" in output
            for key in ("cost", "speed", "politeness", "quality"):
                assert "gateway> " + FLOW.question(key).text_for("sms", "en") in output
            assert output.rstrip().endswith("gateway> " + FLOW.prompt("thanks", "en"))
            with gateway.app.app_context():
                session = gateway.app.extensions["database"].session()
                survey = session.get(SurveySession, survey_id)
                assert survey is not None and survey.status is SurveyStatus.COMPLETED
                session.close()
