"""POST /api/v1/interactions/batch: a day's contacts at once, a result per item."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.apikeys import create_api_key
from gateway.db import utcnow
from gateway.models import ApiRole, Customer, Interaction, Operator, SurveySession, SurveyStatus
from gateway.reports.rollup import verify
from tests.factories import interaction_payload

URL = "/api/v1/interactions/batch"


def _items(count: int, prefix: str = "batch") -> list[dict[str, Any]]:
    items = []
    for n in range(count):
        item = interaction_payload(external_id=f"{prefix}-{n}")
        item["customer"] = {"phone": f"+7916555{n:04d}", "external_id": f"crm-{prefix}-{n}"}
        item["operator"] = {"external_id": f"op-{n % 3}", "name": f"Operator {n % 3}", "team": "A"}
        items.append(item)
    return items


def test_each_item_is_created_existing_or_an_error_naming_its_field(client, auth, session):
    items = _items(4)
    items[1]["customer"]["phone"] = "not a phone"
    items[2]["ended_at"] = "yesterday"
    items.append(dict(items[0]))  # the same contact twice in one batch
    items.append("not an object")

    response = client.post(URL, json={"interactions": items}, headers=auth)
    assert response.status_code == 200, response.json
    body = response.json
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created", "error", "error", "created", "existing", "error"]
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert body["results"][4]["id"] == body["results"][0]["id"]
    assert body["results"][1]["errors"][0]["field"] == "customer.phone"
    assert body["results"][2]["errors"][0]["field"] == "ended_at"
    assert body["results"][5]["errors"] == [{"field": "", "message": "an item must be an object"}]
    assert (body["created"], body["existing"], body["errors"]) == (2, 1, 3)
    first = body["results"][0]
    assert first["survey"]["status"] == "scheduled" and first["survey"]["due_at"]

    assert session.scalar(select(func.count()).select_from(Interaction)) == 2
    assert session.scalar(select(func.count()).select_from(SurveySession)) == 2
    assert session.scalar(select(func.count()).select_from(Operator)) == 1  # op-0 of 0 and 3

    # The same batch again creates nothing: the valid items are existing, the rest still errors.
    again = client.post(URL, json={"interactions": items}, headers=auth).json
    assert [r["status"] for r in again["results"]] == [
        "existing",
        "error",
        "error",
        "existing",
        "existing",
        "error",
    ]
    assert session.scalar(select(func.count()).select_from(SurveySession)) == 2


def test_a_re_post_with_other_data_is_an_error_and_leaves_the_rest(client, auth, session):
    [item] = _items(1, "conflict")
    assert client.post("/api/v1/interactions", json=item, headers=auth).status_code == 201
    changed = {**item, "ended_at": "2026-11-20T09:00:00+03:00"}
    fresh = _items(2, "fresh")
    body = client.post(URL, json={"interactions": [changed, *fresh]}, headers=auth).json
    assert [r["status"] for r in body["results"]] == ["error", "created", "created"]
    assert body["results"][0]["errors"][0]["field"] == "ended_at"
    assert body["results"][0]["interaction_id"]


def test_a_batch_is_bounded_and_needs_the_integration_role(client, auth, make_api_key):
    too_many = {"interactions": [{}] * 1001}
    response = client.post(URL, json=too_many, headers=auth)
    assert response.status_code == 422
    assert "interactions" in response.json["detail"]
    assert client.post(URL, json={"interactions": []}, headers=auth).status_code == 422
    supervisor = {"Authorization": f"Bearer {make_api_key('supervisor', team='A')}"}
    assert client.post(URL, json={"interactions": _items(1)}, headers=supervisor).status_code == 403


def test_customers_and_operators_are_shared_as_the_single_endpoint_shares_them(
    client, auth, session
):
    items = _items(3, "shared")
    for item in items:
        item["customer"] = {"phone": "8 916 555-00-01", "name": "Ivan"}
    items[2]["customer"]["language"] = "en"
    body = client.post(URL, json={"interactions": items}, headers=auth).json
    assert [r["status"] for r in body["results"]] == ["created"] * 3
    [customer] = session.scalars(select(Customer)).all()
    assert (customer.phone, customer.name, customer.language) == ("+79165550001", "Ivan", "en")
    # One survey per customer is the sweep's business (cooldown), not intake's.
    statuses = session.scalars(select(SurveySession.status)).all()
    assert statuses == [SurveyStatus.SCHEDULED] * 3


def test_two_identical_batches_at_once_create_each_interaction_once(live_app: Flask):
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        _row, key = create_api_key(session, "crm", ApiRole.INTEGRATION, None, utcnow())
        session.commit()
    items = _items(50, "race")
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def post(index: int) -> None:
        client = live_app.test_client()
        barrier.wait(timeout=10)
        results[index] = client.post(
            URL, json={"interactions": items}, headers={"Authorization": f"Bearer {key}"}
        )

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.status_code for r in results] == [200, 200]
    statuses = [r["status"] for response in results for r in response.json["results"]]
    assert statuses.count("created") == 50 and statuses.count("existing") == 50
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        assert session.scalar(select(func.count()).select_from(SurveySession)) == 50


def test_a_batch_keeps_teams_and_emails_as_the_single_endpoint_does(client, auth, session):
    """A contact of a batch counts for its operator's team, a reported team never moves an
    operator out of theirs, and a customer's email is kept (for email surveys)."""
    single = interaction_payload(external_id="single-1")
    single["operator"] = {"external_id": "op-9", "name": "Anna", "team": "North"}
    assert client.post("/api/v1/interactions", json=single, headers=auth).status_code == 201
    items = _items(2, "teams")
    items[0]["operator"] = {"external_id": "op-9", "name": "Anna", "team": "South"}
    items[1]["customer"]["email"] = "ivan@example.com"
    body = client.post(URL, json={"interactions": items}, headers=auth).json
    assert [r["status"] for r in body["results"]] == ["created", "created"]

    moved = session.scalar(select(Operator).where(Operator.external_id == "op-9"))
    assert moved.team.name == "North", "an integration does not move an operator"
    first, second = (session.get(Interaction, r["id"]) for r in body["results"])
    assert first.team.name == "North" and second.team.name == "A"
    assert second.customer.email == "ivan@example.com"


