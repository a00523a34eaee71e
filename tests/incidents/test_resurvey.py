"""Survey again after the fix: a follow-up of the same contact on its channel, by the rules of
any survey, counted apart from the operator's contacts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway import survey_state
from gateway.dispatch import REASON_COOLDOWN, sweep
from gateway.incidents import resolve_incident
from gateway.models import Customer, Incident, Interaction, SurveySession, SurveyStatus
from gateway.resurvey import ResurveyError, request_follow_up
from gateway.surveys import record_answer
from ivr_flows.engine import RecordedAnswer
from tests.incidents.conftest import LowScore

MONDAY_10 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


def operator_figures(client: FlaskClient, admin: dict[str, str]) -> dict[str, object]:
    rows = client.get(
        "/api/v1/reports/operators?from=2026-11-23&to=2026-11-23", headers=admin
    ).json["operators"]
    (row,) = [r for r in rows if r["operator"]["external_id"] == "op-7"]
    return {k: row[k] for k in ("surveys_sent", "responses", "overall_mean", "distribution")}


def answer(app: Flask, survey_id: int, overall: int, at: datetime) -> None:
    with app.app_context():
        session = app.extensions["database"].session()
        survey = session.get(SurveySession, survey_id)
        survey.status = SurveyStatus.ACTIVE
        settings = app.config["SETTINGS"]
        record_answer(
            session, survey, RecordedAnswer("overall", overall, str(overall)), settings, at
        )
        survey_state.finish(survey, at, completed=True)
        session.commit()


def test_a_supervisor_surveys_again_after_the_fix_without_touching_the_operators_figures(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    case = low_score(MONDAY_10, overall=1)
    admin = headers("admin")
    olga = headers("supervisor", "Front office", "Olga")
    before = operator_figures(client, admin)
    client.post(
        f"/api/v1/incidents/{case.incident_id}/resolve",
        json={"cause": "wrong_information", "note": "Перезвонили, объяснили"},
        headers=olga,
    )

    url = f"/api/v1/interactions/{case.interaction_id}/resurvey"
    created = client.post(url, headers=olga)
    assert created.status_code == 201, created.json
    follow_up = created.json
    assert (follow_up["follow_up_of"], follow_up["channel"], follow_up["status"]) == (
        case.survey_id,
        "sms",
        "scheduled",
    )
    again = client.post(url, headers=olga)
    assert again.status_code == 409
    assert "already scheduled" in again.json["detail"]
    other_team = client.post(url, headers=headers("supervisor", "Hotline"))
    assert other_team.status_code == 404
    # The contact's survey is still the original one.
    interaction = client.get(f"/api/v1/interactions/{case.interaction_id}", headers=admin).json
    assert interaction["survey"]["id"] == case.survey_id

    answer(app, follow_up["id"], 5, datetime.now(UTC))
    assert operator_figures(client, admin) == before  # not a second contact of the operator
    card = client.get(f"/api/v1/incidents/{case.incident_id}", headers=olga).json
    assert [(f["survey_id"], f["overall"], f["requested_by"]) for f in card["follow_ups"]] == [
        (follow_up["id"], 5, "supervisor:Olga")
    ]
    report = client.get(
        "/api/v1/incidents/report?from=2026-11-23&to=2026-11-23", headers=admin
    ).json["teams"][0]
    assert report["follow_ups"] == {
        "sent": 1,
        "answered": 1,
        "overall_mean": 5.0,
        "original_overall_mean": 1.0,
    }


def test_a_low_score_after_the_fix_reopens_the_incident_instead_of_a_second_one(
    app: Flask,
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    case = low_score(MONDAY_10, overall=2)
    olga = headers("supervisor", "Front office", "Olga")
    client.post(
        f"/api/v1/incidents/{case.incident_id}/resolve",
        json={"cause": "process", "note": "Исправили"},
        headers=olga,
    )
    follow_up = client.post(
        f"/api/v1/interactions/{case.interaction_id}/resurvey", headers=olga
    ).json
    answer(app, follow_up["id"], 1, datetime.now(UTC))
    incidents = client.get("/api/v1/incidents", headers=olga).json
    assert [(i["id"], i["status"], i["reopened_count"]) for i in incidents] == [
        (case.incident_id, "open", 1)
    ]
    history = client.get(f"/api/v1/incidents/{case.incident_id}", headers=olga).json["history"]
    assert history[-1]["actor"] == "system:re-survey"
    assert history[-1]["detail"]["reason"] == "the re-survey after the fix scored 1"


def test_a_web_contact_gets_a_fresh_link_and_a_call_a_call_back(
    client: FlaskClient,
    low_score: Callable[..., LowScore],
    headers: Callable[..., dict[str, str]],
) -> None:
    web = low_score(MONDAY_10, channel="request", survey="web")
    call = low_score(MONDAY_10, channel="call", survey="ivr_callback", operator="op-8")
    olga = headers("supervisor", "Front office", "Olga")
    web_again = client.post(f"/api/v1/interactions/{web.interaction_id}/resurvey", headers=olga)
    assert web_again.json["status"] == "active"
    assert web_again.json["link"]["url"].startswith("https://surveys.example.com/r/")
    call_again = client.post(f"/api/v1/interactions/{call.interaction_id}/resurvey", headers=olga)
    assert (call_again.json["kind"], call_again.json["channel"]) == ("ivr_callback", "ivr")


def test_the_follow_up_keeps_to_opt_out_quiet_hours_and_cooldown(
    app: Flask, low_score: Callable[..., LowScore]
) -> None:
    case = low_score(MONDAY_10, overall=1)
    with app.app_context():
        session = app.extensions["database"].session()
        settings = app.config["SETTINGS"]
        interaction = session.get(Interaction, case.interaction_id)
        original = session.get(SurveySession, case.survey_id)
        original.started_at = MONDAY_10  # the first survey went out within the cooldown
        resolve_incident(
            session,
            session.get(Incident, case.incident_id),
            "supervisor:Olga",
            "process",
            "fixed",
            MONDAY_10 + timedelta(hours=3),
            settings.incident_causes,
        )
        # Requested at 22:30 in Moscow: the SMS waits for the end of the quiet hours...
        late = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)
        follow_up = request_follow_up(session, interaction, "supervisor:Olga", settings, late)
        session.commit()
        report = sweep(session, settings, late)
        assert report.deferred == [(follow_up.id, datetime(2026, 11, 25, 6, 0, tzinfo=UTC))]
        # ...and then goes out: the customer's survey about this same contact is no cooldown.
        report = sweep(session, settings, datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
        assert [sid for _task, sid in report.handed_over] == [follow_up.id]
        session.commit()


def test_a_follow_up_waits_out_a_survey_about_another_contact_and_an_opt_out_refuses_it(
    app: Flask, low_score: Callable[..., LowScore]
) -> None:
    case = low_score(MONDAY_10, overall=1)
    other = low_score(MONDAY_10 + timedelta(days=1), overall=5)
    with app.app_context():
        session = app.extensions["database"].session()
        settings = app.config["SETTINGS"]
        session.get(SurveySession, other.survey_id).started_at = MONDAY_10 + timedelta(days=1)
        noon = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        interaction = session.get(Interaction, case.interaction_id)
        follow_up = request_follow_up(session, interaction, "admin:test", settings, noon)
        session.commit()
        report = sweep(session, settings, noon)
        assert report.not_sent == [(follow_up.id, REASON_COOLDOWN)]
        session.commit()

        customer = session.scalar(select(Customer).where(Customer.phone == "+79161234567"))
        customer.opted_out_at = noon
        session.commit()
        with pytest.raises(ResurveyError, match="opted out"):
            request_follow_up(session, interaction, "admin:test", settings, noon)


def test_the_web_page_keeps_the_first_rating_locked_and_the_fresh_link_takes_the_new_one(
    app: Flask,
    client: FlaskClient,
    auth: dict[str, str],
    headers: Callable[..., dict[str, str]],
) -> None:
    from gateway.reports.rollup import verify
    from tests.factories import interaction_payload

    payload = interaction_payload(channel="request", survey="web", flow="quick_csat")
    created = client.post("/api/v1/interactions", json=payload, headers=auth).json
    first = created["survey"]["link"]["url"].removeprefix("https://surveys.example.com")
    client.post(first, data={"question": "overall", "value": "1"})
    olga = headers("supervisor", "Front office", "Olga")
    (incident,) = client.get("/api/v1/incidents", headers=olga).json
    client.post(
        f"/api/v1/incidents/{incident['id']}/resolve",
        json={"cause": "process", "note": "Исправили"},
        headers=olga,
    )
    again = client.post(f"/api/v1/interactions/{created['id']}/resurvey", headers=olga).json
    second = again["link"]["url"].removeprefix("https://surveys.example.com")
    assert second != first

    assert "Изменить их уже нельзя" in client.get(first).get_data(as_text=True)
    client.post(first, data={"question": "overall", "value": "5"})  # refused: locked
    client.post(second, data={"question": "overall", "value": "5"})
    interaction = client.get(f"/api/v1/interactions/{created['id']}", headers=auth).json
    assert interaction["scores"] == {"overall": 1}  # the contact keeps its first rating
    card = client.get(f"/api/v1/incidents/{incident['id']}", headers=olga).json
    assert [f["overall"] for f in card["follow_ups"]] == [5]
    with app.app_context():
        session = app.extensions["database"].session()
        today = datetime.now(UTC).astimezone(app.config["SETTINGS"].report_zone).date()
        assert verify(session, today, today, app.config["SETTINGS"].report_zone) == []
