"""The figures pages of the dashboard: Russian by default, the API's figures, links from the
ranking to an operator to a contact, errors as pages that say what to do."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from babel.numbers import format_percent
from sqlalchemy import select

from gateway.db import utcnow
from gateway.models import Answer, Interaction, Message, Operator, SurveyAttempt, SurveySession
from gateway.surveys import open_incident
from tests.dashboard_client import csrf, sign_in


def page(client, path):
    response = client.get(path)
    return response, response.get_data(as_text=True)


def test_pages_need_a_signed_in_account(client, make_account):
    response = client.get("/dashboard/operators")
    assert response.status_code == 302
    assert "/dashboard/login" in response.headers["Location"]
    boss = make_account("admin")
    assert sign_in(client, boss, "not the password").status_code == 401
    assert sign_in(client, "nobody").status_code == 401
    assert client.get("/dashboard/operators").status_code == 302
    assert sign_in(client, boss).status_code == 302
    assert client.get("/dashboard/operators").status_code == 200


def test_an_operator_account_sees_only_its_own_figures(client, month, make_account):
    sign_in(client, make_account("operator", operator="op-a"))
    html = client.get(f"/dashboard/operators?from={month.start}&to={month.end}").get_data(
        as_text=True
    )
    assert "Anna" in html
    assert "Boris" not in html and "Clara" not in html and "Dmitri" not in html
    assert client.get("/dashboard/operators/op-b").status_code == 404
    assert client.get("/dashboard/incidents").status_code == 403
    assert client.get("/dashboard/teams").status_code == 403


def test_an_operator_sees_the_whole_teams_csat_as_the_team_figure(
    client, month, make_account, make_api_key, keys
):
    query = f"from={month.start}&to={month.end}"
    admin_rows = {
        r["operator"]["external_id"]: r
        for r in client.get(f"/api/v1/reports/operators?{query}", headers=keys["admin"]).json[
            "operators"
        ]
    }
    anna = admin_rows["op-a"]
    assert anna["team_csat"] != anna["csat"]  # Boris's answers count in the team's figure
    own_key = {"Authorization": f"Bearer {make_api_key('operator', operator='op-a')}"}
    [own] = client.get(f"/api/v1/reports/operators?{query}", headers=own_key).json["operators"]
    assert own["team_csat"] == anna["team_csat"] and own["vs_team"] == anna["vs_team"]

    sign_in(client, make_account("operator", operator="op-a"))
    team = format_percent(anna["team_csat"], "#,##0%", locale="ru")
    own_csat = format_percent(anna["csat"], "#,##0%", locale="ru")
    assert team != own_csat
    _response, ranking = page(client, f"/dashboard/operators?{query}")
    cell = re.search(r'data-field="vs_team">(.*?)</td>', ranking, re.S).group(1)
    assert f"группа {team}" in cell
    _response, mine = page(client, f"/dashboard/operators/op-a?{query}")
    assert f"(группа {team})" in mine


def test_wrong_passwords_lock_the_account_and_the_page_says_until_when(app, client, make_account):
    olga = make_account("supervisor", team="North")
    for _ in range(app.config["SETTINGS"].login_max_failures - 1):
        assert sign_in(client, olga, "a wrong guess").status_code == 401
    locked = sign_in(client, olga, "a wrong guess")
    assert locked.status_code == 429
    assert "заблокирована до" in locked.get_data(as_text=True)
    assert int(locked.headers["Retry-After"]) > 0
    assert sign_in(client, olga).status_code == 429  # the right password, while locked


def test_root_leads_to_the_dashboard(client):
    response = client.get("/", follow_redirects=True)
    assert response.status_code == 200
    assert response.request.path == "/dashboard/login"
    assert response.mimetype == "text/html"


def test_the_ranking_is_russian_by_default_and_english_by_choice(client, month, make_account):
    assert sign_in(client, make_account("admin")).status_code == 302
    path = f"/dashboard/operators?from={month.start}&to={month.end}"
    _response, html = page(client, path)
    assert '<html lang="ru">' in html
    assert "Рейтинг операторов" in html and "Вежливость" in html and "Стоимость" in html
    assert ">Визит в офис<" in html and ">office_visit<" not in html
    assert "1 сент. 2026" in html  # the period, written the Russian way

    switched = client.get("/dashboard/language/en", query_string={"next": path})
    assert switched.status_code == 302 and switched.headers["Location"].endswith(path)
    _response, html = page(client, path)  # the choice holds for the next pages
    assert '<html lang="en">' in html
    assert "Operators’ ranking" in html and ">Office visit<" in html and "Sep 1, 2026" in html
    assert "The dashboard is now in English." in html


def test_supervisor_sees_its_team_ranked_as_the_api_ranks(client, month, make_account, keys):
    assert sign_in(client, make_account("supervisor", team="North")).status_code == 302
    response, html = page(client, f"/dashboard/operators?from={month.start}&to={month.end}")
    assert response.status_code == 200
    assert "Anna" in html and "Boris" in html
    assert "Clara" not in html and "Dmitri" not in html  # another team

    api = client.get(
        f"/api/v1/reports/operators?from={month.start}&to={month.end}", headers=keys["north"]
    ).json["operators"]
    names = [r["operator"]["name"] for r in api]
    assert html.index(names[0]) < html.index(names[1])
    for row in api:  # the per-parameter columns, as the API rounds them, in Russian writing
        cells = html[html.index(f'data-operator="{row["operator"]["external_id"]}"') :]
        for key in ("cost", "speed", "politeness", "quality"):
            shown = re.search(rf'data-field="parameter_{key}">([^<]*)<', cells).group(1)
            assert shown == f"{row['parameters'][key]:.2f}".replace(".", ",")


def test_another_teams_ranking_is_refused_with_a_page(client, month, make_account):
    sign_in(client, make_account("supervisor", team="North"))
    response, html = page(
        client, f"/dashboard/operators?from={month.start}&to={month.end}&team=South"
    )
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert "Вам доступны только ваши группы (North)" in html


def test_unranked_operators_follow_with_the_reason(client, month, make_account):
    sign_in(client, make_account("admin"))
    _response, html = page(client, f"/dashboard/operators?from={month.start}&to={month.end}")
    row = html[html.index('data-operator="op-c"') :]
    row = row[: row.index("</tr>")]
    assert "3 ответа: для места в рейтинге нужно не меньше 30" in row
    assert html.index('data-operator="op-c"') > html.index('data-operator="op-d"')
    assert html[: html.index('data-operator="op-c"')].rindex('class="unranked"') > 0


def test_the_default_period_is_the_last_30_days(client, make_account, app):
    sign_in(client, make_account("admin"))
    _response, html = page(client, "/dashboard/operators")
    today = utcnow().astimezone(app.config["SETTINGS"].report_zone).date()
    assert f'name="from" value="{(today - timedelta(days=29)).isoformat()}"' in html
    assert f'name="to" value="{today.isoformat()}"' in html


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("from=2026-09-30&to=2026-09-01", 400, "Поменяйте даты местами"),
        ("from=30.09.2026", 400, "Пишите даты так: 2026-11-01"),
        ("team=Nowhere", 404, "Группы «Nowhere» нет"),
        ("channel=fax", 400, "Канала «fax» нет"),
    ],
)
def test_bad_filters_get_a_page_saying_what_to_do(client, make_account, query, status, says):
    sign_in(client, make_account("admin"))
    response, html = page(client, f"/dashboard/operators?{query}")
    assert response.status_code == status
    assert response.mimetype == "text/html" and says in html
    assert 'href="/dashboard/"' in html  # a way back


def test_unknown_pages_and_failures_are_pages_too(client, make_account, monkeypatch):
    sign_in(client, make_account("admin"))
    response, html = page(client, "/dashboard/nothing-here")
    assert response.status_code == 404 and "Не найдено" in html and "Начните заново" in html
    response, html = page(client, "/dashboard/operators/nobody")
    assert response.status_code == 404 and "нет оператора «nobody»" in html

    from gateway.reports import service

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(service, "teams_report", broken)
    response, html = page(client, "/dashboard/teams")
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "Что-то пошло не так" in html and "the database went away" not in html


def test_the_csv_button_downloads_what_the_api_exports(client, month, make_account, keys):
    sign_in(client, make_account("admin"))
    query = f"from={month.start}&to={month.end}&channel=call&office=central"
    _response, html = page(client, f"/dashboard/operators?{query}")
    link = re.search(r'href="(/dashboard/operators\.csv\?[^"]+)"', html).group(1)
    download = client.get(link.replace("&amp;", "&"))
    api = client.get(
        f"/api/v1/reports/operators?{query}", headers={**keys["admin"], "Accept": "text/csv"}
    )
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.data == api.data and b"op-a" in download.data and b"op-b" not in download.data
    xlsx = client.get(link.replace("&amp;", "&").replace("operators.csv", "operators.xlsx"))
    assert xlsx.data[:2] == b"PK"


def test_operator_page_shows_trend_distribution_funnel_surveys_and_exclusions(
    client, month, make_account, keys, session
):
    sign_in(client, make_account("admin"))
    response, html = page(
        client, f"/dashboard/operators/op-d?from={month.start}&to={month.end}&granularity=week"
    )
    assert response.status_code == 200
    trend = client.get(
        f"/api/v1/reports/operators/op-d/trend?from={month.start}&to={month.end}&granularity=week",
        headers=keys["admin"],
    ).json["points"]
    table = html[html.index('id="trend-table"') : html.index("</table>", html.index("trend-table"))]
    assert table.count("<tr>") == len(trend) + 1
    # The distribution paints 3 in the neutral colour, apart from 4 and 5.
    assert 'data-colors="--score-1,--score-2,--score-3,--score-4,--score-5"' in html
    assert 'id="funnel"' in html and "Воронка опросов" in html
    assert "the customer rated the tariff, not the call (appeal 17)" in html  # the exclusion
    survey = session.get(SurveySession, month.excluded_survey_id)
    assert f"/dashboard/interactions/{survey.interaction_id}" in html  # each survey links on


def test_another_teams_supervisor_is_refused_the_operators_page(client, month, make_account):
    sign_in(client, make_account("supervisor", team="North"))
    response, html = page(client, f"/dashboard/operators/op-d?from={month.start}&to={month.end}")
    assert response.status_code == 404 and "нет оператора «op-d»" in html
    assert "Dmitri" not in html


def test_interaction_page_shows_the_survey_step_by_step_and_its_incident(
    client, month, make_account, session
):
    survey = session.scalars(
        select(SurveySession)
        .join(SurveySession.interaction)
        .join(Interaction.operator)
        .where(Operator.external_id == "op-a", SurveySession.status == "completed")
        .where(SurveySession.flow == "post_call")
    ).first()
    session.add(
        Answer(
            session_id=survey.id,
            question_key="comment",
            recording_url="https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE" + "0" * 32,
            recording_duration=7,
        )
    )
    session.add(SurveyAttempt(session_id=survey.id, number=1, outcome="busy"))
    session.add(
        Message(session_id=survey.id, direction="inbound", phone="+79160000001", body="4 - ок")
    )
    incident = open_incident(session, survey, 1, survey.created_at)
    session.commit()
    sign_in(client, make_account("admin"))
    response, html = page(client, f"/dashboard/interactions/{survey.interaction_id}")
    assert "Занято" in html and "4 - ок" in html and "От клиента" in html
    assert response.status_code == 200
    steps = re.findall(r'<li data-question="([a-z_]+)">', html)
    assert steps[:5] == ["overall", "cost", "speed", "politeness", "quality"]
    assert "Насколько вы довольны обслуживанием в целом?" in html  # the question as asked
    assert f'href="/dashboard/incidents/{incident.id}"' in html
    assert "<audio controls" in html and "7 секунд" in html
    assert "/dashboard/operators/op-a" in html


def test_a_flash_message_confirms_each_action(client, make_account):
    sign_in(client, make_account("admin", name="Olga"))
    html = client.get("/dashboard/", follow_redirects=True).get_data(as_text=True)
    assert "Вы вошли как Olga." in html
    client.post("/dashboard/logout", data={"csrf_token": csrf(html)})
    _response, html = page(client, "/dashboard/login")
    assert "Вы вышли из панели." in html


def test_teams_and_company_pages_show_every_parameter_with_cost(client, month, make_account, keys):
    sign_in(client, make_account("admin"))
    query = f"from={month.start}&to={month.end}"
    api = client.get(f"/api/v1/reports/teams?{query}", headers=keys["admin"]).json
    _response, html = page(client, f"/dashboard/company?{query}")
    shown = re.search(r'id="company-csi">([^<]*)<', html).group(1)
    assert shown == f"{api['total']['csi']:.1f}".replace(".", ",")
    assert "Стоимость" in html and 'data-table="company-parameters"' in html
    _response, html = page(client, f"/dashboard/teams?{query}")
    assert "North" in html and "South" in html and "Все группы" in html


def test_the_incident_list_links_to_its_contact_and_confirms_closing(
    app, client, month, make_account
):
    with app.app_context():
        session = app.extensions["database"].session()
        survey = session.scalars(select(SurveySession)).first()
        incident = open_incident(session, survey, 1, survey.created_at)
        session.commit()
        incident_id, interaction_id = incident.id, survey.interaction_id
    sign_in(client, make_account("admin"))
    _response, html = page(client, "/dashboard/incidents")
    assert f"/dashboard/interactions/{interaction_id}" in html

    forged = client.post(f"/dashboard/incidents/{incident_id}/close", data={"resolution": "done"})
    assert forged.status_code == 400 and "Форма устарела" in forged.get_data(as_text=True)
    closed = client.post(
        f"/dashboard/incidents/{incident_id}/close",
        data={"resolution": "Called the customer back", "csrf_token": csrf(html)},
        follow_redirects=True,
    )
    assert f"Инцидент № {incident_id} закрыт." in closed.get_data(as_text=True)
    closed_page = client.get("/dashboard/incidents?status=closed").get_data(as_text=True)
    assert "Called the customer back" in closed_page


def test_the_trend_shows_csat_mean_csi_or_nps_with_every_figure_as_text(
    client, month, make_account, keys
):
    sign_in(client, make_account("admin"))
    query = f"from={month.start}&to={month.end}&granularity=week"
    points = client.get(
        f"/api/v1/reports/operators/op-d/trend?{query}", headers=keys["admin"]
    ).json["points"]
    _response, csat = page(client, f"/dashboard/operators/op-d?{query}")
    chart = re.search(r'<figure class="chart" id="trend-chart"[^>]*>', csat).group(0)
    assert 'data-measure="csat"' in chart and 'data-max="100"' in chart
    # Each figure is offered; NPS because this operator's flow asks it.
    for measure in ("overall_mean", "csi", "nps"):
        assert f'data-measure="{measure}" href=' in csat

    _response, nps = page(client, f"/dashboard/operators/op-d?{query}&measure=nps")
    chart = re.search(r'<figure class="chart" id="trend-chart"[^>]*>', nps).group(0)
    assert 'data-measure="nps"' in chart and 'data-min="-100"' in chart
    table = nps[nps.index('id="trend-table"') : nps.index("</table>", nps.index("trend-table"))]
    assert re.search(r'<th data-measure="nps" data-series', table)
    assert table.count("data-series") == 1  # one figure drawn, all of them in the table
    for point in points:  # the promoters / passives / detractors of each period, as text
        if point["nps"]:
            n = point["nps"]
            assert f"{n['promoters']} / {n['passives']} / {n['detractors']}" in table

    _response, mean = page(client, f"/dashboard/operators/op-d?{query}&measure=overall_mean")
    table = mean[mean.index('id="trend-table"') : mean.index("</table>", mean.index("trend-table"))]
    assert re.search(r'<th data-measure="overall_mean" data-series', table)
    for point in points:  # the chart's figures are the API's, in the table's cells
        if point["overall_mean"] is not None:
            assert f'data-value="{point["overall_mean"]}"' in table

    bad = client.get(f"/dashboard/operators/op-d?{query}&measure=median")
    assert bad.status_code == 400 and "Выберите" in bad.get_data(as_text=True)
