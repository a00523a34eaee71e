"""Events into the outbox, in the transaction that caused them.

A hook on the ORM session notices, at each flush, the changes that make an event: a survey
reaching a final status, an incident opened, changed or closed, a customer's NPS answer. Just
before the commit it writes one `OutboxEvent` per event and one `WebhookDelivery` per
subscription that wants it. The event is committed with the change or rolled back with it:
no event for a change that did not happen, no change without its event.

Watching the rows rather than calling `emit` from every place that changes them means a new
way to close an incident (the dashboard, a command) reports it without knowing of webhooks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import event, exists, inspect, select
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction
from sqlalchemy.orm.util import identity_key

from gateway.db import utcnow
from gateway.flows import Flows, flows_of, flows_of_row
from gateway.models import Answer, Customer, Incident, Interaction, SurveySession, SurveyStatus
from gateway.webhooks.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from ivr_flows import QuestionType

SURVEY_COMPLETED = "survey.completed"
SURVEY_EXPIRED = "survey.expired"
SURVEY_COMMENTED = "survey.commented"
INCIDENT_OPENED = "incident.opened"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_RESOLVED = "incident.resolved"
CUSTOMER_NPS_CHANGED = "customer.nps_changed"

EVENT_TYPES = (
    SURVEY_COMPLETED,
    SURVEY_COMMENTED,
    SURVEY_EXPIRED,
    INCIDENT_OPENED,
    INCIDENT_UPDATED,
    INCIDENT_RESOLVED,
    CUSTOMER_NPS_CHANGED,
)

# Whether any receiver is subscribed at all: a writer that bypasses the ORM (the IVR's last
# key press) leaves a change that may make an event to the ORM, and so to this hook, if so.
ANY_SUBSCRIPTION = exists().where(WebhookSubscription.id.is_not(None))

_ANSWERED = frozenset({SurveyStatus.COMPLETED, SurveyStatus.PARTIAL})
_RESOLVED = frozenset({"closed", "resolved"})
# The written comment of a web survey: its thank-you page takes it after the last score.
COMMENT_KEY = "comment"
_INCIDENT_FIELDS = (
    "status",
    "assignee",
    "closed_at",
    "closed_by",
    "cause",
    "resolution",
    "score",
    "due_at",
    "archived_at",
)


def nps_class(score: int) -> str:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


# -- the payloads ---------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def nps_keys(flows: Flows) -> set[str]:
    """The question keys of every loaded flow's NPS questions."""
    return {q.key for f in flows.values() for q in f.questions if q.type is QuestionType.NPS}


def _customer(session: Session, customer: Customer | None) -> dict[str, Any] | None:
    """Who the customer is and their latest NPS answer, if any."""
    if customer is None:
        return None
    latest = session.execute(
        select(Answer.value, Answer.answered_at)
        .join(SurveySession, Answer.session_id == SurveySession.id)
        .where(
            SurveySession.customer_id == customer.id,
            Answer.question_key.in_(nps_keys(flows_of(session))),
            Answer.value.is_not(None),
        )
        .order_by(Answer.id.desc())
        .limit(1)
    ).first()
    return {
        "id": customer.id,
        "external_id": customer.external_id,
        "phone": customer.phone,
        "name": customer.name,
        "language": customer.language,
        "nps": latest
        and {
            "score": latest.value,
            "class": nps_class(latest.value),
            "answered_at": _iso(latest.answered_at),
        },
    }


def _interaction(interaction: Interaction) -> dict[str, Any]:
    operator = interaction.operator
    return {
        "id": interaction.id,
        "external_id": interaction.external_id,
        "channel": str(interaction.channel),
        "ended_at": _iso(interaction.ended_at),
        "office": interaction.office,
        "operator": operator
        and {
            "external_id": operator.external_id,
            "name": operator.name,
            "team": operator.team.name if operator.team else None,
        },
    }


def _answers(session: Session, survey_id: int) -> list[Answer]:
    return list(
        session.scalars(select(Answer).where(Answer.session_id == survey_id).order_by(Answer.id))
    )


def _frozen_score(survey: SurveySession) -> dict[str, Any] | None:
    """The score frozen when the survey ended: the figures the reports count for it."""
    if survey.scored_at is None:
        return None
    return {
        "overall": survey.score_overall,
        "parameters": survey.score_parameters or {},
        "csi": survey.score_csi,
        "csi_operator": survey.score_csi_operator,
        "nps": survey.score_nps,
        "nps_class": survey.score_nps_class,
        "weights": survey.score_spec,
        "scored_at": _iso(survey.scored_at),
    }


