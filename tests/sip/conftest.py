"""Real SIP on loopback: the gateway's SIP user agent in this process, SIPp as the PBX and
the caller, and an RTP peer that hears what the gateway plays (and can press keys).

What was heard is told by the audio itself: every prompt's first G.711 frames are unique,
so the frames received name the prompts played, in order.
"""

from __future__ import annotations

import array
import asyncio
import math
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiortp import get_codec
from flask import Flask
from sqlalchemy import select

from audio.library import SAMPLE_RATE, prompt_file
from audio.prompts import spoken_prompts
from gateway.flows import Flows
from gateway.models import Interaction, InteractionChannel
from gateway.sip.media import beep_frames, prompt_frames
from gateway.sip.server import SipServer
from gateway.surveys import scores_of
from ivr_flows import load_flows
from tests.conftest import IN_CI, make_test_app

SCENARIOS = Path(__file__).parent / "scenarios"
CALLER = "89161234567"  # as a Russian PBX passes a caller's number on
PCMU = 0
PCMA = 8
TELEPHONE_EVENT = 101
BEEP = "beep"  # the tone before a voice comment, heard as if it were a prompt
FINGERPRINT_FRAMES = 4  # 80 ms: enough to tell every prompt from every other
WAIT_SECONDS = 30.0  # a guard against a hung test, never a timing assumption


def free_port(kind: int = socket.SOCK_DGRAM, even: bool = False) -> int:
    while True:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not even or port % 2 == 0:
            return port


def free_port_block(count: int) -> int:
    """An even port whose next `count - 1` are free too: SIPp's media takes four (audio and
    video RTP, each with RTCP), and one of them taken by the gateway fails the run."""
    while True:
        first = free_port(even=True)
        probes = []
        try:
            for port in range(first, first + count):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        message = "SIPp is not installed (Debian package sip-tester; `make system-deps`)"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing tool is a failure)", pytrace=False)
        pytest.skip(message)
    return found


TONE_PROMPT_SECONDS = 0.3


