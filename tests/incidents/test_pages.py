"""Incident pages: the list with its filters and pages, the card with its actions and their
messages, in Russian; a supervisor of another team is refused the card."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from gateway.alerts import send_incident_alerts
from gateway.db import utcnow
from gateway.incidents import FOLLOW_UP_ACTOR, reopen_incident, resolve_incident
from gateway.mail import mailer_for
from gateway.models import Incident
from tests.dashboard_client import csrf, sign_in
from tests.incidents.conftest import LowScore
from tests.untranslated import untranslated

MONDAY_10 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def html_of(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_the_list_filters_pages_and_flags_overdue_incidents(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    make_account: Callable[..., str],
) -> None:
    old = low_score(MONDAY_10, politeness=1)
    fresh = [low_score(utcnow() - timedelta(minutes=n + 1), operator="op-2") for n in range(26)]
    sign_in(client, make_account("supervisor", team="Front office", name="Ольга"))
    first = html_of(client, "/dashboard/incidents")
    assert "27 инцидентов" in first
    assert "Страница 1 из 2" in first
    assert f'data-incident="{fresh[0].incident_id}"' in first
    assert f'data-incident="{old.incident_id}"' not in first  # the oldest is on page 2
    second = html_of(client, "/dashboard/incidents?page=2")
    row = re.search(
        rf'<tr class="overdue" data-incident="{old.incident_id}">(.*?)</tr>', second, re.S
    )
    assert row is not None and "просрочен" in row.group(1) and "Вежливость 1" in row.group(1)
    overdue = html_of(client, "/dashboard/incidents?overdue=1")
    assert "1 инцидент" in overdue and f'data-incident="{old.incident_id}"' in overdue
    bad = client.get("/dashboard/incidents?status=lost")
    assert bad.status_code == 400 and "Выберите статус из списка." in bad.get_data(as_text=True)


def test_the_card_is_worked_with_a_message_after_each_action(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    make_account: Callable[..., str],
) -> None:
    case = low_score(MONDAY_10, politeness=1, comment="Никто не перезвонил")
    sign_in(client, make_account("supervisor", team="Front office", name="Ольга"))
    url = f"/dashboard/incidents/{case.incident_id}"
    card = html_of(client, url)
    assert 'href="tel:+79161234567"' in card  # her team's customer: she may call back
    assert "Никто не перезвонил" in card
    token = csrf(card)

    def post(action: str, **form: str) -> str:
        response = client.post(
            f"{url}/{action}", data={"csrf_token": token, **form}, follow_redirects=True
        )
        assert response.status_code == 200
        return response.get_data(as_text=True)

    assert f"Инцидент № {case.incident_id} назначен: Ольга." in post("assign", assignee="Ольга")
    assert "Комментарий добавлен" in post("comment", text="Позвонила клиенту")
    assert "Выберите причину из списка." in post("resolve", cause="", note="x")
    resolved = post("resolve", cause="tariff_or_price", note="Сделали перерасчёт")
    assert f"Инцидент № {case.incident_id} решён." in resolved
    assert "Тариф или цена" in resolved
    assert "Клиент получит повторный опрос" in post("resurvey")
    assert f"Инцидент № {case.incident_id} снова открыт." in post("reopen", reason="Снова звонил")
    again = html_of(client, url)
    assert again.count('data-field="action"') == 4  # assigned, commented, resolved, reopened
    assert "Опросы после исправления" in again

    other = app.test_client()
    sign_in(other, make_account("supervisor", team="Hotline", name="Иван"))
    refused = other.get(url)
    assert refused.status_code == 404
    assert "В ваших группах нет такого инцидента." in refused.get_data(as_text=True)


def test_a_supervisor_of_two_teams_sees_both_and_narrows_by_team(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    make_account: Callable[..., str],
) -> None:
    front = low_score(MONDAY_10, team="Front office", operator="op-1")
    hotline = low_score(MONDAY_10, team="Hotline", operator="op-2")
    elsewhere = low_score(MONDAY_10, team="Back office", operator="op-3")
    sign_in(client, make_account("supervisor", team=["Front office", "Hotline"], name="Ольга"))

    both = html_of(client, "/dashboard/incidents")
    assert "2 инцидента" in both
    assert f'data-incident="{front.incident_id}"' in both
    assert f'data-incident="{hotline.incident_id}"' in both
    assert f'data-incident="{elsewhere.incident_id}"' not in both
    assert '<option value="Hotline"' in both and '<option value="Back office"' not in both

    narrowed = html_of(client, "/dashboard/incidents?team=Hotline")
    assert "1 инцидент" in narrowed
    assert f'data-incident="{hotline.incident_id}"' in narrowed
    assert f'data-incident="{front.incident_id}"' not in narrowed

    # Each card opens, with the number to call back, in either of her teams.
    for case in (front, hotline):
        card = html_of(client, f"/dashboard/incidents/{case.incident_id}")
        assert 'href="tel:+79161234567"' in card
    assert client.get(f"/dashboard/incidents/{elsewhere.incident_id}").status_code == 404
    assert client.get("/dashboard/incidents?team=Back%20office").status_code == 403


def test_the_card_in_russian_translates_reasons_actors_and_alerts(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    make_account: Callable[..., str],
) -> None:
    case = low_score(utcnow() - timedelta(minutes=5), politeness=1, comment="Никто не перезвонил")
    with app.app_context():
        session = app.extensions["database"].session()
        settings = dataclasses.replace(app.config["SETTINGS"], alert_to=None, alert_emails={})
        send_incident_alerts(session, settings, mailer_for(settings), utcnow())  # nobody to tell
        incident = session.get(Incident, case.incident_id)
        resolve_incident(
            session, incident, "admin:boss", "other", "Извинились", utcnow(), ("other",)
        )
        # What a low score on the re-survey after the fix does (gateway.incidents).
        reopen_incident(
            session,
            incident,
            FOLLOW_UP_ACTOR,
            "the re-survey after the fix scored 1",
            utcnow(),
            app.config["SETTINGS"],
        )
        session.commit()
    sign_in(client, make_account("supervisor", team="Front office", name="Ольга"))
    url = f"/dashboard/incidents/{case.incident_id}"
    card = html_of(client, url)
    assert "повторный опрос после исправления: оценка 1" in card
    assert "Повторный опрос после исправления" in card  # who reopened it
    assert "новый инцидент: некому отправить" in card  # the alert's row
    token = csrf(card)
    client.post(f"{url}/resurvey", data={"csrf_token": token})
    refused = client.post(f"{url}/resurvey", data={"csrf_token": token}, follow_redirects=True)
    page = refused.get_data(as_text=True)
    assert "повторный опрос по этому контакту уже идёт" in page
    for html in (page, html_of(client, "/dashboard/incidents?status=active")):
        assert untranslated(html, TYPED) == []


# Team and operator names as the tests' contacts give them.
TYPED = ("Front office",)
