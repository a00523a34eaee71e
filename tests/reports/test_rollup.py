"""The reports' rollup follows every write and equals a rebuild from the raw answers."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from sqlalchemy import select, text

from gateway.db import utcnow
from gateway.models import SurveyStatus
from gateway.reports.models import OperatorDayParameter, OperatorDayScore
from gateway.reports.rollup import rebuild, refresh_now
from gateway.surveys import finish_survey, record_answer
from ivr_flows.engine import RecordedAnswer
from tests.reports.factories import Seeder, at


def _snapshot(session) -> list[tuple]:
    rows = []
    for table in (OperatorDayScore.__table__, OperatorDayParameter.__table__):
        columns = [c for c in table.columns if c.name not in {"id", "updated_at"}]
        keys = [c for c in columns if c.name in {"operator_id", "day", "channel", "office", "key"}]
        rows += session.execute(select(*columns).order_by(*keys)).all()
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


def test_the_rollup_kept_on_each_write_equals_a_rebuild_from_raw_answers(session, month):
    kept = _snapshot(session)
    assert kept
    rebuild(session.connection(), date(2026, 8, 1), date(2026, 10, 31), utcnow())
    assert _snapshot(session) == kept


def test_recording_an_answer_and_finishing_a_survey_update_the_figures(app, session, seeder):
    operator = seeder.operator("op-live", "North")
    survey = seeder.survey(operator, {}, at("2026-09-05"), status="active")
    session.commit()
    settings = app.config["SETTINGS"]

    def bucket() -> OperatorDayScore:
        session.expire_all()
        return session.scalar(
            select(OperatorDayScore).where(OperatorDayScore.operator_id == operator.id)
        )

    assert (bucket().sent, bucket().responses) == (1, 0)
    record_answer(session, survey, RecordedAnswer("overall", 5), settings, at("2026-09-05", 13))
    session.commit()
    assert (bucket().responses, bucket().overall_5, bucket().started) == (1, 1, 1)
    record_answer(session, survey, RecordedAnswer("speed", None), settings, at("2026-09-05", 13))
    record_answer(session, survey, RecordedAnswer("cost", 2), settings, at("2026-09-05", 13))
    finish_survey(survey, at("2026-09-05", 14), completed=False)
    session.commit()
    assert survey.status is SurveyStatus.PARTIAL
    row = bucket()
    assert (row.completed, row.sent, row.csi_n, row.csi_operator_n) == (0, 1, 1, 0)
    parameters = session.execute(
        select(OperatorDayParameter.key, OperatorDayParameter.total, OperatorDayParameter.n)
    ).all()
    assert parameters == [("cost", 2.0, 1)]


def test_a_moved_interaction_leaves_its_old_bucket(session, seeder):
    first, second = seeder.operator("op-m1"), seeder.operator("op-m2")
    survey = seeder.survey(first, {"overall": 4}, at("2026-09-05"))
    session.commit()
    survey.interaction.operator = second
    session.commit()
    rows = session.execute(select(OperatorDayScore.operator_id, OperatorDayScore.responses)).all()
    assert rows == [(second.id, 1)]


@pytest.mark.usefixtures("live_app")
def test_concurrent_answers_in_one_bucket_are_both_counted(live_app):
    """Two transactions answer surveys of the same operator and day at once; the second
    waits for the first's lock on the bucket and recomputes with its answer."""
    database = live_app.extensions["database"]
    settings = live_app.config["SETTINGS"]
    with live_app.app_context():
        setup = database.session_factory()
        seeder = Seeder(setup)
        operator = seeder.operator("op-race")
        ids = [
            seeder.survey(operator, {}, at("2026-09-05", h), status="active").id for h in (9, 10)
        ]
        setup.commit()
        setup.close()

    from gateway.models import SurveySession

    first = database.session_factory()
    second = database.session_factory()
    record_answer(
        first, first.get(SurveySession, ids[0]), RecordedAnswer("overall", 5), settings, utcnow()
    )
    refresh_now(first)  # takes the bucket's lock (as commit would), held until it commits
    failures: list[BaseException] = []

    def answer_second() -> None:
        try:
            record_answer(
                second,
                second.get(SurveySession, ids[1]),
                RecordedAnswer("overall", 4),
                settings,
                utcnow(),
            )
            second.commit()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    worker = threading.Thread(target=answer_second)
    worker.start()
    # Wait (bounded) until the second transaction is really blocked on the bucket's lock.
    with database.engine.connect() as probe:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar()
            if waiting:
                break
            probe.rollback()
        assert waiting, "the second transaction never waited for the bucket"
    first.commit()
    worker.join(10)
    assert not worker.is_alive() and not failures, failures
    first.close()
    second.close()
    with database.engine.connect() as conn:
        responses, fives, fours = conn.execute(
            select(
                OperatorDayScore.responses, OperatorDayScore.overall_5, OperatorDayScore.overall_4
            )
        ).one()
    assert (responses, fives, fours) == (2, 1, 1)
