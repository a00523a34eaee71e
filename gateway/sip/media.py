"""Prompts as G.711 frames, and the RTP ports calls take from SIP_RTP_PORTS.

A prompt is read from `audio/prompts/<lang>/<prompt id>.wav` (8 kHz mono 16-bit, as `audio
check` guarantees), encoded once per codec and kept: every call that plays it sends the same
160-byte frames (20 ms each), the last one padded with silence.
"""

from __future__ import annotations

import logging
import math
import wave
from functools import lru_cache
from pathlib import Path

from aiortp import PayloadType, get_codec

from audio.library import SAMPLE_RATE, audio_root, prompt_file

logger = logging.getLogger(__name__)

FRAME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000  # 160: one byte per sample in G.711
SUPPORTED_CODECS = (int(PayloadType.PCMU), int(PayloadType.PCMA))
TELEPHONE_EVENT = 101  # the payload type we offer for RFC 4733 events
_SILENCE_PCM = b"\x00\x00" * SAMPLES_PER_FRAME


class PromptMissing(LookupError):
    """No playable recording for a prompt (`survey-gateway audio check` names them all)."""


@lru_cache(maxsize=1024)
def prompt_frames(
    root: Path, language: str, prompt_id: str, payload_type: int
) -> tuple[bytes, ...]:
    """The prompt as G.711 frames of 20 ms in the codec of `payload_type`."""
    path = prompt_file(root, language, prompt_id)
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                raise PromptMissing(f"{path.name} is not 8 kHz mono 16-bit WAV")
            pcm = wav.readframes(wav.getnframes())
    except (FileNotFoundError, wave.Error) as exc:
        raise PromptMissing(f"no playable recording for {language}/{prompt_id}") from exc
    frame_bytes = SAMPLES_PER_FRAME * 2
    if len(pcm) % frame_bytes:
        pcm += _SILENCE_PCM[: frame_bytes - len(pcm) % frame_bytes]
    encoded = get_codec(payload_type).encode(pcm)
    return tuple(
        encoded[i : i + SAMPLES_PER_FRAME] for i in range(0, len(encoded), SAMPLES_PER_FRAME)
    )


BEEP_HZ, BEEP_MS, BEEP_LEVEL = 1000, 300, 8000


@lru_cache(maxsize=4)
def beep_frames(payload_type: int) -> tuple[bytes, ...]:
    """The tone before a voice comment ("speak after the tone"), as G.711 frames."""
    samples = SAMPLE_RATE * BEEP_MS // 1000
    pcm = b"".join(
        int(BEEP_LEVEL * math.sin(2 * math.pi * BEEP_HZ * n / SAMPLE_RATE)).to_bytes(
            2, "little", signed=True
        )
        for n in range(samples)
    )
    encoded = get_codec(payload_type).encode(pcm)
    return tuple(
        encoded[i : i + SAMPLES_PER_FRAME] for i in range(0, len(encoded), SAMPLES_PER_FRAME)
    )


def silence_frame(payload_type: int) -> bytes:
    return get_codec(payload_type).encode(_SILENCE_PCM)


def prompt_root(configured: Path | None) -> Path:
    return audio_root(configured)


class PortPool:
    """Even RTP ports of the configured range (RTCP takes the odd one above), one per call."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        self._free = list(range(first, high, 2))
        self._taken: set[int] = set()

    def take(self) -> int | None:
        if not self._free:
            return None
        port = self._free.pop(0)
        self._taken.add(port)
        return port

    def give_back(self, port: int) -> None:
        if port in self._taken:
            self._taken.remove(port)
            self._free.append(port)  # at the end: a late packet of the old call meets no one

    @property
    def free(self) -> int:
        return len(self._free)
