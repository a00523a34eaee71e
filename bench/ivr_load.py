"""Benchmark: the IVR survey under load, beside a bare Flask endpoint on the same server.

Not a test. Creates its own PostgreSQL database on the server of DATABASE_URL (or
postgresql://postgres@127.0.0.1:5432/test), migrates it, and starts the gateway under
gunicorn (2 sync workers by default) on a loopback port the system picks. N simulated
callers (default 8) then walk the whole `post_call` survey for a fixed time as Twilio would:
every webhook signed with the auth token and carrying Twilio's full parameter set, keys
pressed at random, one caller in four leaving a voice comment, and the status callback at the
end of each call. The same callers also drive a bare Flask app under the same gunicorn
settings that answers every post with one constant <Gather> (no signature check, no database),
the same number of requests per call; the two are loaded in alternating slices, so that both
see the same background load on a shared machine. It prints completed surveys per second,
steps (webhook requests) per second and p50/p99 step latency of both, and the gateway's share
of the bare app's throughput; then checks that the database holds exactly the surveys and
answers the callers completed. Stops both servers and drops the database at the end unless --keep.

    .venv/bin/python bench/ivr_load.py [--callers 8] [--seconds 20] [--rounds 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask, Response, request  # noqa: E402
from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "b" * 32
HOTLINE = "+74951234567"
OPERATORS = 40
HTTP_TIMEOUT_SECONDS = 30
START_TIMEOUT_SECONDS = 90
COMMENT_SHARE = 0.25
# The constant answer of the bare app: what the gateway answers for a rating question.
BARE_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="{action}" '
    'actionOnEmptyResult="true" finishOnKey="" input="dtmf" method="POST" numDigits="1" '
    'timeout="6"><Say language="ru-RU" voice="Polly.Tatyana">Оцените, пожалуйста, '
    "обслуживание, от 1 до 5.</Say></Gather></Response>"
)


def bare_app() -> Flask:
    """The reference: a Flask view that reads the keys and answers a constant <Gather>."""
    app = Flask("bare")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.post("/voice/<path:_step>")
    def step(_step: str) -> Response:
        request.form.get("Digits")
        action = f"{request.host_url}voice/survey/step"
        return Response(BARE_TWIML.format(action=action), mimetype="application/xml")

    return app


# --- Twilio's side -------------------------------------------------------------------------


def call_params(call_sid: str, caller: str, status: str = "in-progress") -> dict[str, str]:
    """What Twilio sends with every Voice webhook of an inbound call."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "Called": HOTLINE,
        "CalledCity": "MOSCOW",
        "CalledCountry": "RU",
        "CalledState": "Moscow",
        "CalledZip": "",
        "Caller": caller,
        "CallerCity": "",
        "CallerCountry": "RU",
        "CallerState": "",
        "CallerZip": "",
        "Direction": "inbound",
        "From": caller,
        "FromCity": "",
        "FromCountry": "RU",
        "FromState": "",
        "FromZip": "",
        "To": HOTLINE,
        "ToCity": "MOSCOW",
        "ToCountry": "RU",
        "ToState": "Moscow",
        "ToZip": "",
    }


@dataclass
class Tally:
    """One caller's figures for one phase."""

    completed: int = 0
    answers: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    ended_at: float = 0.0


