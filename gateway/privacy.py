"""A customer's personal data: erasure on request, expiry after the retention period, export.

What is personal here: the customer's phone number, name and CRM id; the texts of their SMS
(in and out); what they said in a recorded comment (the recording at Twilio and its URL);
what they typed or keyed as free text; provider error texts that quote their number.

Erasure and expiry keep what is anonymous: the interaction, its operator and team, the
survey's status and every score, so that no operator's figures change. Recordings are
deleted at Twilio by `delete_pending_recordings`, from a queue in the database, so that a
failed DELETE is tried again by the next sweep.

Pure domain code: takes a Session and plain values.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.models import (
    Answer,
    AuditEvent,
    ConsentEvent,
    Customer,
    Incident,
    IncidentAlert,
    Interaction,
    Message,
    RecordingDeletion,
    SurveyAttempt,
    SurveySession,
    VoiceRecording,
)
from gateway.phones import mask_phone
from gateway.webhooks.models import OutboxEvent

logger = logging.getLogger(__name__)

ERASED = "[erased]"
RETENTION_BATCH = 200  # interactions per transaction: short locks on the live tables
_RECORDING_SID = re.compile(r"/Recordings/(RE[0-9a-fA-F]{32})")
# A voice comment the gateway recorded itself (the SIP channel): a row of voice_recordings.
STORED_RECORDING = "recording:"


@dataclass
class ErasureReport:
    customers: list[int] = field(default_factory=list)
    messages: int = 0
    answers: int = 0
    recordings: int = 0

    def summary(self) -> str:
        if not self.customers:
            return "no customer with personal data matches; nothing to erase"
        return (
            f"{len(self.customers)} customer(s) erased: {self.messages} message(s), "
            f"{self.answers} answer text(s) and {self.recordings} recording(s) removed; "
            "scores kept"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "messages": self.messages,
            "answers": self.answers,
            "recordings": self.recordings,
        }


def find_customers(
    session: Session, *, phone: str | None = None, external_id: str | None = None
) -> list[Customer]:
    """Customers with this E.164 number or CRM id (an erased one has neither any more)."""
    conditions = []
    if phone:
        conditions.append(Customer.phone == phone)
    if external_id:
        conditions.append(Customer.external_id == external_id)
    if not conditions:
        raise ValueError("give a phone number or an external id")
    return list(session.scalars(select(Customer).where(or_(*conditions)).order_by(Customer.id)))


def recording_sid(url: str | None) -> str | None:
    """The RE... id in a Twilio recording URL, or None for another URL."""
    found = _RECORDING_SID.search(url or "")
    return found.group(1) if found else None


def stored_recording_id(url: str | None) -> int | None:
    """The voice_recordings id an answer's `recording:<id>` names, or None."""
    if not url or not url.startswith(STORED_RECORDING):
        return None
    number = url[len(STORED_RECORDING) :]
    return int(number) if number.isdigit() else None


def _scrub(text: str | None, phones: Iterable[str]) -> str | None:
    """Free text with every writing of these numbers replaced by a masked one."""
    if not text:
        return text
    wanted = {p for p in phones if p}
    if not wanted:
        return text
    result = text
    for match in phonenumbers.PhoneNumberMatcher(text, "RU"):
        written = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if written in wanted:
            result = result.replace(match.raw_string, mask_phone(written))
    for phone in wanted:  # a bare E.164 or its digits glued to other text
        result = result.replace(phone, mask_phone(phone)).replace(phone[1:], ERASED)
    return result


def _forget_answers(session: Session, survey_ids: list[int], now: datetime) -> tuple[int, int]:
    """Drop free text and recordings of these surveys' answers, queueing the recordings'
    deletion at Twilio; the values (the scores) stay."""
    if not survey_ids:
        return 0, 0
    answers = session.scalars(
        select(Answer).where(
            Answer.session_id.in_(survey_ids),
            or_(Answer.raw_input.is_not(None), Answer.recording_url.is_not(None)),
        )
    ).all()
    recordings = 0
    for answer in answers:
        stored = stored_recording_id(answer.recording_url)
        if stored is not None:  # ours: deleted at once, with the answer's other personal data
            session.execute(delete(VoiceRecording).where(VoiceRecording.id == stored))
            recordings += 1
        sid = recording_sid(answer.recording_url)
        if sid and not session.scalar(
            select(exists().where(RecordingDeletion.recording_sid == sid))
        ):
            session.add(RecordingDeletion(recording_sid=sid, requested_at=now))
            recordings += 1
        answer.raw_input = None
        answer.recording_url = None
    return len(answers), recordings


