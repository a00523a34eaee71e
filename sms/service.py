"""Sending a survey's first SMS, the replies of providers that cannot answer in the webhook,
and recording delivery status callbacks.

`send_first_sms` is at most once (see gateway.dispatch for why): it commits an attempt row
before the provider call and the outcome after it, so it commits several times itself, unlike
most services. What a failure leads to depends on its class (sms.providers):

* transient: the session is re-scheduled in the database (`scheduled`, due after an
  exponential backoff with jitter) rather than retried inside Celery, so the retry passes
  through the sweep again (opt-out, quiet hours checked anew) and no worker sleeps on it. The
  budget is time, not tries: it is given up (`failed`) only when the next try would be later
  than SMS_SURVEY_MAX_LATENESS_HOURS after the contact;
* account: the provider's circuit opens (gateway.circuit) and the survey waits for the
  probe, unharmed;
* permanent: `failed` with the provider's reason (21610 also opts the number out);
* unknown: possibly sent; the provider's message list decides later (sms.reconcile).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from gateway import circuit, survey_state
from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.dispatch import mark_possibly_sent, too_late_at
from gateway.models import (
    Message,
    ProviderCircuit,
    SurveyAttempt,
    SurveySession,
    SurveyStatus,
)
from gateway.optouts import opt_out_phone, phones_opted_out
from gateway.phones import mask_phone
from gateway.provider_errors import UNSUBSCRIBED, FailureKind, classify, describe
from gateway.surveys import flow_of, save_flow_state
from gateway.telemetry import count_send
from ivr_flows import engine
from sms.providers import ProviderError, SmsProvider, first_message_ref, reply_ref
from sms.texts import first_message

logger = logging.getLogger(__name__)

# A send waits at most this long for its rate-limit slot; a later slot puts the survey back
# in the schedule at that time instead of holding a worker.
MAX_SLOT_WAIT_SECONDS = 30.0
STATUS_PATH = "/sms/status"


@dataclass(frozen=True)
class SendOutcome:
    """What `send_first_sms` did: sent, skipped, not_sent, failed, retry, unknown, later."""

    result: str
    detail: str = ""


# The backoff doubles up to this many times (32 x the base: 16 minutes by default), so a
# survey is tried at least that often through a long outage and goes out soon after it.
MAX_DOUBLINGS = 5


def retry_delay(attempt: int, base_seconds: float, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: base * 2^(attempt-1) (at most 2^5), times 0.5-1.5."""
    rng = rng or random.Random()
    doublings = min(max(attempt - 1, 0), MAX_DOUBLINGS)
    return timedelta(seconds=base_seconds * (2**doublings) * rng.uniform(0.5, 1.5))


def _pause(survey: SurveySession, paused: ProviderCircuit | None, now: datetime) -> SendOutcome:
    """Put a claimed survey back in the schedule, untouched, while its provider is paused."""
    survey_state.reschedule(survey, (paused.next_probe_at if paused else None) or now)
    return SendOutcome("paused", "the provider is paused after an account-level refusal")


def _locked_survey(session: Session, survey_id: int) -> SurveySession | None:
    return _locked_surveys(session, [survey_id]).get(survey_id)


def _locked_surveys(session: Session, survey_ids: list[int]) -> dict[int, SurveySession]:
    """The surveys of `survey_ids`, read again under their row locks (taken in id order, one
    order for every worker), with their attempts and customer."""
    stmt = (
        select(SurveySession)
        .where(SurveySession.id.in_(sorted(survey_ids)))
        .order_by(SurveySession.id)
        .options(selectinload(SurveySession.attempt_log), joinedload(SurveySession.customer))
    )
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=SurveySession)
    return {s.id: s for s in session.scalars(stmt.execution_options(populate_existing=True))}


def _may_send(survey: SurveySession | None) -> bool:
    """Only a claimed (`sending`) survey with no attempt in flight may be sent."""
    return (
        survey is not None
        and survey.status is SurveyStatus.SENDING
        and not any(a.outcome is None for a in survey.attempt_log)
    )


