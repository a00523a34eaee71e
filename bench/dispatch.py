"""Benchmark: how fast due SMS surveys go out, end to end, with a provider that answers at once.

Not a test. Creates its own PostgreSQL database on the server of DATABASE_URL (or
postgresql://postgres@127.0.0.1:5432/test) and uses Redis at REDIS_URL (or
redis://127.0.0.1:6379/0) under queue names of its own. It starts the fake Twilio of the tests
on loopback (it answers every request at once), a Celery worker for sends and the sweeps' own
worker with beat, exactly as `make run` does, with SMS_RATE_PER_SECOND high enough not to be
the limit. Then, for each scenario, it makes N SMS surveys due in one commit and measures
the time until every one of them was sent, and checks that each customer got exactly one.

Scenarios: N visits of one operator, and the same N spread over 20 operators (the reports'
rollup is per operator and day, so one busy operator is where contention would show).

Beside the rate it prints the CPU time each survey cost, from /proc: the Celery workers (the
sends and the sweeps), this process (the fake Twilio answering) and the database's backends.
It moves much less than the rate with the machine's other work.

    .venv/bin/python bench/dispatch.py [--surveys 10000] [--concurrency 2] [--keep]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ivr_load import children, cpu_seconds, spent  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from tests.fake_twilio import FakeTwilio  # noqa: E402

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
TABLES = (
    "messages, survey_attempts, answers, incidents, survey_sessions, interactions, customers, "
    "operators, teams, rate_limit_slots, provider_circuits"
)

SEED_SQL = """
INSERT INTO teams (id, name, created_at) VALUES (1, 'Front office', now());
INSERT INTO operators (id, external_id, name, team_id, created_at)
  SELECT g, 'op-' || g, 'Operator ' || g, 1, now() FROM generate_series(1, :operators) g;
INSERT INTO customers (id, phone, language, created_at)
  SELECT g, '+7916' || lpad(g::text, 7, '0'), 'ru', now() FROM generate_series(1, :surveys) g;
INSERT INTO interactions (id, channel, external_id, ended_at, operator_id, customer_id, office,
                          created_at)
  SELECT g, 'office_visit', 'bench-' || g, now() - interval '61 minutes',
         1 + g % :operators, g, 'central', now()
  FROM generate_series(1, :surveys) g;
INSERT INTO survey_sessions (id, interaction_id, customer_id, channel, kind, flow, language,
                             status, due_at, attempts, created_at, updated_at)
  SELECT g, g, g, 'sms', 'sms', 'post_call', 'ru', 'scheduled', now() - interval '1 minute',
         0, now(), now()
  FROM generate_series(1, :surveys) g;
