"""In a real browser (Debian's headless Chromium): a supervisor opens an incident from the
list, assigns it, comments, resolves it with a cause and reopens it, seeing a message after
each action. `make screenshots` keeps the list and the card."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from selenium.webdriver.support.ui import WebDriverWait

from gateway.db import utcnow
from gateway.surveys import open_incident
from tests.reports.factories import Seeder


def test_a_supervisor_works_an_incident_from_the_list_to_reopening(
    dashboard: Any, live_app: Flask, live_account: Any
) -> None:
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        seeder = Seeder(session)
        operator = seeder.operator("op-1", "Север", "Анна Петрова")
        ended = utcnow() - timedelta(hours=3)
        survey = seeder.survey(operator, {"overall": 1, "politeness": 1, "speed": 4}, ended)
        incident = open_incident(session, survey, 1, ended, live_app.config["SETTINGS"])
        session.commit()
        incident_id = incident.id
    dashboard.sign_in(live_account("supervisor", "Север", "Ольга"))
    WebDriverWait(dashboard.driver, 20).until(lambda d: "/login" not in d.current_url)
    dashboard.open("/dashboard/incidents")
    assert "Ольга" in dashboard.text, dashboard.text
    (row,) = dashboard.table("incidents")
    assert row["status"] == "Открыт"
    dashboard.screenshot("20-incidents")
    dashboard.click_link(f"№ {incident_id}")
    WebDriverWait(dashboard.driver, 20).until(lambda d: "/incidents/" in d.current_url)
    assert dashboard.path == f"/dashboard/incidents/{incident_id}"
    driver = dashboard.driver

    submit = dashboard.submit_form
    submit("assign", assignee="Ольга")
    assert dashboard.flashes() == [f"Инцидент № {incident_id} назначен: Ольга."]
    submit("comment", text="Позвонила клиенту, объяснила тариф")
    assert dashboard.flashes() == [f"Комментарий добавлен к инциденту № {incident_id}."]
    submit("resolve", cause="tariff_or_price", note="Сделали перерасчёт")
    assert dashboard.flashes() == [f"Инцидент № {incident_id} решён."]
    assert driver.find_element("id", "incident-status").text == "Решён"
    dashboard.screenshot("21-incident-card")
    submit("reopen", reason="Клиент снова недоволен")
    assert dashboard.flashes() == [f"Инцидент № {incident_id} снова открыт."]
    assert driver.find_element("id", "incident-status").text == "Открыт"
    actions = [r["action"] for r in dashboard.table("history")]
    assert actions == ["Назначен", "Комментарий", "Решён", "Открыт снова"]