def _mixed(prefix: str) -> list[dict[str, Any]]:
    """Contacts of every kind a batch may carry: SMS, web, email (with and without an
    address), none; a customer without a phone, one named twice, two teams, a disposition."""
    items = []
    for n in range(12):
        item = interaction_payload(external_id=f"{prefix}-{n}")
        item["operator"] = {"external_id": f"op-mix-{n % 2}", "team": ["North", "South"][n % 2]}
        item["customer"] = {"phone": f"+7916777{n:04d}", "external_id": f"crm-{prefix}-{n}"}
        items.append(item)
    items[1]["survey"] = "web"
    items[2]["survey"] = "email"
    items[2]["customer"]["email"] = "anna@example.com"
    items[3]["survey"] = "email"  # no address: not sent
    items[4]["customer"] = {"external_id": f"crm-{prefix}-4"}  # no phone: not sent
    items[5].update(channel="call", survey="none", disposition="transferred")
    items[6]["customer"] = dict(items[7]["customer"], language="en")  # one customer, twice
    items[8]["survey"] = "ivr_callback"
    return items


def _stored(session: Session, prefix: str) -> list[tuple[Any, ...]]:
    """What was recorded of each contact of a prefix, without ids, tokens and clocks."""
    rows = session.execute(
        select(Interaction, SurveySession, Customer, Operator)
        .outerjoin(Interaction.survey)
        .outerjoin(Interaction.customer)
        .outerjoin(Interaction.operator)
        .where(Interaction.external_id.like(f"{prefix}-%"))
        .order_by(Interaction.id)
    ).all()
    return [
        (
            i.external_id.removeprefix(prefix),
            i.channel,
            i.ended_at,
            i.office,
            i.disposition,
            i.team_id,
            i.reported_at is not None,
            o and o.external_id,
            c
            and (
                c.phone,
                c.name,
                c.language,
                c.email,
                (c.external_id or "").removeprefix(f"crm-{prefix}"),
            ),
            s and (s.channel, s.kind, s.flow, s.language, s.status, s.due_at, s.attempts),
            s and (s.not_sent_reason, s.finished_at is not None, s.expires_at is not None),
            s and (s.link_token is not None, s.customer_id == i.customer_id),
        )
        for i, s, c, o in rows
    ]


def test_a_batch_records_each_contact_as_the_single_endpoint_does(client, auth, session, app):
    """A batch of several writes its new contacts without the ORM: the same rows as posting
    them one by one, counted the same in the reports' rollup."""
    singly, batched = _mixed("one"), _mixed("many")
    ended = datetime.now(UTC) - timedelta(minutes=5)
    for item in (*singly, *batched):
        item["ended_at"] = ended.isoformat()
    for item in singly:
        assert client.post("/api/v1/interactions", json=item, headers=auth).status_code == 201
    body = client.post(URL, json={"interactions": [*batched, batched[0]]}, headers=auth).json
    assert [r["status"] for r in body["results"]] == ["created"] * 12 + ["existing"]
    assert body["results"][12]["id"] == body["results"][0]["id"]
    for result, recorded in zip(body["results"], _stored_ids(session, "many"), strict=False):
        assert (result["id"], result["survey"] and result["survey"]["id"]) == recorded

    assert _stored(session, "many") == _stored(session, "one")
    zone = app.config["SETTINGS"].report_zone
    day = ended.astimezone(zone).date()
    assert verify(session, day, day, zone) == []
    # A re-post of the batch creates nothing and is compared with what was written.
    again = client.post(URL, json={"interactions": batched}, headers=auth).json
    assert [r["status"] for r in again["results"]] == ["existing"] * 12


def _stored_ids(session: Session, prefix: str) -> list[tuple[int, int | None]]:
    return [
        (interaction_id, survey_id)
        for interaction_id, survey_id in session.execute(
            select(Interaction.id, SurveySession.id)
            .outerjoin(Interaction.survey)
            .where(Interaction.external_id.like(f"{prefix}-%"))
            .order_by(Interaction.id)
        )
    ]
