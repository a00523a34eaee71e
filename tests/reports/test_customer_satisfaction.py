"""GET /api/v1/customers/{external_id}/satisfaction and ?phone=: for the CRM."""

from __future__ import annotations

import pytest

from tests.reports.factories import at


@pytest.fixture
def customer(seeder, session, with_nps_flow):
    operator = seeder.operator("op-s", "North")
    person = seeder.customer("crm-500", "+79161112233")
    seeder.survey(
        operator,
        {"overall": 2, "speed": 1, "nps": 3},
        at("2026-09-01"),
        customer=person,
        flow="test_nps",
    )
    seeder.survey(
        operator,
        {"overall": 4, "cost": 3, "speed": 5, "politeness": None, "nps": 9},
        at("2026-09-10"),
        customer=person,
        flow="test_nps",
    )
    seeder.survey(
        operator, {"overall": 1}, at("2026-09-20"), customer=person, excluded="wrong number dialled"
    )
    seeder.survey(operator, {}, at("2026-09-25"), customer=person, status="expired")
    session.commit()
    return person


def test_the_crm_reads_the_latest_scores_their_mean_and_nps_class(client, keys, customer):
    response = client.get("/api/v1/customers/crm-500/satisfaction", headers=keys["integration"])
    assert response.status_code == 200, response.json
    body = response.json
    latest = body["latest"]
    # The 20 Sept rating is excluded and the 25 Sept survey went unanswered: 10 Sept is latest.
    assert latest["scores"] == {"overall": 4, "cost": 3, "speed": 5, "nps": 9}
    assert latest["mean"] == 4.0  # (4 + 3 + 5) / 3: the 1-5 ratings
    assert latest["nps_class"] == "promoter"
    assert latest["interaction"]["ended_at"].startswith("2026-09-10")
    assert body["overall_mean"] == 3.0  # 2 and 4
    assert body["surveys_answered"] == 2
    assert (body["nps"], body["nps_class"]) == (9, "promoter")


def test_the_same_by_phone_in_any_writing(client, keys, customer):
    response = client.get(
        "/api/v1/customers/satisfaction",
        query_string={"phone": "8 (916) 111-22-33"},
        headers=keys["integration"],
    )
    assert response.status_code == 200
    assert response.json["customer"]["external_id"] == "crm-500"
    assert response.json["latest"]["scores"]["overall"] == 4


def test_an_unknown_customer_or_phone_is_404(client, keys, customer):
    assert (
        client.get("/api/v1/customers/nobody/satisfaction", headers=keys["integration"]).status_code
        == 404
    )
    assert (
        client.get(
            "/api/v1/customers/satisfaction",
            query_string={"phone": "+79990000000"},
            headers=keys["integration"],
        ).status_code
        == 404
    )
    bad = client.get(
        "/api/v1/customers/satisfaction",
        query_string={"phone": "12"},
        headers=keys["integration"],
    )
    assert bad.status_code == 422


def test_a_customer_never_surveyed_has_no_scores(client, keys, seeder, session):
    seeder.customer("crm-new")
    session.commit()
    body = client.get("/api/v1/customers/crm-new/satisfaction", headers=keys["integration"]).json
    assert body["latest"] is None and body["overall_mean"] is None and body["nps_class"] is None