"""


def _database(server_url: str) -> tuple[str, Engine, str]:
    parsed = make_url(server_url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    name = f"sg_bench_dispatch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        parsed.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return parsed.set(database=name).render_as_string(hide_password=False), admin, name


def _workers(
    env: dict[str, str], prefix: str, concurrency: int, logs: Path
) -> list[subprocess.Popen[bytes]]:
    celery = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--loglevel", "WARNING"]
    quiet = ["--without-mingle", "--without-gossip"]
    commands = [
        [*celery, "-Q", prefix + "celery", "--concurrency", str(concurrency), *quiet],
        [*celery, "--beat", "-Q", prefix + "sweeps", "--concurrency", "1", *quiet],
    ]
    return [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            start_new_session=True,
            stdout=(logs / f"worker{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for n, command in enumerate(commands)
    ]


def _cpu(engine: Engine, workers: list[subprocess.Popen[bytes]]) -> list[dict[int, float]]:
    """CPU seconds so far of the workers (with their pool processes), of this process and of
    the database's backends."""
    pids = [p for w in workers for p in (w.pid, *children(w.pid))]
    with engine.connect() as conn:
        backends = conn.scalars(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    own = os.times()
    return [cpu_seconds(pids), {0: own.user + own.system}, cpu_seconds(list(backends))]


def _run_scenario(
    engine: Engine,
    fake: FakeTwilio,
    surveys: int,
    operators: int,
    timeout: float,
    workers: list[subprocess.Popen[bytes]],
) -> dict[str, float]:
    fake.reset()
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    with engine.begin() as conn:
        for statement in filter(str.strip, SEED_SQL.split(";")):
            conn.execute(text(statement), {"operators": operators, "surveys": surveys})
    cpu_before = _cpu(engine, workers)
    started = time.monotonic()  # every survey is due from this commit on
    sent, half_at = 0, None
    while sent < surveys and time.monotonic() - started < timeout:
        time.sleep(0.25)
        with engine.connect() as conn:
            sent = (
                conn.scalar(text("SELECT count(*) FROM survey_sessions WHERE status = 'active'"))
                or 0
            )
        if half_at is None and sent >= surveys / 2:
            half_at = time.monotonic() - started
    elapsed = time.monotonic() - started
    cpu_after = _cpu(engine, workers)
    cpu = [spent(b, a) * 1000 / surveys for b, a in zip(cpu_before, cpu_after, strict=True)]
    fake.wait_idle(10)
    per_number = Counter(r.params.get("To") for r in fake.messages() if r.sid)
    return {
        "sent": sent,
        "seconds": elapsed,
        "rate": sent / elapsed if elapsed else 0.0,
        "half_seconds": half_at or float("nan"),
        "twice": sum(1 for n in per_number.values() if n > 1),
        "never": surveys - len(per_number),
        "workers_ms": cpu[0],
        "fake_ms": cpu[1],
        "database_ms": cpu[2],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surveys", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2, help="send worker processes")
    parser.add_argument("--rate", type=float, default=10_000.0, help="SMS_RATE_PER_SECOND")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per scenario")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or PG_DEFAULT
    redis_url = os.environ.get("REDIS_URL") or REDIS_DEFAULT
    url, admin, name = _database(server_url)
    prefix = f"sg-bench-{uuid.uuid4().hex[:8]}."
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(url)
        engine = create_engine(url)
        with FakeTwilio(hold_cap_seconds=1) as fake, tempfile.TemporaryDirectory() as var:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "REDIS_URL": redis_url,
                "TASK_QUEUE_PREFIX": prefix,
                "TWILIO_ACCOUNT_SID": fake.account_sid,
                "TWILIO_AUTH_TOKEN": fake.auth_token,
                "TWILIO_API_BASE_URL": fake.base_url,
                "TWILIO_FROM_NUMBER": "+15005550006",
                "SMS_RATE_PER_SECOND": str(args.rate),
                "DISPATCH_INTERVAL_SECONDS": "1",
                "QUIET_HOURS": "",
                "PUBLIC_BASE_URL": "https://surveys.example.com",
                "SURVEY_GATEWAY_VAR_DIR": var,
                "LOG_LEVEL": "WARNING",
            }
            processes = _workers(env, prefix, args.concurrency, Path(var))
            time.sleep(8)  # workers up, beat's first sweeps done on an empty schedule
            print(
                f"dispatch of {args.surveys} due SMS surveys, {args.concurrency} send workers, "
                f"SMS_RATE_PER_SECOND={args.rate:g}, fake Twilio answering at once"
            )
            for operators in (1, 20):
                result = _run_scenario(
                    engine, fake, args.surveys, operators, args.timeout, processes
                )
                print(
                    f"  {operators:>2} operator(s) x {args.surveys // operators:>5} visits: "
                    f"{result['sent']:.0f} sent in {result['seconds']:.1f} s = "
                    f"{result['rate']:.0f} surveys/s (half in {result['half_seconds']:.1f} s); "
                    f"sent twice {result['twice']}, never {result['never']}; CPU a survey: "
                    f"workers {result['workers_ms']:.2f} ms, fake Twilio "
                    f"{result['fake_ms']:.2f} ms, database {result['database_ms']:.2f} ms "
                    f"(load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        engine.dispose()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        client = redis.Redis.from_url(redis_url)
        client.delete(prefix + "celery", prefix + "sweeps", prefix + "background")
        client.close()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
