"""An export never holds the database past its own read: while a supervisor's download is
still on its way, webhooks and the API keep answering (the embedded SQLite default has one
writer at a time, so a read held open there would stop every write)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask

from gateway.apikeys import create_api_key
from gateway.db import utcnow
from gateway.models import ApiRole
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, make_test_app, twilio_signature
from tests.reports.factories import Seeder, at

pytestmark = pytest.mark.both_databases

PATH = "/api/v1/reports/interactions"


def _inbound_sms(body: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "e" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+79169990011",
        "To": "+15005550006",
        "Body": body,
    }


@pytest.mark.parametrize("wanted", ["csv", "xlsx"])
def test_webhooks_keep_answering_while_an_export_is_downloaded(
    live_app: Flask, database_url: str, tmp_path: Path, wanted: str
) -> None:
    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        seeder = Seeder(session)
        operator = seeder.operator("op-e", "North", "Elena")
        for day in ("2026-09-02", "2026-09-03", "2026-09-04"):
            seeder.survey(operator, {"overall": 4, "speed": 5}, at(day))
        _row, key = create_api_key(session, "head of quality", ApiRole.ADMIN, None, utcnow())
        session.commit()
        database.session.remove()

    download = live_app.test_client().get(
        PATH,
        query_string={"from": "2026-09-01", "to": "2026-09-30", "format": wanted},
        headers={"Authorization": f"Bearer {key}"},
        buffered=False,
    )
    other = make_test_app(database_url, tmp_path / "other-instance")
    try:
        chunks = iter(download.response)
        received = next(chunks)  # the download has begun; the rest is still on its way
        params = _inbound_sms("5")
        signature = twilio_signature(PUBLIC_BASE_URL + "/sms/inbound", params, AUTH_TOKEN)
        answers: list[int] = []

        def webhook() -> None:
            response = other.test_client().post(
                "/sms/inbound", data=params, headers={"X-Twilio-Signature": signature}
            )
            answers.append(response.status_code)

        thread = threading.Thread(target=webhook, daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert answers == [200], "the webhook waited for the export to be downloaded"
        received += b"".join(chunks)
    finally:
        download.close()
        other.extensions["database"].dispose()
    assert download.status_code == 200
    if wanted == "csv":
        assert received.decode().count("op-e") == 3
    else:
        assert received.startswith(b"PK")  # a whole XLSX (zip) file
