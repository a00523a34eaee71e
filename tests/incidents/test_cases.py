"""Incidents worked as cases through the API: card, assign, comment, resolve with a cause,
reopen, archive; filters and paging; due times and times per team."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from gateway.db import utcnow
from gateway.incidents import assign_incident, resolve_incident
from gateway.models import Incident
from tests.incidents.conftest import LowScore

# Monday 23 November 2026, 10:00 in Moscow.
MONDAY_10 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_a_case_from_the_low_score_to_the_archive(
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    case = low_score(
        MONDAY_10,
        overall=1,
        cost=2,
        speed=5,
        politeness=1,
        quality=4,
        comment="Никто не перезвонил",
    )
    olga = headers("supervisor", "Front office", "Olga")
    url = f"/api/v1/incidents/{case.incident_id}"

    card = client.get(url, headers=olga).json
    # 24 business hours from Monday 10:00: 8 on Monday, 9 on Tuesday, 7 on Wednesday.
    assert card["due_at"] == "2026-11-25T13:00:00+00:00"  # Wednesday 16:00 in Moscow
    assert card["overdue"] is True
    assert card["low_parameters"] == {"cost": 2, "politeness": 1}
    assert card["comment"] == "Никто не перезвонил"
    assert card["customer_phone"] == "+79161234567"  # her team's customer: she may call back
    assert card["customer_phone_full"] is True
    assert card["first_action_at"] is None
    assert "tariff_or_price" in card["causes"]
    assert {a["question"]: a["value"] for a in card["answers"]}["politeness"] == 1

    assert client.post(f"{url}/assign", json={"assignee": "Olga"}, headers=olga).status_code == 200
    commented = client.post(
        f"{url}/comments", json={"text": "Позвонила, клиент ждёт перерасчёта"}, headers=olga
    )
    assert commented.json["first_action_at"] is not None

    unknown = client.post(f"{url}/resolve", json={"cause": "bad_luck", "note": "x"}, headers=olga)
    assert unknown.status_code == 409
    assert "tariff_or_price" in unknown.json["detail"]  # the choices are named

    resolved = client.post(
        f"{url}/resolve",
        json={"cause": "tariff_or_price", "note": "Перерасчёт сделан"},
        headers=olga,
    ).json
    assert (resolved["status"], resolved["cause"], resolved["overdue"]) == (
        "resolved",
        "tariff_or_price",
        False,
    )
    assert client.post(f"{url}/assign", json={"assignee": "Ivan"}, headers=olga).status_code == 409

    reopened = client.post(f"{url}/reopen", json={"reason": "Клиент снова звонил"}, headers=olga)
    assert reopened.json["status"] == "open"
    assert reopened.json["reopened_count"] == 1
    assert datetime.fromisoformat(reopened.json["due_at"]) > utcnow()  # due again from now
    assert client.post(f"{url}/archive", headers=olga).status_code == 409  # open: resolve first

    client.post(f"{url}/resolve", json={"cause": "process", "note": "Готово"}, headers=olga)
    assert client.post(f"{url}/archive", headers=olga).json["status"] == "archived"
    assert client.get("/api/v1/incidents", headers=olga).json == []  # archived: out of the list
    assert [
        i["id"] for i in client.get("/api/v1/incidents?status=archived", headers=olga).json
    ] == [case.incident_id]

    history = client.get(url, headers=olga).json["history"]
    assert [(h["action"], h["actor"]) for h in history] == [
        ("assign", "supervisor:Olga"),
        ("comment", "supervisor:Olga"),
        ("resolve", "supervisor:Olga"),
        ("reopen", "supervisor:Olga"),
        ("resolve", "supervisor:Olga"),
        ("archive", "supervisor:Olga"),
    ]
    assert history[1]["detail"]["comment"] == "Позвонила, клиент ждёт перерасчёта"


def test_filters_and_paging_of_the_list(
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    recently = utcnow() - timedelta(minutes=30)
    overdue = low_score(MONDAY_10, operator="op-1")
    call = low_score(recently, operator="op-2", channel="call", survey="sms")
    hotline = low_score(recently, operator="op-9", team="Hotline", channel="request", survey="sms")
    admin = headers("admin")

    def ids(query: str, who: dict[str, str] = admin) -> list[int]:
        return [i["id"] for i in client.get(f"/api/v1/incidents{query}", headers=who).json]

    everything = client.get("/api/v1/incidents?limit=2", headers=admin)
    assert everything.headers["X-Total-Count"] == "3"
    assert len(everything.json) == 2
    second_page = client.get("/api/v1/incidents?limit=2&offset=2", headers=admin).json
    assert [i["id"] for i in everything.json + second_page] == [
        hotline.incident_id,
        call.incident_id,
        overdue.incident_id,
    ]
    assert ids("?team=Hotline") == [hotline.incident_id]
    assert ids("?channel=call") == [call.incident_id]
    assert ids("?overdue=true") == [overdue.incident_id]
    assert ids("?operator=op-9") == [hotline.incident_id]
    assert ids("?status=closed") == []  # the earlier name of `resolved`
    assert ids("?assignee=Olga") == []
    assigned = client.post(
        f"/api/v1/incidents/{call.incident_id}/assign", json={"assignee": "Olga"}, headers=admin
    )
    assert assigned.status_code == 200, assigned.json
    assert ids("?assignee=Olga") == [call.incident_id]

    front = headers("supervisor", "Front office")
    assert ids("", front) == [call.incident_id, overdue.incident_id]
    assert ids("?overdue=false", front) == [call.incident_id]
    listed = client.get("/api/v1/incidents", headers=front).json[0]
    assert (listed["team"], listed["channel"], listed["operator"]["external_id"]) == (
        "Front office",
        "call",
        "op-2",
    )
    bad = client.get("/api/v1/incidents?overdue=perhaps", headers=admin)
    assert bad.status_code == 422


def test_another_teams_supervisor_gets_no_card_and_cannot_act(
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    case = low_score(MONDAY_10, team="Hotline")
    headers("supervisor", "Hotline")  # the team exists with its own supervisor
    front = headers("supervisor", "Front office")
    url = f"/api/v1/incidents/{case.incident_id}"
    assert client.get(url, headers=front).status_code == 404
    assert client.post(f"{url}/comments", json={"text": "x"}, headers=front).status_code == 404
    assert client.get(url, headers=headers("integration")).status_code == 403


def test_times_to_first_action_and_to_resolution_per_team_in_business_hours(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    first = low_score(MONDAY_10)
    second = low_score(MONDAY_10 + timedelta(hours=1))
    low_score(MONDAY_10, team="Hotline", operator="op-9")
    with app.app_context():
        session = app.extensions["database"].session()
        causes = app.config["SETTINGS"].incident_causes
        one = session.get(Incident, first.incident_id)
        # Assigned at 12:00 (2 business hours), resolved on Tuesday at 10:00 (9 hours).
        assign_incident(session, one, "supervisor:Olga", "Olga", MONDAY_10 + timedelta(hours=2))
        resolve_incident(
            session,
            one,
            "supervisor:Olga",
            "process",
            "done",
            MONDAY_10 + timedelta(days=1),
            causes,
        )
        two = session.get(Incident, second.incident_id)  # 11:00, assigned at 15:00: 4 hours
        assign_incident(session, two, "supervisor:Olga", "Ivan", MONDAY_10 + timedelta(hours=5))
        session.commit()

    report = client.get(
        "/api/v1/incidents/report?from=2026-11-23&to=2026-11-23", headers=headers("admin")
    ).json
    front, hotline = report["teams"]
    assert front["team"] == "Front office"
    assert (front["opened"], front["resolved"], front["open"]) == (2, 1, 1)
    assert front["time_to_first_action"] == {"n": 2, "mean_hours": 3.0, "median_hours": 3.0}
    assert front["time_to_resolution"] == {"n": 1, "mean_hours": 9.0, "median_hours": 9.0}
    assert front["causes"] == {"process": 1}
    assert (hotline["team"], hotline["opened"], hotline["time_to_first_action"]["n"]) == (
        "Hotline",
        1,
        0,
    )
    scoped = client.get(
        "/api/v1/incidents/report?from=2026-11-23&to=2026-11-23",
        headers=headers("supervisor", "Hotline"),
    ).json
    assert [t["team"] for t in scoped["teams"]] == ["Hotline"]
    quiet_day = client.get(
        "/api/v1/incidents/report?from=2026-11-30&to=2026-11-30", headers=headers("admin")
    )
    assert quiet_day.status_code == 200
    assert quiet_day.json["teams"] == []
    reversed_dates = client.get(
        "/api/v1/incidents/report?from=2026-11-24&to=2026-11-23", headers=headers("admin")
    )
    assert reversed_dates.status_code == 422
