"""The survey funnel, an operator's trend by day, week and month, and the team summary."""

from __future__ import annotations

import pytest

from tests.reports.factories import at, report

pytestmark = pytest.mark.both_databases


@pytest.fixture
def calls(seeder, session):
    anna = seeder.operator("op-f", "North")
    boris = seeder.operator("op-g", "South")
    customer = seeder.customer()
    seeder.survey(anna, {"overall": 5, "speed": 4}, at("2026-09-07", 9), customer=customer)
    seeder.survey(anna, {"overall": 3}, at("2026-09-08", 9), customer=customer, status="partial")
    seeder.survey(boris, {"overall": 4}, at("2026-09-09", 9), customer=customer)  # third time
    seeder.survey(anna, {}, at("2026-09-14", 9), status="expired")
    seeder.survey(anna, {}, at("2026-09-14", 10), status="not_sent")
    seeder.contact(anna, at("2026-09-14", 11), disposition="transferred")
    seeder.contact(anna, at("2026-09-14", 12), disposition="operator_hangup")
    seeder.contact(anna, at("2026-09-15", 12))
    seeder.contact(anna, at("2026-09-15", 13), channel="office_visit")
    session.commit()


def test_the_funnel_shows_contacts_surveys_lost_calls_and_resurveys(client, keys, calls):
    rows = {
        r["operator"]["external_id"]: r
        for r in report(client, keys["admin"], "/api/v1/reports/funnel").json["operators"]
    }
    anna = rows["op-f"]
    assert anna["contacts"] == 8
    assert anna["surveys_offered"] == 4
    assert anna["surveys_not_sent"] == 1
    assert anna["surveys_sent"] == 3  # completed, partial, expired
    assert anna["surveys_started"] == 2
    assert anna["surveys_completed"] == 1
    assert anna["responses"] == 2
    assert anna["calls_without_survey"] == 3  # the office visit is not a call
    assert anna["dispositions"] == {"operator_hangup": 1, "transferred": 1}
    assert anna["resurveys"] == 1  # the same customer, surveyed again the next day
    assert rows["op-g"]["resurveys"] == 1  # and a third time, after Boris's call


def test_the_trend_by_day_week_and_month(client, keys, calls):
    path = "/api/v1/reports/operators/op-f/trend"
    daily = report(client, keys["admin"], path, granularity="day").json
    assert daily["operator"]["external_id"] == "op-f"
    points = {p["period_start"]: p for p in daily["points"]}
    assert points["2026-09-07"]["overall_mean"] == 5.0
    assert points["2026-09-08"]["overall_mean"] == 3.0
    assert points["2026-09-14"]["responses"] == 0 and points["2026-09-14"]["surveys_sent"] == 1
    weekly = report(client, keys["admin"], path, granularity="week").json["points"]
    assert [p["period_start"] for p in weekly] == ["2026-09-07", "2026-09-14"]  # Mondays
    assert weekly[0]["responses"] == 2 and weekly[0]["overall_mean"] == 4.0
    assert weekly[0]["csat"] == 0.5
    monthly = report(client, keys["admin"], path, granularity="month").json["points"]
    assert [p["period_start"] for p in monthly] == ["2026-09-01"]
    assert monthly[0]["responses"] == 2 and monthly[0]["surveys_sent"] == 3
    assert report(client, keys["admin"], path, granularity="year").status_code == 422
    unknown = report(client, keys["admin"], "/api/v1/reports/operators/nobody/trend")
    assert unknown.status_code == 404


def test_the_team_summary_and_its_total(client, keys, calls):
    body = report(client, keys["admin"], "/api/v1/reports/teams").json
    teams = {t["team"]: t for t in body["teams"]}
    assert teams["North"]["operators"] == 1 and teams["North"]["responses"] == 2
    assert teams["South"]["responses"] == 1
    assert body["total"]["responses"] == 3 and body["total"]["operators"] == 2
    assert body["total"]["overall_mean"] == 4.0
    assert body["total"]["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1}
    # A team's CSI is the company's view: every parameter counts.
    assert teams["North"]["csi"] == teams["North"]["csi_all_parameters"]


def test_the_funnel_lists_operators_in_natural_order(client, keys, seeder, session):
    for external_id in ("op-10", "op-2", "op-1", "op-9"):
        seeder.contact(seeder.operator(external_id, "North"), at("2026-09-07", 9))
    session.commit()
    rows = report(client, keys["admin"], "/api/v1/reports/funnel").json["operators"]
    assert [r["operator"]["external_id"] for r in rows] == ["op-1", "op-2", "op-9", "op-10"]
