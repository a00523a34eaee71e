"""A survey on a phone call, whatever carries the call: Twilio Voice or the SIP channel.

Channel-neutral steps around the flow engine: open the survey of a call, apply what the caller
gave, close it when the call ends. Pure domain code: functions take a Session, Settings, `now`
and plain values; the caller commits. A channel turns its own events (a Twilio webhook, an
RFC 4733 key, a BYE) into these calls and renders the returned `Step` its own way (TwiML for
Twilio in gateway/voice/service.py, which adds receipts for retried webhooks and a key press
written without the ORM; G.711 prompts over RTP for the SIP channel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.flows import Flows, flows_of
from gateway.interactions import (
    DEFAULT_FLOW,
    CustomerInput,
    InteractionInput,
    OperatorInput,
    assign_operator,
    record_interaction,
    upsert_customer,
    upsert_operator,
)
from gateway.models import (
    Interaction,
    InteractionChannel,
    SurveyAttempt,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
)
from gateway.optouts import phone_opted_out
from gateway.phones import InvalidPhoneNumber, mask_phone, normalize_phone
from gateway.surveys import flow_of, flow_state, record_answer, save_flow_state
from ivr_flows import Flow, FlowState
from ivr_flows.engine import Given, Invalid, NoInput, QuestionType, Step, Value, advance, start

logger = logging.getLogger(__name__)

CHANNEL = "ivr"  # the engine's channel of every phone survey


def survey_language(
    customer_language: str | None, requested: str | None, flow: Flow, settings: Settings
) -> str:
    """The customer's language, else the one the call asks for, else DEFAULT_LANGUAGE."""
    for language in (customer_language, requested, settings.default_language):
        if language and language in flow.languages:
            return language
    return flow.languages[0]


def phone_flow(flows: Flows, name: str | None) -> Flow:
    """The named flow when it runs on the phone, else the default one (said in the log)."""
    flow = flows.get(name or DEFAULT_FLOW)
    if flow is None or CHANNEL not in flow.channels:
        logger.warning("flow %r is not an IVR flow; using %s", name, DEFAULT_FLOW)
        flow = flows[DEFAULT_FLOW]
    return flow


def customer_phone(raw: str | None, settings: Settings, call_ref: str) -> str | None:
    """The customer's number in E.164 from the one the call carries, or None for a withheld or
    non-phone number."""
    if not raw:
        return None
    try:
        return normalize_phone(raw, settings.default_region)
    except InvalidPhoneNumber:
        # Withheld or non-phone callers (anonymous, client:..., sip:...) are surveyed anonymously.
        logger.info("call %s: no usable customer number %s", call_ref, mask_phone(raw))
        return None


def complete_interaction(
    session: Session,
    settings: Settings,
    interaction: Interaction,
    operator: str | None,
    phone: str | None,
) -> None:
    """Complete an interaction another system posted; never overwrite what it said."""
    if interaction.operator_id is None and operator:
        assign_operator(interaction, upsert_operator(session, OperatorInput(operator)))
    if interaction.customer_id is None and phone:
        interaction.customer = upsert_customer(session, CustomerInput(phone=phone), settings)


def claim_survey_for_call(
    session: Session,
    settings: Settings,
    now: datetime,
    provider_id: str,
    interaction: Interaction,
    flow: Flow,
    lang: str | None,
) -> tuple[SurveySession, bool] | None:
    """This call's survey session (one per interaction) and whether this transaction created
    it, or None if the interaction's survey is already taken by another call or finished."""
    customer = interaction.customer
    language = survey_language(customer.language if customer else None, lang, flow, settings)
    existing = interaction.survey
    if existing is None:
        try:
            with session.begin_nested():
                existing = SurveySession(
                    interaction=interaction,
                    customer=interaction.customer,
                    channel=SurveyChannel.IVR,
                    kind=SurveyKind.POST_CALL,
                    flow=flow.key,
                    language=language,
                    provider_id=provider_id,
                    attempts=0,
                )
                survey_state.begin(existing, now)
                session.add(existing)
            return existing, True
        except IntegrityError:
            # Another worker created it for a copy of this request: use that one.
            session.expire(interaction, ["survey"])
            existing = interaction.survey
            if existing is None:
                raise
    if existing.provider_id == provider_id:
        return existing, False
    if existing.status is SurveyStatus.SCHEDULED:
        # The customer is on the line now: a later SMS or call-back would ask again.
        existing.channel = SurveyChannel.IVR
        existing.kind = SurveyKind.POST_CALL
        existing.flow = flow.key
        existing.language = language
        existing.provider_id = provider_id
        existing.due_at = None
        survey_state.begin(existing, now)
        return existing, False
    return None


def begin(survey: SurveySession, now: datetime) -> Step:
    """Greeting and first question; the survey is active from here on."""
    flow = flow_of(survey)
    step = start(flow, CHANNEL)
    survey_state.begin(survey, now)
    save_flow_state(survey, step.state)
    if step.finished:
        survey_state.finish(survey, now, completed=True)
    return step