class Caller:
    """One simulated caller: posts signed webhooks, times each, follows the TwiML."""

    def __init__(self, base_url: str, seed: int, tally: Tally) -> None:
        self.base_url = base_url
        self.rng = random.Random(seed)
        self.validator = RequestValidator(AUTH_TOKEN)
        self.tally = tally

    def post(self, url: str, data: dict[str, str]) -> bytes:
        signature = self.validator.compute_signature(url, data)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = urlencode(data)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
        }
        started = time.perf_counter()
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=HTTP_TIMEOUT_SECONDS
        )
        try:
            connection.request("POST", target, body, headers)
            response = connection.getresponse()
            content = response.read()
        finally:
            connection.close()
        self.tally.latencies.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"{response.status} from {parts.path}: {content[:200]!r}")
        return content

    def keys(self) -> str:
        return self.rng.choice("1234455555")

    def start(self, call_sid: str, caller: str) -> tuple[str, dict[str, str]]:
        operator = f"op-{self.rng.randrange(OPERATORS)}"
        url = f"{self.base_url}/voice/survey?{urlencode({'operator': operator})}"
        extra = {
            "DialCallStatus": "completed",
            "DialCallSid": "CA" + uuid.uuid4().hex,
            "DialCallDuration": str(self.rng.randrange(30, 600)),
            "DialBridged": "true",
        }
        return url, {**call_params(call_sid, caller), **extra}

    def status(self, call_sid: str, caller: str, sequence: int) -> None:
        data = {
            **call_params(call_sid, caller, "completed"),
            "CallDuration": str(self.rng.randrange(30, 120)),
            "Duration": "2",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        }
        self.post(f"{self.base_url}/voice/status", data)

    def gathered(self, call_sid: str, caller: str, digits: str) -> dict[str, str]:
        return {
            **call_params(call_sid, caller),
            "Digits": digits,
            "FinishedOnKey": "",
            "msg": "Gather End",
        }

    def recorded(self, call_sid: str, caller: str) -> dict[str, str]:
        recording = f"RE{uuid.uuid4().hex}"
        return {
            **call_params(call_sid, caller),
            "Digits": "#",
            "RecordingSid": recording,
            "RecordingUrl": (
                f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording}"
            ),
            "RecordingDuration": str(self.rng.randrange(3, 30)),
        }

    def survey(self) -> None:
        """One whole call through the gateway's survey, as Twilio would drive it."""
        call_sid = "CA" + uuid.uuid4().hex
        caller = f"+7916{self.rng.randrange(10**7):07d}"
        url, data = self.start(call_sid, caller)
        document = ET.fromstring(self.post(url, data))
        answers = 0
        for _ in range(50):
            following: tuple[str, dict[str, str]] | None = None
            for verb in document:
                if verb.tag == "Gather":
                    following = verb.attrib["action"], self.gathered(call_sid, caller, self.keys())
                    answers += 1
                    break
                if verb.tag == "Record":
                    if self.rng.random() < COMMENT_SHARE:
                        following = verb.attrib["action"], self.recorded(call_sid, caller)
                        answers += 1
                        break
                    continue  # nothing recorded: Twilio goes on to the next verb
                if verb.tag == "Redirect":
                    following = (verb.text or "").strip(), call_params(call_sid, caller)
                    break
                if verb.tag == "Hangup":
                    break
            if following is None:
                break
            document = ET.fromstring(self.post(*following))
        else:
            raise RuntimeError(f"call {call_sid}: the survey did not end")
        self.status(call_sid, caller, 2)
        self.tally.completed += 1
        self.tally.answers += answers

    def bare_call(self, steps: int) -> None:
        """The same number of requests, with the same parameters, against the bare app."""
        call_sid = "CA" + uuid.uuid4().hex
        caller = f"+7916{self.rng.randrange(10**7):07d}"
        url, data = self.start(call_sid, caller)
        document = ET.fromstring(self.post(url, data))
        for _ in range(steps):
            gather = document.find("Gather")
            if gather is None:
                raise RuntimeError("the bare app did not answer a <Gather>")
            document = ET.fromstring(
                self.post(gather.attrib["action"], self.gathered(call_sid, caller, self.keys()))
            )
        self.status(call_sid, caller, 2)
        self.tally.completed += 1


def run_caller(base_url: str, bare_steps: int, start_at: float, seconds: float, seed: int) -> Tally:
    """One caller process: calls from `start_at` (wall clock, the same for every caller)
    until `seconds` have passed; the call under way then finishes."""
    tally = Tally()
    caller = Caller(base_url, seed, tally)
    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + seconds
    while time.time() < deadline:
        try:
            if bare_steps:
                caller.bare_call(bare_steps)
            else:
                caller.survey()
        except Exception as exc:  # reported with the figures; the run goes on
            tally.errors += 1
            tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
    tally.ended_at = time.time()
    return tally


@dataclass(frozen=True)
class Figures:
    completed: int
    answers: int
    steps: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    first_error: str
    app_cpu_ms: float  # CPU time of the gunicorn processes per step
    database_cpu_ms: float  # CPU time of the PostgreSQL backends per step

    @property
    def surveys_per_second(self) -> float:
        return self.completed / self.seconds

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds


