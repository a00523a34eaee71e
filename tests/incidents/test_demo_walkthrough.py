"""The issue's "done when", walked in a real browser (Debian's headless Chromium): the demo
seed, a supervisor signed in with a demo account goes from the ranking to an operator, to a
contact, to its answers and comment; works an incident (assigned, commented, resolved,
reopened); and the alert about it arrives in a real SMTP server on loopback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from gateway.alerts import send_incident_alerts
from gateway.db import utcnow
from gateway.demo import OFFICES, seed
from gateway.mail import mailer_for
from gateway.models import Incident, IncidentStatus, Interaction, SurveySession, Team
from gateway.websurvey import service as web_survey
from tests.smtp_sink import Sink


@pytest.fixture
def settings_overrides(sink: Sink) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_starttls": False,
        "alert_emails": {OFFICES: "ofis@example.ru"},
    }


# Slow: four days of demo before the browser walk. `make test` walks each page of it
# (tests/incidents/test_browser.py, tests/reports/test_dashboard_browser.py) and seeds the
# same four days (tests/test_demo.py).
@pytest.mark.slow
def test_the_demo_walked_by_a_supervisor_from_ranking_to_comment_and_an_incident_to_email(
    dashboard: Any, live_app: Flask, sink: Sink
) -> None:
    settings = live_app.config["SETTINGS"]
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        summary = seed(session, settings, utcnow(), days=4, web=web_survey)
        password = next(p for user, p, _role in summary.accounts if user == "demo.ofis")
        # An open incident of her team: hers to work.
        incident_id = session.scalar(
            select(Incident.id)
            .join(SurveySession, Incident.session_id == SurveySession.id)
            .join(Interaction, SurveySession.interaction_id == Interaction.id)
            .join(Team, Interaction.team_id == Team.id)
            .where(
                Team.name == OFFICES,
                Incident.status == IncidentStatus.OPEN.value,
            )
            .order_by(Incident.opened_at.desc())
            .limit(1)
        )
        session.close()
    assert incident_id is not None, summary.incidents
    driver = dashboard.driver

    dashboard.sign_in("demo.ofis", password)
    WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)
    dashboard.open("/dashboard/operators")
    assert "Рейтинг операторов" in dashboard.text
    ranking = dashboard.table("ranking")
    assert ranking and all(row["Группа"] == OFFICES for row in ranking), ranking

    # From the ranking to an operator, to a contact with a written comment, to its answers.
    operators = [
        a.get_attribute("href")
        for a in driver.find_elements("css selector", "#ranking tbody tr td.text a")
    ]
    commented: list[Any] = []
    for href in operators:
        dashboard.open(href.removeprefix(dashboard.base_url))
        assert dashboard.path.startswith("/dashboard/operators/demo-op-")
        commented = driver.find_elements(
            "xpath", "//table[@id='surveys']//tr[.//span[@class='comment']]//a"
        )
        if commented:
            break
    assert commented, "the demo's office visits carry written comments"
    row = commented[0].find_element("xpath", "./ancestor::tr")
    comment = row.find_element("css selector", "span.comment").text.strip("“”")
    dashboard.click(commented[0])
    assert dashboard.path.startswith("/dashboard/interactions/")
    steps = driver.find_elements("css selector", "#steps li")
    assert steps[0].get_attribute("data-question") == "overall"
    assert comment and comment in dashboard.text  # the customer's own words

    # The incident worked as a case.
    dashboard.open(f"/dashboard/incidents/{incident_id}")

    submit = dashboard.submit_form
    assert submit("assign", assignee="Руководитель: офисы") == [
        f"Инцидент № {incident_id} назначен: Руководитель: офисы."
    ]
    assert submit("comment", text="Позвонила клиенту") == [
        f"Комментарий добавлен к инциденту № {incident_id}."
    ]
    assert submit("resolve", cause="process", note="Поправили очередь в офисе") == [
        f"Инцидент № {incident_id} решён."
    ]
    assert submit("reopen", reason="Клиент пришёл снова") == [
        f"Инцидент № {incident_id} снова открыт."
    ]
    actions = [r["action"] for r in dashboard.table("history")]
    assert actions[-4:] == ["Назначен", "Комментарий", "Решён", "Открыт снова"]

    # The beat's alert sweep, when the reopened incident runs late: her email arrives.
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        due = session.get(Incident, incident_id).due_at
        mailer = mailer_for(settings)
        report = send_incident_alerts(session, settings, mailer, due + timedelta(minutes=1))
        session.close()
    assert (incident_id, "overdue") in report.sent
    mails = [m for m in sink.messages if m["Subject"].startswith(f"Инцидент №{incident_id} ")]
    assert len(mails) == 1 and mails[0]["To"] == "ofis@example.ru"
    assert "просрочен" in mails[0]["Subject"]
    assert f"/dashboard/incidents/{incident_id}" in mails[0].get_content()