def _forget_survey_texts(session: Session, survey_ids: list[int], phones: list[str]) -> int:
    """SMS bodies and numbers of these surveys, and provider texts quoting the number."""
    if not survey_ids and not phones:
        return 0
    conditions = []
    if survey_ids:
        conditions.append(Message.session_id.in_(survey_ids))
    if phones:
        conditions.append(Message.phone.in_(phones))
    messages = session.scalars(select(Message).where(or_(*conditions))).all()
    for message in messages:
        message.body = ""
        message.phone = ERASED
    if survey_ids:
        for attempt in session.scalars(
            select(SurveyAttempt).where(SurveyAttempt.session_id.in_(survey_ids))
        ):
            attempt.detail = _scrub(attempt.detail, phones)
        for survey in session.scalars(
            select(SurveySession).where(SurveySession.id.in_(survey_ids))
        ):
            survey.exclusion_reason = _scrub(survey.exclusion_reason, phones)
            survey.not_sent_reason = _scrub(survey.not_sent_reason, phones)
        for incident in session.scalars(
            select(Incident).where(Incident.session_id.in_(survey_ids))
        ):
            incident.resolution = _scrub(incident.resolution, phones)
    return len(messages)


def _forget_outbox(session: Session, customer: Customer) -> None:
    """Events about the customer waiting in (or delivered from) the webhook outbox keep no
    number, name or CRM id: a re-delivery sends them anonymous."""
    personal = {
        v for v in (customer.phone, customer.name, customer.external_id, customer.email) if v
    }
    if not personal:
        return
    conditions = [OutboxEvent.customer_id == customer.id]
    if customer.phone:
        conditions.append(OutboxEvent.body.contains(customer.phone))
    phones = [customer.phone] if customer.phone else []

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return None if value in personal else _scrub(value, phones)
        return value

    for event in session.scalars(select(OutboxEvent).where(or_(*conditions))):
        try:
            event.body = json.dumps(clean(json.loads(event.body)), ensure_ascii=False)
        except ValueError:
            event.body = _scrub(event.body, phones) or ""


def _survey_ids_of_customer(session: Session, customer_id: int) -> list[int]:
    return list(
        session.scalars(
            select(SurveySession.id)
            .join(Interaction, Interaction.id == SurveySession.interaction_id)
            .where(
                or_(
                    SurveySession.customer_id == customer_id, Interaction.customer_id == customer_id
                )
            )
        )
    )


def anonymise_customer(session: Session, customer: Customer, now: datetime) -> ErasureReport:
    """Remove one customer's personal data everywhere; scores and counts stay."""
    report = ErasureReport(customers=[customer.id])
    phones = [customer.phone] if customer.phone else []
    survey_ids = _survey_ids_of_customer(session, customer.id)
    report.messages = _forget_survey_texts(session, survey_ids, phones)
    report.answers, report.recordings = _forget_answers(session, survey_ids, now)
    # A survey not sent yet is never sent: there is nobody to send it to.
    survey_state.exclude_unsent(session, survey_ids, now, "the customer's personal data was erased")
    session.execute(
        update(ConsentEvent).where(ConsentEvent.customer_id == customer.id).values(reference=None)
    )
    _forget_outbox(session, customer)
    customer.phone = None
    customer.name = None
    customer.external_id = None
    customer.email = None
    customer.opt_out_source = None
    customer.erased_at = now
    session.execute(
        update(Interaction)
        .where(Interaction.customer_id == customer.id, Interaction.anonymized_at.is_(None))
        .values(anonymized_at=now)
    )
    return report


def erase_customers(
    session: Session, customers: list[Customer], actor: str, reason: str, now: datetime
) -> ErasureReport:
    """Erase these customers' personal data (a request under 152-FZ art. 21 or GDPR art. 17),
    audited; running it again finds nothing left to erase."""
    total = ErasureReport()
    for customer in customers:
        one = anonymise_customer(session, customer, now)
        total.customers += one.customers
        total.messages += one.messages
        total.answers += one.answers
        total.recordings += one.recordings
        session.add(
            AuditEvent(
                at=now,
                actor=actor[:200],
                action="customer.erase",
                subject_type="customer",
                subject_id=str(customer.id),
                detail={"reason": reason, **one.to_json()},
            )
        )
    session.flush()
    return total


