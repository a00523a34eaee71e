"""CSV and XLSX exports, streamed: rows are written as they come, never held all at once."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import xlsxwriter
from flask import Response

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_CHUNK_ROWS = 500
_FILE_CHUNK = 64 * 1024


def operator_columns(rows: Sequence[Mapping[str, Any]], leading: Sequence[str] = ()) -> list[str]:
    """Flat column names of operator-report rows: nested figures become their own columns."""
    keys = sorted({k for row in rows for k in row.get("parameters", {})})
    return [
        *leading,
        "operator_external_id",
        "operator_name",
        "team",
        "surveys_sent",
        "responses",
        "response_rate",
        "overall_mean",
        "csat",
        "csat_ci95_low",
        "csat_ci95_high",
        "csat_shrunk",
        "csat_shrunk_ci95_low",
        "csat_shrunk_ci95_high",
        "team_csat",
        "vs_team",
        "csi",
        "csi_all_parameters",
        *(f"parameter_{k}" for k in keys),
        *(f"distribution_{v}" for v in range(1, 6)),
        "nps",
        "nps_se",
        "nps_ci95_low",
        "nps_ci95_high",
        "nps_responses",
        "excluded",
        "ranked",
        "rank",
        "rank_reason",
    ]


def flatten_operator_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One operator-report row with nested figures spread into flat columns."""
    interval = row.get("csat_ci95") or (None, None)
    shrunk = row.get("csat_shrunk_ci95") or (None, None)
    nps = row.get("nps") or {}
    nps_interval = nps.get("ci95") or (None, None)
    flat = {
        **{k: v for k, v in row.items() if not isinstance(v, dict | list)},
        "operator_external_id": row["operator"]["external_id"],
        "operator_name": row["operator"]["name"],
        "team": row["operator"]["team"],
        "csat_ci95_low": interval[0],
        "csat_ci95_high": interval[1],
        "csat_shrunk_ci95_low": shrunk[0],
        "csat_shrunk_ci95_high": shrunk[1],
        "nps": nps.get("score"),
        "nps_se": nps.get("se"),
        "nps_ci95_low": nps_interval[0],
        "nps_ci95_high": nps_interval[1],
        "nps_responses": nps.get("responses"),
    }
    flat.update({f"parameter_{k}": v for k, v in row.get("parameters", {}).items()})
    flat.update({f"distribution_{k}": v for k, v in row.get("distribution", {}).items()})
    return flat


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV Injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        # A leading apostrophe makes the cell text; the csv module quotes the rest.
        return "'" + value
    return value


def csv_chunks(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """CSV text in chunks of a few hundred rows: a header line, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for count, row in enumerate(rows, start=1):
        writer.writerow([_cell(row.get(c)) for c in columns])
        if count % _CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Write rows to a temporary CSV file (UTF-8) in constant memory; the caller removes it."""
    handle, path = tempfile.mkstemp(suffix=".csv", prefix="survey-report-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            for chunk in csv_chunks(columns, rows):
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


def write_xlsx(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], sheet: str = "report"
) -> str:
    """Write rows to a temporary XLSX file in constant memory; the caller removes the file."""
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="survey-report-")
    os.close(handle)
    try:
        workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "in_memory": False})
        worksheet = workbook.add_worksheet(sheet[:31])
        bold = workbook.add_format({"bold": True})
        moment = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        worksheet.write_row(0, 0, list(columns), bold)
        for number, row in enumerate(rows, start=1):
            for col, name in enumerate(columns):
                value = row.get(name)
                if value is None:
                    continue
                if isinstance(value, bool):
                    worksheet.write_boolean(number, col, value)
                elif isinstance(value, int | float):
                    worksheet.write_number(number, col, value)
                elif isinstance(value, datetime):
                    # A real date a spreadsheet can sort and filter; in UTC, as the CSV.
                    naive = value.astimezone(UTC).replace(tzinfo=None)
                    worksheet.write_datetime(number, col, naive, moment)
                else:
                    worksheet.write_string(number, col, str(value))
        workbook.close()
    except BaseException:
        os.unlink(path)
        raise
    return path


def file_chunks(path: str) -> Iterator[bytes]:
    """The file's bytes in chunks; the file is removed once read (or abandoned)."""
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_FILE_CHUNK):
                yield chunk
    finally:
        os.unlink(path)


def table_download(
    wanted: str,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    filename: str,
    read_done: Callable[[], None],
) -> Response:
    """A CSV or XLSX download: written to a temporary file while the request reads the
    database, then streamed from the file. `read_done` ends the read before the download
    starts: on the embedded SQLite a transaction held while a slow client downloads would
    stop every webhook and the sweep."""
    if wanted == "csv":
        path = write_csv(columns, rows)
        mimetype = CSV
    else:
        path = write_xlsx(columns, rows, sheet=filename[:31])
        mimetype = XLSX
    read_done()
    response = Response(file_chunks(path), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{wanted}"'
    if wanted == "csv":
        response.mimetype_params["charset"] = "utf-8"
    return response