SKIPPED = SendOutcome("skipped", "not claimed for sending, or already attempted")


@dataclass
class _Pending:
    """A send whose attempt is committed: the provider is to be called at `slot`."""

    survey_id: int
    attempt_id: int
    phone: str
    body: str
    slot: datetime
    sid: str = ""
    status: str = ""
    error: ProviderError | None = None
    called: bool = False


def send_first_sms(
    session: Session,
    settings: Settings,
    provider: SmsProvider,
    survey_id: int,
    now: datetime,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float] = time.monotonic,
) -> SendOutcome:
    """Send a claimed survey's first SMS at most once; commits (see the module)."""
    return send_first_sms_batch(session, settings, provider, [survey_id], now, sleep, monotonic)[
        survey_id
    ]


def send_first_sms_batch(
    session: Session,
    settings: Settings,
    provider: SmsProvider,
    survey_ids: list[int],
    now: datetime,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[int, SendOutcome]:
    """Send the first SMS of each claimed survey of `survey_ids`, each at most once; commits.

    Why a batch: one send costs a rate-limit reservation, a check and an attempt before the
    provider call and the outcome after it. Done for a batch, that is a few statements and
    three commits for all of it, not eighteen statements and three commits each: dispatch is
    then bounded by the provider and the rate limit, not by the database round trips. Each
    survey is still decided alone (its own outcome), and every attempt is committed before
    its provider call: a worker that dies midway leaves attempts in flight, which are never
    re-sent blindly (gateway.dispatch, sms.reconcile).
    """
    from sms.ratelimit import reserve_slots

    outcomes: dict[int, SendOutcome] = {}
    ids = sorted(set(survey_ids))
    paused = circuit.circuit_of(session, provider.name)
    held = [survey_id for survey_id in ids if not circuit.may_call(paused, survey_id)]
    if held:
        # Queued before the circuit opened: no slot, no attempt, no provider call.
        found = _locked_surveys(session, held)
        for survey_id in held:
            survey = found.get(survey_id)
            ok = survey is not None and _may_send(survey)
            outcomes[survey_id] = _pause(survey, paused, now) if survey and ok else SKIPPED
        session.commit()
        ids = [survey_id for survey_id in ids if survey_id not in outcomes]
        if not ids:
            return outcomes

    # The slots first, in a short transaction of their own: no survey row is held meanwhile.
    # A slot left unused (a duplicate task, an opt-out) is lost: the limit errs on the slow side.
    first, interval = reserve_slots(
        session, provider.sender, settings.sms_rate_per_second, now, len(ids)
    )
    pending = _begin_attempts(session, settings, provider, ids, first, interval, now, outcomes)
    session.commit()  # the attempts, BEFORE any provider call
    if not pending:
        return outcomes

    callback = settings.public_base_url.rstrip("/") + STATUS_PATH
    started = monotonic()  # `now`, on a clock that only moves forward
    for item in pending:
        # Each send waits for its own slot, counting the time the earlier calls took.
        wait = (item.slot - now).total_seconds() - (monotonic() - started)
        if wait > 0:
            sleep(wait)
        item.called = True
        try:
            sent = provider.send(
                item.phone, item.body, callback, client_id=first_message_ref(item.attempt_id)
            )
        except ProviderError as error:
            count_send("sms", "error", error.kind.value)
            item.error = error
            if error.kind is FailureKind.ACCOUNT:
                break  # the account is refused: the rest are not tried (the circuit opens)
            continue
        count_send("sms", "sent")
        item.sid, item.status = sent.sid, sent.status
    _record_outcomes(session, settings, provider.name, pending, paused, now, outcomes)
    session.commit()
    return outcomes


def _begin_attempts(
    session: Session,
    settings: Settings,
    provider: SmsProvider,
    ids: list[int],
    first: datetime,
    interval: timedelta,
    now: datetime,
    outcomes: dict[int, SendOutcome],
) -> list[_Pending]:
    """Under the surveys' locks: decide each (still claimed, not opted out, provider not
    paused, its slot soon enough) and add an attempt for each that goes out."""
    surveys = _locked_surveys(session, ids)
    phones = {s.customer.phone for s in surveys.values() if s.customer and s.customer.phone}
    opted_out = phones_opted_out(session, phones)
    paused = circuit.circuit_of(session, provider.name)
    pending: list[_Pending] = []
    for index, survey_id in enumerate(ids):
        survey = surveys.get(survey_id)
        slot = max(first + interval * index, now)
        if survey is None or not _may_send(survey):
            outcomes[survey_id] = SKIPPED
            continue
        wait = (slot - now).total_seconds()
        if wait > MAX_SLOT_WAIT_SECONDS:
            # A later slot: back in the schedule at that time instead of holding a worker.
            survey_state.reschedule(survey, slot)
            outcomes[survey_id] = SendOutcome("later", f"rate limit: next slot in {wait:.0f}s")
            continue
        phone = survey.customer.phone if survey.customer else None
        if not phone or phone in opted_out:
            # Opted out between the sweep and now.
            reason = "customer opted out" if phone else "no phone number"
            survey_state.exclude(survey, now, reason)
            outcomes[survey_id] = SendOutcome("not_sent", reason)
            continue
        if not circuit.may_call(paused, survey.id):
            outcomes[survey_id] = _pause(survey, paused, now)
            continue
        # The attempt row is committed BEFORE the provider call: if this worker dies during
        # the call, the expired lease shows an attempt in flight and it is never re-sent.
        survey.attempts += 1
        attempt = SurveyAttempt(session_id=survey.id, number=survey.attempts, started_at=slot)
        survey.attempt_log.append(attempt)
        survey.claimed_until = slot + timedelta(seconds=settings.dispatch_lease_seconds)
        body = first_message(flow_of(survey), survey.language)
        pending.append(_Pending(survey.id, 0, phone, body, slot))
    session.flush()
    for item in pending:
        item.attempt_id = surveys[item.survey_id].attempt_log[-1].id
    return pending


def _record_outcomes(
    session: Session,
    settings: Settings,
    provider_name: str,
    pending: list[_Pending],
    paused: ProviderCircuit | None,
    now: datetime,
    outcomes: dict[int, SendOutcome],
) -> None:
    """Under the surveys' locks again: each provider answer recorded on its survey."""
    surveys = _locked_surveys(session, [item.survey_id for item in pending])
    tripped: ProviderCircuit | None = None
    any_sent = False
    for item in pending:
        survey = surveys.get(item.survey_id)
        attempt = (
            next((a for a in survey.attempt_log if a.id == item.attempt_id), None)
            if survey
            else None
        )
        if survey is None or attempt is None:
            raise LookupError(f"survey {item.survey_id} or its attempt vanished while sending it")
        if not item.called:
            # Not tried after the account was refused: as if never attempted, paused.
            survey.attempt_log.remove(attempt)
            session.delete(attempt)
            survey.attempts -= 1
            outcomes[item.survey_id] = _pause(survey, tripped or paused, now)
        elif item.error is not None:
            outcomes[item.survey_id] = _apply_failure(
                session, settings, provider_name, survey, attempt, item.error, item.slot
            )
            if item.error.kind is FailureKind.ACCOUNT:
                tripped = circuit.circuit_of(session, provider_name)
        else:
            any_sent = True
            _apply_sent(session, settings, survey, attempt, item, item.slot)
            outcomes[item.survey_id] = SendOutcome("sent", item.sid)
    if any_sent and circuit.is_open(paused) and tripped is None:
        circuit.close(session, provider_name, now)


def _apply_sent(
    session: Session,
    settings: Settings,
    survey: SurveySession,
    attempt: SurveyAttempt,
    item: _Pending,
    now: datetime,
) -> None:
    attempt.outcome, attempt.provider_id, attempt.finished_at = "sent", item.sid, now
    session.add(
        Message(
            provider_sid=item.sid,
            session_id=survey.id,
            customer_id=survey.customer_id,
            direction="outbound",
            phone=item.phone,
            body=item.body,
            status=item.status,
            created_at=now,
        )
    )
    survey_state.sent(
        survey,
        now,
        now + timedelta(hours=settings.sms_survey_expiry_hours),
        item.status,
        provider_id=item.sid,
    )
    save_flow_state(survey, engine.start(flow_of(survey), "sms").state)
    logger.info("survey %s: first sms %s sent to %s", survey.id, item.sid, mask_phone(item.phone))


def _apply_failure(
    session: Session,
    settings: Settings,
    provider_name: str,
    survey: SurveySession,
    attempt: SurveyAttempt,
    error: ProviderError,
    now: datetime,
) -> SendOutcome:
    """A provider error recorded by its class (see the module); the caller commits."""
    attempt.error_code = str(error.code) if error.code else None
    attempt.detail = error.reason[:1000]
    attempt.finished_at = now
    phone = survey.customer.phone if survey.customer else ""
    if error.kind is FailureKind.UNKNOWN:
        attempt.outcome = "unknown"
        mark_possibly_sent(survey, now, settings)
        logger.warning("survey %s: send outcome unknown (%s); not re-sent", survey.id, error)
        return SendOutcome("unknown", error.reason)
    if error.kind is FailureKind.ACCOUNT:
        attempt.outcome = "refused"
        paused = circuit.trip(
            session,
            provider_name,
            error.reason,
            attempt.error_code,
            now,
            settings.provider_probe_seconds,
        )
        logger.warning("survey %s: provider refused the account (%s); waits", survey.id, error)
        return _pause(survey, paused, now)
    if error.kind is FailureKind.TRANSIENT:
        attempt.outcome = "retry"
        delay = retry_delay(survey.attempts, settings.sms_retry_base_seconds)
        if now + delay > too_late_at(survey, settings):
            survey_state.fail(
                survey, now, f"gave up after {survey.attempts} attempts: {error.reason}"
            )
            return SendOutcome("failed", survey.not_sent_reason or "")
        survey_state.reschedule(survey, now + delay)
        logger.warning(
            "survey %s: transient send failure (%s); retry in %ss",
            survey.id,
            error.reason,
            int(delay.total_seconds()),
        )
        return SendOutcome("retry", error.reason)
    attempt.outcome = "failed"
    survey_state.fail(survey, now, error.reason)
    if error.code == UNSUBSCRIBED and phone:
        opt_out_phone(session, phone, f"twilio:{UNSUBSCRIBED}", now)
    logger.warning("survey %s: not sent to %s: %s", survey.id, mask_phone(phone), error.reason)
    return SendOutcome("failed", error.reason)


# -- delivery status callbacks -------------------------------------------------------------

# A message only moves forward: a late "sent" never overwrites "delivered". Final states share
# a rank, so the first final one reported stays.
STATUS_ORDER: dict[str, int] = {
    "unknown": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}
FAILED_STATUSES = frozenset({"undelivered", "failed"})


def moves_forward(current: str | None, new: str) -> bool:
    """True when `new` is later than `current` in a message's life."""
    if new not in STATUS_ORDER:
        return False
    return current is None or STATUS_ORDER[new] > STATUS_ORDER.get(current, 0)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status. Twilio's is classed by its error code here; a provider with codes
    of its own (sms.smsc) gives the class, the reason and whether the number is on its
    blacklist."""

    message_sid: str
    status: str
    error_code: int | None = None
    failure: FailureKind | None = None
    reason: str | None = None
    blacklisted: bool = False
    provider: str = "twilio"


def record_status(
    session: Session, settings: Settings, update: StatusUpdate, now: datetime
) -> bool:
    """Apply a delivery status callback; False when it changes nothing (unknown message, or
    not later than what is recorded).

    A failed first message fails its unanswered survey with the reason (21610 also opts the
    number out); after a transient delivery error (30001, 30003) the survey is scheduled again,
    and after an account-level one (30002 account suspended) the provider's circuit opens and
    the survey waits for the probe: neither can duplicate anything, it was not delivered.
    """
    stmt = select(Message).where(Message.provider_sid == update.message_sid)
    if not is_sqlite(session):
        stmt = stmt.with_for_update()
    message = session.scalar(stmt)
    if message is None:
        logger.info("status %s for unknown message %s", update.status, update.message_sid)
        return False
    if not moves_forward(message.status, update.status):
        return False
    message.status = update.status
    if update.error_code:
        message.error_code = str(update.error_code)
    survey = _locked_survey(session, message.session_id) if message.session_id else None
    if survey is None or survey.provider_id != message.provider_sid:
        return True
    if moves_forward(survey.delivery_status, update.status):
        survey.delivery_status = update.status
    if update.status in FAILED_STATUSES:
        _first_message_failed(session, settings, survey, message, update, now)
    return True


def _first_message_failed(
    session: Session,
    settings: Settings,
    survey: SurveySession,
    message: Message,
    update: StatusUpdate,
    now: datetime,
) -> None:
    code = update.error_code
    if update.blacklisted or (update.provider == "twilio" and code == UNSUBSCRIBED):
        opt_out_phone(
            session, message.phone, f"{update.provider}:{code}", now, message.provider_sid
        )
    if survey.status is not SurveyStatus.ACTIVE or survey.answers:
        return
    attempt = next((a for a in survey.attempt_log if a.provider_id == message.provider_sid), None)
    if attempt is not None:
        attempt.outcome, attempt.error_code = "undelivered", str(code) if code else None
    if update.failure is not None:
        kind, reason = update.failure, update.reason or "message not delivered"
    else:
        # Twilio: by its error code, as a refused send is classed (gateway.provider_errors):
        # 30002 (the account suspended after the message was queued) pauses the provider and
        # the survey waits for it; 30001, 30003 are tried again; without a code, it failed.
        kind = classify(None, code) if code is not None else FailureKind.PERMANENT
        reason = describe(code, "message not delivered")
    if kind is FailureKind.ACCOUNT:
        # Refused for the whole account after it was accepted (no funds, a sender name or
        # text the operators refuse): the survey waits for the circuit like a refused send.
        paused = circuit.trip(
            session,
            update.provider,
            reason,
            str(code) if code else None,
            now,
            settings.provider_probe_seconds,
        )
        survey_state.send_again(survey, paused.next_probe_at or now)
        return
    if kind is FailureKind.TRANSIENT:
        due = now + retry_delay(survey.attempts, settings.sms_retry_base_seconds)
        if due <= too_late_at(survey, settings):
            survey_state.send_again(survey, due)
            return
        reason = f"gave up after {survey.attempts} attempts: {reason}"
    survey_state.fail(survey, now, reason)


# -- replies sent through the provider's API ------------------------------------------------

PENDING = "pending"
# A reply whose send got no answer (a read timeout): the provider may have it. It is looked up
# by the id the gateway gave it after SMS_RECONCILE_AFTER_SECONDS, never sent again blindly.
POSSIBLY_SENT = "unknown"
# A reply the provider could not take (its errors, the account paused) is tried again by the
# next sweeps this long after the customer's message; later it would answer a stale question.
REPLY_RETRY_WINDOW = timedelta(hours=1)


def send_pending_replies(
    session: Session,
    settings: Settings,
    provider: SmsProvider,
    now: datetime,
    sleep: Callable[[float], None],
    limit: int = 100,
) -> int:
    """Send the replies stored as pending (SMSC answers a webhook with nothing), each at most
    once: a reply is marked `sending` and committed before the provider call, so a worker
    that dies during it leaves it unsent rather than sent twice. Run after each incoming
    message and by every sweep (the beat), so a reply whose task was lost still goes out.

    A transient refusal puts the reply back for the next sweep (for REPLY_RETRY_WINDOW); an
    account refusal opens the provider's circuit and the replies wait for it to close; a lost
    answer leaves the reply possibly sent until `reconcile_replies` asks the provider.
    Returns how many went out."""
    from sms.ratelimit import reserve_slot

    reconcile_replies(session, settings, provider, now)
    paused = circuit.circuit_of(session, provider.name)
    if circuit.is_open(paused) and paused is not None and (paused.next_probe_at or now) > now:
        session.commit()
        return 0  # the account is refused: the sweep's probe (or the next reply) tries later
    ids = list(
        session.scalars(
            select(Message.id)
            .where(Message.direction == "outbound", Message.status == PENDING)
            .order_by(Message.id)
            .limit(limit)
        )
    )
    session.commit()
    sent = 0
    for message_id in ids:
        claimed = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == PENDING)
            .values(status="sending")
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult
            continue  # another worker took it
        message = session.get(Message, message_id, populate_existing=True)
        if message is None:
            continue
        slot = reserve_slot(session, provider.sender, settings.sms_rate_per_second, now)
        wait = (slot - now).total_seconds()
        if wait > 0:
            sleep(wait)
        try:
            result = provider.send(
                message.phone, message.body, None, client_id=reply_ref(message.id)
            )
        except ProviderError as error:
            message = session.get(Message, message_id, populate_existing=True)
            if message is not None:
                message.status = _after_refusal(message, error, now)
                message.error_code = str(error.code) if error.code else None
            if error.kind is FailureKind.ACCOUNT:
                circuit.trip(
                    session,
                    provider.name,
                    error.reason,
                    str(error.code) if error.code else None,
                    now,
                    settings.provider_probe_seconds,
                )
            session.commit()
            count_send("sms", "error", error.kind.value)
            logger.warning(
                "reply %s not sent (%s): %s",
                message_id,
                message.status if message is not None else "-",
                error.reason,
            )
            if error.kind is FailureKind.ACCOUNT:
                break  # the rest wait for the circuit, as surveys do
            continue
        message = session.get(Message, message_id, populate_existing=True)
        if message is not None:
            message.provider_sid, message.status = result.sid, result.status
            message.error_code = None
        circuit.close(session, provider.name, now)
        session.commit()
        count_send("sms", "sent")
        sent += 1
    return sent


def _after_refusal(message: Message, error: ProviderError, now: datetime) -> str:
    """A reply's status after the provider refused it or its answer was lost."""
    if error.kind is FailureKind.UNKNOWN:
        return POSSIBLY_SENT
    if error.kind is FailureKind.ACCOUNT:
        return PENDING  # nobody's number is at fault: it goes once the account is accepted
    created = message.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if error.kind is FailureKind.TRANSIENT and now - created < REPLY_RETRY_WINDOW:
        return PENDING
    return "failed"


def reconcile_replies(
    session: Session, settings: Settings, provider: SmsProvider, now: datetime, limit: int = 20
) -> None:
    """Replies left possibly sent (a lost answer): the provider, asked for the id the gateway
    gave each after SMS_RECONCILE_AFTER_SECONDS, says whether it has it. Found: sent, with its
    status; not found: pending again, sent once more. A failed question asks again later."""
    cutoff = now - timedelta(seconds=settings.sms_reconcile_after_seconds)
    unsure = list(
        session.scalars(
            select(Message)
            .where(
                Message.direction == "outbound",
                Message.status == POSSIBLY_SENT,
                Message.provider_sid.is_(None),
                Message.created_at <= cutoff,
            )
            .order_by(Message.id)
            .limit(limit)
        )
    )
    for message in unsure:
        try:
            listed = provider.sent_messages(
                message.phone, message.created_at, client_id=reply_ref(message.id)
            )
        except ProviderError as error:
            logger.warning("reply %s: could not ask whether it was sent: %s", message.id, error)
            continue
        found = next((m for m in listed if m.same_request), None)
        if found is None:
            message.status = PENDING
            logger.warning("reply %s was never accepted; it is sent once more", message.id)
        else:
            message.provider_sid, message.status = found.sid, found.status
            logger.info("reply %s was accepted after all (%s)", message.id, found.sid)
    session.commit()
