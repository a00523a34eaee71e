"""Low scores open incidents; a responsible person assigns and closes them."""

from __future__ import annotations

from sqlalchemy import select

from gateway.db import utcnow
from gateway.models import AuditEvent, SurveySession
from gateway.surveys import record_answer
from ivr_flows.engine import RecordedAnswer
from tests.factories import interaction_payload


def answer_overall(app, client, auth, score, team="Front office"):
    created = client.post(
        "/api/v1/interactions",
        json=interaction_payload(operator={"external_id": f"op-{team}", "team": team}),
        headers=auth,
    ).json
    with app.app_context():
        session = app.extensions["database"].session()
        survey = session.get(SurveySession, created["survey"]["id"])
        record_answer(
            session,
            survey,
            RecordedAnswer("overall", score, str(score)),
            app.config["SETTINGS"],
            utcnow(),
        )
        record_answer(
            session, survey, RecordedAnswer("overall", 1, "1"), app.config["SETTINGS"], utcnow()
        )  # a retried webhook: no second one
        session.commit()
    return created


def test_low_overall_score_opens_one_incident_a_high_one_none(app, client, auth, make_api_key):
    low = answer_overall(app, client, auth, 2)
    answer_overall(app, client, auth, 3)
    admin = {"Authorization": f"Bearer {make_api_key('admin')}"}
    incidents = client.get("/api/v1/incidents", headers=admin).json
    assert [(i["interaction_id"], i["score"], i["status"]) for i in incidents] == [
        (low["id"], 2, "open")
    ]
    assert incidents[0]["operator"]["external_id"] == "op-Front office"


def test_supervisor_assigns_and_closes_with_a_resolution_audited(app, client, auth, make_api_key):
    answer_overall(app, client, auth, 1)
    key = make_api_key("supervisor", team="Front office", name="Olga")
    supervisor = {"Authorization": f"Bearer {key}"}
    incident = client.get("/api/v1/incidents?status=open", headers=supervisor).json[0]

    assigned = client.post(
        f"/api/v1/incidents/{incident['id']}/assign", json={"assignee": "Olga"}, headers=supervisor
    )
    assert assigned.json["assignee"] == "Olga"
    closed = client.post(
        f"/api/v1/incidents/{incident['id']}/close",
        json={"resolution": "Called back, tariff explained"},
        headers=supervisor,
    )
    assert closed.status_code == 200
    assert closed.json["status"] == "resolved"
    assert closed.json["closed_by"] == "supervisor:Olga"
    again = client.post(
        f"/api/v1/incidents/{incident['id']}/close",
        json={"resolution": "again"},
        headers=supervisor,
    )
    assert again.status_code == 409
    assert client.get("/api/v1/incidents?status=open", headers=supervisor).json == []
    with app.app_context():
        actions = app.extensions["database"].session().scalars(select(AuditEvent.action)).all()
    assert {"incident.assign", "incident.resolve"} <= set(actions)


def test_supervisor_cannot_see_or_close_another_teams_incident(app, client, auth, make_api_key):
    answer_overall(app, client, auth, 1, team="Hotline")
    admin = {"Authorization": f"Bearer {make_api_key('admin')}"}
    other = client.get("/api/v1/incidents", headers=admin).json[0]
    supervisor = {"Authorization": f"Bearer {make_api_key('supervisor', team='Front office')}"}
    assert client.get("/api/v1/incidents", headers=supervisor).json == []
    response = client.post(
        f"/api/v1/incidents/{other['id']}/close",
        json={"resolution": "not mine"},
        headers=supervisor,
    )
    assert response.status_code == 404


def test_integration_key_cannot_read_incidents(client, auth):
    assert client.get("/api/v1/incidents", headers=auth).status_code == 403
