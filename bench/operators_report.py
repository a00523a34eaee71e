"""Benchmark: the month's operators report over 1 M answers (500 operators, 90 days).

Not a test. Creates its own PostgreSQL database (sg_bench by default) on the server of
DATABASE_URL (or postgresql://postgres@127.0.0.1:5432/test), fills it with SQL
(generate_series), freezes the surveys' scores and builds the reports' rollup with the same
code production uses, then times the month's operators report through the service the API
calls (median and p95 of N runs, and the CPU a run costs here and in PostgreSQL, which the
machine's load changes far less), and what keeping the rollup costs a write: recording one
answer (a keypress) and ending a survey, each with the rollup's hooks and without them.
Drops the database at the end unless --keep or --reuse.

    .venv/bin/python bench/operators_report.py [--runs 30] [--answers 10000000] [--keep]
    .venv/bin/python bench/operators_report.py --reuse   # time the kept database again
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import survey_state
from gateway.config import Settings, load_settings
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.models import Answer, SurveySession
from gateway.reports import rollup
from gateway.reports.metrics import nps_class, score_session, spec_for
from gateway.reports.scoring import answers_of, frozen_differs, spec_to_json
from gateway.reports.service import ReportFilter, operators_report
from gateway.surveys import record_answer
from ivr_flows import load_flows
from ivr_flows.engine import RecordedAnswer

FIRST_DAY = date(2026, 6, 1)
DAYS = 90
MONTH = (date(2026, 7, 1), date(2026, 7, 31))
OPERATORS, TEAMS, OFFICES = 500, 25, 20
ANSWERS = 1_000_000  # the default size; --answers sets another


def seed_sql(answers: int) -> str:
    """The seeding script for about `answers` answers (5 an answered survey), with the same
    shares of unanswered surveys (10 %), contacts without a survey (15 %) and customers."""
    answered = answers // 5
    unanswered = answered // 10
    without_survey = answered * 3 // 20
    customers = answered * 3 // 4
    return f"""
SELECT setseed(0.42);
INSERT INTO teams (id, name, created_at)
  SELECT g, 'Team ' || g, now() FROM generate_series(1, {TEAMS}) g;
INSERT INTO operators (id, external_id, name, team_id, created_at)
  SELECT g, 'op-' || g, 'Operator ' || g, 1 + g % {TEAMS}, now()
  FROM generate_series(1, {OPERATORS}) g;
INSERT INTO customers (id, external_id, phone, language, created_at)
  SELECT g, 'crm-' || g, '+7916' || lpad(g::text, 7, '0'), 'ru', now()
  FROM generate_series(1, {customers}) g;
-- Hotline operators (4 in 5) take calls, the others office visits, each in one office.
INSERT INTO interactions (id, channel, external_id, ended_at, operator_id, team_id, customer_id,
                          office, disposition, created_at)
  SELECT g,
         CASE WHEN op % 5 = 0 THEN 'office_visit' ELSE 'call' END,
         'bench-' || g,
         timestamptz '{FIRST_DAY.isoformat()} 00:00+00' + random() * interval '{DAYS} days',
         op, 1 + op % {TEAMS}, 1 + (random() * ({customers} - 1))::int,
         CASE WHEN op % 5 = 0 THEN 'office-' || (op % {OFFICES}) END,
         CASE WHEN g > {answered + unanswered} AND random() < 0.3
              THEN 'transferred' END,
         now()
  FROM (SELECT g, 1 + (random() * ({OPERATORS} - 1))::int AS op
        FROM generate_series(1, {answered + unanswered + without_survey}) g) picked;
INSERT INTO survey_sessions (id, interaction_id, customer_id, channel, kind, flow, language,
                             status, attempts, created_at, updated_at)
  SELECT i.id, i.id, i.customer_id,
         CASE WHEN i.channel = 'call' THEN 'ivr' ELSE 'sms' END,
         CASE WHEN i.channel = 'call' THEN 'post_call' ELSE 'sms' END,
         'post_call', 'ru',
         CASE WHEN i.id > {answered}
              THEN (ARRAY['expired', 'not_sent', 'not_reached'])[1 + i.id % 3]
              WHEN i.id % 10 = 0 THEN 'partial' ELSE 'completed' END,
         1, now(), now()
  FROM interactions i WHERE i.id <= {answered + unanswered};
