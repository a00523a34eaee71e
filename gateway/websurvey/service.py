"""The web survey behind `/r/<token>`: what the page shows, and the answers it posts.

The page runs the survey's flow through the pure engine on the `web` channel, one question
at a time; only the flow position is stored, in the survey's row. Reading a page never
changes anything (link scanners and previews fetch pages too); every answer is a POST.
A POST for a question that is no longer the current one (a double tap, the back button, a
second tab) changes nothing and shows the current page: no answer is counted twice.

Completed surveys are locked (WEB_SURVEY_LOCK_COMPLETED): the page thanks the customer
and takes one optional written comment, but no score changes. With the lock off, the customer
may go through the questions again until the link expires, each new answer replacing the old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.models import Answer, AuditEvent, SurveyChannel, SurveySession, SurveyStatus
from gateway.optouts import opt_out_phone
from gateway.surveys import flow_of, flow_state, record_answer, save_flow_state
from ivr_flows import Flow, FlowState, Question, engine
from ivr_flows.engine import NoInput, RecordedAnswer, Value

CHANNEL = "web"
COMMENT_KEY = "comment"
COMMENT_MAX = 500
WEB_CHANNELS = (SurveyChannel.WEB, SurveyChannel.EMAIL)
# An email survey whose invitation has not gone out yet may still be answered by its link
# (the API shows it); the invitation is then not sent.
_OPEN = frozenset({SurveyStatus.ACTIVE, SurveyStatus.SCHEDULED})


class PageKind(StrEnum):
    QUESTION = "question"
    THANKS = "thanks"  # completed (locked, or nothing left to ask)
    CLOSED = "closed"  # expired, ended early, or never sent
    UNKNOWN = "unknown"  # no such link


@dataclass(frozen=True)
class Page:
    kind: PageKind
    survey: SurveySession | None = None
    question: Question | None = None
    number: int = 0  # 1-based position of the question
    total: int = 0
    has_comment: bool = False
    may_change: bool = False  # completed, unlocked: may answer again


class BadAnswer(ValueError):
    """A posted value the current question does not take."""


def find_survey(session: Session, token: str, *, lock: bool = False) -> SurveySession | None:
    """The web or email survey of a link token."""
    stmt = select(SurveySession).where(
        SurveySession.link_token == token, SurveySession.channel.in_(WEB_CHANNELS)
    )
    if lock and not is_sqlite(session):
        stmt = stmt.with_for_update(of=SurveySession)
    return session.scalar(stmt)


def _questions(flow: Flow) -> tuple[Question, ...]:
    return flow.questions_for(CHANNEL)


def _expired(survey: SurveySession, now: datetime) -> bool:
    return survey.expires_at is not None and survey.expires_at <= now


def _has_comment(session: Session, survey: SurveySession) -> bool:
    return (
        session.scalar(
            select(Answer.id).where(
                Answer.session_id == survey.id, Answer.question_key == COMMENT_KEY
            )
        )
        is not None
    )


def page_for(
    session: Session, survey: SurveySession | None, settings: Settings, now: datetime
) -> Page:
    """What `/r/<token>` shows now."""
    if survey is None:
        return Page(PageKind.UNKNOWN)
    questions = _questions(flow_of(survey))
    state = flow_state(survey)
    if survey.status is SurveyStatus.COMPLETED:
        may_change = not settings.web_survey_lock_completed and not _expired(survey, now)
        if not (may_change and state.index < len(questions)):
            return Page(
                PageKind.THANKS,
                survey,
                total=len(questions),
                has_comment=_has_comment(session, survey),
                may_change=may_change,
            )
    elif survey.status not in _OPEN or _expired(survey, now):
        return Page(PageKind.CLOSED, survey)
    if state.index >= len(questions):
        return Page(PageKind.THANKS, survey, total=len(questions))
    return Page(
        PageKind.QUESTION,
        survey,
        questions[state.index],
        number=state.index + 1,
        total=len(questions),
    )


def first_question(survey: SurveySession) -> Question:
    return _questions(flow_of(survey))[0]


def one_tap_allowed(page: Page, score: int) -> bool:
    """A `/r/<token>/<score>` link answers the first question, while it is the current one."""
    return (
        page.kind is PageKind.QUESTION
        and page.number == 1
        and page.question is not None
        and page.question.accepts(score)
    )


def answer(
    session: Session,
    survey: SurveySession,
    question_key: str,
    value: int | None,
    settings: Settings,
    now: datetime,
) -> bool:
    """Apply a posted answer (None: skipped) to the current question; False when the question
    is not the current one or the survey takes no more answers (nothing changes then).

    Raises BadAnswer for a value the question does not take. The caller commits.
    """
    page = page_for(session, survey, settings, now)
    if page.kind is not PageKind.QUESTION or page.question is None:
        return False
    if page.question.key != question_key:
        return False
    if value is not None and not page.question.accepts(value):
        low, high = page.question.value_range or (0, 0)
        raise BadAnswer(f"{page.question.key} takes {low} to {high}, not {value}")
    flow = flow_of(survey)
    given = NoInput() if value is None else Value(value, str(value))
    step = engine.advance(flow, CHANNEL, flow_state(survey), given)
    if survey.status is SurveyStatus.SCHEDULED:  # an email survey answered before its email
        survey.due_at = None
    survey_state.begin(survey, now)
    if step.recorded is not None:
        _store(session, survey, step.recorded, settings, now)
        session.expire(survey, ["answers"])  # added by key, not through the collection
    save_flow_state(survey, step.state)
    if step.finished:
        survey_state.finish(survey, now, completed=True)
    return True


def _store(
    session: Session,
    survey: SurveySession,
    recorded: RecordedAnswer,
    settings: Settings,
    now: datetime,
) -> None:
    existing = session.scalar(
        select(Answer).where(
            Answer.session_id == survey.id, Answer.question_key == recorded.question_key
        )
    )
    if existing is not None and survey.finished_at is not None:
        # Answering again an unlocked, completed survey: the new answer replaces the old.
        existing.value = recorded.value
        existing.raw_input = recorded.raw_input
        existing.answered_at = now
        return
    record_answer(session, survey, recorded, settings, now)


def answer_again(
    session: Session, survey: SurveySession, settings: Settings, now: datetime
) -> bool:
    """With the lock off, start a completed survey's questions again; False if not allowed."""
    page = page_for(session, survey, settings, now)
    if page.kind is not PageKind.THANKS or not page.may_change:
        return False
    # The survey stays completed (a final status never changes); only the position moves.
    save_flow_state(survey, FlowState())
    return True


