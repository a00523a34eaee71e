"""Benchmark: how fast a CRM can report contacts, through gunicorn over HTTP.

Not a test. Creates its own PostgreSQL database on the server of DATABASE_URL (or
postgresql://postgres@127.0.0.1:5432/test), starts `gunicorn wsgi:app` (2 workers, as
`make run`) on a free loopback port, creates an integration key, then posts office visits:

* through `POST /api/v1/interactions/batch`, batches of 1,000 (each a new visit, a new
  customer, 20 operators), one after the other;
* through `POST /api/v1/interactions`, one visit a request, from 4 client threads.

It prints interactions per second of each, and checks that every one was recorded once.

    .venv/bin/python bench/intake.py [--batches 5] [--singles 1000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _visit(n: int, ended: str) -> dict[str, Any]:
    return {
        "external_id": f"bench-visit-{n}",
        "channel": "office_visit",
        "ended_at": ended,
        "operator": {"external_id": f"op-{n % 20}", "name": f"Operator {n % 20}", "team": "Front"},
        "customer": {"phone": f"+7916{n:07d}", "external_id": f"crm-{n}", "language": "ru"},
        "office": "central",
    }


def _post(url: str, key: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000")
    parser.add_argument("--singles", type=int, default=1000, help="single posts")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    parsed = make_url(os.environ.get("DATABASE_URL") or PG_DEFAULT)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    name = f"sg_bench_intake_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        parsed.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = parsed.set(database=name).render_as_string(hide_password=False)
    port = _free_port()
    web = None
    try:
        with tempfile.TemporaryDirectory() as var:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "SURVEY_GATEWAY_VAR_DIR": var,
                "LOG_LEVEL": "WARNING",
                "TWILIO_ACCOUNT_SID": "",
                "TWILIO_AUTH_TOKEN": "",
            }
            env.pop("REDIS_URL", None)
            cli = str(Path(sys.executable).parent / "survey-gateway")
            subprocess.run(
                [cli, "db", "upgrade"], cwd=REPO, env=env, check=True, capture_output=True
            )
            key = subprocess.run(
                [cli, "apikey", "create", "--name", "bench", "--role", "integration"],
                cwd=REPO,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            gunicorn = [sys.executable, "-m", "gunicorn", "wsgi:app", "--workers", "2"]
            web = subprocess.Popen(
                [*gunicorn, "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            ended = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
            print("intake through gunicorn (2 workers) on PostgreSQL, new visits of 20 operators")

            batch_url = f"{base}/api/v1/interactions/batch"
            started = time.monotonic()
            created = 0
            for b in range(args.batches):
                items = [_visit(b * 1000 + n, ended) for n in range(1000)]
                status, body = _post(batch_url, key, {"interactions": items})
                if status != 200:
                    raise SystemExit(f"batch answered {status}: {body}")
                created += body["created"]
            seconds = time.monotonic() - started
            print(
                f"  batch of 1,000 x {args.batches}: {created} created in {seconds:.1f} s = "
                f"{created / seconds:.0f} interactions/s ({seconds / args.batches:.2f} s a batch)"
            )
            again_started = time.monotonic()
            status, body = _post(batch_url, key, {"interactions": items})
            print(
                f"  the last batch again: {body['existing']} existing, {body['created']} created "
                f"in {time.monotonic() - again_started:.2f} s"
            )

            single_url = f"{base}/api/v1/interactions"
            offset = args.batches * 1000

            def one(n: int) -> int:
                return _post(single_url, key, _visit(offset + n, ended))[0]

            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(one, range(args.singles)))
            seconds = time.monotonic() - started
            print(
                f"  single posts, 4 clients: {statuses.count(201)} created in {seconds:.1f} s = "
                f"{args.singles / seconds:.0f} interactions/s"
            )
            engine = create_engine(url)
            with engine.connect() as conn:
                rows = conn.scalar(text("SELECT count(*) FROM survey_sessions"))
            engine.dispose()
            print(f"  surveys scheduled: {rows} (expected {offset + args.singles})")
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=20)
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
