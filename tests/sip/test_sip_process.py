"""`survey-gateway sip` as an operator starts it: its own process, refusing strangers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from tests.conftest import make_test_app
from tests.sip.conftest import WAIT_SECONDS, Sipp, call_record, free_port, sipp_binary

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
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "sip"]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
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
