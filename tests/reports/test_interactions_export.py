"""GET /api/v1/reports/interactions: the period's scored interactions as CSV or XLSX."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import openpyxl
import pytest

from tests.reports.factories import at, report

pytestmark = pytest.mark.both_databases

PATH = "/api/v1/reports/interactions"


def _seed(seeder, session):
    north = seeder.operator("op-e", "North", "Elena")
    south = seeder.operator("op-h", "South")
    seeder.survey(
        north,
        {"overall": 4, "cost": 1, "speed": 5, "quality": None},
        at("2026-09-02"),
        office="central",
    )
    seeder.survey(north, {"overall": 1}, at("2026-09-03"), excluded="appeal upheld")
    seeder.survey(south, {"overall": 5}, at("2026-09-04"))
    seeder.survey(north, {"overall": 2}, at("2026-10-01"))  # outside
    session.commit()


def test_csv_has_one_row_per_surveyed_interaction_scored_from_raw_answers(
    client, keys, seeder, session
):
    _seed(seeder, session)
    response = report(client, keys["admin"], PATH)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["operator_external_id"] for r in rows] == ["op-e", "op-e", "op-h"]
    first = rows[0]
    scores = (first["overall"], first["cost"], first["speed"], first["quality"])
    assert scores == ("4", "1", "5", "")
    assert first["csi"] == "50.0" and first["csi_operator"] == "100.0"
    assert first["team"] == "North" and first["office"] == "central"
    assert rows[1]["excluded"] == "true" and rows[1]["exclusion_reason"] == "appeal upheld"


def test_a_supervisor_exports_its_own_team_only(client, keys, seeder, session):
    _seed(seeder, session)
    rows = list(
        csv.DictReader(io.StringIO(report(client, keys["south"], PATH).get_data(as_text=True)))
    )
    assert [r["operator_external_id"] for r in rows] == ["op-h"]


def test_xlsx_opens_with_the_same_rows(client, keys, seeder, session):
    _seed(seeder, session)
    response = report(client, keys["admin"], PATH, format="xlsx")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.get_data()), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    header = values[0]
    rows = [dict(zip(header, v, strict=True)) for v in values[1:]]
    assert [r["operator_external_id"] for r in rows] == ["op-e", "op-e", "op-h"]
    assert rows[0]["overall"] == 4 and rows[0]["csi"] == 50 and rows[0]["quality"] is None
    assert rows[1]["excluded"] is True
    # A real date a spreadsheet sorts and filters, in UTC as the CSV gives it.
    assert rows[0]["ended_at"] == datetime(2026, 9, 2, 12, 0)
