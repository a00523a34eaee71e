"""The one-tap link in a real browser: headless Chromium, phone-sized, against a live server."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import IN_CI
from tests.factories import interaction_payload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live_server(live_app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def browse(url: str, tmp_path: Any) -> str:
    """The page's DOM once the browser has run its scripts and followed what they did."""
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is not installed (CI=true: a missing tool is a failure)")
        pytest.skip("chromium is not installed")
    command = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path}",
        "--window-size=390,844",  # a phone
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_opening_a_one_tap_link_in_a_phone_browser_records_the_score_and_shows_the_next(
    live_app: Flask, live_server: str, tmp_path: Any
) -> None:
    from gateway.apikeys import create_api_key
    from gateway.db import utcnow
    from gateway.models import ApiRole

    with live_app.app_context():
        session = live_app.extensions["database"].session()
        _row, key = create_api_key(session, "crm", ApiRole.INTEGRATION, None, utcnow())
        session.commit()
    client = live_app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    payload = interaction_payload(channel="request", survey="web")
    resource = client.post("/api/v1/interactions", json=payload, headers=auth).get_json()
    token = resource["survey"]["link"]["url"].rsplit("/", 1)[1]

    dom = browse(f"{live_server}/r/{token}/4", tmp_path)

    assert 'name="question" value="cost"' in dom  # the second question, after the first
    body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
    assert body["scores"] == {"overall": 4}
