"""The supervisor dashboard: sign in with a key, read the ranking, close incidents."""

from __future__ import annotations

import re

from sqlalchemy import select

from gateway.models import SurveySession
from gateway.surveys import open_incident


def csrf(page_html):
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def sign_in(client, key):
    """Sign in as a browser does: the form (and its CSRF token) first, then the post."""
    token = csrf(client.get("/dashboard/login").get_data(as_text=True))
    return client.post("/dashboard/login", data={"api_key": key, "csrf_token": token})


def test_pages_need_a_signed_in_supervisor(client, make_api_key):
    response = client.get("/dashboard/operators")
    assert response.status_code == 302
    assert "/dashboard/login" in response.headers["Location"]
    assert sign_in(client, "sgw_wrong").status_code == 401
    assert sign_in(client, make_api_key("integration")).status_code == 401
    assert client.get("/dashboard/operators").status_code == 302


def test_supervisor_sees_its_team_ranked_as_the_api_ranks(client, month, make_api_key, keys):
    assert sign_in(client, make_api_key("supervisor", team="North")).status_code == 302
    page = client.get(f"/dashboard/operators?from={month.start}&to={month.end}&team=South")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Anna" in html and "Boris" in html
    assert "Clara" not in html and "Dmitri" not in html  # another team, even when asked for

    api = client.get(
        f"/api/v1/reports/operators?from={month.start}&to={month.end}", headers=keys["north"]
    ).json["operators"]
    names = [r["operator"]["name"] for r in api]
    assert html.index(names[0]) < html.index(names[1])


def test_admin_sees_unranked_operators_marked(client, month, make_api_key):
    sign_in(client, make_api_key("admin"))
    html = client.get(f"/dashboard/operators?from={month.start}&to={month.end}").get_data(
        as_text=True
    )
    row = html[html.index("Clara") - 400 : html.index("Clara")]
    assert 'class="unranked"' in row and "fewer than the 30 needed" in row


def test_incident_is_closed_from_the_page_with_a_csrf_token(app, client, month, make_api_key):
    with app.app_context():
        session = app.extensions["database"].session()
        survey = session.scalars(select(SurveySession)).first()
        incident = open_incident(session, survey, 1, survey.created_at)
        session.commit()
        incident_id = incident.id
    sign_in(client, make_api_key("admin"))
    page = client.get("/dashboard/incidents").get_data(as_text=True)
    assert f"/dashboard/incidents/{incident_id}/close" in page

    forged = client.post(f"/dashboard/incidents/{incident_id}/close", data={"resolution": "done"})
    assert forged.status_code == 400
    closed = client.post(
        f"/dashboard/incidents/{incident_id}/close",
        data={"resolution": "Called the customer back", "csrf_token": csrf(page)},
    )
    assert closed.status_code == 302
    closed_page = client.get("/dashboard/incidents?status=closed").get_data(as_text=True)
    assert "Called the customer back" in closed_page
