"""The data model's guarantees, on PostgreSQL and on the embedded SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.models import (
    Answer,
    Customer,
    Interaction,
    InteractionChannel,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
)

pytestmark = pytest.mark.both_databases


def make_session(session, external_id="call-1"):
    interaction = Interaction(
        channel=InteractionChannel.CALL,
        external_id=external_id,
        ended_at=datetime(2026, 11, 2, 9, 30, tzinfo=timezone(timedelta(hours=3))),
    )
    survey = SurveySession(
        interaction=interaction,
        channel=SurveyChannel.IVR,
        kind=SurveyKind.POST_CALL,
        flow="post_call",
        language="ru",
    )
    session.add(survey)
    session.flush()
    return survey


def test_times_come_back_aware_utc_whatever_offset_went_in(session):
    survey = make_session(session)
    session.expire_all()
    ended = session.scalar(select(Interaction.ended_at))
    assert ended == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    assert ended.utcoffset() == timedelta(0)
    assert session.get(SurveySession, survey.id).status is SurveyStatus.SCHEDULED


def test_naive_times_are_refused(session):
    session.add(Customer(phone="+79161234567", opted_out_at=datetime(2026, 1, 1)))
    with pytest.raises(Exception, match="naive"):
        session.flush()
    session.rollback()


def test_one_answer_per_question_per_session(session):
    survey = make_session(session)
    session.add(Answer(session_id=survey.id, question_key="overall", value=5))
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(Answer(session_id=survey.id, question_key="overall", value=4))
        session.flush()


def test_answer_values_stay_within_the_scales(session):
    survey = make_session(session)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(Answer(session_id=survey.id, question_key="overall", value=11))
        session.flush()


def test_one_survey_per_interaction(session):
    survey = make_session(session)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(
            SurveySession(
                interaction_id=survey.interaction_id,
                channel=SurveyChannel.SMS,
                kind=SurveyKind.SMS,
                flow="post_call",
                language="ru",
            )
        )
        session.flush()


def test_external_id_is_unique_per_channel_only(session):
    make_session(session, "X-1")
    session.add(
        Interaction(
            channel=InteractionChannel.OFFICE_VISIT, external_id="X-1", ended_at=datetime.now(UTC)
        )
    )
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(
            Interaction(
                channel=InteractionChannel.CALL, external_id="X-1", ended_at=datetime.now(UTC)
            )
        )
        session.flush()
