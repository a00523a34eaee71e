"""The one-tap link in a real browser: headless Chromium, phone-sized, against a live server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Any

import pytest
import requests
from flask import Flask

from tests.conftest import IN_CI
from tests.factories import interaction_payload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class PhoneBrowser:
    """Headless Chromium at a phone's size, driven through chromedriver's W3C WebDriver
    protocol (plain HTTP: no client library), so a test taps buttons as a customer does."""

    def __init__(self, tmp_path: Any) -> None:
        if CHROMIUM is None or CHROMEDRIVER is None:
            if IN_CI:
                pytest.fail("chromium/chromedriver missing (CI=true: a missing tool is a failure)")
            pytest.skip("chromium or chromedriver is not installed")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.http = requests.Session()
        deadline = time.monotonic() + 30
        while True:  # until chromedriver answers (it reports when it is ready)
            try:
                if self.http.get(self.base + "/status", timeout=2).json()["value"]["ready"]:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                self.close()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        arguments = [
            "--headless=new", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path}",
            "--window-size=390,844",
        ]  # fmt: skip
        if os.geteuid() == 0:
            arguments.append("--no-sandbox")
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": arguments},
        }
        answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = f"/session/{answer['sessionId']}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, self.base + path, json=body, timeout=60)
        value = response.json()["value"]
        if response.status_code != 200:
            raise RuntimeError(f"webdriver {path}: {value}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", self.session + "/url", {"url": url})

    def source(self) -> str:
        return str(self._call("GET", self.session + "/source"))

    def source_with(self, text: str, seconds: float = 20) -> str:
        """The page's source once it holds `text`: a tap's page load is not waited for by
        the click itself, so the old page may still be there for a moment."""
        deadline = time.monotonic() + seconds
        page = self.source()
        while text not in page and time.monotonic() < deadline:
            time.sleep(0.05)
            page = self.source()
        return page

    def _find(self, css: str) -> str:
        found = self._call(
            "POST", self.session + "/element", {"using": "css selector", "value": css}
        )
        return str(next(iter(found.values())))

    def tap(self, css: str) -> None:
        self._call("POST", f"{self.session}/element/{self._find(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"{self.session}/element/{self._find(css)}/value", {"text": text})

    def close(self) -> None:
        if hasattr(self, "session"):
            self.http.delete(self.base + self.session, timeout=30)
        self.http.close()
        self.driver.terminate()
        self.driver.wait(10)


def test_a_customer_taps_four_in_a_phone_browser_finishes_and_cannot_change_it(
    live_app: Flask, live_server: str, tmp_path: Any
) -> None:
    """The issue's check, as an integrator would try it: the link from the API, tapped on a
    phone; 4 is recorded, the rest of the flow follows, and once completed nothing changes."""
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
    link = live_server + "/r/" + resource["survey"]["link"]["url"].rsplit("/", 1)[1]

    browser = PhoneBrowser(tmp_path)
    try:
        browser.open(link + "/4")  # the email's or messenger's "4" button
        for key_, score in (("cost", 3), ("speed", 5), ("politeness", 5), ("quality", 4)):
            expected = f'name="question" value="{key_}"'
            assert expected in browser.source_with(expected)
            browser.tap(f'button[name="value"][value="{score}"]')
        assert "textarea" in browser.source_with("textarea")  # the thank-you page, comment box
        browser.type("textarea", "Спасибо")
        browser.tap("button.primary")
        browser.open(link + "/1")  # the same button again, later: the rating is locked
        locked = browser.source()
        browser.open(link)
        again = browser.source()
    finally:
        browser.close()

    assert 'name="value"' not in locked and 'name="value"' not in again
    body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
    assert body["survey"]["status"] == "completed"
    assert body["scores"] == {"overall": 4, "cost": 3, "speed": 5, "politeness": 5, "quality": 4}
