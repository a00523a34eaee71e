"""The SMS conversation: a customer's reply, its keywords, answers and the next question.

The reply goes back in the webhook's TwiML (<Message>), which is simplest and counts as the
gateway's answer; those outbound rows therefore have no MessageSid (Twilio assigns one we are
not told). Inbound messages are deduplicated on MessageSid: the first delivery stores the
inbound row (unique `provider_sid`) and the reply text in a WebhookReceipt, and any retried
delivery of the same MessageSid gets that same reply and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.models import (
    Customer,
    Message,
    SurveyChannel,
    SurveySession,
    SurveyStatus,
    WebhookReceipt,
)
from gateway.optouts import opt_in_phone, opt_out_phone, phone_opted_out
from gateway.phones import InvalidPhoneNumber, mask_phone, normalize_phone
from gateway.surveys import flow_of, flow_state, record_answer, save_flow_state
from ivr_flows import engine
from ivr_flows.engine import Invalid, Value
from sms import texts
from sms.parsing import Keyword, keyword_of, parse_answers

logger = logging.getLogger(__name__)

RECEIPT_STEP = "sms:inbound"


@dataclass(frozen=True)
class InboundSms:
    """An SMS as a provider's inbound webhook reports it. `reply_status` is how the reply is
    stored: "twiml" (Twilio sends it from the webhook's answer) or "pending" (the gateway
    sends it through the provider's API afterwards: sms.service.send_pending_replies)."""

    message_sid: str
    from_number: str
    to_number: str
    body: str
    reply_status: str = "twiml"


def handle_inbound(
    session: Session, settings: Settings, sms: InboundSms, now: datetime
) -> str | None:
    """Apply one inbound SMS and return the reply text (None: no reply).

    The same MessageSid again returns the first reply and changes nothing.
    """
    stored = _stored_reply(session, sms.message_sid)
    if stored is not None:
        return stored or None
    phone = _normalized(sms.from_number, settings)
    try:
        with session.begin_nested():
            inbound = Message(
                provider_sid=sms.message_sid,
                direction="inbound",
                phone=phone,
                body=sms.body[:1600],
                status="received",
                created_at=now,
            )
            session.add(inbound)
            session.flush()
    except IntegrityError:
        # The same message is being (or was) handled by a concurrent delivery.
        stored = _stored_reply(session, sms.message_sid)
        return stored or None

    reply, survey = _respond(session, settings, phone, sms.body, now, sms.message_sid)
    if survey is not None:
        inbound.session_id, inbound.customer_id = survey.id, survey.customer_id
    if reply:
        session.add(
            Message(
                session_id=survey.id if survey else None,
                customer_id=survey.customer_id if survey else None,
                direction="outbound",
                phone=phone,
                body=reply,
                status=sms.reply_status,
                created_at=now,
            )
        )
    session.add(
        WebhookReceipt(provider_id=sms.message_sid, step=RECEIPT_STEP, response_body=reply or "")
    )
    session.flush()
    return reply


def _stored_reply(session: Session, message_sid: str) -> str | None:
    receipt = session.scalar(
        select(WebhookReceipt).where(
            WebhookReceipt.provider_id == message_sid, WebhookReceipt.step == RECEIPT_STEP
        )
    )
    return receipt.response_body if receipt is not None else None


def _normalized(number: str, settings: Settings) -> str:
    try:
        return normalize_phone(number, settings.default_region)
    except InvalidPhoneNumber:
        return number.strip()[:20]


def _respond(
    session: Session,
    settings: Settings,
    phone: str,
    body: str,
    now: datetime,
    message_sid: str | None = None,
) -> tuple[str | None, SurveySession | None]:
    survey = active_survey(session, phone)
    if survey is not None and _silent_too_long(survey, settings, now):
        # The sweep has not closed it yet; it is over all the same.
        survey_state.finish(survey, now, completed=False)
        survey = None
    language = _language(session, phone, survey, settings)

    found = keyword_of(body)
    if found is not None:
        keyword, word = found
        if keyword is Keyword.OPT_OUT:
            reply = _opt_out(session, phone, word, survey, language, now, message_sid)
            return reply, survey
        if keyword is Keyword.OPT_IN or (
            keyword is Keyword.YES and phone_opted_out(session, phone)
        ):
            opt_in_phone(session, phone, f"sms:{word}", now, message_sid)
            logger.info("%s opted in by sms %s", mask_phone(phone), word)
            return texts.text("opted_in", language), survey
        if keyword is Keyword.HELP:
            return texts.text("help", language), survey

    if survey is None:
        latest = latest_survey(session, phone)
        if latest is None:
            # Never surveyed from here: there is no survey to speak of, and no SMS to pay for.
            logger.info("sms from %s: this number has no survey; no reply", mask_phone(phone))
            return None, None
        return texts.text("survey_over", language), latest
    return _answer(session, settings, survey, body, now), survey


def _opt_out(
    session: Session,
    phone: str,
    word: str,
    survey: SurveySession | None,
    language: str,
    now: datetime,
    message_sid: str | None = None,
) -> str | None:
    changed = opt_out_phone(session, phone, f"sms:{word}", now, message_sid)
    if survey is not None:
        survey_state.finish(survey, now, completed=False)
    logger.info("%s opted out by sms %s", mask_phone(phone), word)
    # One confirmation: a number already opted out is not texted again.
    return texts.text("opted_out", language) if changed else None


def _answer(
    session: Session, settings: Settings, survey: SurveySession, body: str, now: datetime
) -> str:
    flow = flow_of(survey)
    questions = flow.questions_for("sms")
    state = flow_state(survey)
    remaining = questions[state.index :]
    ranges = [q.value_range or (0, -1) for q in remaining]
    values = parse_answers(body, ranges)
    raw = body.strip()[:500]

    # Several values in one SMS answer as many questions; only the last question asked (or
    # the thanks) is sent back. The engine reads nothing back on "sms": a text is seen as typed.
    given: list[Value | Invalid] = [Value(value, raw) for value in values] or [Invalid(raw)]
    for answer in given:
        step = engine.advance(flow, "sms", state, answer)
        state = step.state
        if step.recorded is not None:
            record_answer(session, survey, step.recorded, settings, now)
        if step.finished:
            break

    save_flow_state(survey, state)
    if step.finished:
        session.flush()
        session.refresh(survey, attribute_names=["answers"])
        survey_state.finish(survey, now, completed=True)
    survey.last_sent_at = now
    survey.expires_at = now + timedelta(hours=settings.sms_survey_expiry_hours)
    return texts.render(flow, step.say, survey.language)


def _silent_too_long(survey: SurveySession, settings: Settings, now: datetime) -> bool:
    sent = survey.last_sent_at
    return sent is not None and now - sent >= timedelta(hours=settings.sms_survey_expiry_hours)


def _for_phone(phone: str) -> ColumnElement[bool]:
    return SurveySession.customer_id.in_(select(Customer.id).where(Customer.phone == phone))


def active_survey(session: Session, phone: str) -> SurveySession | None:
    """The number's SMS survey waiting for replies (the latest, should there be several)."""
    stmt = (
        select(SurveySession)
        .where(
            _for_phone(phone),
            SurveySession.channel == SurveyChannel.SMS,
            SurveySession.status == SurveyStatus.ACTIVE,
        )
        .order_by(SurveySession.last_sent_at.desc(), SurveySession.id.desc())
        .limit(1)
    )
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=SurveySession)
    return session.scalar(stmt)


def latest_survey(session: Session, phone: str) -> SurveySession | None:
    """The number's most recently started SMS survey, whatever its status."""
    return session.scalar(
        select(SurveySession)
        .where(
            _for_phone(phone),
            SurveySession.channel == SurveyChannel.SMS,
            SurveySession.started_at.is_not(None),
        )
        .order_by(SurveySession.started_at.desc(), SurveySession.id.desc())
        .limit(1)
    )


def _language(
    session: Session, phone: str, survey: SurveySession | None, settings: Settings
) -> str:
    if survey is not None:
        return survey.language
    latest = latest_survey(session, phone)
    if latest is not None:
        return latest.language
    customer = session.scalar(
        select(Customer).where(Customer.phone == phone).order_by(Customer.id).limit(1)
    )
    return (customer.language if customer else None) or settings.default_language
