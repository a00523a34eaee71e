"""The reports' rollup: increments in the writing transaction, equal to a rebuild from the raw
rows; a keypress touches no rollup row; concurrent surveys of one bucket are all counted."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from gateway import survey_state
from gateway.models import SurveySession, SurveyStatus
from gateway.reports.models import ScoreBucket, ScoreBucketDisposition, ScoreBucketParameter
from gateway.reports.rollup import rebuild, verify
from gateway.surveys import record_answer
from ivr_flows.engine import RecordedAnswer
from tests.reports.factories import Seeder, at

MOSCOW = ZoneInfo("Europe/Moscow")


def _snapshot(session) -> list[tuple]:
    rows = []
    for model in (ScoreBucket, ScoreBucketParameter, ScoreBucketDisposition):
        table = model.__table__
        columns = [c for c in table.columns if c.name != "id"]
        rows += session.execute(select(*columns).order_by(*columns[:6])).all()
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


@contextmanager
def statements(session):
    """The SQL statements the session's connection runs inside the block."""
    seen: list[str] = []
    engine = session.get_bind().engine

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _bucket(session, operator_id: int) -> ScoreBucket:
    session.expire_all()
    return session.scalar(select(ScoreBucket).where(ScoreBucket.operator_id == operator_id))


def test_the_rollup_kept_on_each_write_equals_a_rebuild_from_raw_rows(session, month):
    kept = _snapshot(session)
    assert kept
    assert verify(session, date(2026, 8, 1), date(2026, 10, 31), MOSCOW) == []
    rebuild(session, date(2026, 8, 1), date(2026, 10, 31), MOSCOW)
    assert _snapshot(session) == kept


def test_a_keypress_writes_the_answer_and_no_rollup_row(app, session, seeder):
    operator = seeder.operator("op-keys", "North")
    for hour in range(9, 17):  # a busy day: the keypress must not cost more for it
        seeder.survey(operator, {"overall": 4}, at("2026-09-05", hour))
    survey = seeder.survey(operator, {}, at("2026-09-05", 18), status="active")
    session.commit()
    settings = app.config["SETTINGS"]
    with statements(session) as seen:
        record_answer(session, survey, RecordedAnswer("overall", 5), settings, at("2026-09-05", 18))
        survey.state = {"position": 1}
        session.commit()
    assert any("INSERT INTO answers" in s for s in seen)
    assert not [
        s for s in seen if "score_bucket" in s or "score_month" in s or "FROM interactions" in s
    ]
    assert _bucket(session, operator.id).responses == 8


def test_a_survey_counts_when_it_ends_with_its_frozen_score(app, session, seeder):
    operator = seeder.operator("op-live", "North")
    survey = seeder.survey(operator, {}, at("2026-09-05"), status="active")
    session.commit()
    settings = app.config["SETTINGS"]
    assert (_bucket(session, operator.id).sent, _bucket(session, operator.id).responses) == (1, 0)

    record_answer(session, survey, RecordedAnswer("overall", 5), settings, at("2026-09-05", 13))
    record_answer(session, survey, RecordedAnswer("speed", None), settings, at("2026-09-05", 13))
    record_answer(session, survey, RecordedAnswer("cost", 2), settings, at("2026-09-05", 13))
    session.commit()
    assert _bucket(session, operator.id).responses == 0  # still running: nothing frozen yet

    with statements(session) as seen:
        survey_state.finish(survey, at("2026-09-05", 14), completed=False)
        session.commit()
    assert survey.status is SurveyStatus.PARTIAL
    assert (survey.score_overall, survey.score_csi, survey.score_csi_operator) == (5, 25.0, None)
    assert survey.score_spec["parameters"][0]["key"] == "cost"
    row = _bucket(session, operator.id)
    assert (row.responses, row.overall_5, row.started, row.completed) == (1, 1, 1, 0)
    assert (row.csi_n, row.csi_operator_n) == (1, 0)
    parameters = session.execute(
        select(ScoreBucketParameter.key, ScoreBucketParameter.total, ScoreBucketParameter.n)
    ).all()
    assert parameters == [("cost", 2.0, 1)]
    # One contact's difference, whatever the day's volume: a bounded number of statements.
    assert len([s for s in seen if "score_bucket" in s]) <= 2


