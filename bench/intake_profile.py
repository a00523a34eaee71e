"""Profile: where the CPU of bulk intake goes, in one process, without gunicorn.

Not a test. Creates its own PostgreSQL database (as bench/intake.py does), builds the app and
posts `--batches` batches of 1,000 new office visits (20 operators, a new customer each)
through the WSGI app, the same bodies as bench/intake.py, after one batch of warm-up. Prints
the process's CPU time per interaction (the database's backend not included), the statements
per batch, and with --profile cProfile's heaviest functions.

    .venv/bin/python bench/intake_profile.py [--batches 5] [--profile] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from bench.intake import _visit  # noqa: E402
from bench.ivr_load import own_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000 after warm-up")
    parser.add_argument("--profile", action="store_true", help="print cProfile's heaviest")
    parser.add_argument("--top", type=int, default=40, help="functions printed with --profile")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    args = parser.parse_args()

    name = f"sg_intake_profile_{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="sg-intake-profile-") as scratch,
        own_database(name, keep=False) as url,
    ):
        os.environ.update(
            DATABASE_URL=url,
            SECRET_KEY="bench-secret",
            SURVEY_GATEWAY_VAR_DIR=scratch,
            TWILIO_ACCOUNT_SID="",
            TWILIO_AUTH_TOKEN="",
            LOG_LEVEL="WARNING",
        )
        from gateway import create_app
        from gateway.apikeys import create_api_key
        from gateway.models import ApiRole

        app = create_app()
        database = app.extensions["database"]
        with database.session_scope() as session:
            _, key = create_api_key(session, "bench", ApiRole.INTEGRATION, None, datetime.now(UTC))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        statements = [0]
        event.listen(
            database.engine,
            "before_cursor_execute",
            lambda *_: statements.__setitem__(0, statements[0] + 1),
        )
        ended = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()

        def post(batch: int) -> None:
            items = [_visit(batch * 1000 + n, ended) for n in range(1000)]
            body = json.dumps({"interactions": items})
            response = client.post("/api/v1/interactions/batch", data=body, headers=headers)
            if response.status_code != 200 or response.get_json()["created"] != 1000:
                raise RuntimeError(f"{response.status_code}: {response.data[:300]!r}")

        post(0)  # warm-up: the operators and the team are created here
        statements[0] = 0
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        for batch in range(1, args.batches + 1):
            post(batch)
        if profiler:
            profiler.disable()
        spent = time.process_time() - started
        items = args.batches * 1000
        print(
            f"{args.batches} batches of 1,000 in one process: {spent * 1e6 / items:.0f} us CPU "
            f"per interaction (the database's backend not included), "
            f"{statements[0] / args.batches:.1f} statements a batch; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
