"""A customer's voice comment, fetched from Twilio for a signed-in supervisor's page.

The recording stays at Twilio (and is deleted there by the privacy sweep); the dashboard
plays it through the gateway, which holds the account's credentials, so the browser needs
none and the page's CSP allows media from its own origin only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import requests

from gateway.config import Settings
from gateway.privacy import recording_sid

CHUNK = 64 * 1024


class RecordingUnavailable(LookupError):
    """The recording cannot be played (no account, no such recording, Twilio unreachable)."""


@dataclass(frozen=True)
class RecordingStream:
    mimetype: str
    length: str | None
    chunks: Iterator[bytes]


def open_recording(settings: Settings, url: str | None) -> RecordingStream:
    """Stream the MP3 of a Twilio recording URL of this account; only Twilio recording ids
    are fetched, always from the configured API base, never from the stored URL's host."""
    sid = recording_sid(url)
    account, token = settings.twilio_account_sid, settings.twilio_auth_token
    if sid is None or not account or not token:
        raise RecordingUnavailable(sid or "no recording")
    media = (
        f"{settings.twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/{account}"
        f"/Recordings/{sid}.mp3"
    )
    try:
        response = requests.get(
            media, auth=(account, token), stream=True, timeout=settings.twilio_timeout_seconds
        )
    except requests.RequestException as exc:
        raise RecordingUnavailable(sid) from exc
    if response.status_code != 200:
        response.close()
        raise RecordingUnavailable(sid)

    def chunks() -> Iterator[bytes]:
        try:
            yield from response.iter_content(CHUNK)
        finally:
            response.close()

    return RecordingStream(
        response.headers.get("Content-Type", "audio/mpeg"),
        response.headers.get("Content-Length"),
        chunks(),
    )
