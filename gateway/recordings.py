"""A customer's voice comment, for a signed-in supervisor's page: fetched from Twilio, or
read from the database when the gateway recorded it itself (the SIP channel).

A Twilio recording stays at Twilio (and is deleted there by the privacy sweep); the dashboard
plays it through the gateway, which holds the account's credentials, so the browser needs
none and the page's CSP allows media from its own origin only. A recording of the SIP channel
is an 8 kHz mono WAV in `voice_recordings` (deleted with the customer's other personal data).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.models import VoiceRecording
from gateway.privacy import STORED_RECORDING, recording_sid, stored_recording_id

SAMPLE_RATE = 8000  # G.711 calls: 8 kHz mono, 16-bit samples

CHUNK = 64 * 1024


class RecordingUnavailable(LookupError):
    """The recording cannot be played (no account, no such recording, Twilio unreachable)."""


@dataclass(frozen=True)
class RecordingStream:
    mimetype: str
    length: str | None
    chunks: Iterator[bytes]


def store_recording(
    session: Session, survey_id: int, question_key: str, pcm: bytes
) -> tuple[str, int]:
    """Keep a recorded comment (16-bit 8 kHz mono PCM) as WAV; its URL for the answer, and
    its length in whole seconds (at least 1)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    seconds = max(1, round(len(pcm) / 2 / SAMPLE_RATE))
    recording = VoiceRecording(
        session_id=survey_id,
        question_key=question_key,
        audio=buffer.getvalue(),
        duration_seconds=seconds,
    )
    session.add(recording)
    session.flush()
    return f"{STORED_RECORDING}{recording.id}", seconds


def open_recording(
    settings: Settings, url: str | None, session: Session | None = None
) -> RecordingStream:
    """The audio of an answer's recording: a stored one from the database (`session`), else
    the MP3 of a Twilio recording URL of this account; only Twilio recording ids are fetched,
    always from the configured API base, never from the stored URL's host."""
    stored = stored_recording_id(url)
    if stored is not None:
        audio = (
            session.scalar(select(VoiceRecording.audio).where(VoiceRecording.id == stored))
            if session is not None
            else None
        )
        if audio is None:
            raise RecordingUnavailable(url or "no recording")
        return RecordingStream("audio/wav", str(len(audio)), iter((bytes(audio),)))
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