def survey_data(session: Session, survey: SurveySession) -> dict[str, Any]:
    """A survey with its interaction, customer and scores, as events carry it."""
    answers = _answers(session, survey.id)
    comment = next((a.recording_url for a in answers if a.recording_url), None)
    written = next(
        (a.raw_input for a in answers if a.question_key == COMMENT_KEY and a.value is None), None
    )
    return {
        "survey": {
            "id": survey.id,
            "status": str(survey.status),
            "channel": str(survey.channel),
            "flow": survey.flow,
            "language": survey.language,
            "started_at": _iso(survey.started_at),
            "finished_at": _iso(survey.finished_at),
            "scores": {a.question_key: a.value for a in answers if a.value is not None},
            "score": _frozen_score(survey),
            "comment_recording_url": comment,
            "comment": written if comment is None else None,
        },
        "interaction": _interaction(survey.interaction),
        "customer": _customer(session, survey.customer or survey.interaction.customer),
    }


def incident_data(session: Session, incident: Incident) -> dict[str, Any]:
    survey = incident.session
    return {
        "incident": {
            "id": incident.id,
            "status": incident.status,
            "score": incident.score,
            "opened_at": _iso(incident.opened_at),
            "assignee": incident.assignee,
            "closed_at": _iso(incident.closed_at),
            "closed_by": incident.closed_by,
            "cause": incident.cause,
            "resolution": incident.resolution,
            "due_at": _iso(incident.due_at),
            "archived_at": _iso(incident.archived_at),
        },
        **survey_data(session, survey),
    }


def nps_data(session: Session, answer: Answer) -> dict[str, Any] | None:
    """The customer's new NPS answer against the previous one; None when nothing changed."""
    survey = answer.session
    customer = survey.customer or survey.interaction.customer
    if customer is None or answer.value is None:
        return None
    previous = session.execute(
        select(Answer.value, Answer.answered_at)
        .join(SurveySession, Answer.session_id == SurveySession.id)
        .where(
            SurveySession.customer_id == customer.id,
            Answer.question_key == answer.question_key,
            Answer.value.is_not(None),
            Answer.id < answer.id,
        )
        .order_by(Answer.id.desc())
        .limit(1)
    ).first()
    if previous is not None and previous.value == answer.value:
        return None
    data = survey_data(session, survey)
    return {
        "nps": {
            "score": answer.value,
            "class": nps_class(answer.value),
            "answered_at": _iso(answer.answered_at),
            "previous_score": previous.value if previous else None,
            "previous_class": nps_class(previous.value) if previous else None,
        },
        "customer": data.pop("customer"),
        **data,
    }


# -- writing to the outbox ------------------------------------------------------------------