def expire_personal_data(
    session: Session, retention_days: int, now: datetime, batch: int = RETENTION_BATCH
) -> int:
    """One batch of the retention sweep: anonymise up to `batch` contacts that ended more than
    `retention_days` ago, and customers with no newer contact. Returns how many contacts; the
    caller commits and calls again while it returns a full batch."""
    cutoff = now - timedelta(days=retention_days)
    stmt = (
        select(Interaction)
        .where(Interaction.ended_at < cutoff, Interaction.anonymized_at.is_(None))
        .order_by(Interaction.id)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    interactions = list(session.scalars(stmt))
    stray = _expire_stray_messages(session, cutoff, batch)
    if not interactions:
        return stray
    ids = [i.id for i in interactions]
    survey_ids = list(
        session.scalars(select(SurveySession.id).where(SurveySession.interaction_id.in_(ids)))
    )
    customer_ids = {i.customer_id for i in interactions if i.customer_id is not None}
    phones = [
        p for p in session.scalars(select(Customer.phone).where(Customer.id.in_(customer_ids))) if p
    ]
    _forget_survey_texts(session, survey_ids, [])
    _forget_answers(session, survey_ids, now)
    for row in session.scalars(
        select(SurveyAttempt).where(SurveyAttempt.session_id.in_(survey_ids))
    ):
        row.detail = _scrub(row.detail, phones)
    for interaction in interactions:
        interaction.anonymized_at = now
    session.flush()
    # Customers whose every contact is past the retention period are anonymised whole.
    for customer in session.scalars(
        select(Customer).where(
            Customer.id.in_(customer_ids),
            Customer.erased_at.is_(None),
            ~exists().where(Interaction.customer_id == Customer.id, Interaction.ended_at >= cutoff),
        )
    ):
        anonymise_customer(session, customer, now)
    session.add(
        AuditEvent(
            at=now,
            actor="retention",
            action="personal_data.expire",
            subject_type="interaction",
            subject_id=f"{ids[0]}-{ids[-1]}",
            detail={"interactions": len(ids), "retention_days": retention_days},
        )
    )
    return len(ids)


def _expire_stray_messages(session: Session, cutoff: datetime, batch: int) -> int:
    """SMS outside any survey (a reply after it closed, a keyword) past the retention period:
    their text and number go the same way."""
    ids = list(
        session.scalars(
            select(Message.id)
            .where(
                Message.session_id.is_(None),
                Message.created_at < cutoff,
                Message.phone != ERASED,
            )
            .order_by(Message.id)
            .limit(batch)
        )
    )
    if ids:
        session.execute(update(Message).where(Message.id.in_(ids)).values(body="", phone=ERASED))
    return len(ids)


def delete_pending_recordings(
    session: Session, delete: Callable[[str], None], now: datetime, batch: int = 50
) -> int:
    """Delete queued recordings at the provider; a failure is kept for the next sweep."""
    pending = session.scalars(
        select(RecordingDeletion)
        .where(RecordingDeletion.deleted_at.is_(None), RecordingDeletion.attempts < 10)
        .order_by(RecordingDeletion.id)
        .limit(batch)
    ).all()
    done = 0
    for row in pending:
        row.attempts += 1
        try:
            delete(row.recording_sid)
        except Exception as exc:
            row.last_error = f"{type(exc).__name__}: {exc}"[:500]
            logger.warning("recording %s not deleted yet: %s", row.recording_sid, row.last_error)
            continue
        row.deleted_at = now
        row.last_error = None
        done += 1
    return done


def customer_export(session: Session, customer: Customer) -> dict[str, Any]:
    """Everything stored about one customer, as JSON values (152-FZ art. 14 access request)."""
    interactions = session.scalars(
        select(Interaction).where(Interaction.customer_id == customer.id).order_by(Interaction.id)
    ).all()
    out_interactions = []
    for interaction in interactions:
        survey = interaction.survey
        item: dict[str, Any] = {
            "id": interaction.id,
            "channel": interaction.channel.value,
            "external_id": interaction.external_id,
            "ended_at": interaction.ended_at.isoformat(),
            "office": interaction.office,
            "operator": interaction.operator.external_id if interaction.operator else None,
            "survey": None,
        }
        if survey is not None:
            item["survey"] = {
                "status": survey.status.value,
                "channel": survey.channel.value,
                "started_at": survey.started_at and survey.started_at.isoformat(),
                "answers": [
                    {
                        "question": a.question_key,
                        "value": a.value,
                        "text": a.raw_input,
                        "recording_url": a.recording_url,
                        "answered_at": a.answered_at.isoformat(),
                    }
                    for a in survey.answers
                ],
            }
        out_interactions.append(item)
    conditions = [Message.customer_id == customer.id]
    if customer.phone:
        conditions.append(Message.phone == customer.phone)
    messages = session.scalars(select(Message).where(or_(*conditions)).order_by(Message.id)).all()
    return {
        "customer": {
            "id": customer.id,
            "external_id": customer.external_id,
            "phone": customer.phone,
            "name": customer.name,
            "language": customer.language,
            "created_at": customer.created_at.isoformat(),
            "erased_at": customer.erased_at and customer.erased_at.isoformat(),
        },
        "consent": consent_json(session, customer),
        "interactions": out_interactions,
        "messages": [
            {
                "direction": m.direction,
                "body": m.body,
                "status": m.status,
                "at": m.created_at.isoformat(),
            }
            for m in messages
        ],
    }


CONSENT_CHANNELS = ("sms", "ivr")


def consent_json(session: Session, customer: Customer) -> dict[str, Any]:
    """The consent ledger of one customer: each channel's state now, and every change."""
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.customer_id == customer.id)
        .order_by(ConsentEvent.at, ConsentEvent.id)
    ).all()
    channels: dict[str, dict[str, Any]] = {
        channel: {"state": "opted_in", "since": None, "source": None}
        for channel in CONSENT_CHANNELS
    }
    for event in events:
        for channel in CONSENT_CHANNELS if event.channel == "all" else (event.channel,):
            channels[channel] = {
                "state": event.state,
                "since": event.at.isoformat(),
                "source": event.source,
            }
    return {
        "channels": channels,
        "events": [
            {
                "at": e.at.isoformat(),
                "channel": e.channel,
                "state": e.state,
                "source": e.source,
                "reference": e.reference,
            }
            for e in events
        ],
    }