def add_comment(
    session: Session, survey: SurveySession, text: str, settings: Settings, now: datetime
) -> bool:
    """The customer's written comment, once, on the thank-you page; False if not taken."""
    text = text.strip()[:COMMENT_MAX]
    if not text or survey.status is not SurveyStatus.COMPLETED:
        return False
    if _has_comment(session, survey):
        return False
    record_answer(session, survey, RecordedAnswer(COMMENT_KEY, None, raw_input=text), settings, now)
    session.expire(survey, ["answers"])
    return True


def comment_of(session: Session, survey: SurveySession) -> str | None:
    return session.scalar(
        select(Answer.raw_input).where(
            Answer.session_id == survey.id, Answer.question_key == COMMENT_KEY
        )
    )


def unsubscribe(session: Session, survey: SurveySession, now: datetime) -> bool:
    """Opt the survey's customer out of every channel (the email's unsubscribe link); False
    when there was nothing to change."""
    customer = survey.customer
    if customer is None:
        return False
    source = "email:unsubscribe"
    changed = bool(customer.phone and opt_out_phone(session, customer.phone, source, now))
    if customer.opted_out_at is None:
        customer.opted_out_at = now
        customer.opt_out_source = "email:unsubscribe"
        session.add(
            AuditEvent(
                at=now,
                actor="email:unsubscribe",
                action="customer.opt_out",
                subject_type="customer",
                subject_id=str(customer.id),
                detail={"source": "email:unsubscribe"},
            )
        )
        changed = True
    return changed


def expire_web_surveys(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Close web and email surveys whose link expired: partial with answers, else expired.

    The caller commits.
    """
    stmt = (
        select(SurveySession)
        .where(
            SurveySession.channel.in_(WEB_CHANNELS),
            SurveySession.status == SurveyStatus.ACTIVE,
            SurveySession.expires_at <= now,
        )
        .order_by(SurveySession.expires_at)
        .limit(settings.dispatch_batch_size)
    )
    if not is_sqlite(session):
        stmt = stmt.with_for_update(skip_locked=True, of=SurveySession)
    closed = []
    for survey in session.scalars(stmt):
        survey_state.expire(survey, now)
        closed.append(survey.id)
    return closed
