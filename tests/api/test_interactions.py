"""POST and GET /api/v1/interactions, as an integrator uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.factories import interaction_payload
from tests.voice.conftest import Call

pytestmark = pytest.mark.both_databases


def post(client: FlaskClient, auth: dict[str, str], payload: dict[str, Any]) -> Any:
    return client.post("/api/v1/interactions", json=payload, headers=auth)


def test_office_visit_is_recorded_with_an_sms_survey_due_after_the_delay(client, auth):
    payload = interaction_payload()
    response = post(client, auth, payload)

    assert response.status_code == 201
    body = response.json
    assert body["external_id"] == payload["external_id"]
    assert body["customer"]["phone"] == "+79161234567"
    assert body["operator"] == {
        "external_id": "op-7",
        "name": "Анна Петрова",
        "team": "Front office",
    }
    survey = body["survey"]
    assert survey["status"] == "scheduled"
    assert survey["channel"] == "sms"
    ended = datetime.fromisoformat(payload["ended_at"])
    assert datetime.fromisoformat(survey["due_at"]) == ended + timedelta(minutes=60)
    assert body["scores"] == {}


def test_the_same_interaction_again_is_200_with_the_same_resource_and_one_survey(client, auth):
    payload = interaction_payload()
    first = post(client, auth, payload)
    # The same end written with another offset is the same instant; names may be updated.
    moscow = datetime.fromisoformat(payload["ended_at"]).astimezone(timezone(timedelta(hours=3)))
    again = post(
        client,
        auth,
        {
            **payload,
            "ended_at": moscow.isoformat(),
            "operator": {**payload["operator"], "name": "Анна Петрова-Иванова"},
        },
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]
    assert again.json["survey"]["id"] == first.json["survey"]["id"]
    assert again.json["ended_at"] == first.json["ended_at"]
    found = client.get(
        "/api/v1/interactions",
        query_string={"channel": "office_visit", "external_id": payload["external_id"]},
        headers=auth,
    ).json
    assert found["total"] == 1


def test_same_external_id_on_another_channel_is_another_interaction(client, auth):
    payload = interaction_payload()
    first = post(client, auth, payload)
    other = post(client, auth, {**payload, "channel": "call"})
    assert other.status_code == 201
    assert other.json["id"] != first.json["id"]
    assert other.json["survey"] is None  # a call is surveyed by the IVR hand-over, not here


def test_ivr_callback_survey_is_scheduled_as_an_outbound_call(client, auth):
    response = post(client, auth, interaction_payload(channel="call", survey="ivr_callback"))
    assert response.status_code == 201
    assert response.json["survey"]["channel"] == "ivr"
    assert response.json["survey"]["kind"] == "ivr_callback"


def test_survey_none_schedules_nothing(client, auth):
    response = post(client, auth, interaction_payload(survey="none"))
    assert response.status_code == 201
    assert response.json["survey"] is None


def test_visit_without_phone_is_kept_with_the_reason_it_cannot_be_surveyed(client, auth):
    payload = interaction_payload(customer={"external_id": "crm-1"})
    response = post(client, auth, payload)
    assert response.status_code == 201
    assert response.json["survey"]["status"] == "not_sent"
    assert "phone" in response.json["survey"]["not_sent_reason"]


@pytest.mark.parametrize("phone", ["123", "not a number", "+999 1234567"])
def test_invalid_phone_is_a_readable_422_and_stores_nothing(client, auth, phone):
    payload = interaction_payload(customer={"phone": phone})
    response = post(client, auth, payload)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["status"] == 422
    assert problem["errors"][0]["field"] == "customer.phone"
    assert phone in problem["detail"] or "phone" in problem["detail"]
    listed = client.get(
        "/api/v1/interactions",
        query_string={"channel": "office_visit", "external_id": payload["external_id"]},
        headers=auth,
    ).json
    assert listed["total"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": None}, "external_id"),
        ({"channel": "fax"}, "channel"),
        ({"ended_at": "2026-11-01T10:00:00"}, "ended_at"),
        ({"operator": None}, "operator"),
        ({"customer": {"name": "nobody"}}, "customer.phone"),
        ({"survey": "pigeon"}, "survey"),
    ],
)
def test_missing_or_wrong_fields_are_named_in_the_problem(client, auth, change, field):
    response = post(client, auth, interaction_payload(**change))
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json["errors"]]


def test_get_by_id_shows_interaction_and_survey(client, auth):
    created = post(client, auth, interaction_payload()).json
    response = client.get(f"/api/v1/interactions/{created['id']}", headers=auth)
    assert response.status_code == 200
    assert response.json == created


def test_unknown_id_is_404_problem(client, auth):
    response = client.get("/api/v1/interactions/999999", headers=auth)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_listing_pages_by_period_and_operator(client, auth):
    base = datetime.fromisoformat("2026-10-01T12:00:00+03:00")
    for day in range(5):
        ended = (base + timedelta(days=day)).isoformat()
        post(client, auth, interaction_payload(ended_at=ended, survey="none"))
    post(
        client,
        auth,
        interaction_payload(
            ended_at=base.isoformat(), survey="none", operator={"external_id": "op-other"}
        ),
    )
    page = client.get(
        "/api/v1/interactions",
        query_string={"from": "2026-10-02", "to": "2026-10-06", "operator": "op-7", "page_size": 2},
        headers=auth,
    ).json
    assert page["total"] == 4
    assert len(page["items"]) == 2
    second = client.get(
        "/api/v1/interactions",
        query_string={
            "from": "2026-10-02",
            "to": "2026-10-06",
            "operator": "op-7",
            "page_size": 2,
            "page": 2,
        },
        headers=auth,
    ).json
    seen = {i["id"] for i in page["items"]} | {i["id"] for i in second["items"]}
    assert len(seen) == 4


def test_no_key_wrong_key_and_wrong_role(client, make_api_key):
    payload = interaction_payload()
    assert client.post("/api/v1/interactions", json=payload).status_code == 401
    wrong = {"Authorization": "Bearer sgw_not-a-real-key"}
    assert client.post("/api/v1/interactions", json=payload, headers=wrong).status_code == 401
    supervisor = {"Authorization": f"Bearer {make_api_key('supervisor', team='Front office')}"}
    response = client.post("/api/v1/interactions", json=payload, headers=supervisor)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_supervisor_sees_only_its_team(client, auth, make_api_key):
    mine = post(client, auth, interaction_payload()).json
    theirs = post(
        client, auth, interaction_payload(operator={"external_id": "op-9", "team": "Hotline"})
    ).json
    supervisor = {"Authorization": f"Bearer {make_api_key('supervisor', team='Front office')}"}
    assert client.get(f"/api/v1/interactions/{mine['id']}", headers=supervisor).status_code == 200
    assert client.get(f"/api/v1/interactions/{theirs['id']}", headers=supervisor).status_code == 404


def test_the_same_id_with_another_operator_is_a_409_naming_what_differs(client, auth):
    payload = interaction_payload()
    first = post(client, auth, payload)
    other = post(
        client,
        auth,
        {**payload, "operator": {"external_id": "op-8", "name": "Борис"}, "office": "port"},
    )

    assert other.status_code == 409
    assert other.mimetype == "application/problem+json"
    problem = other.json
    assert problem["interaction_id"] == first.json["id"]
    assert {c["field"]: (c["recorded"], c["given"]) for c in problem["conflicts"]} == {
        "operator.external_id": ("op-7", "op-8"),
        "office": ("central", "port"),
    }
    assert "operator.external_id" in problem["detail"]
    stored = client.get(f"/api/v1/interactions/{first.json['id']}", headers=auth).json
    assert stored["operator"]["external_id"] == "op-7"
    assert stored["office"] == "central"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ended_at": "2026-11-01T10:00:00+00:00"}, "ended_at"),
        ({"customer": {"phone": "+79161234500"}}, "customer.phone"),
        ({"survey": "none"}, "survey"),
        ({"flow": "quick_csat"}, "flow"),
    ],
)
def test_each_conflicting_field_is_named(client, auth, change, field):
    payload = interaction_payload()
    assert post(client, auth, payload).status_code == 201
    response = post(client, auth, {**payload, **change})
    assert response.status_code == 409
    assert [c["field"] for c in response.json["conflicts"]] == [field]


def test_an_end_in_the_future_is_refused_beyond_five_minutes_of_clock_skew(client, auth):
    now = datetime.now(UTC)
    late = post(client, auth, interaction_payload(ended_at=(now + timedelta(hours=2)).isoformat()))
    assert late.status_code == 422
    assert [e["field"] for e in late.json["errors"]] == ["ended_at"]
    assert "future" in late.json["detail"]
    skewed = post(
        client, auth, interaction_payload(ended_at=(now + timedelta(minutes=4)).isoformat())
    )
    assert skewed.status_code == 201


def test_times_are_answered_in_utc_whatever_offset_they_were_posted_with(client, auth):
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    posted = ended.astimezone(timezone(timedelta(hours=3))).isoformat()
    created = post(client, auth, interaction_payload(ended_at=posted)).json
    read = client.get(f"/api/v1/interactions/{created['id']}", headers=auth).json

    assert created["ended_at"] == read["ended_at"] == ended.isoformat()
    assert created["survey"]["due_at"] == read["survey"]["due_at"]
    assert created["survey"]["due_at"].endswith("+00:00")


def test_a_pbx_report_after_the_ivr_hand_over_completes_the_call_and_repeats_are_200(client, auth):
    call = Call(client)
    assert call.start("operator=op-1&interaction=pbx-2001").status_code == 200
    ended = (datetime.now(UTC) - timedelta(minutes=3)).replace(microsecond=0)
    report = interaction_payload(
        external_id="pbx-2001",
        channel="call",
        ended_at=ended.isoformat(),
        operator={"external_id": "op-1", "name": "Ольга"},
        customer={"external_id": "crm-77", "phone": "+79161234567"},
        disposition="completed",
        office=None,
    )

    first = post(client, auth, report)
    again = post(client, auth, report)

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json["ended_at"] == ended.isoformat()  # the PBX's clock, not the hand-over's
    assert first.json["customer"]["external_id"] == "crm-77"
    assert first.json["survey"]["kind"] == "post_call"  # the hand-over's survey stays
    assert again.json == first.json
