"""An operator's team changes only by an admin's audited act, never by an integration's post."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import AuditEvent, Operator


def post_contact(client, headers, external_id: str, team: str):
    return client.post(
        "/api/v1/interactions",
        json={
            "external_id": external_id,
            "channel": "call",
            "ended_at": "2026-11-23T10:00:00+03:00",
            "operator": {"external_id": "op-1", "name": "Anna", "team": team},
            "customer": {"external_id": f"crm-{external_id}"},
        },
        headers=headers,
    )


def team_of(session, external_id: str) -> str | None:
    operator = session.scalar(
        select(Operator)
        .where(Operator.external_id == external_id)
        .execution_options(populate_existing=True)
    )
    name = operator.team.name if operator and operator.team else None
    session.rollback()  # end this read before the next request opens its own transaction
    return name


def test_an_integration_places_a_new_operator_but_cannot_move_it(client, session, auth):
    assert post_contact(client, auth, "c-1", "North").status_code == 201
    assert team_of(session, "op-1") == "North"
    moved = post_contact(client, auth, "c-2", "South")
    assert moved.status_code == 201
    assert moved.json["operator"]["team"] == "North"
    assert team_of(session, "op-1") == "North"
    assert (
        session.scalar(select(AuditEvent).where(AuditEvent.action == "operator.team_move")) is None
    )


def test_an_admin_moves_an_operator_and_the_move_is_audited(client, session, auth, make_api_key):
    post_contact(client, auth, "c-1", "North")
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='hr')}"}
    path = "/api/v1/operators/op-1/team"
    assert client.put(path, json={"team": "South"}, headers=auth).status_code == 403
    north = {"Authorization": f"Bearer {make_api_key('supervisor', 'North', 'olga')}"}
    assert client.put(path, json={"team": "South"}, headers=north).status_code == 403
    response = client.put(path, json={"team": "South"}, headers=admin)
    assert response.status_code == 200
    assert response.json == {"external_id": "op-1", "name": "Anna", "team": "South", "moved": True}
    again = client.put(path, json={"team": "South"}, headers=admin)
    assert again.json["moved"] is False
    assert (
        client.put("/api/v1/operators/nobody/team", json={"team": "X"}, headers=admin).status_code
        == 404
    )
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "operator.team_move")
    ).all()
    assert [(e.actor, e.detail) for e in events] == [("admin:hr", {"from": "North", "to": "South"})]
    assert team_of(session, "op-1") == "South"
