"""`survey-gateway demo seed`: a plausible, consistent month made through the real services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.accounts import SignInResult, sign_in
from gateway.cli import main
from gateway.db import utcnow
from gateway.demo import DemoRefused, seed
from gateway.models import AuditEvent, Incident, Interaction, InteractionChannel, SurveySession
from gateway.reports.rollup import verify
from gateway.websurvey import service as web_survey

# Ten days hold incidents past their due time (24 business hours), whatever the weekday.
DAYS_FOR_LATE_INCIDENTS = 10


def test_four_seeded_days_are_consistent_made_once_and_leave_every_supervisor_an_incident(
    app, session, client, make_api_key
):
    # Four days back from a Monday afternoon: two of them a weekend, when the offices see few
    # visitors, whose incidents the demo used to close all. Their supervisor still has one.
    settings = app.config["SETTINGS"]
    monday = datetime(2026, 12, 7, 14, tzinfo=UTC)
    summary = seed(session, settings, monday, days=4, web=web_survey)
    assert summary.calls > 40 and summary.visits > 10 and summary.answered > 20
    open_by_team = {
        incident.session.interaction.team.name
        for incident in session.scalars(select(Incident).where(Incident.status == "open"))
    }
    assert open_by_team == {"Горячая линия Север", "Горячая линия Юг", "Офисы"}

    zone = settings.report_zone
    today = monday.astimezone(zone).date()
    first, last = today - timedelta(days=6), today
    assert verify(session, first, last, zone) == []  # the rollup equals the raw rows

    admin = {"Authorization": f"Bearer {make_api_key('admin', name='boss')}"}
    report = client.get(f"/api/v1/reports/operators?from={first}&to={last}", headers=admin)
    rows = {r["operator"]["external_id"]: r for r in report.get_json()["operators"]}
    assert len(rows) >= 11  # the new operator may have had no call yet
    assert {r["operator"]["team"] for r in rows.values()} == {
        "Горячая линия Север",
        "Горячая линия Юг",
        "Офисы",
    }
    answered = session.scalar(
        select(func.count())
        .select_from(SurveySession)
        .where(SurveySession.score_overall.is_not(None), SurveySession.excluded_at.is_(None))
    )
    assert sum(r["responses"] for r in rows.values()) == answered
    for row in rows.values():
        assert row["responses"] <= row["surveys_sent"]
        assert sum(row["distribution"].values()) == row["responses"]
    for username, password, _role in summary.accounts:
        outcome = sign_in(session, username, password, settings, monday)
        assert outcome.result is SignInResult.SIGNED_IN

    with pytest.raises(DemoRefused, match="demo data is there already"):
        seed(session, settings, monday, days=3, web=web_survey)


# Slow: ten days of demo. The four-day demo of `make test` takes the same code paths; that
# every state, overdue included, is there takes ten days.
@pytest.mark.slow
def test_the_demo_has_incidents_in_every_state_worked_through_the_incident_service(
    app, session, client, make_api_key
):
    settings = app.config["SETTINGS"]
    now = utcnow()
    summary = seed(session, settings, now, days=DAYS_FOR_LATE_INCIDENTS, web=web_survey)
    states = ("new", "assigned", "commented", "resolved", "reopened", "archived", "overdue")
    assert all(summary.incidents.get(state) for state in states), str(summary.incidents)

    incidents = session.scalars(select(Incident)).all()
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.subject_type == "incident").order_by(AuditEvent.id)
    ).all()
    actions: dict[str, list[str]] = {}
    for event in events:
        actions.setdefault(event.subject_id, []).append(event.action)
        assert event.at <= now and event.actor.startswith(("supervisor:demo.", "admin:demo."))
    for incident in incidents:
        done = actions.get(str(incident.id), [])
        assert incident.due_at is not None  # due by the business calendar, as real ones are
        if incident.status == "resolved":
            assert incident.cause in settings.incident_causes and incident.resolution
            assert "incident.resolve" in done
        if incident.status == "archived":
            assert done[-1] == "incident.archive"
        if incident.reopened_count:
            assert incident.status == "open" and "incident.reopen" in done
            assert incident.due_at > incident.opened_at  # due again from the reopening
        if incident.first_action_at is None:
            assert not done  # untouched: new
    assert any(i.status == "open" and not actions.get(str(i.id)) for i in incidents)
    # Each of the three demo supervisors has one of their team's to work.
    assert len({i.session.interaction.team_id for i in incidents if i.status == "open"}) == 3
    assert any("incident.comment" in a for a in actions.values())

    # The dashboard's and the API's filters find them as a supervisor would.
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='boss')}"}
    overdue = client.get("/api/v1/incidents?overdue=true&limit=200", headers=admin)
    assert int(overdue.headers["X-Total-Count"]) == summary.incidents["overdue"]
    archived = client.get("/api/v1/incidents?status=archived&limit=200", headers=admin)
    assert int(archived.headers["X-Total-Count"]) == summary.incidents["archived"]


def test_the_command_refuses_a_database_with_real_contacts(live_app, database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        session.add(
            Interaction(channel=InteractionChannel.CALL, external_id="real-1", ended_at=utcnow())
        )
        session.commit()
    result = CliRunner().invoke(main, ["demo", "seed", "--days", "1"], env=env)
    assert result.exit_code != 0
    assert "holds 1 contacts already" in result.output


@pytest.mark.slow
def test_a_seeded_month_tells_strong_weak_and_new_operators_apart(
    app, session, client, make_api_key
):
    settings = app.config["SETTINGS"]
    now = utcnow()
    seed(session, settings, now, days=30, web=web_survey)
    today = now.astimezone(settings.report_zone).date()
    first, last = today - timedelta(days=31), today
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='boss')}"}
    report = client.get(f"/api/v1/reports/operators?from={first}&to={last}", headers=admin)
    rows = {r["operator"]["external_id"]: r for r in report.get_json()["operators"]}
    assert len(rows) == 12
    assert rows["demo-op-01"]["overall_mean"] > rows["demo-op-04"]["overall_mean"] + 0.8
    assert (
        rows["demo-op-06"]["parameters"]["politeness"]
        < rows["demo-op-07"]["parameters"]["politeness"]
    )
    assert rows["demo-op-08"]["surveys_sent"] < rows["demo-op-05"]["surveys_sent"] / 3
    assert not rows["demo-op-08"]["ranked"]
    assert rows["demo-op-01"]["ranked"]
    incidents = session.scalars(select(Incident)).all()
    statuses = {i.status for i in incidents}
    assert "open" in statuses and len(statuses) >= 2  # open and handled
    assert any(i.status == "open" and i.assignee for i in incidents)
    assert verify(session, first, last, settings.report_zone) == []
