"""Twilio's status callbacks of voice calls (/voice/status): the end of a post-call survey's
call, the end of each call-back try, and the sweep step that closes calls whose callback
never came."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.models import SurveyAttempt, SurveyChannel, SurveyKind, SurveySession, SurveyStatus
from gateway.phone_surveys import close_call_survey, locked_survey, settle_callback_try
from gateway.voice import callback_surveys
from gateway.voice.service import CallInput

logger = logging.getLogger(__name__)

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_surveys = cast(Table, SurveySession.__table__)
# The survey of a call (the status callback), read without a lock: a survey that ended (with
# its last step, as most do) never changes again, so most callbacks write nothing, and a
# transaction that takes no row lock commits without writing or flushing the WAL. The one
# that has something to do locks the survey and reads it again (`locked_survey`).
_CALL_SURVEY = (
    select(_surveys.c.id, _surveys.c.kind, _surveys.c.status)
    .where(_surveys.c.provider_id == bindparam("call_sid"))
    .limit(1)
)


@dataclass(frozen=True)
class StatusInput:
    call: CallInput
    error_code: str | None = None


def call_status(session: Session, settings: Settings, now: datetime, status: StatusInput) -> None:
    """Twilio's status callback: close the survey of a finished call; settle a call-back try."""
    call = status.call
    found = session.connection().execute(_CALL_SURVEY, {"call_sid": call.call_sid}).first()
    if found is None:
        # A call no survey knows, e.g. a hotline call never handed over to the survey.
        logger.debug("status %s of call %s: no survey", call.call_status, call.call_sid)
        return
    if found.kind is not SurveyKind.IVR_CALLBACK and (
        found.status.is_final or call.call_status not in FINAL_CALL_STATUSES
    ):
        return  # the survey ended with its last step, or the call goes on: nothing to do
    survey_id = found.id
    survey = locked_survey(session, survey_id)  # a concurrent step may have ended it meanwhile
    if survey is None:
        raise LookupError(f"survey {survey_id} vanished while locking it")
    if survey.kind is SurveyKind.IVR_CALLBACK:
        call_ended(
            session,
            settings,
            now,
            survey,
            call.call_sid,
            call.call_status,
            call.answered_by,
            status.error_code,
        )
        return
    if call.call_status not in FINAL_CALL_STATUSES:
        return
    close_call_survey(survey, now)


def close_silent_calls(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Close IVR surveys whose call ended without a status callback reaching us.

    Twilio's callback can be lost (a deploy, a network fault); without this the survey would
    stay active for ever and a call-back would hold a slot of the concurrent-call cap.
    """
    cutoff = now - timedelta(minutes=settings.ivr_session_timeout_minutes)
    silent = session.scalars(
        select(SurveySession)
        .where(
            SurveySession.channel == SurveyChannel.IVR,
            SurveySession.status == SurveyStatus.ACTIVE,
            SurveySession.started_at <= cutoff,
        )
        .order_by(SurveySession.started_at)
        .limit(settings.dispatch_batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    for survey in silent:
        close_call_survey(survey, now)
        logger.info(
            "survey %s: no status callback for its call; closed as %s",
            survey.id,
            survey.status.value,
        )
    return [survey.id for survey in silent]


def call_ended(
    session: Session,
    settings: Settings,
    now: datetime,
    survey: SurveySession,
    call_sid: str,
    call_status: str | None,
    answered_by: str | None,
    error_code: str | None,
) -> None:
    """A status callback of a call-back try: settle the try once the call is over."""
    survey.delivery_status = (call_status or "")[:20] or survey.delivery_status
    if call_status not in FINAL_CALL_STATUSES:
        return
    attempt = session.scalar(select(SurveyAttempt).where(SurveyAttempt.provider_id == call_sid))
    if attempt is None or attempt.finished_at is not None:
        return  # settled already: Twilio retried the callback
    if attempt.outcome == "machine" or callback_surveys.is_machine(answered_by):
        outcome = "machine"
    elif call_status != "completed":
        outcome = str(call_status)
    elif survey.status is SurveyStatus.SENDING:
        outcome = "hangup"  # answered, but gone before the survey began
    else:
        outcome = "answered"
    if answered_by and not attempt.detail:
        attempt.detail = f"AnsweredBy={answered_by}"
    settle_callback_try(session, settings, now, survey, attempt, outcome, error_code)
