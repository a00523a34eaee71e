"""A supervisor excludes a single rating on appeal: audited, shown, counted nowhere, reversible."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.models import AuditEvent, SurveySession
from tests.reports.factories import at, report

pytestmark = pytest.mark.both_databases


def _row(client, headers, operator: str, **params):
    rows = report(client, headers, **params).json["operators"]
    return next(r for r in rows if r["operator"]["external_id"] == operator)


def test_an_excluded_rating_counts_in_no_figure_and_reinstating_restores_it(
    client, keys, seeder, session
):
    operator = seeder.operator("op-x", "North")
    kept = [seeder.survey(operator, {"overall": 5, "speed": 5}, at("2026-09-03")) for _ in range(3)]
    unfair = seeder.survey(operator, {"overall": 1, "speed": 1, "cost": 1}, at("2026-09-04"))
    session.commit()
    before = _row(client, keys["north"], "op-x")
    assert (before["responses"], before["csat"], before["distribution"]["1"]) == (4, 0.75, 1)

    response = client.post(
        f"/api/v1/surveys/{unfair.id}/exclusion",
        json={"reason": "The customer was angry about the tariff change (appeal 42)"},
        headers=keys["north"],
    )
    assert response.status_code == 201, response.json
    assert response.json["excluded"] is True
    assert response.json["excluded_by"] == "supervisor:north supervisor"

    after = _row(client, keys["north"], "op-x")
    assert (after["responses"], after["surveys_sent"], after["csat"]) == (3, 3, 1.0)
    assert after["distribution"]["1"] == 0 and after["parameters"] == {"speed": 5.0}
    assert after["excluded"] == 1
    trend = report(client, keys["north"], "/api/v1/reports/operators/op-x/trend").json["points"]
    assert sum(p["responses"] for p in trend) == 3
    funnel = report(client, keys["north"], "/api/v1/reports/funnel").json["operators"]
    assert funnel[0]["excluded"] == 1 and funnel[0]["responses"] == 3

    # Shown as excluded where the interaction is read, never deleted.
    shown = client.get(f"/api/v1/interactions/{unfair.interaction_id}", headers=keys["admin"]).json
    assert shown["survey"]["excluded"] is True
    assert shown["survey"]["exclusion_reason"].startswith("The customer was angry")
    assert shown["scores"] == {"overall": 1, "speed": 1, "cost": 1}

    again = client.post(
        f"/api/v1/surveys/{unfair.id}/exclusion", json={"reason": "twice"}, headers=keys["north"]
    )
    assert again.status_code == 200
    assert again.json["exclusion_reason"].startswith("The customer was angry")

    reinstated = client.delete(
        f"/api/v1/surveys/{unfair.id}/exclusion",
        json={"reason": "appeal reopened"},
        headers=keys["admin"],
    )
    assert reinstated.status_code == 200 and reinstated.json["excluded"] is False
    assert _row(client, keys["north"], "op-x")["responses"] == 4

    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "survey_session", AuditEvent.subject_id == str(unfair.id))
        .order_by(AuditEvent.id)
    ).all()
    assert [(e.action, e.actor) for e in events] == [
        ("survey.exclude", "supervisor:north supervisor"),
        ("survey.reinstate", "admin:head of quality"),
    ]
    assert events[0].detail["reason"].startswith("The customer was angry")
    assert events[0].detail["operator"] == "op-x"
    assert events[1].detail["excluded_for"].startswith("The customer was angry")
    assert session.get(SurveySession, unfair.id) is not None
    assert len(kept) == 3


def test_an_exclusion_needs_a_written_reason(client, keys, seeder, session):
    survey = seeder.survey(seeder.operator("op-y", "North"), {"overall": 1}, at("2026-09-03"))
    session.commit()
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        response = client.post(
            f"/api/v1/surveys/{survey.id}/exclusion", json=body, headers=keys["north"]
        )
        assert response.status_code == 422, body
    assert (
        client.get(f"/api/v1/interactions/{survey.interaction_id}", headers=keys["admin"]).json[
            "survey"
        ]["excluded"]
        is False
    )


def test_an_unknown_survey_is_404(client, keys):
    response = client.post(
        "/api/v1/surveys/999999/exclusion", json={"reason": "x"}, headers=keys["admin"]
    )
    assert response.status_code == 404
