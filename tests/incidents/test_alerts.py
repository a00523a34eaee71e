"""The responsible supervisor is emailed about a new incident at once and again when it is
overdue, each at most once; caught by a real SMTP server on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.alerts import send_incident_alerts
from gateway.db import utcnow
from gateway.incidents import reopen_incident, resolve_incident
from gateway.mail import mailer_for
from gateway.models import Incident, IncidentAlert
from tests.incidents.conftest import LowScore
from tests.smtp_sink import Sink


@pytest.fixture
def settings_overrides(sink: Sink) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_starttls": False,
        "alert_from": "Контроль качества <quality@utility.example.ru>",
        "alert_emails": {"Front office": "olga@example.ru;ivan@example.ru"},
        "alert_to": "qa@example.ru",
    }


def run(app: Flask, now: Any = None, **changes: Any) -> Any:
    with app.app_context():
        settings = dataclasses.replace(app.config["SETTINGS"], **changes)
        session = app.extensions["database"].session()
        return send_incident_alerts(session, settings, mailer_for(settings), now or utcnow())


def test_the_supervisor_hears_of_a_new_incident_once_and_again_when_it_is_overdue(
    app: Flask, low_score: Callable[..., LowScore], sink: Sink
) -> None:
    case = low_score(utcnow() - timedelta(minutes=1), overall=1, politeness=1, comment="Грубо")
    assert run(app).sent == [(case.incident_id, "opened")]
    assert run(app).sent == []  # at most once
    (mail,) = sink.messages
    assert mail["To"] == "olga@example.ru, ivan@example.ru"
    assert mail["From"] == "Контроль качества <quality@utility.example.ru>"
    assert mail["Subject"] == f"Новый инцидент №{case.incident_id}: оценка 1 из 5 — Оператор op-7"
    body = mail.get_content()
    assert "Низкие параметры: politeness 1" in body
    assert "Комментарий клиента: Грубо" in body
    assert f"https://surveys.example.com/dashboard/incidents/{case.incident_id}" in body
    assert "+7916" not in body  # no customer's number in a mail

    with app.app_context():
        due = app.extensions["database"].session().get(Incident, case.incident_id).due_at
    assert run(app, due - timedelta(minutes=1)).sent == []  # not overdue yet
    assert run(app, due + timedelta(minutes=1)).sent == [(case.incident_id, "overdue")]
    assert run(app, due + timedelta(minutes=2)).sent == []
    assert sink.messages[-1]["Subject"].startswith(f"Инцидент №{case.incident_id} просрочен")
    assert len(sink.messages) == 2


def test_a_resolved_incident_is_never_overdue_and_other_teams_go_to_alert_to(
    app: Flask, client: Any, low_score: Callable[..., LowScore], sink: Sink
) -> None:
    case = low_score(utcnow() - timedelta(minutes=1), team="Hotline", operator="op-9")
    run(app)
    assert [m["To"] for m in sink.messages] == ["qa@example.ru"]
    with app.app_context():
        session = app.extensions["database"].session()
        incident = session.get(Incident, case.incident_id)
        incident.status = "resolved"
        due = incident.due_at
        session.commit()
    assert run(app, due + timedelta(minutes=1)).sent == []


def test_without_recipients_or_with_the_server_down_the_alert_is_recorded_not_repeated(
    app: Flask, low_score: Callable[..., LowScore], sink: Sink
) -> None:
    nobody = low_score(utcnow() - timedelta(minutes=1), team="Hotline", operator="op-9")
    assert run(app, alert_to=None).no_recipient == [(nobody.incident_id, "opened")]
    down = low_score(utcnow() - timedelta(minutes=1))
    assert run(app, smtp_port=1).failed == [(down.incident_id, "opened")]
    assert run(app).sent == []  # neither is sent later: at most once
    assert sink.messages == []
    with app.app_context():
        outcomes = (
            app.extensions["database"]
            .session()
            .scalars(select(IncidentAlert.outcome).order_by(IncidentAlert.incident_id))
        )
        assert list(outcomes) == ["no_recipient", "failed"]


def test_an_incident_opened_before_the_lookback_gets_no_alert(
    app: Flask, low_score: Callable[..., LowScore], sink: Sink
) -> None:
    low_score(utcnow() - timedelta(days=10))  # history at the first start after an upgrade
    assert run(app).sent == []


def test_the_beats_alert_task_mails_the_supervisor_and_says_what_it_sent(
    app: Flask, low_score: Callable[..., LowScore], sink: Sink
) -> None:
    from gateway.tasks import send_incident_alerts as alert_task

    low_score(utcnow() - timedelta(minutes=1), overall=2)
    with app.app_context():
        assert alert_task.run() == "alerts: 1 sent, 0 failed, 0 without recipient"
        assert alert_task.run() == "alerts: 0 sent, 0 failed, 0 without recipient"
    assert [mail["To"] for mail in sink.messages] == ["olga@example.ru, ivan@example.ru"]


def test_a_reopened_incident_is_due_again_and_alerted_again_when_late(
    app: Flask, low_score: Callable[..., LowScore], sink: Sink
) -> None:
    case = low_score(utcnow() - timedelta(minutes=1), overall=1)
    run(app)
    with app.app_context():
        first_due = app.extensions["database"].session().get(Incident, case.incident_id).due_at
    assert run(app, first_due + timedelta(minutes=1)).sent == [(case.incident_id, "overdue")]

    reopened_at = first_due + timedelta(hours=2)
    with app.app_context():
        session = app.extensions["database"].session()
        settings = app.config["SETTINGS"]
        incident = session.get(Incident, case.incident_id)
        resolve_incident(
            session, incident, "supervisor:olga", "other", "Перезвонили", reopened_at, ("other",)
        )
        reopen_incident(
            session, incident, "supervisor:olga", "Клиент звонил снова", reopened_at, settings
        )
        session.commit()
        second_due = incident.due_at
    assert second_due == app.config["SETTINGS"].business_calendar.add(
        reopened_at, app.config["SETTINGS"].incident_due_hours
    )
    assert run(app, second_due - timedelta(minutes=1)).sent == []  # its own, later, due time
    assert run(app, second_due + timedelta(minutes=1)).sent == [(case.incident_id, "overdue")]
    assert run(app, second_due + timedelta(minutes=2)).sent == []  # once per opening
    subjects = [m["Subject"] for m in sink.messages]
    assert len(subjects) == 3
    assert all(s.startswith(f"Инцидент №{case.incident_id} просрочен") for s in subjects[1:])
