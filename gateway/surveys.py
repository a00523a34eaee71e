"""Survey sessions and their answers: shared by the IVR, the SMS conversation and the API.

Pure domain code: takes a Session and plain values, imports neither Flask nor Celery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.flows import flows_of_row
from gateway.incidents import open_incident as open_incident  # re-exported for callers
from gateway.models import Answer, SurveySession
from gateway.reports.scoring import freeze_score
from ivr_flows import Flow, FlowState
from ivr_flows.engine import QuestionType, RecordedAnswer

OVERALL = "overall"
_answers = cast(Table, Answer.__table__)
# A second answer to the same question keeps the first (see record_answer).
NEW_ANSWER = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_answers)
    .values(
        session_id=bindparam("survey_id"),
        question_key=bindparam("key"),
        value=bindparam("value"),
        raw_input=bindparam("raw_input"),
        recording_url=bindparam("recording_url"),
        recording_duration=bindparam("recording_duration"),
        answered_at=bindparam("now"),
    )
    .on_conflict_do_nothing(index_elements=["session_id", "question_key"])
    .returning(_answers.c.id)  # no row: the question had its answer already
    for dialect in (postgresql, sqlite)
}


class UnknownFlow(LookupError):
    pass


def flow_of(survey: SurveySession) -> Flow:
    """The survey's flow, as loaded by the app whose session holds the survey."""
    try:
        return flows_of_row(survey)[survey.flow]
    except KeyError:
        raise UnknownFlow(
            f"survey {survey.id} names flow {survey.flow!r}, which is not loaded"
        ) from None


def flow_state(survey: SurveySession) -> FlowState:
    return FlowState.from_json(survey.state)


def save_flow_state(survey: SurveySession, state: FlowState) -> None:
    survey.state = state.to_json()


def record_answer(
    session: Session,
    survey: SurveySession,
    answer: RecordedAnswer,
    settings: Settings,
    now: datetime,
) -> Answer:
    """Store one answer; a second answer to the same question keeps the first.

    The caller holds the survey's row lock (the IVR and SMS webhooks take it before they
    decide anything), so no other writer adds an answer to this survey meanwhile; the unique
    (session, question) constraint still refuses a second row from any path that does not.
    An overall score at or below LOW_SCORE_THRESHOLD opens an incident.
    An answer that comes after the survey ended (a late webhook) is scored with the survey's
    frozen weights.
    """
    existing = _answer_for(session, survey.id, answer.question_key)
    if existing is not None:
        return existing
    row = Answer(
        session_id=survey.id,
        question_key=answer.question_key,
        value=answer.value,
        raw_input=(answer.raw_input or None) and answer.raw_input[:500],
        recording_url=answer.recording_url,
        recording_duration=answer.recording_duration,
        answered_at=now,
    )
    session.add(row)
    if answer.value is not None and opens_incident(answer, settings):
        open_incident(session, survey, answer.value, now, settings)
    if survey.status.is_final and survey.scored_at is not None:
        freeze_score(survey, now)
    return row


def opens_incident(answer: RecordedAnswer, settings: Settings) -> bool:
    """Whether the answer opens an incident: an overall score at or below LOW_SCORE_THRESHOLD."""
    return (
        answer.question_key == OVERALL
        and answer.value is not None
        and answer.value <= settings.low_score_threshold
    )


def plain_answer(flow: Flow, answer: RecordedAnswer, settings: Settings) -> bool:
    """Whether storing `answer` of a running survey is all there is to it: no incident to open
    (a low overall score, see record_answer) and no event to send (an NPS answer, see
    gateway.webhooks.events). Such an answer may be written by `insert_answer`."""
    if answer.value is None:
        return True
    if opens_incident(answer, settings):
        return False
    return not is_nps(flow, answer)


def is_nps(flow: Flow, answer: RecordedAnswer) -> bool:
    """Whether the answer is one to an NPS question (or to a question the flow does not
    know, which may be one): its customer.nps_changed event is built by the ORM's hook."""
    try:
        return flow.question(answer.question_key).type is QuestionType.NPS
    except KeyError:
        return True


def insert_answer(conn: Connection, survey_id: int, answer: RecordedAnswer, now: datetime) -> bool:
    """Store an answer of a running survey in one statement, bypassing the ORM (a plain one,
    `plain_answer`, or one whose incident or event the caller sees to); as in record_answer, a
    second answer to the same question keeps the first. Whether this one was stored."""
    statement = NEW_ANSWER["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    return conn.execute(statement, answer_params(survey_id, answer, now)).first() is not None


def answer_params(survey_id: int, answer: RecordedAnswer, now: datetime) -> dict[str, Any]:
    """The bind parameters of NEW_ANSWER for one answer."""
    return {
        "survey_id": survey_id,
        "key": answer.question_key,
        "value": answer.value,
        "raw_input": (answer.raw_input or None) and answer.raw_input[:500],
        "recording_url": answer.recording_url,
        "recording_duration": answer.recording_duration,
        "now": now,
    }


def _answer_for(session: Session, survey_id: int, key: str) -> Answer | None:
    return session.scalar(
        select(Answer).where(Answer.session_id == survey_id, Answer.question_key == key)
    )


def scores_of(survey: SurveySession | None) -> dict[str, int]:
    """Answered values keyed by question; unanswered questions are absent."""
    if survey is None:
        return {}
    return {a.question_key: a.value for a in survey.answers if a.value is not None}
