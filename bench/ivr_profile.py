"""Profile: where the CPU of one IVR survey step goes, in one process, without gunicorn.

Not a test. Creates its own PostgreSQL database (as bench/ivr_load.py does), builds the app,
and walks `--calls` whole `post_call` surveys one after another through the WSGI app with
Twilio's signed webhooks, the same requests as the load benchmark's callers. Prints the
process's CPU time per step (with a warm-up not counted), the part of it spent inside the
gateway's WSGI app (the caller's signing and parsing left out: --profile profiles that part
only), the CPU time of the database's
backends (PostgreSQL on this machine: read from /proc, to the nanosecond), the statements,
how many of them psycopg translates again on every execution (longer than it caches) and,
with --profile, cProfile's heaviest functions by cumulative time.

    .venv/bin/python bench/ivr_profile.py [--calls 300] [--profile] [--top 40]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg._queries import (  # noqa: E402
    MAX_CACHED_STATEMENT_LENGTH,
    MAX_CACHED_STATEMENT_PARAMS,
)
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench.ivr_load import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    HOTLINE,
    Caller,
    Tally,
    own_database,
)

BASE_URL = "http://gateway.example"


class InProcessCaller(Caller):
    """The load benchmark's caller, posting to the WSGI app instead of over HTTP."""

    def __init__(self, client: Any, seed: int, tally: Tally) -> None:
        super().__init__(BASE_URL, seed, tally)
        self.client = client
        self.statements = [0]
        self.uncached = [0]  # statements psycopg translates again on every execution
        self.in_app = [0.0]  # CPU seconds inside the gateway's WSGI app
        self.backends: list[int] = []  # pids of the database's backends serving the app
        self.by_kind: dict[str, list[Any]] = {}

    @staticmethod
    def kind(path: str, query: str) -> str:
        """The request's kind: the survey's start, a key press, its last step, the status."""
        question = parse_qs(query).get("q", [""])[0]
        return f"{path} {question}".strip()

    def post(self, url: str, data: dict[str, str]) -> bytes:
        signature = self.validator.compute_signature(url, data)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        started = time.perf_counter()
        cpu = time.process_time()
        statements_before = self.statements[0]
        in_app_before = self.in_app[0]
        database_before = backend_cpu(self.backends)
        response = self.client.post(
            target,
            data=data,
            headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
        )
        self.tally.latencies.append(time.perf_counter() - started)
        kind = self.kind(parts.path, parts.query)
        figures = self.by_kind.setdefault(kind, [0, 0.0, 0, 0.0, 0.0])
        figures[0] += 1
        figures[1] += time.process_time() - cpu
        figures[2] += self.statements[0] - statements_before
        figures[3] += self.in_app[0] - in_app_before
        figures[4] += backend_cpu(self.backends) - database_before
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} from {parts.path}: {response.data[:200]!r}")
        return bytes(response.data)


def backend_cpu(pids: list[int]) -> float:
    """CPU seconds these processes have run (/proc/<pid>/schedstat, in nanoseconds)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):  # gone
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total / 1e9


def backends_of(url: str) -> list[int]:
    """The pids of the backends connected to the database of `url` (other than our own)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(
                conn.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )
    finally:
        engine.dispose()


def count_statement(caller: InProcessCaller, statement: str, parameters: Any) -> None:
    caller.statements[0] += 1
    params = len(parameters) if isinstance(parameters, dict) else 0
    if len(statement) > MAX_CACHED_STATEMENT_LENGTH or params > MAX_CACHED_STATEMENT_PARAMS:
        caller.uncached[0] += 1


def in_app_timer(
    wsgi_app: Any, spent: list[float], profiler: cProfile.Profile | None, profiling: list[bool]
) -> Any:
    """The WSGI app, adding the CPU time of each request (the body included) to spent[0];
    profiled inside only (the caller's signing and parsing left out) while profiling[0]."""

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        cpu = time.process_time()
        if profiler is not None and profiling[0]:
            profiler.enable()
        try:
            return list(wsgi_app(environ, start_response))
        finally:
            if profiler is not None and profiling[0]:
                profiler.disable()
            spent[0] += time.process_time() - cpu

    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="surveys walked after warm-up")
    parser.add_argument("--warmup", type=int, default=30, help="surveys walked first, not counted")
    parser.add_argument("--profile", action="store_true", help="print cProfile's heaviest")
    parser.add_argument("--top", type=int, default=40, help="functions printed with --profile")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument(
        "--only", nargs="*", default=[], help="regular expressions of the functions printed"
    )
    args = parser.parse_args()

    name = f"sg_ivr_profile_{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="sg-ivr-profile-") as scratch,
        own_database(name, keep=False) as url,
    ):
        os.environ.update(
            DATABASE_URL=url,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_FROM_NUMBER=HOTLINE,
            SECRET_KEY="bench-secret",
            SURVEY_GATEWAY_VAR_DIR=scratch,
            LOW_SCORE_THRESHOLD="2",
            PUBLIC_BASE_URL=BASE_URL,
        )
        from gateway import create_app

        app = create_app()
        client = app.test_client()
        tally = Tally()
        caller = InProcessCaller(client, random.randrange(2**32), tally)
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        profiling = [False]  # not the warm-up
        app.wsgi_app = in_app_timer(  # type: ignore[method-assign]
            app.wsgi_app, caller.in_app, profiler, profiling
        )
        event.listen(
            app.extensions["database"].engine,
            "before_cursor_execute",
            lambda _conn, _cursor, statement, parameters, *_: count_statement(
                caller, statement, parameters
            ),
        )
        for _ in range(args.warmup):
            caller.survey()
        tally.latencies.clear()
        caller.by_kind.clear()
        caller.uncached[0] = caller.statements[0] = 0
        caller.backends = backends_of(url)
        started = time.process_time()
        profiling[0] = True
        for _ in range(args.calls):
            caller.survey()
        profiling[0] = False
        spent = time.process_time() - started
        steps = len(tally.latencies)
        in_app = sum(figures[3] for figures in caller.by_kind.values())
        print(
            f"{args.calls} surveys, {steps} steps in one process: "
            f"{spent * 1000 / steps:.2f} ms CPU per step (app and callers; the database's "
            f"backend not included), {in_app * 1000 / steps:.2f} ms of it in the app; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        database = sum(figures[4] for figures in caller.by_kind.values())
        print(
            f"database backends ({len(caller.backends)}): {database * 1000 / steps:.2f} ms CPU "
            f"per step; {caller.uncached[0]} of {caller.statements[0]} statements longer than "
            f"psycopg caches ({MAX_CACHED_STATEMENT_LENGTH} characters, "
            f"{MAX_CACHED_STATEMENT_PARAMS} parameters), translated again each time"
        )
        if sorted(backends_of(url)) != sorted(caller.backends):
            print("(the app opened other connections meanwhile: their CPU is not counted)")
        print(
            f"{'request':<36} {'count':>6} {'cpu ms':>7} {'app ms':>7} {'db ms':>7} "
            f"{'statements':>10}"
        )
        for kind, (count, cpu, statements, app_cpu, db_cpu) in sorted(caller.by_kind.items()):
            print(
                f"{kind:<36} {count:>6} {cpu * 1000 / count:>7.2f} "
                f"{app_cpu * 1000 / count:>7.2f} {db_cpu * 1000 / count:>7.2f} "
                f"{statements / count:>10.1f}"
            )
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(
                *args.only, args.top
            )
            print(out.getvalue())
        app.extensions["database"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