def test_a_late_answer_is_scored_with_the_frozen_weights(app, session, seeder):
    operator = seeder.operator("op-late")
    survey = seeder.survey(operator, {"overall": 4, "cost": 5}, at("2026-09-05"))
    session.commit()
    frozen_weights = survey.score_spec
    record_answer(
        session, survey, RecordedAnswer("speed", 1), app.config["SETTINGS"], at("2026-09-05", 15)
    )
    session.commit()
    assert survey.score_spec == frozen_weights
    assert survey.score_csi == 50.0  # (100 + 0) / 2
    assert verify(session, date(2026, 9, 5), date(2026, 9, 5), MOSCOW) == []


def test_an_edited_or_deleted_interaction_leaves_its_old_bucket(session, seeder):
    first, second = seeder.operator("op-m1"), seeder.operator("op-m2")
    survey = seeder.survey(first, {"overall": 4}, at("2026-09-05"), disposition="completed")
    session.commit()
    survey.interaction.operator = second
    session.commit()
    rows = session.execute(select(ScoreBucket.operator_id, ScoreBucket.responses)).all()
    assert rows == [(second.id, 1)]
    assert session.scalars(select(ScoreBucketDisposition.operator_id)).all() == [second.id]

    survey.interaction.ended_at = at("2026-09-07", 22)  # 01:00 on the 8th in Moscow
    session.commit()
    assert session.scalars(select(ScoreBucket.day)).all() == [date(2026, 9, 8)]

    interaction = survey.interaction
    session.delete(survey)
    session.delete(interaction)
    session.commit()
    assert session.scalars(select(ScoreBucket.id)).all() == []
    assert session.scalars(select(ScoreBucketDisposition.id)).all() == []


def test_excluding_and_reinstating_move_the_rating_in_and_out(session, seeder):
    operator = seeder.operator("op-x")
    survey = seeder.survey(operator, {"overall": 1}, at("2026-09-05"))
    session.commit()
    survey.excluded_at, survey.exclusion_reason = at("2026-09-06"), "appeal"
    session.commit()
    row = _bucket(session, operator.id)
    assert (row.responses, row.overall_1, row.excluded, row.sent) == (0, 0, 1, 0)
    session.get(SurveySession, survey.id).excluded_at = None
    session.commit()
    row = _bucket(session, operator.id)
    assert (row.responses, row.overall_1, row.excluded, row.sent) == (1, 1, 0, 1)


@pytest.mark.usefixtures("live_app")
def test_concurrent_surveys_ending_in_one_bucket_are_all_counted(live_app):
    """Eight surveys of one operator's day end at once, each in its own transaction."""
    database = live_app.extensions["database"]
    with live_app.app_context():
        setup = database.session_factory()
        seeder = Seeder(setup)
        operator = seeder.operator("op-race")
        ids = [
            seeder.survey(operator, {"overall": 5}, at("2026-09-05", h), status="active").id
            for h in range(8, 16)
        ]
        setup.commit()
        setup.close()

    barrier = threading.Barrier(len(ids))
    failures: list[BaseException] = []

    def finish(survey_id: int) -> None:
        session = database.session_factory()
        try:
            survey = session.scalar(
                select(SurveySession).where(SurveySession.id == survey_id).with_for_update()
            )
            barrier.wait(10)
            survey_state.finish(survey, at("2026-09-05", 17), completed=True)
            session.commit()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=finish, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    with live_app.app_context():
        session = database.session()
        row = session.scalar(select(ScoreBucket))
        assert (row.responses, row.overall_5, row.completed, row.sent) == (8, 8, 8, 8)
        assert verify(session, date(2026, 9, 5), date(2026, 9, 5), MOSCOW) == []