def write_tone_prompts(root: Path) -> Path:
    """A prompt library (AUDIO_DIR's layout) of short tones, one pitch per prompt: a call
    plays every prompt as it plays a recorded one, and the ear tells each from its first
    frames, in a fraction of the time speech takes. The recorded library is checked by
    tests/voice/test_audio.py; tests/sip/test_sip_process.py plays it over SIP."""
    prompts = sorted(
        {
            (language, prompt.id)
            for flow in load_flows().values()
            for language in flow.languages
            for prompt in spoken_prompts(flow, language)
        }
    )
    samples = int(SAMPLE_RATE * TONE_PROMPT_SECONDS)
    for number, (language, prompt_id) in enumerate(prompts):
        hertz = 300 + 11 * number  # quieter than the beep, should one have its 1000 Hz
        wave_at = (math.sin(2 * math.pi * hertz * i / SAMPLE_RATE) for i in range(samples))
        pcm = array.array("h", (int(6000 * x) for x in wave_at))
        path = prompt_file(root, language, prompt_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(pcm.tobytes())
    return root


@pytest.fixture(scope="session")
def tone_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_prompts(tmp_path_factory.mktemp("audio"))


def prompt_fingerprints(root: Path, language: str, payload_type: int = PCMU) -> dict[bytes, str]:
    """The first frames of every prompt of post_call in the library at `root`, as G.711 of
    `payload_type`."""
    prints: dict[bytes, str] = {}
    for flow in load_flows().values():
        if flow.key != "post_call":
            continue
        for prompt in spoken_prompts(flow, language):
            frames = prompt_frames(root, language, prompt.id, payload_type)
            prints[b"".join(frames[:FINGERPRINT_FRAMES])] = prompt.id
    prints[b"".join(beep_frames(payload_type)[:FINGERPRINT_FRAMES])] = BEEP
    return prints


class RtpPeer:
    """The caller's side of the media: hears the gateway's RTP, sends RFC 4733 keys.

    Audio of `payload_type` is kept; packets of any other payload type are only counted.
    """

    def __init__(self, payload_type: int = PCMU) -> None:
        self.payload_type = payload_type
        self.other_packets = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.audio: list[bytes] = []
        self.gateway_addr: tuple[str, int] | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._event_timestamp = 1000
        self._audio_timestamp = 0
        self._sequence = 1
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12:
                continue
            if data[1] & 0x7F != self.payload_type:
                self.other_packets += 1
                continue
            with self._changed:
                self.gateway_addr = addr
                self.audio.append(data[12:])
                self._changed.notify_all()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def heard(self, prints: dict[bytes, str]) -> list[str]:
        """The prompts whose beginning was played, in order."""
        with self._changed:
            audio = list(self.audio)
        found = []
        for i in range(len(audio) - FINGERPRINT_FRAMES + 1):
            prompt = prints.get(b"".join(audio[i : i + FINGERPRINT_FRAMES]))
            if prompt is not None:
                found.append(prompt)
        return found

    def wait_to_hear(self, prints: dict[bytes, str], prompt: str, times: int = 1) -> None:
        """Block until `prompt` has begun `times` times (fails after WAIT_SECONDS)."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self._changed:
            while True:
                self._changed.release()
                try:
                    count = self.heard(prints).count(prompt)
                finally:
                    self._changed.acquire()
                if count >= times:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{prompt} not heard {times}x; heard {self.heard(prints)}")
                self._changed.wait(left)

    def speak(self, seconds: float, level: int = 6000) -> None:
        """Say something for `seconds`: a 400 Hz tone as PCMU frames, sent every 20 ms."""
        samples = [int(level * math.sin(2 * math.pi * 400 * n / 8000)) for n in range(160)]
        frame = get_codec(PCMU).encode(
            b"".join(x.to_bytes(2, "little", signed=True) for x in samples)
        )
        if self.gateway_addr is None:
            raise AssertionError("the gateway has sent no RTP yet: nowhere to speak to")
        for _ in range(round(seconds * 50)):
            self._audio_timestamp += 160
            header = struct.pack(
                "!BBHII", 0x80, PCMU, self._sequence & 0xFFFF, self._audio_timestamp, 0x5151
            )
            self.sock.sendto(header + frame, self.gateway_addr)
            self._sequence += 1
            time.sleep(0.02)  # real time: the gateway hears a caller, not a burst

    def press(self, key: str) -> None:
        """One key as RFC 4733 telephone-events: three updates, then three end packets."""
        if self.gateway_addr is None:
            raise AssertionError("the gateway has sent no RTP yet: nowhere to send keys")
        event = "0123456789*#".index(key) if key not in "*#" else {"*": 10, "#": 11}[key]
        self._event_timestamp += 8000
        for n in range(6):
            end = n >= 3
            duration = 160 * (min(n, 3) + 1)
            header = struct.pack(
                "!BBHII",
                0x80,
                TELEPHONE_EVENT | (0x80 if n == 0 else 0),
                self._sequence & 0xFFFF,
                self._event_timestamp,
                0x5151,
            )
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            self.sock.sendto(header + payload, self.gateway_addr)
            self._sequence += 1


class GatewayThread:
    """`survey-gateway sip` as the command runs it, on an event loop in a thread of the test."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.server = SipServer(app)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.bind_port

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT_SECONDS)

    def start(self) -> None:
        self._thread.start()
        self.call(self.server.start())

    def wait_until_idle(self) -> None:
        """Block until every call has ended and its survey is closed."""
        self.call(self.server.until_idle())

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass
class Sipp:
    """SIPp as the PBX: runs one scenario of tests/sip/scenarios against the gateway."""

    gateway_port: int
    workdir: Path
    sip_port: int = 0  # where the last SIPp started listens (for `hang_up`)
    call_id: str = ""  # the Call-ID of its call

    def command(
        self, scenario: str, rtp_port: int, *, local_ip: str = "127.0.0.1", **keys: str
    ) -> list[str]:
        self.sip_port = free_port()
        self.call_id = f"caller-{self.sip_port}@sipp"  # -m 1: one call, one Call-ID
        values = {
            "caller": CALLER,
            "operator": "op-1",
            "interaction": "call-1",
            "codecs": f"{PCMU} {PCMA} {TELEPHONE_EVENT}",
            **keys,
        }
        command = [
            sipp_binary(),
            f"127.0.0.1:{self.gateway_port}",
            "-sf",
            str(SCENARIOS / scenario),
            "-m",
            "1",
            "-i",
            local_ip,
            "-p",
            str(self.sip_port),
            "-cid_str",
            self.call_id,
            "-mi",
            local_ip,
            "-mp",
            str(free_port_block(4)),
            "-key",
            "rtp_port",
            str(rtp_port),
            "-timeout",
            f"{WAIT_SECONDS:.0f}s",
            "-timeout_error",
            "-trace_err",
            "-nostdin",
        ]
        for name, value in values.items():
            command += ["-key", name, value]
        return command

    def run(self, scenario: str, rtp_port: int, **options: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(scenario, rtp_port, **options),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS + 15,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def start(self, scenario: str, rtp_port: int, **options: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(scenario, rtp_port, **options),
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def listen(self, scenario: str, port: int, calls: int, **keys: str) -> subprocess.Popen[str]:
        """SIPp as the PBX that the gateway calls: it listens on `port` (the gateway's
        SIP_REGISTRAR) and exits after `calls` calls, 0 if each went as its scenario says."""
        command = [
            sipp_binary(),
            "-sf",
            str(SCENARIOS / scenario),
            "-m",
            str(calls),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_port_block(4)),
            "-timeout",
            f"{WAIT_SECONDS:.0f}s",
            "-timeout_error",
            "-trace_err",
            "-trace_logs",  # what a scenario's <log> actions write
            "-nostdin",
        ]
        for name, value in keys.items():
            command += ["-key", name, value]
        return subprocess.Popen(
            command,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def hang_up(self) -> None:
        """Tell the caller of caller_hangs_up_when_told.xml to hang up now: an OPTIONS in its
        call, which it answers with a BYE to the gateway."""
        request = (
            f"OPTIONS sip:sipp@127.0.0.1:{self.sip_port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-hang-up\r\n"
            "From: <sip:test@127.0.0.1>;tag=hang-up\r\n"
            f"To: <sip:sipp@127.0.0.1:{self.sip_port}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(request.encode(), ("127.0.0.1", self.sip_port))

    def errors(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob("*.log"))


def sip_settings(**overrides: Any) -> dict[str, Any]:
    low = free_port(even=True)
    return {
        "sip_listen": f"127.0.0.1:{free_port()}",
        "sip_allowed_peers": ("127.0.0.1",),
        "sip_rtp_ports": (low, low + 19),
        "sip_max_calls": 10,
        **overrides,
    }


@pytest.fixture
def start_gateway(
    database_url: str, tmp_path: Path, tone_prompts: Path
) -> Iterator[Callable[..., GatewayThread]]:
    """Start the SIP gateway with the given settings (on a database the test really commits),
    playing the tone prompts."""
    started: list[GatewayThread] = []
    apps: list[Flask] = []

    def start(flows: Flows | None = None, **overrides: Any) -> GatewayThread:
        settings = sip_settings(**{"audio_dir": tone_prompts, **overrides})
        app = make_test_app(database_url, tmp_path / "var", flows=flows, **settings)
        apps.append(app)
        gateway = GatewayThread(app)
        gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
    from tests.conftest import empty_database

    for app in apps:
        database = app.extensions["database"]
        database.session.remove()
        empty_database(database.engine)
        database.dispose()


@pytest.fixture
def ear() -> Iterator[RtpPeer]:
    peer = RtpPeer()
    yield peer
    peer.close()


@pytest.fixture
def sipp(tmp_path: Path) -> Callable[[GatewayThread], Sipp]:
    def make(gateway: GatewayThread) -> Sipp:
        workdir = tmp_path / f"sipp-{len(os.listdir(tmp_path))}"
        workdir.mkdir()
        return Sipp(gateway.port, workdir)

    return make


@pytest.fixture(scope="session")
def russian_prompts(tone_prompts: Path) -> dict[bytes, str]:
    return prompt_fingerprints(tone_prompts, "ru")


@dataclass(frozen=True)
class CallRecord:
    """What a call left in the database, read after it ended."""

    operator: str | None
    customer_phone: str | None
    scores: dict[str, int]
    status: str | None


def call_record(app: Flask, external_id: str) -> CallRecord | None:
    """The interaction a call recorded: its operator, customer, scores and survey status."""
    with app.app_context():
        session = app.extensions["database"].session()
        try:
            interaction = session.scalar(
                select(Interaction).where(
                    Interaction.channel == InteractionChannel.CALL,
                    Interaction.external_id == external_id,
                )
            )
            if interaction is None:
                return None
            survey = interaction.survey
            return CallRecord(
                operator=interaction.operator.external_id if interaction.operator else None,
                customer_phone=interaction.customer.phone if interaction.customer else None,
                scores=scores_of(survey),
                status=survey.status.value if survey is not None else None,
            )
        finally:
            session.close()
