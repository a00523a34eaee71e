"""`survey-gateway sip` as an operator starts it: its own process, refusing strangers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from audio.library import audio_root
from gateway.cli import main
from tests.conftest import make_test_app
from tests.sip.conftest import (
    WAIT_SECONDS,
    GatewayThread,
    RtpPeer,
    Sipp,
    call_record,
    free_port,
    prompt_fingerprints,
    sipp_binary,
)

OPTIONS = (
    "OPTIONS sip:gateway@127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-probe{n}\r\n"
    "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
    "To: <sip:gateway@127.0.0.1>\r\n"
    "Call-ID: probe-{n}@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


# A guard against a process that never starts: a new Python process importing the whole
# gateway takes seconds on an idle machine, and far longer on a loaded one.
START_SECONDS = 180


def wait_until_answering(port: int, process: subprocess.Popen[bytes]) -> None:
    """Ask OPTIONS until the user agent answers (it answers every OPTIONS with 200)."""
    deadline = time.monotonic() + START_SECONDS
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(0.5)
        local = probe.getsockname()[1]
        n = 0
        while time.monotonic() < deadline and process.poll() is None:
            n += 1
            probe.sendto(OPTIONS.format(port=port, local=local, n=n).encode(), ("127.0.0.1", port))
            try:
                answer, _ = probe.recvfrom(4096)
            except TimeoutError:
                continue
            if answer.startswith(b"SIP/2.0 200"):
                return
    raise AssertionError(f"survey-gateway sip never answered (exit code {process.poll()})")


def sip_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "sip"]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)


def test_sip_without_sip_listen_says_what_to_set(database_url: str) -> None:
    result = CliRunner().invoke(main, ["sip"], env={"DATABASE_URL": database_url})

    assert result.exit_code == 1
    assert "SIP_LISTEN is not set" in result.output


def test_the_sip_process_refuses_a_call_from_an_address_not_allowed(
    database_url: str, tmp_path: Path
) -> None:
    sipp_binary()
    port = free_port()
    low = free_port(even=True)
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SURVEY_GATEWAY_VAR_DIR=str(tmp_path / "var"),
        SIP_LISTEN=f"127.0.0.1:{port}",
        SIP_ALLOWED_PEERS="127.0.0.2",  # the PBX; the call below comes from 127.0.0.1
        SIP_RTP_PORTS=f"{low}-{low + 99}",
    )
    process = sip_process(env)
    try:
        wait_until_answering(port, process)
        pbx = Sipp(port, tmp_path)

        result = pbx.run("refused_403.xml", free_port(), interaction="stranger-1")

        assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=WAIT_SECONDS)
    assert exit_code == 0
    app = make_test_app(database_url, tmp_path / "var")
    try:
        assert call_record(app, "stranger-1") is None  # nothing recorded for a stranger
    finally:
        app.extensions["database"].dispose()


def test_make_run_starts_the_sip_agent_only_when_sip_listen_is_set() -> None:
    from gateway.devserver import _commands

    with_sip = dict(_commands(8000, 2, "", sip=True))
    without = dict(_commands(8000, 2, ""))

    assert with_sip["sip"][-1] == "sip"
    assert "sip" not in without
    assert set(with_sip) - {"sip"} == set(without)


def test_a_restarted_sip_process_closes_the_surveys_of_the_calls_it_held_when_killed(
    database_url: str,
    tmp_path: Path,
    ear: RtpPeer,
    start_gateway: Callable[..., GatewayThread],
) -> None:
    sipp_binary()
    # The process plays the recorded library it ships with, as in production.
    recorded = prompt_fingerprints(audio_root(None), "ru")
    port = free_port()
    low = free_port(even=True)
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        SURVEY_GATEWAY_VAR_DIR=str(tmp_path / "var"),
        SIP_LISTEN=f"127.0.0.1:{port}",
        SIP_RTP_PORTS=f"{low}-{low + 99}",
    )
    app = make_test_app(database_url, tmp_path / "var")
    process = sip_process(env)
    caller = None
    try:
        wait_until_answering(port, process)
        caller = Sipp(port, tmp_path).start(
            "answered_then_gateway_hangs_up.xml", ear.port, interaction="hotline-60"
        )
        ear.wait_to_hear(recorded, "post_call/greeting")
        ear.press("5")
        ear.wait_to_hear(recorded, "post_call/q/cost")  # the 5 is committed
        process.kill()  # no BYE, no survey closed: what a crash or kill -9 leaves
        process.wait(timeout=WAIT_SECONDS)
        left = call_record(app, "hotline-60")
        assert left is not None
        assert left.status == "active"

        # The agent starts again on its address (here in this process: the same start-up).
        start_gateway(sip_listen=f"127.0.0.1:{port}")

        record = call_record(app, "hotline-60")
        assert record is not None
        assert record.status == "partial"  # at start-up: no sweep runs here
        assert record.scores == {"overall": 5}
    finally:
        if caller is not None:
            caller.kill()
            caller.communicate()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT_SECONDS)
        app.extensions["database"].dispose()
