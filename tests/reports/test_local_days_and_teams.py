"""What a supervisor sees: local days, the team at the time of each contact, figures that do
not move when a flow's weights change, and a REPORT_TIMEZONE change caught at start-up."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gateway.interactions import move_operator
from gateway.models import AuditEvent, Operator
from gateway.reports import rollup
from gateway.reports.models import RollupState, ScoreBucket
from ivr_flows import load_flows
from tests.conftest import make_test_app
from tests.reports.factories import NPS_FLOW, NPS_FLOWS, Seeder, at, report, session_with_flows

MOSCOW = ZoneInfo("Europe/Moscow")


def _post(client, auth, external_id, ended_at, team, operator="op-t", channel="call"):
    body = {
        "external_id": external_id,
        "channel": channel,
        "ended_at": ended_at,
        "operator": {"external_id": operator, "name": "Tatiana", "team": team},
        "customer": {"phone": "+79161112233"},
        "survey": "none",
    }
    response = client.post("/api/v1/interactions", json=body, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def _contacts(client, headers, start, end):
    rows = report(client, headers, "/api/v1/reports/funnel", **{"from": start, "to": end})
    assert rows.status_code == 200, rows.json
    return {r["operator"]["external_id"]: r["contacts"] for r in rows.json["operators"]}


def test_a_call_at_half_past_one_moscow_time_on_the_first_counts_on_the_first(client, auth, keys):
    _post(client, auth, "night-call", "2026-10-01T01:30:00+03:00", "North")  # 22:30 UTC, Sept 30
    assert _contacts(client, keys["admin"], "2026-10-01", "2026-10-31") == {"op-t": 1}
    assert _contacts(client, keys["admin"], "2026-09-01", "2026-09-30") == {}
    path = "/api/v1/reports/operators/op-t/trend"
    points = report(
        client,
        keys["admin"],
        path,
        granularity="month",
        **{"from": "2026-09-01", "to": "2026-10-31"},
    ).json["points"]
    assert [p["period_start"] for p in points] == ["2026-10-01"]
    listed = client.get(
        "/api/v1/interactions",
        query_string={"from": "2026-10-01", "to": "2026-10-02"},
        headers=auth,
    )
    assert [i["external_id"] for i in listed.json["items"]] == ["night-call"]


def test_a_moved_operator_leaves_old_contacts_with_the_old_team_and_the_move_is_audited(
    client, auth, keys, session
):
    _post(client, auth, "before-move", "2026-09-10T12:00:00+03:00", "North")
    moved = client.put("/api/v1/operators/op-t/team", json={"team": "South"}, headers=keys["admin"])
    assert moved.status_code == 200, moved.json
    _post(client, auth, "after-move", "2026-09-20T12:00:00+03:00", "South")
    teams = report(client, keys["admin"], "/api/v1/reports/teams").json["teams"]
    assert {t["team"]: t["operators"] for t in teams} == {"North": 1, "South": 1}
    assert _contacts(client, keys["north"], "2026-09-01", "2026-09-30") == {"op-t": 1}
    assert _contacts(client, keys["south"], "2026-09-01", "2026-09-30") == {"op-t": 1}
    north = client.get(
        "/api/v1/interactions", query_string={"from": "2026-09-01"}, headers=keys["north"]
    )
    assert [i["external_id"] for i in north.json["items"]] == ["before-move"]

    move = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "operator.team_move")
    ).one()
    assert move.subject_id == "op-t" and move.actor.startswith("admin:")
    assert move.detail == {"from": "North", "to": "South"}
    assert session.scalar(select(Operator.team_id).where(Operator.external_id == "op-t"))


def test_a_moved_operators_old_calls_stay_in_the_old_teams_average(client, keys, session):
    seeder = Seeder(session)
    moved, north, south = (
        seeder.operator("op-m", "North"),
        seeder.operator("op-n", "North"),
        seeder.operator("op-s", "South"),
    )
    for i in range(12):
        seeder.survey(moved, {"overall": 5}, at("2026-09-05", 9 + i % 8))
        seeder.survey(north, {"overall": 5 if i % 2 else 2}, at("2026-09-06", 9 + i % 8))
        seeder.survey(south, {"overall": 4 if i % 2 else 1}, at("2026-09-06", 9 + i % 8))
    move_operator(session, moved, seeder.team("South"), "admin:test", at("2026-09-10"))
    for i in range(12):
        seeder.survey(moved, {"overall": 1}, at("2026-09-20", 9 + i % 8))
    session.commit()

    rows = {
        r["operator"]["external_id"]: r for r in report(client, keys["admin"]).json["operators"]
    }
    # North: op-m's 12 satisfied calls before the move and op-n's 6 of 12: 18 of 24.
    assert rows["op-n"]["team_csat"] == 0.75
    # South: op-s's 6 of 12, and op-m's 12 unsatisfied calls after the move: 6 of 24.
    assert rows["op-s"]["team_csat"] == 0.25
    # op-m is compared with North for the old calls and with South for the new ones.
    assert rows["op-m"]["csat"] == 0.5
    assert rows["op-m"]["team_csat"] == 0.5
    assert rows["op-m"]["vs_team"] == "no_difference"
    assert rows["op-m"]["operator"]["team"] == "South"
    north_only = report(client, keys["north"]).json["operators"]
    assert {r["operator"]["external_id"]: r["team_csat"] for r in north_only} == {
        "op-m": 0.75,
        "op-n": 0.75,
    }


def test_a_weight_change_and_a_restart_change_no_past_figure(
    app, client, keys, session, with_nps_flow, database_url, tmp_path
):
    seeder = Seeder(session)
    operator = seeder.operator("op-w", "North")
    seeder.survey(
        operator,
        {"overall": 4, "cost": 1, "speed": 5},
        datetime(2026, 9, 5, 9, tzinfo=UTC),
        flow="test_nps",
    )
    session.commit()
    before = report(client, keys["admin"], "/api/v1/reports/teams").json["total"]["csi"]
    assert before == pytest.approx(100 * 1 / 3, abs=0.01)  # cost 0 (weight 2), speed 100 (1)

    heavier_speed = dataclasses.replace(
        NPS_FLOW,
        questions=tuple(
            dataclasses.replace(q, weight=5.0) if q.key == "speed" else q
            for q in NPS_FLOW.questions
        ),
    )
    restarted = make_test_app(
        database_url, tmp_path / "restarted", flows={**NPS_FLOWS, NPS_FLOW.key: heavier_speed}
    )
    restarted.extensions["database"].dispose()
    assert report(client, keys["admin"], "/api/v1/reports/teams").json["total"]["csi"] == before

    seeder = Seeder(session_with_flows(app, restarted.extensions["flows"]))
    seeder.survey(
        seeder.session.get(Operator, operator.id),
        {"overall": 4, "cost": 1, "speed": 5},
        datetime(2026, 9, 6, 9, tzinfo=UTC),
        flow="test_nps",
    )
    seeder.session.commit()
    after = report(client, keys["admin"], "/api/v1/reports/teams").json["total"]["csi"]
    assert after == pytest.approx((100 / 3 + 500 / 7) / 2, abs=0.01)  # the new one: 5/7 speed


def test_a_report_timezone_change_is_rebuilt_at_start_up_when_quick(
    live_app, database_url, tmp_path, monkeypatch, caplog
):
    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        operator = Seeder(session).operator("op-z", "North")
        Seeder(session).survey(operator, {"overall": 5}, datetime(2026, 9, 30, 22, 30, tzinfo=UTC))
        session.commit()
        assert session.scalars(select(ScoreBucket.day)).all() == [datetime(2026, 10, 1).date()]

    monkeypatch.setattr(rollup, "QUICK_REBUILD_CONTACTS", 0)
    with caplog.at_level(logging.ERROR):
        stale = make_test_app(database_url, tmp_path / "stale", report_timezone="UTC")
    stale.extensions["database"].dispose()
    assert "rebuild-scores --all" in caplog.text
    with database.engine.connect() as conn:
        assert conn.scalar(select(RollupState.timezone)) == "Europe/Moscow"

    monkeypatch.setattr(rollup, "QUICK_REBUILD_CONTACTS", 20_000)
    quick = make_test_app(database_url, tmp_path / "quick", report_timezone="UTC")
    quick.extensions["database"].dispose()
    with database.engine.connect() as conn:
        assert conn.scalar(select(RollupState.timezone)) == "UTC"
        assert conn.scalars(select(ScoreBucket.day)).all() == [datetime(2026, 9, 30).date()]


def test_removing_a_flow_file_changes_no_past_figure(app, client, keys, session, with_nps_flow):
    operator = Seeder(session).operator("op-gone", "North")
    answers = {"overall": 5, "cost": 2, "speed": 4, "nps": 10}
    Seeder(session).survey(operator, answers, datetime(2026, 9, 5, 9, tzinfo=UTC), flow="test_nps")
    session.commit()
    before = report(client, keys["admin"]).json["operators"]

    # The flow file is gone; the next start-up loads the others.
    restarted = session_with_flows(app, load_flows())
    rollup.rebuild(restarted, datetime(2026, 9, 1).date(), datetime(2026, 9, 30).date(), MOSCOW)
    restarted.commit()
    after = report(client, keys["admin"]).json["operators"]
    assert after == before
    assert after[0]["csi_all_parameters"] is not None and after[0]["nps"]["responses"] == 1
