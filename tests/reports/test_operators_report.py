"""GET /api/v1/reports/operators: the figures match an independent computation from the raw
answers; small samples are listed but never ranked; CSV and XLSX carry the same numbers."""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import math
from collections import defaultdict
from typing import Any

import numpy as np
import openpyxl
import pytest
from sqlalchemy import text

from ivr_flows import QuestionType
from tests.reports.factories import NPS_FLOWS, report

SENT = ("active", "completed", "partial", "expired")
ENDED = ("completed", "partial", "expired")


def independent_figures(session: Any, flows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report computed again, plainly, from the raw rows (no code of the reports' own):
    September in Moscow days; a survey still running has no score yet."""
    rows = session.execute(
        text("""
        SELECT o.external_id AS operator, s.id AS survey, s.status, s.flow,
               s.excluded_at IS NOT NULL AS excluded, a.question_key, a.value
        FROM interactions i
        JOIN operators o ON o.id = i.operator_id
        JOIN survey_sessions s ON s.interaction_id = i.id
        LEFT JOIN answers a ON a.session_id = s.id
        WHERE i.ended_at >= '2026-08-31T21:00:00+00:00' AND i.ended_at < '2026-09-30T21:00:00+00:00'
    """)
    ).all()
    surveys: dict[int, dict[str, Any]] = {}
    for r in rows:
        survey = surveys.setdefault(
            r.survey,
            {
                "operator": r.operator,
                "status": r.status,
                "flow": r.flow,
                "excluded": r.excluded,
                "answers": {},
            },
        )
        if r.question_key is not None and r.value is not None and r.status in ENDED:
            survey["answers"][r.question_key] = r.value
    per_operator: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for survey in surveys.values():
        per_operator[survey["operator"]].append(survey)

    result = {}
    for operator, items in per_operator.items():
        counted = [s for s in items if not s["excluded"]]
        sent = sum(1 for s in counted if s["status"] in SENT)
        overall = [s["answers"]["overall"] for s in counted if "overall" in s["answers"]]
        n = len(overall)
        good = sum(1 for v in overall if v >= 4)
        z = 1.959963984540054
        p = good / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        session_csi = []
        params: dict[str, list[int]] = defaultdict(list)
        nps_values = []
        for s in counted:
            flow = flows[s["flow"]]
            answers = s["answers"]
            importance = {
                q.importance_of: answers.get(q.key)
                for q in flow.questions
                if q.type is QuestionType.IMPORTANCE
            }
            # The operator's CSI: the importance of cost counts nowhere, not even in the
            # stand-in weight of a skipped importance answer.
            stated = [
                v
                for q in flow.questions
                if q.parameter and q.operator_controlled
                if (v := importance.get(q.key)) is not None
            ]
            total = weights = 0.0
            for q in flow.questions:
                if not q.parameter:
                    continue
                if q.key in answers:
                    params[q.key].append(answers[q.key])
                if not q.operator_controlled or q.key not in answers:
                    continue
                own = importance.get(q.key)
                w = (own or sum(stated) / len(stated)) if stated else q.weight
                total += w * (answers[q.key] - 1) * 25
                weights += w
            if weights:
                session_csi.append(total / weights)
            for q in flow.questions:
                if q.type is QuestionType.NPS and q.key in answers:
                    nps_values.append(answers[q.key])
        m = len(nps_values) or math.nan
        promoters = sum(1 for v in nps_values if v >= 9) / m
        detractors = sum(1 for v in nps_values if v <= 6) / m
        # NPS interval: quantiles of promoters - detractors drawn from the Dirichlet posterior.
        draws = np.random.default_rng(7).dirichlet(
            [1 + promoters * m, 1 + (1 - promoters - detractors) * m, 1 + detractors * m]
            if nps_values
            else [1, 1, 1],
            200_000,
        )
        nps_quantiles = np.quantile(draws[:, 0] - draws[:, 2], [0.025, 0.975]) * 100
        result[operator] = {
            "satisfied": good,
            "surveys_sent": sent,
            "responses": n,
            "response_rate": n / sent,
            "overall_mean": sum(overall) / n,
            "csat": good / n,
            "csat_ci95": [max(0.0, centre - half), min(1.0, centre + half)],
            "csi": sum(session_csi) / len(session_csi) if session_csi else None,
            "parameters": {k: sum(v) / len(v) for k, v in params.items()},
            "distribution": {str(k): overall.count(k) for k in range(1, 6)},
            "nps": None if not nps_values else (promoters - detractors) * 100,
            "nps_se": None
            if not nps_values
            else math.sqrt((promoters + detractors - (promoters - detractors) ** 2) / m) * 100,
            "nps_responses": len(nps_values),
            "nps_ci95": [float(q) for q in nps_quantiles],
        }
    return result


@pytest.fixture
def flows() -> dict[str, Any]:
    return NPS_FLOWS


def test_the_report_matches_figures_computed_independently_from_raw_answers(
    app, client, session, keys, month, flows
):
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(settings, report_min_nps_responses=1)
    response = report(client, keys["admin"])
    assert response.status_code == 200, response.json
    rows = {r["operator"]["external_id"]: r for r in response.json["operators"]}
    expected = independent_figures(session, flows)
    assert set(rows) == set(expected) == {"op-a", "op-b", "op-c", "op-d"}
    for operator, want in expected.items():
        got = rows[operator]
        assert got["surveys_sent"] == want["surveys_sent"], operator
        assert got["responses"] == want["responses"], operator
        assert got["distribution"] == want["distribution"], operator
        assert got["response_rate"] == pytest.approx(want["response_rate"], abs=5e-5)
        assert got["overall_mean"] == pytest.approx(want["overall_mean"], abs=5e-4)
        assert got["csat"] == pytest.approx(want["csat"], abs=5e-5)
        assert got["csat_ci95"] == pytest.approx(want["csat_ci95"], abs=5e-5)
        assert got["csi"] == pytest.approx(want["csi"], abs=5e-3), operator
        assert got["parameters"] == pytest.approx(
            {k: pytest.approx(v, abs=5e-4) for k, v in want["parameters"].items()}
        )
        if want["nps"] is None:
            assert got["nps"] is None, operator
        else:
            assert got["nps"]["score"] == pytest.approx(want["nps"], abs=5e-3)
            assert got["nps"]["se"] == pytest.approx(want["nps_se"], abs=5e-3)
            low, high = got["nps"]["ci95"]
            assert -100 <= low <= got["nps"]["score"] <= high <= 100
            assert [low, high] == pytest.approx(want["nps_ci95"], abs=1.5), operator

    # Teams: the pooled CSAT of each team's operators, and the test against it.
    teams: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for operator, want in expected.items():
        team = rows[operator]["operator"]["team"]
        teams[team][0] += want["satisfied"]
        teams[team][1] += want["responses"]
    for operator, got in rows.items():
        satisfied, responses = teams[got["operator"]["team"]]
        assert got["team_csat"] == pytest.approx(satisfied / responses, abs=5e-5)
        low, high = got["csat_ci95"]
        expected_side = (
            "above"
            if satisfied / responses < low
            else "below"
            if satisfied / responses > high
            else "no_difference"
        )
        assert got["vs_team"] == expected_side, operator


def test_nps_below_its_minimum_sample_shows_counts_but_no_figure(app, client, keys, month):
    assert app.config["SETTINGS"].report_min_nps_responses == 30
    rows = {
        r["operator"]["external_id"]: r for r in report(client, keys["admin"]).json["operators"]
    }
    nps = rows["op-a"]["nps"]  # 14 surveys of op-a asked the NPS question
    assert 0 < nps["responses"] < 30
    assert nps["promoters"] + nps["passives"] + nps["detractors"] == nps["responses"]
    assert (nps["score"], nps["se"], nps["ci95"]) == (None, None, None)


def test_the_month_excludes_the_day_before_and_the_day_after(client, keys, month):
    rows = {
        r["operator"]["external_id"]: r for r in report(client, keys["admin"]).json["operators"]
    }
    # Each operator has a 1 just outside the month on both sides; op-c's three 5s stay perfect.
    assert rows["op-c"]["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 3}
    wider = {
        r["operator"]["external_id"]: r
        for r in report(client, keys["admin"], **{"from": "2026-08-31", "to": "2026-10-01"}).json[
            "operators"
        ]
    }
    assert wider["op-c"]["distribution"]["1"] == 2


def test_the_report_leaves_the_garbage_collector_as_it_found_it(client, keys, month):
    """The report pauses the cyclic collector while it builds its rows (for speed): a process
    that ran one must still collect, and one that had turned it off keeps it off."""
    assert gc.isenabled()
    assert report(client, keys["admin"]).json["operators"]
    assert gc.isenabled()
    gc.disable()
    try:
        assert report(client, keys["admin"]).json["operators"]
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_operator_with_three_answers_is_listed_but_not_ranked(client, keys, month):
    operators = report(client, keys["admin"]).json["operators"]
    op_c = next(r for r in operators if r["operator"]["external_id"] == "op-c")
    assert op_c["responses"] == 3  # three 5s; a 4 on an unfinished survey counts once it ends
    assert op_c["csat"] == 1.0  # a perfect CSAT...
    assert op_c["ranked"] is False and op_c["rank"] is None
    assert op_c["rank_reason"] == "3 responses, fewer than the 30 needed to be ranked"
    assert operators[-1] is not None and operators[-1]["operator"]["external_id"] == "op-c"
    ranked = [r for r in operators if r["ranked"]]
    assert [r["rank"] for r in ranked] == [1, 2, 3]  # ...yet it is ranked after all of these
    assert operators[: len(ranked)] == ranked
    # The ranked figure and its interval are what the order says: no row shows a higher
    # shrunk CSAT than a row above it.
    shrunk = [r["csat_shrunk"] for r in ranked]
    assert shrunk == sorted(shrunk, reverse=True)
    everyone = sum(r["responses"] for r in operators)
    company = sum(r["csat"] * r["responses"] for r in operators) / everyone
    for row in operators:
        low, high = row["csat_shrunk_ci95"]
        assert low < row["csat_shrunk"] < high
        # Shrunk: between the operator's own CSAT and the company's.
        assert min(row["csat"], company) <= row["csat_shrunk"] <= max(row["csat"], company)
    # op-c's 4 of 4 is pulled well below 100 %: a handful of answers does not make a star.
    assert op_c["csat_shrunk"] < 0.95


def test_the_minimum_for_ranking_is_a_setting(app, client, keys, month):
    settings = app.config["SETTINGS"]
    assert settings.report_min_responses == 30
    app.config["SETTINGS"] = dataclasses.replace(settings, report_min_responses=3)
    operators = report(client, keys["admin"]).json["operators"]
    assert all(r["ranked"] for r in operators)


def test_cost_counts_in_the_company_csi_but_not_in_the_operators(
    client, keys, month, seeder, session
):
    tariff = seeder.operator("op-tariff", "North")
    for _ in range(2):
        seeder.survey(tariff, {"overall": 4, "cost": 1, "speed": 5}, seeder_at())
    session.commit()
    row = next(
        r
        for r in report(client, keys["admin"]).json["operators"]
        if r["operator"]["external_id"] == "op-tariff"
    )
    assert row["csi"] == 100.0  # speed only: the tariff is not the operator's doing
    assert row["csi_all_parameters"] == 50.0
    assert row["parameters"] == {"cost": 1.0, "speed": 5.0}


def seeder_at() -> Any:
    from tests.reports.factories import at

    return at("2026-09-20")


def test_a_supervisor_sees_the_same_shrunk_figures_as_an_admin(client, keys, month):
    # The prior is the company's whatever the team filter: a team's view is a slice of the
    # company's ranking, not a ranking with other numbers.
    everyone = {
        r["operator"]["external_id"]: r for r in report(client, keys["admin"]).json["operators"]
    }
    north = report(client, keys["north"]).json["operators"]
    assert {r["operator"]["external_id"] for r in north} == {"op-a", "op-b"}
    for row in north:
        same = everyone[row["operator"]["external_id"]]
        assert row["csat_shrunk"] == same["csat_shrunk"]
        assert row["csat_shrunk_ci95"] == same["csat_shrunk_ci95"]
        assert (row["team_csat"], row["vs_team"]) == (same["team_csat"], same["vs_team"])
    assert [r["operator"]["external_id"] for r in north] == [
        r["operator"]["external_id"]
        for r in sorted(everyone.values(), key=lambda r: r["rank"] or 99)
        if r["operator"]["team"] == "North"
    ]


def test_filters_by_channel_team_and_office(client, keys, month):
    north = report(client, keys["admin"], team="North").json["operators"]
    assert {r["operator"]["external_id"] for r in north} == {"op-a", "op-b"}
    port = report(client, keys["admin"], office="port").json["operators"]
    assert {r["operator"]["external_id"] for r in port} == {"op-b", "op-d"}
    visits = report(client, keys["admin"], channel="office_visit").json["operators"]
    everything = report(client, keys["admin"]).json["operators"]
    by_id = {r["operator"]["external_id"]: r for r in everything}
    for row in visits:
        assert 0 < row["responses"] < by_id[row["operator"]["external_id"]]["responses"]


def test_a_period_ending_before_it_starts_is_refused(client, keys, month):
    response = report(client, keys["admin"], **{"from": "2026-09-30", "to": "2026-09-01"})
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"


def _as_number(text_value: str) -> Any:
    if text_value == "":
        return None
    if text_value in {"true", "false"}:
        return text_value == "true"
    try:
        return int(text_value)
    except ValueError:
        try:
            return float(text_value)
        except ValueError:
            return text_value


def _expected_flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = {
        "operator_external_id": row["operator"]["external_id"],
        "team": row["operator"]["team"],
        "surveys_sent": row["surveys_sent"],
        "responses": row["responses"],
        "response_rate": row["response_rate"],
        "overall_mean": row["overall_mean"],
        "csat": row["csat"],
        "csat_ci95_low": row["csat_ci95"][0],
        "csat_ci95_high": row["csat_ci95"][1],
        "csat_shrunk": row["csat_shrunk"],
        "csat_shrunk_ci95_low": row["csat_shrunk_ci95"][0],
        "csat_shrunk_ci95_high": row["csat_shrunk_ci95"][1],
        "team_csat": row["team_csat"],
        "vs_team": row["vs_team"],
        "csi": row["csi"],
        "nps": row["nps"]["score"] if row["nps"] else None,
        "nps_se": row["nps"]["se"] if row["nps"] else None,
        "nps_responses": row["nps"]["responses"] if row["nps"] else None,
        "ranked": row["ranked"],
        "rank": row["rank"],
    }
    flat.update({f"parameter_{k}": v for k, v in row["parameters"].items()})
    flat.update({f"distribution_{k}": v for k, v in row["distribution"].items()})
    return flat


def test_the_csv_parses_with_the_same_numbers_as_the_json(client, keys, month):
    json_rows = report(client, keys["admin"]).json["operators"]
    response = report(client, {**keys["admin"], "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    parsed = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(parsed) == len(json_rows)
    for got, want in zip(parsed, json_rows, strict=True):
        for column, value in _expected_flat(want).items():
            assert _as_number(got[column]) == value, column


def test_the_xlsx_opens_with_the_same_numbers_as_the_json(client, keys, month):
    json_rows = report(client, keys["admin"]).json["operators"]
    for request in ({"format": "xlsx"}, {}):
        headers = dict(keys["admin"])
        if not request:
            headers["Accept"] = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        response = report(client, headers, **request)
        assert response.status_code == 200
        assert response.mimetype.endswith("spreadsheetml.sheet")
        sheet = openpyxl.load_workbook(io.BytesIO(response.get_data()), read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
        header, body = rows[0], rows[1:]
        assert len(body) == len(json_rows)
        for values, want in zip(body, json_rows, strict=True):
            got = dict(zip(header, values, strict=True))
            for column, value in _expected_flat(want).items():
                assert got[column] == value, column