-- Five answers per answered survey; a partial one skipped its later questions.
INSERT INTO answers (session_id, question_key, value, answered_at)
  SELECT s, k.key,
         CASE WHEN s % 10 = 0 AND k.n > 2 THEN NULL
              ELSE (ARRAY[1, 2, 3, 4, 4, 5, 5, 5])[1 + (random() * 7)::int] END,
         now()
  FROM generate_series(1, {answered}) s,
       (VALUES (1, 'overall'), (2, 'cost'), (3, 'speed'), (4, 'politeness'), (5, 'quality'))
         AS k(n, key);
SELECT setval(pg_get_serial_sequence('interactions', 'id'), (SELECT max(id) FROM interactions));
SELECT setval(pg_get_serial_sequence('survey_sessions', 'id'),
              (SELECT max(id) FROM survey_sessions));
SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers));
ANALYZE;
"""


QUESTIONS = ("overall", "cost", "speed", "politeness", "quality")


def freeze_seeded_scores(engine: Engine) -> int:
    """Freeze every ended survey's score in a few set-based statements: the production
    scoring (`score_session`, post_call's weights) of each of the 6^5 possible answer sets,
    joined to the surveys by their answers. What `rollup.freeze_missing` would store, in
    minutes instead of hours at 10 M answers; the run checks a sample against it."""
    spec = spec_for(load_flows()["post_call"])
    rows = []
    for values in itertools.product((None, 1, 2, 3, 4, 5), repeat=len(QUESTIONS)):
        answers = dict(zip(QUESTIONS, values, strict=True))
        score = score_session(answers, spec)
        rows.append(
            {
                "k": ",".join("-" if v is None else str(v) for v in values),
                "answered": any(v is not None for v in values),
                "overall": score.overall,
                "parameters": json.dumps(dict(score.parameters)) if score.parameters else None,
                "csi": score.csi,
                "csi_operator": score.csi_operator,
                "nps": score.nps,
                "nps_class": nps_class(score.nps),
            }
        )
    none = ",".join("-" for _ in QUESTIONS)
    key = " || ',' || ".join(
        f"coalesce(max(value) FILTER (WHERE question_key = '{q}')::text, '-')" for q in QUESTIONS
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TEMP TABLE score_lookup (k text PRIMARY KEY, answered boolean, "
                "overall int, parameters json, csi float, csi_operator float, nps int, "
                "nps_class text)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO score_lookup VALUES (:k, :answered, :overall, "
                "CAST(:parameters AS json), :csi, :csi_operator, :nps, :nps_class)"
            ),
            rows,
        )
        frozen = conn.execute(
            text(
                f"""
UPDATE survey_sessions s
SET scored_at = now(), score_spec = CAST(:spec AS json), score_answered = l.answered,
    score_overall = l.overall, score_parameters = l.parameters, score_csi = l.csi,
    score_csi_operator = l.csi_operator, score_nps = l.nps, score_nps_class = l.nps_class
FROM survey_sessions e
LEFT JOIN (SELECT session_id, {key} AS k FROM answers GROUP BY session_id) a
  ON a.session_id = e.id
JOIN score_lookup l ON l.k = coalesce(a.k, :none)
WHERE s.id = e.id AND e.status IN ('completed', 'partial', 'expired')
"""
            ),
            {"spec": json.dumps(spec_to_json(spec)), "none": none},
        ).rowcount
    return int(frozen)


def check_frozen_sample(engine: Engine, count: int = 2000) -> None:
    """The SQL-frozen scores of a sample of surveys are what production code computes."""
    with Session(engine) as session:
        surveys = session.scalars(
            select(SurveySession)
            .where(SurveySession.scored_at.is_not(None))
            .order_by(func.random())
            .limit(count)
        ).all()
        wrong = [s.id for s in surveys if frozen_differs(s, answers_of(session, s.id))]
    if wrong:
        raise SystemExit(f"frozen scores differ from production scoring: surveys {wrong[:10]}")
    print(f"checked {len(surveys)} frozen scores against production scoring: equal")


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of each of `runs` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def server_cpu(engine: Engine) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend serving this database, read from
    /proc (a server on this machine); empty where that cannot be read."""
    with engine.connect() as conn:
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).all()
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def cpu_per_run(engine: Engine, fn: Callable[[], object], runs: int) -> str:
    """CPU milliseconds per call, in this process and in the database's backends: a figure
    that the machine's load changes far less than the elapsed time."""
    fn()
    before, started = server_cpu(engine), time.process_time()
    for _ in range(runs):
        fn()
    here = (time.process_time() - started) * 1000 / runs
    after = server_cpu(engine)
    if not after:
        return f"CPU {here:.1f} ms here per run"
    there = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items()) * 1000 / runs
    return f"CPU per run {here:.1f} ms here + {there:.1f} ms in PostgreSQL = {here + there:.1f} ms"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def describe(label: str, samples: list[float]) -> None:
    print(
        f"{label}: median {statistics.median(samples):.1f} ms, p95 {p95(samples):.1f} ms "
        f"({len(samples)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--answers", type=int, default=ANSWERS, help="size of the generated history (answers)"
    )
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--database", default="sg_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the database a previous --keep run left (seeded, rollup built), migrated "
        "to the head; implies --keep",
    )
    args = parser.parse_args()
    args.keep = args.keep or args.reuse

    server = make_url(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test")
    server = server.set(drivername="postgresql+psycopg")
    url = server.set(database=args.database).render_as_string(hide_password=False)
    admin = create_engine(
        server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": args.database}
        ).scalar()
        if args.reuse and not exists:
            raise SystemExit(f"no database {args.database!r} to reuse: run with --keep first")
        if not args.reuse:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{args.database}"'))
    engine = make_engine(url)
    try:
        upgrade(url)
        settings = load_settings(overrides={"database_url": url})
        if not args.reuse:
            seed(engine, args.answers, settings)
        report_timings(engine, url, settings, args.runs)
        if not args.reuse:
            # Changes the data (reopens and answers surveys): a reused database skips it.
            measure_writes(engine, settings, args.writes)
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
        admin.dispose()


def seed(engine: Engine, size: int, settings: Settings) -> None:
    """Generate the history, freeze its surveys' scores and build the rollup."""
    started = time.perf_counter()
    with engine.begin() as conn:
        for statement in filter(str.strip, seed_sql(size).split(";\n")):
            conn.execute(text(statement))
    with engine.connect() as conn:
        answers = conn.execute(select(func.count()).select_from(Answer)).scalar()
    print(
        f"seeded {answers:,} answers, {OPERATORS} operators, {DAYS} days "
        f"in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    frozen = freeze_seeded_scores(engine)
    print(f"froze {frozen:,} surveys' scores in SQL in {time.perf_counter() - started:.1f} s")
    check_frozen_sample(engine)

    started = time.perf_counter()
    with Session(engine) as session:
        rows = rollup.rebuild_all(session, settings.report_zone)
        session.commit()
    with engine.begin() as conn:
        for table in ("score_buckets", "score_bucket_parameters", "score_bucket_dispositions"):
            conn.execute(text(f"ANALYZE {table}"))
    print(f"built the rollup: {rows:,} buckets in {time.perf_counter() - started:.1f} s")


def report_timings(engine: Engine, url: str, settings: Settings, runs: int) -> None:
    """Median and p95 of the month's operators report: everyone, one team, through the API."""
    zone = settings.report_zone
    sessions = sessionmaker(bind=engine)
    month = ReportFilter(*MONTH, zone=zone)

    def report() -> list[dict[str, object]]:
        with sessions() as session:
            return operators_report(session, month, settings)

    result = report()
    ranked = sum(1 for r in result if r["ranked"])
    print(f"report of {MONTH[0]}..{MONTH[1]}: {len(result)} operators, {ranked} ranked")
    describe("operators report (month)", timed(report, runs))
    print(f"  {cpu_per_run(engine, report, runs)}")
    team = ReportFilter(*MONTH, team="Team 7", zone=zone)

    def team_report() -> object:
        with sessions() as session:
            return operators_report(session, team, settings)

    describe("operators report (month, one team)", timed(team_report, runs))
    print(f"  {cpu_per_run(engine, team_report, runs)}")
    api = api_call(url)
    describe("GET /api/v1/reports/operators (month, JSON, in-process)", timed(api, runs))
    print(f"  {cpu_per_run(engine, api, runs)}")


def api_call(url: str) -> Callable[[], object]:
    """The month's report as a client gets it: key check, service, JSON rendering."""
    import tempfile

    from gateway import create_app
    from gateway.apikeys import create_api_key
    from gateway.models import ApiRole

    app = create_app(
        {"database_url": url, "var_dir": Path(tempfile.mkdtemp()), "log_level": "WARNING"}
    )
    with app.app_context():
        session = app.extensions["database"].session()
        _row, key = create_api_key(session, "bench", ApiRole.ADMIN, None, datetime.now(UTC))
        session.commit()
    client = app.test_client()
    query = {"from": MONTH[0].isoformat(), "to": MONTH[1].isoformat()}

    def call() -> object:
        response = client.get(
            "/api/v1/reports/operators",
            query_string=query,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    return call


def measure_writes(engine: object, settings: Settings, count: int) -> None:
    """Time a keypress (one answer recorded and committed) and a survey's end (its score
    frozen and counted), with the rollup's hooks and without them."""
    # Sessions carry the shipped flows as an app's do: a survey's end freezes its score by them.
    info = {"flows": load_flows(settings.flows_dir)}
    plain = sessionmaker(bind=engine, info=info)  # type: ignore[call-overload]
    kept = sessionmaker(bind=engine, info=info)  # type: ignore[call-overload]
    rollup.ScoreKeeper(settings.report_zone).attach(kept)
    with plain() as session:
        # Surveys that were sent and not yet answered: reopened as running ones to answer.
        ids = session.scalars(
            select(SurveySession.id)
            .where(SurveySession.status.in_(["expired", "not_reached"]))
            .order_by(SurveySession.id)
            .limit(2 * count)
        ).all()
        session.execute(
            update(SurveySession)
            .where(SurveySession.id.in_(ids))
            .values(status="active", scored_at=None)
        )
        session.commit()

    def keypress(sessions: sessionmaker[Session], survey_id: int) -> None:
        with sessions() as session:
            survey = session.get_one(SurveySession, survey_id)
            record_answer(
                session, survey, RecordedAnswer("overall", 4), settings, datetime.now(UTC)
            )
            session.commit()

    def end(sessions: sessionmaker[Session], survey_id: int) -> None:
        with sessions() as session:
            survey = session.get_one(SurveySession, survey_id)
            survey_state.finish(survey, datetime.now(UTC), completed=False)
            session.commit()

    results: dict[str, float] = {}
    for step, action in (("record one answer", keypress), ("end a survey", end)):
        for label, sessions, chosen in (
            ("without the rollup", plain, ids[:count]),
            ("with the rollup", kept, ids[count:]),
        ):
            samples = []
            for survey_id in chosen:
                started = time.perf_counter()
                action(sessions, survey_id)
                samples.append((time.perf_counter() - started) * 1000)
            results[f"{step} {label}"] = statistics.median(samples)
            describe(f"{step} {label}", samples)
        extra = results[f"{step} with the rollup"] - results[f"{step} without the rollup"]
        print(f"the rollup adds {extra:.1f} ms (median) to: {step}")


if __name__ == "__main__":
    main()