def audit_number_reads(
    session: Session, actor: str, customer_ids: Iterable[int], via: str, now: datetime
) -> int:
    """Note that a person was shown these customers' full numbers (one event per customer)."""
    count = 0
    for customer_id in sorted(set(customer_ids)):
        session.add(
            AuditEvent(
                at=now,
                actor=actor[:200],
                action="customer.phone_read",
                subject_type="customer",
                subject_id=str(customer_id),
                detail={"via": via},
            )
        )
        count += 1
    return count


def delete_interaction(
    session: Session, interaction: Interaction, actor: str, reason: str, now: datetime
) -> None:
    """Delete a contact recorded by mistake (a test call, a PBX duplicate), audited, with its
    surveys (follow-ups too), their answers and attempts, and the incidents their low scores
    opened, each incident audited with its state. Recordings are queued for deletion at
    Twilio; the surveys' SMS stay in the message log, detached. The reports' rollup takes the
    contact's count away in the same flush."""
    surveys = session.scalars(
        select(SurveySession).where(SurveySession.interaction_id == interaction.id)
    ).all()
    survey_ids = [s.id for s in surveys]
    incidents = session.scalars(select(Incident).where(Incident.session_id.in_(survey_ids))).all()
    if incidents:
        session.execute(
            delete(IncidentAlert).where(IncidentAlert.incident_id.in_([i.id for i in incidents]))
        )
    for incident in incidents:
        session.add(
            AuditEvent(
                at=now,
                actor=actor[:200],
                action="incident.delete",
                subject_type="incident",
                subject_id=str(incident.id),
                detail={"reason": reason, "status": incident.status, "score": incident.score},
            )
        )
        session.delete(incident)
    _forget_answers(session, survey_ids, now)
    session.execute(
        update(Message)
        .where(Message.session_id.in_(survey_ids))
        .values(session_id=None)
        .execution_options(synchronize_session=False)
    )
    session.flush()  # the incidents go first: they refer to the surveys
    # Follow-ups refer to the original survey: they go before it.
    for survey in sorted(surveys, key=lambda s: s.follow_up_of_id is None):
        session.delete(survey)
        session.flush()
    session.delete(interaction)
    session.add(
        AuditEvent(
            at=now,
            actor=actor[:200],
            action="interaction.delete",
            subject_type="interaction",
            subject_id=str(interaction.id),
            detail={
                "reason": reason,
                "channel": str(interaction.channel),
                "external_id": interaction.external_id,
                "surveys": len(surveys),
                "incidents": len(incidents),
            },
        )
    )
    session.flush()
