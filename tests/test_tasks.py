"""The core's Celery tasks (gateway/tasks.py), their bodies run as a worker runs them: inside
the app, on its database, with the real clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.models import SurveyStatus
from gateway.tasks import dispatch_due_surveys
from gateway.websurvey.tasks import send_survey_email
from sms.tasks import send_survey_sms
from tests.factories import interaction_payload
from tests.sms.conftest import minutes, record_visit, survey_of
from tests.smtp_sink import Sink


@pytest.fixture
def settings_overrides(sink: Sink) -> dict[str, Any]:
    return {
        "quiet_hours": None,  # the real clock: any hour of the run
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_starttls": False,
    }


def test_the_beats_sweep_hands_a_due_survey_to_the_sms_task_which_sends_it(
    app: Flask, session: Session
) -> None:
    settings = app.config["SETTINGS"]
    due = record_visit(session, settings, ended_at=utcnow() - minutes(61))
    later = record_visit(session, settings, ended_at=utcnow() + timedelta(hours=1))
    with app.app_context():
        assert dispatch_due_surveys.run().startswith("handed over 1 (1 sms, 0 calls), not sent 0")
        assert dispatch_due_surveys.run().startswith("handed over 0, not sent 0")
    survey = survey_of(session, due)
    assert survey.status is SurveyStatus.SENDING
    assert survey_of(session, later).status is SurveyStatus.SCHEDULED

    with app.app_context():  # the SMS channel's task, as the send queue's worker runs it
        assert send_survey_sms.run([survey.id]) == "sent"
        assert send_survey_sms.run(survey.id) == "skipped"  # at most once
    assert survey_of(session, due).status is SurveyStatus.ACTIVE


def test_an_email_survey_is_handed_to_the_email_task_which_sends_the_invitation(
    app: Flask, client: FlaskClient, auth: dict[str, str], sink: Sink
) -> None:
    ended = (utcnow() - minutes(61)).isoformat()
    customer = {"phone": "+79161234567", "email": "ivan@example.ru", "name": "Иван"}
    payload = interaction_payload(
        channel="request", survey="email", ended_at=ended, customer=customer
    )
    created = client.post("/api/v1/interactions", json=payload, headers=auth)
    assert created.status_code == 201, created.get_json()
    survey_id = created.get_json()["survey"]["id"]
    with app.app_context():
        assert dispatch_due_surveys.run().startswith("handed over 1 (0 sms, 0 calls, 1 emails)")
        assert send_survey_email.run(survey_id) == "sent"
        assert send_survey_email.run(survey_id) == "skipped"  # at most once
    (invitation,) = sink.messages
    assert invitation["To"] == "ivan@example.ru"
    assert "Здравствуйте, Иван!" in invitation.get_body(("plain",)).get_content()
