"""The gateway as `make run` starts it: up on embedded defaults, all of it down on Ctrl-C.

Slow (`make test-slow`, which CI runs too): seven processes start, each importing the gateway."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.logs import PERIODIC_TASKS
from tests.factories import interaction_payload

COMMAND = Path(sys.executable).parent / "survey-gateway"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def request(url: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited during start-up"
        try:
            if request(f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"no answer from {base}/healthz within {seconds} s")


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited"
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.25)
    raise AssertionError(f"{text!r} not in the gateway's output within {seconds} s")


@pytest.mark.slow
def test_run_serves_on_embedded_defaults_and_sigint_stops_every_child(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}
    }
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir()
    env.update(
        SURVEY_GATEWAY_VAR_DIR=str(tmp_path / "var"),
        PORT=str(port),
        DISPATCH_INTERVAL_SECONDS="1",
        QUIET_HOURS="",
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(COMMAND), "run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, 90)  # start-up of five processes, on a busy machine
        key = subprocess.run(
            [str(COMMAND), "apikey", "create", "--name", "it", "--role", "integration"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()

        ended = datetime.now(UTC) - timedelta(minutes=61)
        visit = interaction_payload(ended_at=ended.isoformat())
        status, created = request(f"{base}/api/v1/interactions", visit, key)
        assert status == 201, created
        # The worker's console shows the survey SMS within a sweep or two.
        wait_for_line(log, "first sms", process, 120)
        status, read = request(f"{base}/api/v1/interactions/{created['id']}", key=key)
        assert (status, read["external_id"]) == (200, created["external_id"])
        assert request(f"{base}/readyz")[0] == 200
        # Every process's figures in one scrape (multiprocess mode), the backlog from the database.
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            exposition = response.read().decode()
        assert "survey_gateway_due_backlog" in exposition
        assert (
            'survey_gateway_request_duration_seconds_count{method="POST",route="/api/v1/interactions"}'
            in exposition
        )

        # No control socket where another gunicorn of the same user would put its own.
        sockets = [
            p for d in (home, runtime) for p in d.rglob("*") if stat.S_ISSOCK(p.stat().st_mode)
        ]
        assert sockets == []

        tree = descendants(process.pid)
        assert len(tree) >= 3  # web, worker, beat (and their own workers)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=40) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in tree if alive(pid)], "children outlived the gateway"
        # Quiet at rest: Celery's routine lines about the periodic tasks (every second here) and
        # kombu's warnings would bury the SMS; the sweep that sent it says so itself.
        output = log.read_text(errors="replace")
        assert "sweep: handed over 1" in output
        routine = [
            line
            for line in output.splitlines()
            if any(task in line for task in PERIODIC_TASKS)
            and any(word in line for word in ("Sending due task", "received", "succeeded"))
        ]
        assert routine == []
        assert "WARNING kombu" not in output
    finally:
        if process.poll() is None:
            # A failed check leaves the gateway up: its children run in sessions of their own,
            # so each goes by name, before the parent that would otherwise leave them behind.
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait()
