"""Profile: where the CPU of dispatching due SMS surveys goes, in one process, without Celery.

Not a test. Creates its own PostgreSQL database (as bench/dispatch.py does), builds the app
against the tests' fake Twilio on loopback (answering at once, in a thread of this process),
makes `--surveys` SMS surveys due, then sweeps and runs each send task's body in this process
until every one was sent. Prints this thread's CPU time per survey (the fake's threads and the
database's backend not included) of the sweeps and of the sends, the statements of each, and
with --profile cProfile's heaviest functions of the sends.

    .venv/bin/python bench/dispatch_profile.py [--surveys 2000] [--profile] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402

from bench.dispatch import SEED_SQL  # noqa: E402
from bench.ivr_load import own_database  # noqa: E402
from tests.fake_twilio import FakeTwilio  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surveys", type=int, default=2000)
    parser.add_argument("--operators", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="print cProfile's heaviest")
    parser.add_argument("--top", type=int, default=40, help="functions printed with --profile")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument("--only", nargs="*", default=[], help="regular expressions to print")
    args = parser.parse_args()

    name = f"sg_dispatch_profile_{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="sg-dispatch-profile-") as scratch,
        own_database(name, keep=False) as url,
        FakeTwilio(hold_cap_seconds=1) as fake,
    ):
        os.environ.update(
            DATABASE_URL=url,
            SECRET_KEY="bench-secret",
            SURVEY_GATEWAY_VAR_DIR=scratch,
            TWILIO_ACCOUNT_SID=fake.account_sid,
            TWILIO_AUTH_TOKEN=fake.auth_token,
            TWILIO_API_BASE_URL=fake.base_url,
            TWILIO_FROM_NUMBER="+15005550006",
            SMS_RATE_PER_SECOND="100000",
            QUIET_HOURS="",
            PUBLIC_BASE_URL="https://surveys.example.com",
            LOG_LEVEL="WARNING",
        )
        os.environ.pop("REDIS_URL", None)
        from gateway import create_app
        from gateway.db import utcnow
        from gateway.dispatch import run_sweep
        from sms.configured import provider_for
        from sms.service import send_first_sms_batch

        app = create_app()
        database = app.extensions["database"]
        settings = app.config["SETTINGS"]
        statements = [0]
        event.listen(
            database.engine,
            "before_cursor_execute",
            lambda *_: statements.__setitem__(0, statements[0] + 1),
        )
        with database.engine.begin() as conn:
            for statement in filter(str.strip, SEED_SQL.split(";")):
                conn.execute(
                    text(statement), {"operators": args.operators, "surveys": args.surveys}
                )

        queued: list[list[int]] = []
        figures = {"sweep": [0.0, 0], "send": [0.0, 0]}
        profiler = cProfile.Profile(time.thread_time) if args.profile else None
        sent = 0
        with app.app_context():
            while sent < args.surveys:
                cpu, before = time.thread_time(), statements[0]
                with database.session_scope() as session:
                    report = run_sweep(
                        session, settings, utcnow(), lambda _task, ids: queued.append(ids)
                    )
                figures["sweep"][0] += time.thread_time() - cpu
                figures["sweep"][1] += statements[0] - before
                if not report.handed_over and not queued:
                    raise RuntimeError(f"nothing to send, {sent} of {args.surveys} sent")
                while queued:
                    ids = queued.pop(0)
                    cpu, before = time.thread_time(), statements[0]
                    if profiler:
                        profiler.enable()
                    provider = provider_for(settings)
                    try:
                        with database.session_scope() as session:
                            outcomes = send_first_sms_batch(
                                session, settings, provider, ids, utcnow(), time.sleep
                            )
                    finally:
                        provider.close()
                    if profiler:
                        profiler.disable()
                    figures["send"][0] += time.thread_time() - cpu
                    figures["send"][1] += statements[0] - before
                    sent += sum(1 for o in outcomes.values() if o.result == "sent")
        print(
            f"{args.surveys} surveys of {args.operators} operators dispatched in one process "
            f"(load average {os.getloadavg()[0]:.2f}); per survey, this thread's CPU and "
            f"statements:"
        )
        for part, (cpu, count) in figures.items():
            print(f"  {part:<6} {cpu * 1e6 / args.surveys:>6.0f} us {count / args.surveys:>6.2f}")
        print(f"  fake Twilio answered {len(fake.messages())} messages")
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats(args.sort)
            stats.print_stats(*args.only, args.top)
            print(out.getvalue())
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
