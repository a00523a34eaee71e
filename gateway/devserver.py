"""`make run`: one foreground process that runs web app, Celery worker and beat (with the
sweeps' own worker), and the worker of webhook deliveries and the privacy sweep.

Each child runs in its own process group; Ctrl-C (SIGINT) or SIGTERM stops every group,
waits for a clean exit, and kills what is left after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from types import FrameType

import ivr_flows
from gateway.config import load_settings
from gateway.migrate import upgrade
from gateway.tasking import queue_names

GRACE_SECONDS = 15


def _commands(
    port: int, concurrency: int, queue_prefix: str = "", sip: bool = False
) -> list[tuple[str, list[str]]]:
    python = sys.executable
    send_queue, sweep_queue, background_queue = queue_names(queue_prefix)
    celery = [python, "-m", "celery", "-A", "celery_app", "worker", "--loglevel", "INFO"]
    quiet = ["--without-mingle", "--without-gossip"]
    # The SIP user agent, when SIP_LISTEN says where the PBX sends its calls.
    sip_agent = [("sip", [python, "-c", "from gateway.cli import main; main()", "sip"])]
    return [
        (
            "web",
            [
                python,
                "-m",
                "gunicorn",
                "--config",
                "python:gateway.gunicorn_config",
                "wsgi:app",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "10",
            ],
        ),
        ("worker", [*celery, "-Q", send_queue, "--concurrency", str(concurrency), *quiet]),
        # Beat's own worker: the clock, and the sweeps it triggers on their own queue.
        ("beat", [*celery, "--beat", "-Q", sweep_queue, "--concurrency", "1", *quiet]),
        # Webhook deliveries and the privacy sweep: slow receivers delay nothing else.
        (
            "background",
            [*celery, "-Q", background_queue, "--concurrency", "1", "-n", "background@%h", *quiet],
        ),
        *(sip_agent if sip else []),
    ]


def run_all(port: int | None = None) -> int:
    """Run until interrupted; the exit code is non-zero if a child died on its own."""
    settings = load_settings()
    try:
        ivr_flows.load_flows(settings.flows_dir)
    except ivr_flows.FlowError as exc:
        # Said once, here, not as a traceback from each of the web, worker and beat processes.
        print(f"survey-gateway: {exc}", file=sys.stderr, flush=True)
        return 2
    port = port or settings.port
    env = dict(os.environ, PORT=str(port))
    if "PUBLIC_BASE_URL" not in env:
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    # /metrics adds up the figures of every web and worker process (prometheus-client's
    # multiprocess mode); the folder starts empty with each run.
    metrics_dir = settings.var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    upgrade(settings.database_url)
    print(
        f"survey-gateway on http://127.0.0.1:{port} "
        f"(database: {settings.database_url.split('://')[0]}, "
        f"broker: {'redis' if settings.redis_url else 'embedded'}, "
        f"SMS: {settings.sms_provider_name}, calls: {settings.provider}); Ctrl-C stops it",
        flush=True,
    )
    if settings.sip_listen:
        print(f"SIP user agent on udp {settings.sip_listen}", flush=True)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    commands = _commands(port, 2, settings.task_queue_prefix, sip=bool(settings.sip_listen))
    for name, command in commands:
        children[name] = subprocess.Popen(command, env=env, start_new_session=True)

    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping the rest", flush=True)
                stopping, exit_code = True, 1
                break
        else:
            time.sleep(0.2)
    _stop_children(children)
    return exit_code


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()  # the main process stops its own workers cleanly
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
    # Whatever is left, including pool processes of an exited parent, goes now.
    for child in children.values():
        _signal_group(child, signal.SIGKILL)
        child.wait()
