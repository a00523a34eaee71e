"""Reconciling SMS surveys whose first message had an unknown outcome.

A read timeout or a connection dropped after the request went out leaves a survey "possibly
sent" (`active`, delivery status `unknown`): Twilio may have accepted the message or not.
Leaving it so forever loses the customer whenever Twilio had not, and sending again blindly
would send twice whenever it had. So, SMS_RECONCILE_AFTER_SECONDS after the attempt (long
enough for any request the provider accepted to show in its message list), the sweep hands
the survey to `sms.tasks.reconcile_survey_sms`, which asks the provider's list of messages to
that number since the attempt's day (Twilio: `GET /Messages.json?To=&DateSent>=`), or, where
the provider knows a message by the id the gateway gave it, for that id (SMSC:
`GET /sys/status.php?id=&phone=`):

* found (same body, created after the attempt began): it was sent; the MessageSid is recorded
  as for any sent message, and the survey goes on as usual;
* a reply came meanwhile: it was delivered; nothing to ask;
* not found: it was never accepted; the attempt is closed as `not_accepted` and the survey is
  due again at once, through the sweep's rules, and goes out once.

Still at most once: a survey is re-sent only when the provider's own list, asked after the
safe delay, says it has no such message. The claim (the lease in `claimed_until`) keeps two
sweeps from asking at once; a failed list request gives it back for the next sweep.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway import survey_state
from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.models import Message, SurveyAttempt, SurveyChannel, SurveySession, SurveyStatus
from gateway.phones import mask_phone
from gateway.surveys import flow_of
from sms.providers import ListedMessage, ProviderError, SmsProvider, first_message_ref
from sms.texts import first_message

logger = logging.getLogger(__name__)

# The provider's clock and ours may differ a little: a message created this much before the
# attempt began still counts as the attempt's.
CLOCK_SLACK = timedelta(minutes=2)


def _claimed(session: Session, survey_id: int, now: datetime) -> SurveySession | None:
    stmt = (
        select(SurveySession)
        .where(SurveySession.id == survey_id)
        .options(selectinload(SurveySession.attempt_log), selectinload(SurveySession.answers))
        .execution_options(populate_existing=True)
    )
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=SurveySession)
    survey = session.scalar(stmt)
    if (
        survey is None
        or survey.channel is not SurveyChannel.SMS
        or survey.status is not SurveyStatus.ACTIVE
        or survey.delivery_status != "unknown"
        or survey.provider_id is not None
        or survey.claimed_until is None
        or survey.claimed_until < now
    ):
        return None
    return survey


def _unknown_attempt(survey: SurveySession) -> SurveyAttempt | None:
    return next((a for a in reversed(survey.attempt_log) if a.outcome == "unknown"), None)


def reconcile_survey(
    session: Session, settings: Settings, provider: SmsProvider, survey_id: int, now: datetime
) -> str:
    """Settle a possibly sent survey by the provider's message list; commits. Returns
    found, replied, resend, later (the list failed) or skipped."""
    survey = _claimed(session, survey_id, now)
    attempt = _unknown_attempt(survey) if survey is not None else None
    if survey is None or attempt is None or not survey.customer or not survey.customer.phone:
        session.commit()
        return "skipped"
    phone = survey.customer.phone
    if survey.answers or _replied(session, survey):
        attempt.outcome, attempt.detail = "sent", "the customer replied"
        survey.delivery_status, survey.claimed_until = "delivered", None
        session.commit()
        return "replied"
    body = first_message(flow_of(survey), survey.language)
    since = attempt.started_at - CLOCK_SLACK
    attempt_id = attempt.id
    session.commit()  # no row held during the provider call

    try:
        listed = provider.sent_messages(phone, since, client_id=first_message_ref(attempt_id))
    except ProviderError as error:
        survey = _claimed(session, survey_id, now)
        if survey is not None:
            survey.claimed_until = None  # the next sweep asks again
        session.commit()
        logger.warning("survey %s: message list unavailable (%s)", survey_id, error.reason)
        return "later"
    match = next(
        (
            m
            for m in listed
            if m.same_request
            or (m.body == body and (m.created_at is None or m.created_at >= since))
        ),
        None,
    )

    survey = _claimed(session, survey_id, now)
    attempt = _unknown_attempt(survey) if survey is not None else None
    if survey is None or attempt is None:
        session.commit()
        return "skipped"
    if match is not None:
        _found(session, survey, attempt, match, phone, body)
        session.commit()
        logger.info("survey %s: possibly sent message found: %s", survey.id, match.sid)
        return "found"
    attempt.outcome = "not_accepted"
    attempt.detail = (attempt.detail or "") + "; not in the provider's message list"
    survey_state.send_again(survey, now)
    session.commit()
    logger.warning(
        "survey %s: the provider never accepted the message to %s; due again",
        survey.id,
        mask_phone(phone),
    )
    return "resend"


def _replied(session: Session, survey: SurveySession) -> bool:
    return (
        session.scalar(
            select(Message.id)
            .where(Message.session_id == survey.id, Message.direction == "inbound")
            .limit(1)
        )
        is not None
    )


def _found(
    session: Session,
    survey: SurveySession,
    attempt: SurveyAttempt,
    match: ListedMessage,
    phone: str,
    body: str,
) -> None:
    attempt.outcome, attempt.provider_id = "sent", match.sid
    attempt.detail = (attempt.detail or "") + "; found in the provider's message list"
    survey.provider_id = match.sid
    survey.delivery_status = match.status
    survey.claimed_until = None
    if session.scalar(select(Message.id).where(Message.provider_sid == match.sid)) is None:
        session.add(
            Message(
                provider_sid=match.sid,
                session_id=survey.id,
                customer_id=survey.customer_id,
                direction="outbound",
                phone=phone,
                body=body,
                status=match.status,
                created_at=attempt.started_at,
            )
        )
