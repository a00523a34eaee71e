"""Helpers for the IVR tests: a caller that talks to the gateway as Twilio does."""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    make_test_app,
    twilio_signature,
)

HOTLINE = "+74951234567"
CALLER = "+79161234567"


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def signed_post(
    client: FlaskClient,
    url: str,
    params: dict[str, Any],
    *,
    token: str = AUTH_TOKEN,
    signature: str | None = None,
    signed: bool = True,
) -> TestResponse:
    """POST to an absolute gateway URL as Twilio does: form body, X-Twilio-Signature."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {}
    if signed:
        headers["X-Twilio-Signature"] = signature or twilio_signature(url, params, token)
    return client.post(path, data=params, headers=headers)


class Call:
    """One phone call as Twilio drives it: the start webhook, each key, the status callback.

    `twiml` is the last answer, parsed; `action` is where its <Gather>/<Record> posts next.
    """

    def __init__(
        self,
        client: FlaskClient,
        *,
        caller: str = CALLER,
        called: str = HOTLINE,
        direction: str = "inbound",
        call_sid: str | None = None,
        parent_call_sid: str | None = None,
    ) -> None:
        self.client = client
        self.call_sid = call_sid or new_call_sid()
        self.parent_call_sid = parent_call_sid
        self.caller, self.called, self.direction = caller, called, direction
        self.twiml: ET.Element | None = None
        self.bodies: list[str] = []

    def base_params(self, status: str = "in-progress") -> dict[str, str]:
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": status,
            "Called": self.called,
            "CalledCountry": "RU",
            "Caller": self.caller,
            "CallerCountry": "RU",
            "Direction": self.direction,
            "From": self.caller,
            "FromCountry": "RU",
            "To": self.called,
            "ToCountry": "RU",
        }
        if self.parent_call_sid:
            params["ParentCallSid"] = self.parent_call_sid
        return params

    def post(self, url: str, extra: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
        params = {**self.base_params(), **(extra or {})}
        response = signed_post(self.client, url, params, **kwargs)
        if response.status_code == 200 and response.mimetype == "application/xml":
            self.bodies.append(response.get_data(as_text=True))
            self.twiml = ET.fromstring(response.data)
        return response

    def start(
        self, query: str = "operator=op-1", *, dial_status: str | None = "completed", **extra: str
    ) -> TestResponse:
        params = dict(extra)
        if dial_status is not None:
            params.update(
                {
                    "DialCallSid": new_call_sid(),
                    "DialCallStatus": dial_status,
                    "DialCallDuration": "95",
                    "DialBridged": "true" if dial_status == "completed" else "false",
                }
            )
        return self.post(f"{PUBLIC_BASE_URL}/voice/survey?{query}", params)

    @property
    def action(self) -> str:
        assert self.twiml is not None
        for tag in ("Gather", "Record"):
            found = self.twiml.find(tag)
            if found is not None:
                return found.attrib["action"]
        raise AssertionError(f"no Gather or Record in {ET.tostring(self.twiml).decode()}")

    def press(self, digits: str) -> TestResponse:
        return self.post(self.action, {"Digits": digits, "FinishedOnKey": "", "msg": "Gather End"})

    def silence(self) -> TestResponse:
        """The Gather timed out: actionOnEmptyResult posts with no Digits."""
        return self.post(self.action, {"msg": "Gather End"})

    def record(self, url: str, seconds: int) -> TestResponse:
        return self.post(
            self.action,
            {
                "RecordingUrl": url,
                "RecordingSid": "RE" + uuid.uuid4().hex,
                "RecordingDuration": str(seconds),
                "Digits": "#",
            },
        )

    def status(self, status: str = "completed", **extra: str) -> TestResponse:
        params = {
            **self.base_params(status),
            "CallDuration": "120",
            "Timestamp": "Mon, 23 Nov 2026 10:00:00 +0000",
            "SequenceNumber": "3",
            "CallbackSource": "call-progress-events",
            **extra,
        }
        return signed_post(self.client, f"{PUBLIC_BASE_URL}/voice/status", params)

    def verbs(self) -> list[str]:
        assert self.twiml is not None
        return [child.tag for child in self.twiml]

    def heard(self) -> list[str]:
        """What the caller hears: Say texts and Play URLs, inside Gather or not."""
        assert self.twiml is not None
        return [el.text or "" for el in self.twiml.iter() if el.tag in {"Say", "Play"}]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def make_call(client: FlaskClient) -> Callable[..., Call]:
    def make(**kwargs: Any) -> Call:
        return Call(client, **kwargs)

    return make


@pytest.fixture
def other_app(live_app: Flask, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A second instance of the gateway (another machine), on the same database."""
    app = make_test_app(database_url, tmp_path / "other-var")
    yield app
    app.extensions["database"].dispose()


def post_on_both_at_once(
    apps: tuple[Flask, Flask], url: str, params: dict[str, str]
) -> list[tuple[int, bytes]]:
    """The same signed webhook, delivered to both instances at the same moment."""
    barrier = threading.Barrier(2)
    bodies: list[tuple[int, bytes]] = [(0, b""), (0, b"")]

    def post(index: int, app: Flask) -> None:
        client = app.test_client()
        barrier.wait()
        response = signed_post(client, url, params)
        bodies[index] = (response.status_code, response.data)

    threads = [threading.Thread(target=post, args=(i, app)) for i, app in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return bodies
