"""Call-back surveys: the outbound call placed for a claimed session, and how each try ends.

The dispatcher claims a due `ivr_callback` session (status sending, lease in claimed_until)
and queues `gateway.voice.tasks.place_survey_call(session_id)`. Placing a call is three steps,
each its own transaction, so that no database lock is held across the network call:

1. `reserve_call`: under a lock shared by every worker, check the concurrent-call cap and the
   attempt budget, and write the SurveyAttempt (outcome empty = in flight).
2. the REST request to Twilio's Calls API (or, with the console provider, a log line).
3. `call_placed` / `call_refused`: the CallSid, or the error and what follows from it.

How a try ends arrives later at /voice/status (`status_callbacks.call_ended`): a human who
answered takes the survey; no-answer, busy, failed or an answering machine re-schedules the
session until IVR_CALLBACK_MAX_ATTEMPTS calls were made, then it is not_reached.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException

from gateway import circuit, provider_errors, survey_state
from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.models import SurveyAttempt, SurveyChannel, SurveyKind, SurveySession, SurveyStatus
from gateway.phone_surveys import SIP_QUEUED, SIP_QUEUED_PREFIX
from gateway.phones import mask_phone
from gateway.telemetry import count_send

logger = logging.getLogger(__name__)

# A placed call holds its slot under the cap (and the session its lease) this long at most:
# ringing (RING_SECONDS), machine detection and a survey of a few minutes. A status callback
# that never comes frees the slot after it, and the dispatcher may then claim the session again.
CALL_WINDOW = timedelta(minutes=30)
RING_SECONDS = 30
# At the concurrent-call cap a session waits this long before it is tried again.
CAP_WAIT = timedelta(minutes=1)
# Transient REST errors: re-try after 1, 2, 4, 8, 16 minutes, then give up.
MAX_TRANSIENT_ERRORS = 5
STATUS_CALLBACK_EVENTS = ["initiated", "ringing", "answered", "completed"]
# Any number works: it only has to be the same in every worker.
_CAP_LOCK_KEY = 7_262_010
NOT_REACHED_OUTCOMES = frozenset({"busy", "no-answer", "failed", "canceled", "machine", "hangup"})


def is_machine(answered_by: str | None) -> bool:
    """Twilio's AnsweredBy for an answering machine or a fax (not human, not unknown)."""
    return bool(answered_by) and (answered_by == "fax" or str(answered_by).startswith("machine"))


@dataclass(frozen=True)
class CallRequest:
    """One reserved try: everything the REST request needs, and the row to settle after."""

    attempt_id: int
    survey_id: int
    to: str
    url: str
    status_callback: str


def survey_call_url(settings: Settings, survey: SurveySession) -> str:
    query = urlencode({"session": survey.id, "flow": survey.flow, "lang": survey.language})
    return f"{settings.public_base_url.rstrip('/')}/voice/survey?{query}"


def _lock_cap(session: Session) -> None:
    """Serialise cap checks across workers and machines until this transaction ends."""
    if not is_sqlite(session):  # SQLite: BEGIN IMMEDIATE already serialises writers
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CAP_LOCK_KEY})


def calls_in_flight(session: Session, now: datetime) -> int:
    """Outbound survey calls placed and not yet ended, across every worker."""
    return (
        session.scalar(
            select(func.count(SurveyAttempt.id))
            .join(SurveySession, SurveySession.id == SurveyAttempt.session_id)
            .where(
                SurveySession.channel == SurveyChannel.IVR,
                SurveySession.kind == SurveyKind.IVR_CALLBACK,
                SurveyAttempt.outcome.is_(None),
                SurveyAttempt.started_at > now - CALL_WINDOW,
            )
        )
        or 0
    )