def apply_given(
    session: Session, settings: Settings, now: datetime, survey: SurveySession, given: Given
) -> Step:
    """Apply the caller's input to the current question of an active survey (row locked by
    the caller); the answer, the new position and a finished survey are committed together,
    so a hang-up or a crash right after keeps them."""
    flow = flow_of(survey)
    step = advance(flow, CHANNEL, flow_state(survey), given)
    if step.recorded is not None:
        record_answer(session, survey, step.recorded, settings, now)
    save_flow_state(survey, step.state)
    if step.finished:
        session.flush()
        survey_state.finish(survey, now, completed=True)
    return step


def keys_given(question_type: QuestionType, digits: str | None) -> Given:
    """The engine's view of the keys pressed in answer to a question."""
    if question_type is QuestionType.COMMENT:
        return NoInput()
    return digits_given(digits)


def digits_given(digits: str | None) -> Given:
    """The engine's view of keys pressed: a number of one or two digits, else invalid input."""
    digits = (digits or "").strip()
    if not digits:
        return NoInput()
    if digits.isascii() and digits.isdigit() and len(digits) <= 2:  # not '²' or '٣'
        return Value(int(digits), digits)
    return Invalid(digits[:20])


def flow_finished(flow: Flow, state: FlowState) -> bool:
    """Every question passed, or only the optional voice comment left: hanging up at the
    comment prompt is how a caller says they have nothing to add."""
    remaining = flow.questions_for(CHANNEL)[state.index :]
    return all(q.type is QuestionType.COMMENT for q in remaining)


def close_call_survey(survey: SurveySession, now: datetime) -> None:
    """The call is over: the survey closes as completed, partial or expired by its answers."""
    survey_state.finish(survey, now, completed=flow_finished(flow_of(survey), flow_state(survey)))


# --- a call handed over by a PBX ------------------------------------------------------------


@dataclass(frozen=True)
class HandedOverCall:
    """A caller transferred to the survey after the operator hung up, as the PBX names it."""

    provider_id: str  # unique per call leg, e.g. "sip:<Call-ID>"
    external_id: str  # the hotline call's id in the PBX: the interaction's external id
    operator: str | None = None
    caller: str | None = None  # the customer's number as the PBX gave it
    flow: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class OpenedSurvey:
    survey_id: int
    flow: Flow
    language: str
    step: Step


def open_handed_over_survey(
    session: Session, settings: Settings, now: datetime, call: HandedOverCall
) -> OpenedSurvey | None:
    """Record the hotline call and start its survey; None when there is none to run (the
    caller opted out, or the call's survey is taken or finished)."""
    phone = customer_phone(call.caller, settings, call.provider_id)
    interaction, _created = record_interaction(
        session,
        InteractionInput(
            external_id=call.external_id,
            channel=InteractionChannel.CALL,
            ended_at=now,
            operator=OperatorInput(call.operator) if call.operator else None,
            customer=CustomerInput(phone=phone) if phone else None,
            survey="none",
        ),
        settings,
        now,
    )
    complete_interaction(session, settings, interaction, call.operator, phone)
    if phone and phone_opted_out(session, phone):
        logger.info("call %s: %s opted out; no survey", call.provider_id, mask_phone(phone))
        return None
    flow = phone_flow(flows_of(session), call.flow)
    found = claim_survey_for_call(
        session, settings, now, call.provider_id, interaction, flow, call.lang
    )
    if found is None:
        logger.info("call %s: interaction %s already surveyed", call.provider_id, interaction.id)
        return None
    survey, _created = found
    step = begin(survey, now)
    session.flush()
    return OpenedSurvey(survey.id, flow_of(survey), survey.language, step)


def locked_survey(session: Session, survey_id: int) -> SurveySession | None:
    """The survey row, locked until commit: two workers never interleave steps of one call.

    SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers.
    """
    return session.scalar(
        select(SurveySession)
        .where(SurveySession.id == survey_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


# --- a call-back survey's try, whoever placed the call --------------------------------------

# delivery_status of a call-back try waiting for a SIP agent to dial it (SIP_REGISTRAR set):
# the send task reserved the try; an agent claims it (SELECT ... SKIP LOCKED) and dials.
SIP_QUEUED = "sip-queued"
SIP_QUEUED_PREFIX = "sip-queued:"  # the try's provider id until an agent claims it


def settle_callback_try(
    session: Session,
    settings: Settings,
    now: datetime,
    survey: SurveySession,
    attempt: SurveyAttempt,
    outcome: str,
    error_code: str | None = None,
) -> None:
    """A call-back try is over (rows locked by the caller): an answered call closes the survey
    by its answers; busy, no answer, a machine or a failure calls again after
    IVR_CALLBACK_RETRY_MINUTES until IVR_CALLBACK_MAX_ATTEMPTS calls were made."""
    attempt.outcome = outcome
    attempt.finished_at = now
    attempt.error_code = error_code
    if outcome == "answered":
        close_call_survey(survey, now)
        return
    if survey.status.is_final:
        return
    if survey.attempts >= settings.ivr_callback_max_attempts:
        survey_state.not_reached(survey, now)
        return
    again_at = now + timedelta(minutes=settings.ivr_callback_retry_minutes)
    survey_state.reschedule(survey, again_at)
    logger.info(
        "survey %s: call %s ended %s; again at %s",
        survey.id,
        attempt.number,
        outcome,
        again_at.isoformat(),
    )