@dataclass(frozen=True)
class Slice:
    """What the callers did in one stretch of load, and the CPU the servers spent on it."""

    tallies: list[Tally]
    seconds: float
    app_cpu: float
    database_cpu: float


def load(server: Server, callers: int, seconds: float, bare_steps: int = 0) -> Slice:
    """`callers` processes at once for `seconds`."""
    app_before, database_before = server.cpu()
    start_at = time.time() + 1.0  # every caller process is up by then
    with multiprocessing.get_context("fork").Pool(callers) as pool:
        tallies = pool.starmap(
            run_caller,
            [
                (server.base_url, bare_steps, start_at, seconds, random.randrange(2**32))
                for _ in range(callers)
            ],
        )
    app_after, database_after = server.cpu()
    return Slice(
        tallies,
        max(t.ended_at for t in tallies) - start_at,
        app_cpu=spent(app_before, app_after),
        database_cpu=spent(database_before, database_after),
    )


def figures(slices: list[Slice]) -> Figures:
    tallies = [t for s in slices for t in s.tallies]
    latencies = sorted(x for t in tallies for x in t.latencies)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Figures(
        completed=sum(t.completed for t in tallies),
        answers=sum(t.answers for t in tallies),
        steps=len(latencies),
        errors=sum(t.errors for t in tallies),
        seconds=sum(s.seconds for s in slices),
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        first_error=next((t.first_error for t in tallies if t.first_error), ""),
        app_cpu_ms=sum(s.app_cpu for s in slices) * 1000 / max(1, len(latencies)),
        database_cpu_ms=sum(s.database_cpu for s in slices) * 1000 / max(1, len(latencies)),
    )


# --- CPU spent by the servers (loopback only: the same machine's /proc) -------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name; [] when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU time of each process still alive."""
    times = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


@dataclass
class Server:
    """A gunicorn server of the run and, for the gateway, its database's backends."""

    base_url: str
    master: int
    database: Engine | None = None

    def cpu(self) -> tuple[dict[int, float], dict[int, float]]:
        app = cpu_seconds([self.master, *children(self.master)])
        if self.database is None:
            return app, {}
        with self.database.connect() as conn:
            pids = conn.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        return app, cpu_seconds(list(pids))


# --- the servers ---------------------------------------------------------------------------


@contextlib.contextmanager
def gunicorn(
    app: str, env: dict[str, str], workers: int, threads: int, log: Path
) -> Iterator[Server]:
    """`app` under gunicorn on a loopback port the system picks, once every worker loaded it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    ready = log.parent / f"ready-{port}"
    ready.mkdir()
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", "python:bench.gunicorn_ready",
        "--bind", f"fd://{listener.fileno()}",
        "--workers", str(workers),
        "--threads", str(threads),
        "--log-level", "warning",
        app,
    ]  # fmt: skip
    with log.open("ab") as out:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "PUBLIC_BASE_URL": base_url, "BENCH_READY_DIR": str(ready)},
            pass_fds=(listener.fileno(),),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    listener.close()
    try:
        wait_ready(server, ready, workers, log)
        yield Server(base_url, server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_ready(server: subprocess.Popen[bytes], ready: Path, workers: int, log: Path) -> None:
    """Until every worker has loaded the app (see bench/gunicorn_ready.py)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        if len(list(ready.iterdir())) >= workers:
            return
        time.sleep(0.2)
    raise SystemExit(f"gunicorn's workers were not up in {START_TIMEOUT_SECONDS} s")


