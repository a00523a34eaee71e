"""Who reads what: supervisors their own team only, admins all, integrations scores only."""

from __future__ import annotations

import pytest

from tests.reports.factories import report

REPORTS = (
    "/api/v1/reports/operators",
    "/api/v1/reports/teams",
    "/api/v1/reports/funnel",
    "/api/v1/reports/interactions",
)


def _operators_in(response) -> set[str]:
    body = response.get_data(as_text=True)
    return {op for op in ("op-a", "op-b", "op-c", "op-d") if op in body}


def _teams_in(response) -> set[str]:
    body = response.get_data(as_text=True)
    return {team for team in ("North", "South") if team in body}


@pytest.mark.parametrize("path", REPORTS)
def test_a_supervisor_reads_its_own_team_without_asking(client, keys, month, path):
    response = report(client, keys["north"], path)
    assert response.status_code == 200
    assert _teams_in(response) == {"North"}
    assert _operators_in(response) <= {"op-a", "op-b"}


@pytest.mark.parametrize("path", REPORTS)
def test_a_supervisor_asking_for_another_team_is_refused_and_sees_nothing(
    client, keys, month, path
):
    response = report(client, keys["north"], path, team="South")
    assert response.status_code == 403
    assert _operators_in(response) == set() and "South" not in response.get_data(as_text=True)
    assert report(client, keys["north"], path, team="North").status_code == 200


def test_a_supervisor_cannot_read_another_teams_operator_trend(client, keys, month):
    other = report(client, keys["north"], "/api/v1/reports/operators/op-d/trend")
    assert other.status_code == 404
    assert "op-d" not in other.get_data(as_text=True) or other.json["status"] == 404
    own = report(client, keys["south"], "/api/v1/reports/operators/op-d/trend")
    assert own.status_code == 200


def test_an_admin_reads_every_team(client, keys, month):
    assert _operators_in(report(client, keys["admin"])) == {"op-a", "op-b", "op-c", "op-d"}
    assert _operators_in(report(client, keys["admin"], team="South")) == {"op-c", "op-d"}


@pytest.mark.parametrize("path", REPORTS)
def test_an_integration_key_reads_no_reports(client, keys, month, path):
    refused = report(client, keys["integration"], path)
    assert refused.status_code == 403
    assert refused.json["detail"] == "an integration key may not do this"


def test_an_unknown_team_is_a_404_not_an_empty_report(client, keys, month):
    for path in REPORTS:
        response = report(client, keys["admin"], path, team="nosuch")
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"
        assert response.json["detail"] == "no team named 'nosuch'"


def test_without_a_key_nothing_is_read(client, month):
    assert report(client, {}).status_code == 401
    assert client.get("/api/v1/customers/crm-1/satisfaction").status_code == 401


def test_a_supervisor_cannot_exclude_another_teams_rating(client, keys, month, session):
    response = client.post(
        f"/api/v1/surveys/{month.excluded_survey_id}/exclusion",
        json={"reason": "appeal"},
        headers=keys["north"],
    )
    assert response.status_code == 404
    delete = client.delete(
        f"/api/v1/surveys/{month.excluded_survey_id}/exclusion", headers=keys["north"]
    )
    assert delete.status_code == 404
    assert report(client, keys["admin"]).json  # still excluded: see test_exclusions


def test_an_integration_key_cannot_exclude_ratings(client, keys, month):
    response = client.post(
        f"/api/v1/surveys/{month.excluded_survey_id}/exclusion",
        json={"reason": "appeal"},
        headers=keys["integration"],
    )
    assert response.status_code == 403


def test_a_supervisor_reads_no_customer_satisfaction(client, keys, seeder, session):
    seeder.customer("crm-77")
    session.commit()
    assert (
        client.get("/api/v1/customers/crm-77/satisfaction", headers=keys["north"]).status_code
        == 403
    )