def emit(
    session: Session,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    customer_id: int | None = None,
    subscriptions: Sequence[WebhookSubscription] | None = None,
) -> OutboxEvent | None:
    """Write an event and a delivery per subscription that wants it; None if nobody does.

    A paused subscription still gets its deliveries: they wait for it to be resumed.
    """
    if subscriptions is None:
        subscriptions = session.scalars(select(WebhookSubscription)).all()
    subscriptions = [s for s in subscriptions if event_type in s.events]
    if not subscriptions:
        return None
    event_id = f"evt_{uuid.uuid4().hex}"
    envelope = {"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data}
    row = OutboxEvent(
        event_id=event_id,
        type=event_type,
        body=json.dumps(envelope, ensure_ascii=False, separators=(",", ":")),
        customer_id=customer_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    for subscription in subscriptions:
        session.add(
            WebhookDelivery(
                event_id=row.id,
                subscription_id=subscription.id,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return row


# -- the session hook -----------------------------------------------------------------------


@dataclass
class _Pending:
    """What a transaction's flushes changed, in order, turned into events at commit."""

    items: list[tuple[str, type, int]] = field(default_factory=list)
    changed_fields: dict[int, set[str]] = field(default_factory=dict)  # incident id: fields

    def add(self, event_type: str, model: type, row_id: int) -> None:
        if (event_type, model, row_id) not in self.items:
            self.items.append((event_type, model, row_id))


_PENDING = "webhook_events_pending"


def _history(obj: Any, name: str) -> Any:
    return inspect(obj).attrs[name].history


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    pending: _Pending | None = session.info.get(_PENDING)
    for obj in chain(session.new, session.dirty):
        if isinstance(obj, SurveySession):
            added = _history(obj, "status").added
            if added and obj.status.is_final:
                if obj.status in _ANSWERED:
                    event_type = SURVEY_COMPLETED
                elif obj.status is SurveyStatus.EXPIRED:
                    event_type = SURVEY_EXPIRED
                else:
                    continue  # not sent, not reached, failed: no survey took place
                pending = pending or session.info.setdefault(_PENDING, _Pending())
                pending.add(event_type, SurveySession, obj.id)
        elif isinstance(obj, Incident):
            pending = pending or session.info.setdefault(_PENDING, _Pending())
            if obj in session.new:
                pending.add(INCIDENT_OPENED, Incident, obj.id)
                continue
            changed = {n for n in _INCIDENT_FIELDS if _history(obj, n).has_changes()}
            if not changed:
                continue
            if "status" in changed and obj.status in _RESOLVED:
                pending.add(INCIDENT_RESOLVED, Incident, obj.id)
            else:
                pending.changed_fields.setdefault(obj.id, set()).update(changed)
                pending.add(INCIDENT_UPDATED, Incident, obj.id)
        elif _is_late_comment(session, obj):
            pending = pending or session.info.setdefault(_PENDING, _Pending())
            pending.add(SURVEY_COMMENTED, SurveySession, obj.session_id)
        elif (
            isinstance(obj, Answer)
            and obj in session.new
            and obj.value is not None
            and _may_be_nps(session, obj)
        ):
            pending = pending or session.info.setdefault(_PENDING, _Pending())
            pending.add(CUSTOMER_NPS_CHANGED, Answer, obj.id)


def _is_late_comment(session: Session, obj: object) -> bool:
    """A written comment added to a survey (web: on the thank-you page, after the last score,
    so after its `survey.completed`); `_build` checks the survey has ended."""
    return (
        isinstance(obj, Answer)
        and obj in session.new
        and obj.question_key == COMMENT_KEY
        and obj.value is None
        and bool(obj.raw_input)
    )


def _is_nps(answer: Answer) -> bool:
    return _nps_question(flows_of_row(answer), answer.session.flow, answer.question_key)


def _may_be_nps(session: Session, answer: Answer) -> bool:
    """From what is in memory: an answer to a rating is no NPS answer, so a keypress of a
    rating costs no query of the subscriptions. With its survey not loaded, `_build` decides."""
    survey = session.identity_map.get(identity_key(SurveySession, answer.session_id))
    return survey is None or _nps_question(flows_of(session), survey.flow, answer.question_key)


def _nps_question(flows: Flows, flow_key: str, question_key: str) -> bool:
    flow = flows.get(flow_key)
    if flow is None:
        return question_key == "nps"
    try:
        return flow.question(question_key).type is QuestionType.NPS
    except KeyError:
        return False


def _build(session: Session, pending: _Pending, now: datetime) -> None:
    subscriptions = session.scalars(select(WebhookSubscription)).all()
    wanted = {event_type for s in subscriptions for event_type in s.events}
    for event_type, model, row_id in pending.items:
        if event_type not in wanted:
            continue  # nobody listens: build nothing
        row = session.get(model, row_id)
        if row is None:
            continue  # written in a savepoint that was rolled back
        data: dict[str, Any] | None
        if isinstance(row, SurveySession):
            statuses = {SurveyStatus.EXPIRED} if event_type == SURVEY_EXPIRED else _ANSWERED
            if row.status not in statuses:
                continue  # a comment during the survey reaches its survey.completed
            if event_type == SURVEY_COMMENTED and (SURVEY_COMPLETED, SurveySession, row_id) in (
                pending.items
            ):
                continue  # ended in this very transaction: its survey.completed carries it
            data = survey_data(session, row)
        elif isinstance(row, Incident):
            data = incident_data(session, row)
            if event_type == INCIDENT_UPDATED:
                data["changed"] = sorted(pending.changed_fields.get(row_id, ()))
        elif isinstance(row, Answer):
            data = nps_data(session, row) if _is_nps(row) else None
        else:
            data = None
        if data is not None:
            customer = data.get("customer")
            customer_id = customer["id"] if customer else None
            emit(session, event_type, data, now, customer_id, subscriptions)


def _before_commit(session: Session) -> None:
    # Flushes what is pending so that `_after_flush` has seen it; with nothing pending the
    # flush returns at once (cheaper than asking for the session's new, dirty and deleted).
    session.flush()
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is None:
        return
    with session.no_autoflush:
        _build(session, pending, utcnow())
    session.flush()
    session.info.pop(_PENDING, None)  # the outbox rows themselves make no events


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


_HOOKS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("after_flush", _after_flush),
    ("before_commit", _before_commit),
    ("after_transaction_end", _after_transaction_end),
)


def init_app(app: Any) -> None:
    """Write the outbox on every commit of the app's sessions."""
    factory = app.extensions["database"].session_factory
    for name, hook in _HOOKS:
        event.listen(factory, name, hook)


def event_types_invalid(names: Iterable[str]) -> list[str]:
    """The names that are not event types."""
    return [n for n in names if n not in EVENT_TYPES]