@contextlib.contextmanager
def own_database(name: str, keep: bool) -> Iterator[str]:
    """A new PostgreSQL database migrated to head; dropped afterwards unless `keep`."""
    from gateway.migrate import upgrade

    server = make_url(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test")
    server = server.set(drivername="postgresql+psycopg")
    url = server.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(
        server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the run -------------------------------------------------------------------------------


def survey_steps() -> int:
    """Requests of one call after the first: one per IVR question of post_call."""
    from ivr_flows import load_flows

    return len(load_flows()["post_call"].questions_for("ivr"))


def check_database(url: str, completed: int, answers: int) -> str | None:
    """What differs between the callers' count and the database's, if anything."""
    from gateway.models import Answer, SurveySession, SurveyStatus

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.scalar(
                select(func.count())
                .select_from(SurveySession)
                .where(SurveySession.status == SurveyStatus.COMPLETED)
            )
            stored_answers = conn.scalar(
                select(func.count())
                .select_from(Answer)
                .where(Answer.value.is_not(None) | Answer.recording_url.is_not(None))
            )
            server_version = conn.scalar(text("SHOW server_version"))
    finally:
        engine.dispose()
    print(
        f"database: {stored} completed surveys, {stored_answers} answers given "
        f"(callers: {completed}, {answers}); PostgreSQL {server_version}"
    )
    if (stored, stored_answers) != (completed, answers):
        return "the database does not hold what the callers completed"
    return None


def describe(label: str, figures: Figures) -> None:
    print(
        f"{label:<24} {figures.surveys_per_second:>9.1f} {figures.steps_per_second:>9.1f} "
        f"{figures.p50_ms:>8.1f} {figures.p99_ms:>8.1f} {figures.app_cpu_ms:>8.2f} "
        f"{figures.database_cpu_ms:>8.2f} {figures.completed:>9} {figures.errors:>6}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=8, help="simulated callers at once")
    parser.add_argument("--seconds", type=float, default=20.0, help="time each server is loaded")
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternations of gateway and bare load"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not measured")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name = f"sg_ivr_bench_{uuid.uuid4().hex[:8]}"
    steps_after_start = survey_steps()
    print(
        f"IVR load: {args.callers} callers x {args.seconds:g} s in {args.rounds} rounds "
        f"(+{args.warmup:g} s warm-up), "
        f"gunicorn {args.workers} workers x {args.threads} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="sg-ivr-bench-") as scratch,
        own_database(name, args.keep) as url,
    ):
        log = Path(scratch) / "gunicorn.log"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": HOTLINE,
            "SECRET_KEY": "bench-secret",
            "SURVEY_GATEWAY_VAR_DIR": scratch,
            "LOW_SCORE_THRESHOLD": "2",
        }
        bare_app_spec = "bench.ivr_load:bare_app()"
        monitor = create_engine(url, pool_size=1)
        with (
            gunicorn("wsgi:app", env, args.workers, args.threads, log) as gateway_server,
            gunicorn(bare_app_spec, env, args.workers, args.threads, log) as bare_server,
        ):
            gateway_server.database = monitor
            warm = [load(gateway_server, args.callers, args.warmup)] if args.warmup > 0 else []
            if args.warmup > 0:
                load(bare_server, args.callers, args.warmup, steps_after_start)
            # Alternating slices: both servers see the same background load of a shared machine.
            slice_seconds = args.seconds / args.rounds
            gateway_slices: list[Slice] = []
            bare_slices: list[Slice] = []
            for _ in range(args.rounds):
                gateway_slices.append(load(gateway_server, args.callers, slice_seconds))
                bare_slices.append(
                    load(bare_server, args.callers, slice_seconds, steps_after_start)
                )
        monitor.dispose()
        gateway, bare = figures(gateway_slices), figures(bare_slices)
        warm_completed = sum(t.completed for s in warm for t in s.tallies)
        warm_answers = sum(t.answers for s in warm for t in s.tallies)

        print(
            f"{'':<24} {'surveys/s':>9} {'steps/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'app cpu':>8} {'db cpu':>8} {'completed':>9} {'errors':>6}"
        )
        describe("gateway (post_call)", gateway)
        describe("bare Flask <Gather>", bare)
        print(
            f"gateway / bare: {gateway.steps_per_second / bare.steps_per_second:.1%} of the "
            f"steps/s, {gateway.surveys_per_second / bare.surveys_per_second:.1%} of the calls/s; "
            f"load average now {os.getloadavg()[0]:.2f}"
        )
        print(
            "app cpu, db cpu: CPU time (ms) of the gunicorn processes and of the PostgreSQL "
            "backends per step; the figure that the machine's other work does not change"
        )
        problems = [f.first_error for f in (gateway, bare) if f.errors]
        problems.append(
            check_database(url, warm_completed + gateway.completed, warm_answers + gateway.answers)
            or ""
        )
        problems = [p for p in problems if p]
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            print(log.read_text()[-3000:], file=sys.stderr)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
