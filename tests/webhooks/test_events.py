"""Which changes make which events, written in the transaction that made the change."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.db import utcnow
from gateway.dispatch import sweep
from gateway.models import Incident
from gateway.surveys import open_incident
from gateway.webhooks.events import EVENT_TYPES
from gateway.webhooks.mappings import crm_contact
from gateway.webhooks.models import OutboxEvent
from tests.conftest import PUBLIC_BASE_URL
from tests.factories import interaction_payload
from tests.sms.conftest import survey_of
from tests.webhooks.conftest import subscribe

NPS_REPLIES = ["5", "4", "5", "4", "5"]  # overall, cost, speed, politeness, quality; then nps


def events(session: Session, event_type: str | None = None) -> list[dict[str, Any]]:
    query = select(OutboxEvent.body).order_by(OutboxEvent.id)
    if event_type:
        query = query.where(OutboxEvent.type == event_type)
    return [json.loads(body) for body in session.scalars(query)]


def test_a_low_score_opens_an_incident_and_its_assignment_and_closing_follow(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
    make_api_key: Callable[..., str],
) -> None:
    subscribe(client, admin, "https://erp.example.ru/hooks", list(EVENT_TYPES))
    visit = answer_by_sms(["1"], customer_id="crm-77")

    assert [e["type"] for e in events(session)] == ["incident.opened", "survey.completed"]
    opened = events(session, "incident.opened")[0]["data"]
    assert opened["incident"]["score"] == 1
    assert opened["incident"]["status"] == "open"
    assert opened["interaction"]["id"] == visit.id
    assert opened["interaction"]["operator"]["external_id"] == "op-1"
    assert opened["customer"]["external_id"] == "crm-77"
    assert opened["customer"]["phone"] == "+79161234567"

    supervisor = {"Authorization": f"Bearer {make_api_key('admin', name='quality')}"}
    incident_id = opened["incident"]["id"]
    response = client.post(
        f"/api/v1/incidents/{incident_id}/assign", json={"assignee": "Ольга"}, headers=supervisor
    )
    assert response.status_code == 200
    updated = events(session, "incident.updated")
    assert len(updated) == 1
    assert updated[0]["data"]["changed"] == ["assignee"]
    assert updated[0]["data"]["incident"]["assignee"] == "Ольга"

    response = client.post(
        f"/api/v1/incidents/{incident_id}/close",
        json={"resolution": "Перезвонили, вопрос решён"},
        headers=supervisor,
    )
    assert response.status_code == 200
    (resolved,) = events(session, "incident.resolved")
    assert resolved["data"]["incident"]["status"] == "resolved"
    assert resolved["data"]["incident"]["resolution"] == "Перезвонили, вопрос решён"
    assert len(events(session, "incident.updated")) == 1  # closing is not also an update


def test_a_change_rolled_back_leaves_no_event(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
) -> None:
    subscribe(client, admin, "https://erp.example.ru/hooks", ["incident.opened"])
    visit = answer_by_sms(["4"])
    survey = survey_of(session, visit)
    open_incident(session, survey, 1, utcnow())
    session.flush()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Incident)) == 0
    assert events(session) == []


def test_a_survey_nobody_answered_is_reported_expired(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
    settings: Settings,
) -> None:
    subscribe(client, admin, "https://crm.example.ru/hooks", ["survey.expired"])
    visit = answer_by_sms([])
    sweep(session, settings, utcnow() + timedelta(hours=settings.sms_survey_expiry_hours + 1))
    session.commit()
    (expired,) = events(session)
    assert expired["type"] == "survey.expired"
    assert expired["data"]["survey"]["status"] == "expired"
    assert expired["data"]["survey"]["scores"] == {}
    assert expired["data"]["interaction"]["id"] == visit.id


def test_every_survey_one_sweep_expires_is_reported(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
    settings: Settings,
) -> None:
    subscribe(client, admin, "https://crm.example.ru/hooks", ["survey.expired"])
    first = answer_by_sms([])
    second = answer_by_sms([])
    sweep(session, settings, utcnow() + timedelta(hours=settings.sms_survey_expiry_hours + 1))
    session.commit()
    reported = sorted(e["data"]["interaction"]["id"] for e in events(session))
    assert reported == sorted([first.id, second.id])


def test_survey_completed_carries_the_score_frozen_at_its_end(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
) -> None:
    subscribe(client, admin, "https://crm.example.ru/hooks", ["survey.completed"])
    answer_by_sms([*NPS_REPLIES, "9"], flow="post_call_nps")
    (completed,) = events(session)
    frozen = completed["data"]["survey"]["score"]
    assert frozen["overall"] == 5
    assert frozen["parameters"] == {"cost": 4, "speed": 5, "politeness": 4, "quality": 5}
    assert (frozen["nps"], frozen["nps_class"]) == (9, "promoter")
    assert frozen["csi"] is not None and 0 <= frozen["csi"] <= 100
    assert frozen["csi_operator"] is not None and 0 <= frozen["csi_operator"] <= 100
    assert frozen["weights"]  # the weights the figures were computed with


def test_a_customers_nps_is_reported_when_it_changes(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
) -> None:
    subscribe(client, admin, "https://crm.example.ru/hooks", ["customer.nps_changed"])
    flow = "post_call_nps"
    answer_by_sms([*NPS_REPLIES, "9"], flow=flow, customer_id="crm-5")
    answer_by_sms([*NPS_REPLIES, "10"], flow=flow, customer_id="crm-5")
    answer_by_sms([*NPS_REPLIES, "10"], flow=flow, customer_id="crm-5")  # unchanged: no event
    answer_by_sms([*NPS_REPLIES, "3"], flow=flow, customer_id="crm-5")

    reported = [e["data"] for e in events(session)]
    assert [(d["nps"]["score"], d["nps"]["class"]) for d in reported] == [
        (9, "promoter"),
        (10, "promoter"),
        (3, "detractor"),
    ]
    assert [d["nps"]["previous_class"] for d in reported] == [None, "promoter", "promoter"]
    assert reported[-1]["customer"]["external_id"] == "crm-5"
    assert reported[-1]["survey"]["scores"] == {
        "overall": 5,
        "cost": 4,
        "speed": 5,
        "politeness": 4,
        "quality": 5,
        "nps": 3,
    }


def test_survey_completed_carries_the_customers_latest_nps(
    client: FlaskClient,
    admin: dict[str, str],
    answer_by_sms: Callable[..., Any],
    session: Session,
) -> None:
    subscribe(client, admin, "https://crm.example.ru/hooks", ["survey.completed"])
    answer_by_sms([*NPS_REPLIES, "8"], flow="post_call_nps", customer_id="crm-9")
    answer_by_sms(["5"], customer_id="crm-9")  # a later one-question survey, no NPS in it
    latest = events(session)[-1]["data"]
    assert latest["survey"]["scores"] == {"overall": 5}
    assert latest["customer"]["nps"]["score"] == 8
    assert latest["customer"]["nps"]["class"] == "passive"


def test_a_comment_left_on_the_thank_you_page_follows_as_survey_commented(
    client: FlaskClient, admin: dict[str, str], auth: dict[str, str], session: Session
) -> None:
    """The web page asks for the comment after the last score, so after survey.completed
    went out: the comment follows in survey.commented, with the same survey and scores."""
    subscribe(
        client, admin, "https://crm.example.ru/hooks", ["survey.completed", "survey.commented"]
    )
    payload = interaction_payload(channel="request", survey="web")
    created = client.post("/api/v1/interactions", json=payload, headers=auth).get_json()
    path = created["survey"]["link"]["url"].removeprefix(PUBLIC_BASE_URL)
    for key in ("overall", "cost", "speed", "politeness", "quality"):
        client.post(path, data={"question": key, "value": "4"})
    (completed,) = events(session, "survey.completed")
    assert completed["data"]["survey"]["comment"] is None
    assert events(session, "survey.commented") == []

    client.post(path + "/comment", data={"comment": "Очень вежливый оператор"})
    client.post(path + "/comment", data={"comment": "второй"})  # refused: one comment
    (commented,) = events(session, "survey.commented")
    assert commented["data"]["survey"]["comment"] == "Очень вежливый оператор"
    assert commented["data"]["survey"]["id"] == completed["data"]["survey"]["id"]
    assert commented["data"]["survey"]["scores"] == completed["data"]["survey"]["scores"]
    frozen_then, frozen_now = (
        completed["data"]["survey"]["score"],
        commented["data"]["survey"]["score"],
    )
    assert {**frozen_now, "scored_at": None} == {**frozen_then, "scored_at": None}
    assert commented["id"] != completed["id"]
    assert len(events(session, "survey.completed")) == 1  # the survey did not end again
    assert crm_contact(commented)["fields"]["last_comment"] == "Очень вежливый оператор"
