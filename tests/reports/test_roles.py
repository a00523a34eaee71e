"""One rule for every person's key (gateway.access): an operator sees their own figures and
contacts without the customer, a supervisor their team, an admin everything."""

from __future__ import annotations


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_an_operator_key_reads_only_its_own_row_of_the_ranking(client, month, make_api_key):
    anna = bearer(make_api_key("operator", operator="op-a", name="anna"))
    period = f"from={month.start}&to={month.end}"
    own = client.get(f"/api/v1/reports/operators?{period}", headers=anna)
    assert own.status_code == 200
    rows = own.get_json()["operators"]
    assert [r["operator"]["external_id"] for r in rows] == ["op-a"]

    admin = bearer(make_api_key("admin", name="boss"))
    every = client.get(f"/api/v1/reports/operators?{period}", headers=admin).get_json()
    (as_admin_sees,) = [r for r in every["operators"] if r["operator"]["external_id"] == "op-a"]
    for figure in ("responses", "surveys_sent", "csat", "overall_mean", "parameters"):
        assert rows[0][figure] == as_admin_sees[figure], figure


def test_an_operator_key_sees_its_own_trend_and_no_one_elses(client, month, make_api_key):
    anna = bearer(make_api_key("operator", operator="op-a", name="anna"))
    period = f"from={month.start}&to={month.end}"
    assert (
        client.get(f"/api/v1/reports/operators/op-a/trend?{period}", headers=anna).status_code
        == 200
    )
    other = client.get(f"/api/v1/reports/operators/op-b/trend?{period}", headers=anna)
    assert other.status_code == 404


def test_an_operator_key_lists_its_own_contacts_without_the_customer(client, month, make_api_key):
    anna = bearer(make_api_key("operator", operator="op-a", name="anna"))
    page = client.get("/api/v1/interactions?page_size=200", headers=anna)
    assert page.status_code == 200
    items = page.get_json()["items"]
    assert items and {i["operator"]["external_id"] for i in items} == {"op-a"}
    assert all(i["customer"] is None for i in items)
    assert "+7" not in page.get_data(as_text=True)
    other = client.get("/api/v1/interactions?operator=op-b", headers=anna).get_json()
    assert other["total"] == 0


def test_an_operator_key_may_not_read_incidents_or_team_figures(client, month, make_api_key):
    anna = bearer(make_api_key("operator", operator="op-a", name="anna"))
    assert client.get("/api/v1/incidents", headers=anna).status_code == 403
    period = f"from={month.start}&to={month.end}"
    assert client.get(f"/api/v1/reports/teams?{period}", headers=anna).status_code == 403


def test_a_supervisor_key_is_refused_another_teams_operator(client, month, keys):
    period = f"from={month.start}&to={month.end}"
    mine = client.get(f"/api/v1/reports/operators/op-a/trend?{period}", headers=keys["north"])
    assert mine.status_code == 200
    theirs = client.get(f"/api/v1/reports/operators/op-d/trend?{period}", headers=keys["north"])
    assert theirs.status_code == 404
    asked = client.get(f"/api/v1/reports/operators?{period}&team=South", headers=keys["north"])
    assert asked.status_code == 403
    assert "North" in asked.get_json()["detail"]
