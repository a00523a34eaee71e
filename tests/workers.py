"""Real Celery workers in processes of their own, for the tests that race or kill them.

Each worker is started as production starts it (`celery -A celery_app worker -Q ...`), in its
own process group so that `kill` reaches its pool processes too, with the environment of a
gateway that shares the test's database, Redis (under queue names of the test's own) and fake
Twilio. Readiness is asked of the worker itself (a control ping), not guessed by a sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from celery import Celery

REPO = Path(__file__).resolve().parents[1]


class Workers:
    """Start, kill and stop workers; every one left is stopped by `stop_all`."""

    def __init__(self, env: dict[str, str], redis_url: str, logs: Path) -> None:
        self.prefix = f"sg-test-{uuid.uuid4().hex[:8]}."
        self.redis_url = redis_url
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "TASK_QUEUE_PREFIX": self.prefix,
            "GATEWAY_ENV": "test",
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._control = Celery(broker=redis_url)

    def queue(self, name: str) -> str:
        return self.prefix + name

    def start(self, name: str, queue: str, concurrency: int = 1) -> str:
        """A worker serving `queue` (celery, sweeps, background); its node name."""
        node = f"{name}-{uuid.uuid4().hex[:6]}@test"
        command = [
            sys.executable, "-m", "celery", "-A", "celery_app", "worker",
            "-Q", self.queue(queue), "-n", node, "--concurrency", str(concurrency),
            "--prefetch-multiplier", "1", "--without-mingle", "--without-gossip",
            "--loglevel", "INFO",
        ]  # fmt: skip
        with (self.logs / f"{name}.log").open("ab") as log:  # the child keeps its own copy
            self.processes[node] = subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return node

    def wait_ready(self, nodes: list[str], timeout: float = 60.0) -> None:
        """Until every node answers a control ping; raises with their logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = {name for reply in self._control.control.ping(timeout=0.5) for name in reply}
            if set(nodes) <= answered:
                return
            if any(self.processes[node].poll() is not None for node in nodes):
                break
        logs = "\n".join(p.read_text()[-2000:] for p in self.logs.glob("*.log"))
        raise TimeoutError(f"workers {nodes} not ready in {timeout} s:\n{logs}")

    def kill(self, node: str) -> None:
        """kill -9 of the worker and its pool processes, as the OOM killer or a lost VM does."""
        process = self.processes.pop(node)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.processes.clear()
        self._control.close()
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.delete(*(self.queue(q) for q in ("celery", "sweeps", "background")))
        finally:
            client.close()