def reserve_call(
    session: Session, settings: Settings, survey_id: int, now: datetime
) -> CallRequest | None:
    """Reserve a try for a claimed session, or put it back: cap reached, budget spent, no number.

    The caller commits before placing the call, so the reservation counts under the cap.
    """
    _lock_cap(session)
    survey = session.scalar(
        select(SurveySession)
        .where(SurveySession.id == survey_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if survey is None:
        logger.warning("survey %s to call does not exist", survey_id)
        return None
    if survey.kind is not SurveyKind.IVR_CALLBACK or survey.status is not SurveyStatus.SENDING:
        # Not claimed for us (or already handled by a duplicate task): leave it alone.
        logger.info(
            "survey %s is %s/%s, not a claimed call-back; not calling",
            survey.id,
            survey.kind,
            survey.status,
        )
        return None
    phone = survey.customer.phone if survey.customer else None
    if not phone:
        reason = "no phone number for the customer"
        survey_state.fail(survey, now, reason)
        logger.warning("survey %s failed: %s", survey.id, reason)
        return None
    if settings.callback_provider == "twilio" and not settings.twilio_from_number:
        reason = "TWILIO_FROM_NUMBER is not set: outbound calls need a caller id"
        survey_state.fail(survey, now, reason)
        logger.warning("survey %s failed: %s", survey.id, reason)
        return None
    if survey.attempts >= settings.ivr_callback_max_attempts:
        survey_state.not_reached(survey, now)
        return None
    if calls_in_flight(session, now) >= settings.ivr_max_concurrent_calls:
        # Queued, never dropped: back to scheduled for the next sweep.
        survey_state.reschedule(survey, now + CAP_WAIT)
        logger.info(
            "survey %s waits: %s concurrent survey calls",
            survey.id,
            settings.ivr_max_concurrent_calls,
        )
        return None
    number = (
        session.scalar(
            select(func.max(SurveyAttempt.number)).where(SurveyAttempt.session_id == survey.id)
        )
        or 0
    ) + 1
    attempt = SurveyAttempt(session_id=survey.id, number=number, started_at=now)
    session.add(attempt)
    survey.attempts += 1
    survey.last_sent_at = now
    survey.claimed_until = now + CALL_WINDOW  # the lease covers ringing and the survey
    session.flush()
    return CallRequest(
        attempt_id=attempt.id,
        survey_id=survey.id,
        to=phone,
        url=survey_call_url(settings, survey),
        status_callback=f"{settings.public_base_url.rstrip('/')}/voice/status",
    )


def call_placed(
    session: Session,
    request: CallRequest,
    call_sid: str,
    now: datetime,
    *,
    delivery_status: str = "queued",
) -> None:
    """Twilio accepted the call: its CallSid keys the survey from now on."""
    attempt = session.get(SurveyAttempt, request.attempt_id)
    survey = session.get(SurveySession, request.survey_id)
    if attempt is None or survey is None:
        raise LookupError(f"survey {request.survey_id} or its attempt {request.attempt_id} is gone")
    attempt.provider_id = call_sid
    survey.provider_id = call_sid
    survey.delivery_status = delivery_status


@dataclass(frozen=True)
class PlaceError:
    transient: bool
    code: str | None
    detail: str
    account: bool = False  # refused for the whole account: pauses the provider


def classify(exc: Exception) -> PlaceError:
    """Transient (rate limit, Twilio or network trouble), the account's (401, 20003, a
    suspended account: gateway.provider_errors), or permanent (Twilio said no)."""
    if isinstance(exc, TwilioRestException):
        kind = provider_errors.classify(exc.status, exc.code)
        code = str(exc.code) if exc.code is not None else str(exc.status)
        detail = f"Twilio {exc.status} {code}: {exc.msg}"[:500]
        account = kind is provider_errors.FailureKind.ACCOUNT
        return PlaceError(
            kind is provider_errors.FailureKind.TRANSIENT or account, code, detail, account
        )
    # A read timeout may hide a call Twilio did create; the survey URL then hangs up on it,
    # because the session's CallSid is the next try's.
    return PlaceError(True, None, f"{type(exc).__name__}: {exc}"[:500])


def _error_class(error: PlaceError) -> str:
    if error.account:
        return provider_errors.FailureKind.ACCOUNT.value
    kind = provider_errors.FailureKind.TRANSIENT if error.transient else None
    return (kind or provider_errors.FailureKind.PERMANENT).value


def call_refused(
    session: Session, settings: Settings, request: CallRequest, error: PlaceError, now: datetime
) -> None:
    """The REST request failed: re-try later with backoff if transient, else fail the session."""
    attempt = session.get(SurveyAttempt, request.attempt_id)
    survey = session.scalar(
        select(SurveySession).where(SurveySession.id == request.survey_id).with_for_update()
    )
    if attempt is None or survey is None:
        raise LookupError(f"survey {request.survey_id} or its attempt {request.attempt_id} is gone")
    attempt.outcome = "error"
    attempt.error_code = error.code
    attempt.detail = error.detail
    attempt.finished_at = now
    survey.attempts = max(survey.attempts - 1, 0)  # no call was made: the budget is untouched
    if error.account:
        # Nobody's number is at fault: the provider pauses, the survey waits for its probe.
        attempt.outcome = "refused"
        paused = circuit.trip(
            session,
            settings.provider,
            error.detail,
            error.code,
            now,
            settings.provider_probe_seconds,
        )
        survey_state.reschedule(survey, paused.next_probe_at or now)
        return
    if not error.transient:
        reason = error.detail
        survey_state.fail(survey, now, reason)
        logger.warning("survey %s failed: %s", survey.id, reason)
        return
    errors = (
        session.scalar(
            select(func.count(SurveyAttempt.id)).where(
                SurveyAttempt.session_id == survey.id, SurveyAttempt.outcome == "error"
            )
        )
        or 0
    )
    if errors >= MAX_TRANSIENT_ERRORS:
        reason = f"Twilio unreachable after {errors} tries: {error.detail}"
        survey_state.fail(survey, now, reason)
        logger.warning("survey %s failed: %s", survey.id, reason)
        return
    again_at = now + timedelta(minutes=2 ** (errors - 1))
    survey_state.reschedule(survey, again_at)
    logger.warning(
        "survey %s: call not placed (%s); again at %s",
        survey.id,
        error.detail,
        again_at.isoformat(),
    )


def machine_answered(
    session: Session,
    survey: SurveySession,
    call_sid: str,
    answered_by: str | None,
    now: datetime,
) -> None:
    """An answering machine took the call: hang up; the call's end re-schedules the session."""
    attempt = session.scalar(select(SurveyAttempt).where(SurveyAttempt.provider_id == call_sid))
    if attempt is not None and attempt.outcome is None:
        attempt.outcome = "machine"
        attempt.detail = f"AnsweredBy={answered_by}"


# --- orchestration: the body of the task ---------------------------------------------------


def place_survey_call(
    transaction: Callable[[], AbstractContextManager[Session]],
    settings: Settings,
    survey_id: int,
    clock: Callable[[], datetime],
    client_factory: Callable[[Settings], Any],
) -> str | None:
    """Place the outbound call of a claimed call-back survey; returns the CallSid, if any.

    `transaction()` yields a session committed at the end of its block; `client_factory`
    builds the Twilio REST client (only called with the twilio provider).
    """
    with transaction() as session:
        request = reserve_call(session, settings, survey_id, clock())
    if request is None:
        return None
    if settings.callback_provider == "sip":
        return _queue_for_sip(transaction, request, clock)
    if settings.callback_provider != "twilio":
        return _console_call(transaction, request, clock)
    client = client_factory(settings)
    try:
        call = client.calls.create(
            to=request.to,
            from_=settings.twilio_from_number,
            url=request.url,
            method="POST",
            status_callback=request.status_callback,
            status_callback_method="POST",
            status_callback_event=STATUS_CALLBACK_EVENTS,
            machine_detection="Enable",
            timeout=RING_SECONDS,
        )
    except (TwilioRestException, requests.RequestException) as exc:
        error = classify(exc)
        count_send("call", "error", _error_class(error))
        with transaction() as session:
            call_refused(session, settings, request, error, clock())
        return None
    finally:
        _close(client)
    count_send("call", "sent")
    with transaction() as session:
        call_placed(session, request, call.sid, clock(), delivery_status=call.status or "queued")
        circuit.close(session, settings.provider, clock())
    logger.info(
        "survey %s: calling %s (call %s)", request.survey_id, mask_phone(request.to), call.sid
    )
    return str(call.sid)


def _queue_for_sip(
    transaction: Callable[[], AbstractContextManager[Session]],
    request: CallRequest,
    clock: Callable[[], datetime],
) -> str:
    """SIP_REGISTRAR set: the PBX places the call. The reserved try waits in the database for
    a `survey-gateway sip` agent, which claims it, dials and settles it (gateway/sip)."""
    queued = f"{SIP_QUEUED_PREFIX}{request.attempt_id}"
    with transaction() as session:
        call_placed(session, request, queued, clock(), delivery_status=SIP_QUEUED)
    count_send("call", "sent")
    logger.info(
        "survey %s: call to %s queued for the SIP agent", request.survey_id, mask_phone(request.to)
    )
    return queued


def _console_call(
    transaction: Callable[[], AbstractContextManager[Session]],
    request: CallRequest,
    clock: Callable[[], datetime],
) -> str:
    """No Twilio credentials: nothing rings. The try waits, as a ringing call would, for
    `survey-gateway simulate call --session ID` to answer it (until CALL_WINDOW passes)."""
    call_sid = "CA" + uuid.uuid4().hex
    with transaction() as session:
        call_placed(session, request, call_sid, clock(), delivery_status="console")
    logger.warning(
        "console provider: would call %s for survey %s (call %s); answer it with "
        "`survey-gateway simulate call --session %s`",
        mask_phone(request.to),
        request.survey_id,
        call_sid,
        request.survey_id,
    )
    return call_sid


def _close(client: Any) -> None:
    session = getattr(getattr(client, "http_client", None), "session", None)
    if session is not None:
        session.close()
