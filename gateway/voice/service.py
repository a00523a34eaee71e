"""The IVR survey over Twilio Voice: the start of a call's survey and each key press.

Pure domain code: functions take a Session, Settings, `now` and typed inputs and return the
TwiML to answer with; the caller commits. The conversation's state lives in the survey
session's row only, so any worker may serve any step of a call. Every answer to a webhook
is kept in a WebhookReceipt (CallSid + step), so a webhook Twilio retries gets the same
TwiML and records nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from gateway import phone_surveys, survey_state
from gateway.config import Settings
from gateway.flows import Flows, flows_of
from gateway.incidents import INCIDENT_COLUMNS, NEW_INCIDENT, new_incident
from gateway.interactions import (
    CustomerInput,
    InteractionInput,
    OperatorInput,
    record_interaction,
)
from gateway.models import (
    Answer,
    Customer,
    Incident,
    Interaction,
    InteractionChannel,
    Operator,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
    WebhookReceipt,
)
from gateway.optouts import phone_opted_out
from gateway.phone_surveys import CHANNEL
from gateway.phones import mask_phone
from gateway.reports import rollup
from gateway.reports.scoring import current_spec, frozen_score, spec_from_json
from gateway.surveys import (
    NEW_ANSWER,
    answer_params,
    flow_of,
    flow_state,
    insert_answer,
    opens_incident,
    plain_answer,
    record_answer,
)
from gateway.voice import callback_surveys
from gateway.voice.twiml import StepLink, hangup, step_twiml
from gateway.webhooks.events import ANY_SUBSCRIPTION
from ivr_flows import Flow, FlowState
from ivr_flows.engine import (
    Given,
    NoInput,
    Question,
    QuestionType,
    Recorded,
    RecordedAnswer,
    Step,
    advance,
    start,
)

logger = logging.getLogger(__name__)

# DialCallStatus values meaning the caller really talked to the operator.
OPERATOR_REACHED = frozenset({"completed", "answered"})
START_STEP = "start"


@dataclass(frozen=True)
class CallInput:
    """The fields every Twilio Voice webhook carries about the call."""

    call_sid: str
    account_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None  # inbound, outbound-api, outbound-dial
    call_status: str | None = None
    parent_call_sid: str | None = None
    dial_call_status: str | None = None  # set when Twilio follows a <Dial action>
    answered_by: str | None = None  # machine detection: human, machine_start, fax, ...


@dataclass(frozen=True)
class StartParams:
    """The query of POST /voice/survey, as the hotline or an outbound call sets it."""

    operator: str | None = None
    interaction: str | None = None
    flow: str | None = None
    lang: str | None = None
    session_id: int | None = None  # call-back surveys: the session the call was placed for


@dataclass(frozen=True)
class KeyInput:
    """What the caller gave at one step: keys, or a recording."""

    digits: str | None = None
    recording_url: str | None = None
    recording_duration: int | None = None


# --- receipts -----------------------------------------------------------------------------

# Statements of every webhook, built once per process: building a statement costs more CPU
# than running it (SQLAlchemy caches the compiled form, not the construction).
_receipts = cast(Table, WebhookReceipt.__table__)
_surveys = cast(Table, SurveySession.__table__)
_RECEIPT = select(_receipts.c.response_body).where(
    _receipts.c.provider_id == bindparam("call_sid"), _receipts.c.step == bindparam("step")
)
_REMEMBER = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_receipts)
    .values(
        provider_id=bindparam("call_sid"),
        step=bindparam("step"),
        response_body=bindparam("body"),
        created_at=bindparam("now"),
    )
    .on_conflict_do_nothing(index_elements=["provider_id", "step"])
    .returning(_receipts.c.id)
    for dialect in (postgresql, sqlite)
}
# A step's survey row, locked until commit. The step's stored answer is read in a statement
# of its own after it: one that waited for the lock sees the row as the other transaction
# left it, but a subquery of the same statement would still see the data of before.
_STEP_ROW = (
    select(
        _surveys.c.id,
        _surveys.c.provider_id,
        _surveys.c.status,
        _surveys.c.flow,
        _surveys.c.state,
        _surveys.c.language,
    )
    .where(_surveys.c.id == bindparam("survey_id"))
    .with_for_update()
)
_interactions = cast(Table, Interaction.__table__)
_operators = cast(Table, Operator.__table__)
_customers = cast(Table, Customer.__table__)
_customer_of_phone = (
    _customers.c.phone == bindparam("phone"),
    _customers.c.phone.is_not(None),
)
# What the first webhook of a post-call survey needs to know, in one round trip: its stored
# answer (a retry), whether the contact is recorded already, the operator (and their team
# now), the customer by phone, and whether that phone opted out.
_FIRST_LOOK = select(
    _RECEIPT.scalar_subquery().label("replay"),
    select(_interactions.c.id)
    .where(
        _interactions.c.channel == bindparam("channel"),
        _interactions.c.external_id == bindparam("external_id"),
    )
    .scalar_subquery()
    .label("interaction_id"),
    select(_operators.c.id)
    .where(_operators.c.external_id == bindparam("operator"))
    .scalar_subquery()
    .label("operator_id"),
    select(_operators.c.team_id)
    .where(_operators.c.external_id == bindparam("operator"))
    .scalar_subquery()
    .label("team_id"),
    select(_customers.c.id)
    .where(*_customer_of_phone)
    .order_by(_customers.c.id)
    .limit(1)
    .scalar_subquery()
    .label("customer_id"),
    select(_customers.c.language)
    .where(*_customer_of_phone)
    .order_by(_customers.c.id)
    .limit(1)
    .scalar_subquery()
    .label("customer_language"),
    exists().where(*_customer_of_phone, _customers.c.opted_out_at.is_not(None)).label("opted_out"),
)
_NEW_POSITION = (
    update(_surveys)
    .where(_surveys.c.id == bindparam("survey_id"))
    .values(state=bindparam("state"), updated_at=bindparam("now"))
)
# The first step's rows, each in one statement (see `_start_new_contact`); the contact claims
# its unique (channel, external id): a concurrent copy of the webhook gets no id back.
_NEW_CUSTOMER = insert(_customers).returning(_customers.c.id)
_FORGET_CUSTOMER = delete(_customers).where(_customers.c.id == bindparam("customer_id"))
_NEW_CONTACT = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_interactions)
    .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    .returning(_interactions.c.id)
    for dialect in (postgresql, sqlite)
}
_NEW_SURVEY = insert(_surveys).returning(_surveys.c.id)
# The last step: the contact as the rollup counts it (its interaction locked), the weights
# frozen on the survey if any, whether any webhook receiver listens; then its answers.
_LAST_LOOK = rollup.CONTACT_OF_SURVEY.add_columns(
    _surveys.c.score_spec, ANY_SUBSCRIPTION.label("subscribed")
)
_answers = cast(Table, Answer.__table__)
# A key press on PostgreSQL in one statement (one round trip): the answer, if the step gives
# one, the new position and the step's receipt. Data-modifying WITH clauses run once and to
# their end whatever the main statement reads.
_MOVE_ON = _REMEMBER["postgresql"].add_cte(_NEW_POSITION.cte("position"))
_ANSWER_AND_MOVE_ON = _REMEMBER["postgresql"].add_cte(
    NEW_ANSWER["postgresql"].cte("answer"), _NEW_POSITION.cte("position")
)
_ANSWERS = select(_answers.c.question_key, _answers.c.value).where(
    _answers.c.session_id == bindparam("survey_id")
)
# An answer that opens an incident, or an NPS answer, before the survey's last step: whether
# a webhook receiver is subscribed (the ORM's outbox hook builds its event then) and whether
# the survey is a follow-up (its low score reopens the original incident: open_incident);
# the contact's operator, whom the incident is for.
_ANSWER_LOOK = (
    select(
        _interactions.c.operator_id,
        _surveys.c.follow_up_of_id,
        ANY_SUBSCRIPTION.label("subscribed"),
    )
    .select_from(_surveys.outerjoin(_interactions, _interactions.c.id == _surveys.c.interaction_id))
    .where(_surveys.c.id == bindparam("survey_id"))
)
# A key press whose low score opens an incident, on PostgreSQL in one statement: the incident
# (`new_incident`'s columns, named incident_*: a parameter named as a column of the survey
# would be set by the position's UPDATE too) is inserted only if the answer was, as
# record_answer opens one only with a new answer.
_incidents = cast(Table, Incident.__table__)
_ANSWER_STORED = NEW_ANSWER["postgresql"].cte("answer")
_ANSWER_INCIDENT_AND_MOVE_ON = _REMEMBER["postgresql"].add_cte(
    _ANSWER_STORED,
    postgresql.insert(_incidents)
    .from_select(
        INCIDENT_COLUMNS,
        # Typed: psycopg's dialect casts each (a NULL operator or due time included).
        select(
            *(
                bindparam(f"incident_{name}", type_=_incidents.c[name].type)
                for name in INCIDENT_COLUMNS
            )
        ).select_from(_ANSWER_STORED),
    )
    .on_conflict_do_nothing(index_elements=["session_id"])
    .cte("incident"),
    _NEW_POSITION.cte("position"),
)


def _dialect(conn: Connection) -> str:
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


def _receipt(session: Session, call_sid: str, step: str) -> str | None:
    return session.connection().scalar(_RECEIPT, {"call_sid": call_sid, "step": step})


def _remember(session: Session, call_sid: str, step: str, body: str, now: datetime) -> str:
    """Keep the answer for retries; if a concurrent request got there first, its answer wins."""
    conn = session.connection()
    given = {"call_sid": call_sid, "step": step, "body": body, "now": now}
    return _remembered(conn, _REMEMBER[_dialect(conn)], given)


def _remembered(conn: Connection, statement: Any, given: dict[str, Any]) -> str:
    """Run a statement that inserts the step's receipt (`_REMEMBER`, alone or with the step's
    other writes); the body kept, the stored one if a concurrent request got there first."""
    if conn.execute(statement, given).first() is not None:
        return str(given["body"])
    stored = conn.scalar(_RECEIPT, given)
    if stored is None:  # the conflicting row is gone: only a concurrent delete could do that
        raise RuntimeError(f"the receipt of {given['call_sid']} {given['step']} vanished")
    return str(stored)


# --- start --------------------------------------------------------------------------------


def start_survey(
    session: Session, settings: Settings, now: datetime, call: CallInput, params: StartParams
) -> str:
    """The first TwiML of a survey call: greeting and first question, or a polite hang-up."""
    if params.session_id is not None:
        replay = _receipt(session, call.call_sid, START_STEP)
        if replay is not None:
            return replay
        callback = _start_callback(session, settings, now, call, params.session_id)
        return _remember(session, call.call_sid, START_STEP, callback, now)
    external_id = params.interaction or call.parent_call_sid or call.call_sid
    customer_phone = phone_surveys.customer_phone(_number_given(call), settings, call.call_sid)
    look = (
        session.connection()
        .execute(
            _FIRST_LOOK,
            {
                "call_sid": call.call_sid,
                "step": START_STEP,
                "channel": InteractionChannel.CALL,
                "external_id": external_id,
                "operator": params.operator,
                "phone": customer_phone,
            },
        )
        .one()
    )
    if look.replay is not None:
        return str(look.replay)
    body: str | None = _start_new_contact(
        session, settings, now, call, params, external_id, customer_phone, look
    )
    if body is None:
        body = _start_post_call(session, settings, now, call, params)
    return _remember(session, call.call_sid, START_STEP, body, now)


def _start_new_contact(
    session: Session,
    settings: Settings,
    now: datetime,
    call: CallInput,
    params: StartParams,
    external_id: str,
    phone: str | None,
    look: Row[Any],
) -> str | None:
    """The usual first webhook: a contact not yet recorded, reached, from a number that did
    not opt out, with a known operator (or none). The customer if new, the contact and its
    running survey are written in one statement each, without the ORM (whose flush costs
    more than all of them), and counted in the reports' rollup (`rollup.count_change`). None
    for anything else, an operator's first call too, which `_start_post_call` handles.
    """
    reached = call.dial_call_status is None or call.dial_call_status in OPERATOR_REACHED
    if look.interaction_id is not None or not reached or look.opted_out:
        return None
    if params.operator and look.operator_id is None:
        return None  # the operator is created as upsert_operator does, through the ORM
    flow = phone_surveys.phone_flow(flows_of(session), params.flow)
    step = start(flow, CHANNEL)
    if step.finished:
        return None
    conn = session.connection()
    customer_id = new_customer = None
    if look.customer_id is not None:
        customer_id = look.customer_id
    elif phone:
        customer_id = new_customer = conn.scalar(_NEW_CUSTOMER, {"phone": phone})
    contact = {
        "channel": InteractionChannel.CALL,
        "external_id": external_id,
        "ended_at": now,
        "operator_id": look.operator_id,
        "team_id": look.team_id,
        "customer_id": customer_id,
    }
    interaction_id = conn.scalar(_NEW_CONTACT[_dialect(conn)], contact)
    if interaction_id is None:
        # A concurrent copy of this webhook claimed the contact first: its row is used then.
        if new_customer is not None:
            conn.execute(_FORGET_CUSTOMER, {"customer_id": new_customer})
        return None
    language = phone_surveys.survey_language(look.customer_language, params.lang, flow, settings)
    begun = survey_state.begun(now)
    survey_id = conn.scalar(
        _NEW_SURVEY,
        {
            "interaction_id": interaction_id,
            "customer_id": customer_id,
            "channel": SurveyChannel.IVR,
            "kind": SurveyKind.POST_CALL,
            "flow": flow.key,
            "language": language,
            "provider_id": call.call_sid,
            "attempts": 0,
            "state": position(step.state, 0),
            **begun,
        },
    )
    after = dict.fromkeys(rollup.CONTACT_FIELDS)
    after.update(contact, id=interaction_id, survey_id=survey_id, status=begun["status"])
    rollup.count_change(conn, None, after, settings.report_zone)
    link = StepLink(survey_id, 1, _question_key(flow, step.state, step.finished))
    return step_twiml(step, flow, language, link, settings)


def _start_post_call(
    session: Session, settings: Settings, now: datetime, call: CallInput, params: StartParams
) -> str:
    external_id = params.interaction or call.parent_call_sid or call.call_sid
    customer_phone = phone_surveys.customer_phone(_number_given(call), settings, call.call_sid)
    reached = call.dial_call_status is None or call.dial_call_status in OPERATOR_REACHED
    interaction, _created = record_interaction(
        session,
        InteractionInput(
            external_id=external_id,
            channel=InteractionChannel.CALL,
            ended_at=now,
            # A caller who never reached the operator says nothing about the operator.
            operator=OperatorInput(params.operator) if params.operator and reached else None,
            customer=CustomerInput(phone=customer_phone) if customer_phone else None,
            survey="none",
            disposition=None if reached else f"operator_{call.dial_call_status}"[:50],
        ),
        settings,
        now,
    )
    if not reached:
        if interaction.disposition is None:
            interaction.disposition = f"operator_{call.dial_call_status}"[:50]
        logger.info(
            "call %s: operator leg ended %s; no survey", call.call_sid, call.dial_call_status
        )
        return str(hangup(settings))
    phone_surveys.complete_interaction(
        session, settings, interaction, params.operator, customer_phone
    )
    if customer_phone and phone_opted_out(session, customer_phone):
        # STOP by SMS (or a carrier's unsubscribe) means no survey on any channel.
        logger.info("call %s: %s opted out; no survey", call.call_sid, mask_phone(customer_phone))
        return str(hangup(settings))

    flow = phone_surveys.phone_flow(flows_of(session), params.flow)
    found = phone_surveys.claim_survey_for_call(
        session, settings, now, call.call_sid, interaction, flow, params.lang
    )
    if found is None:
        logger.info("call %s: interaction %s already surveyed", call.call_sid, interaction.id)
        return str(hangup(settings))
    survey, created = found
    if not created:
        # A concurrent copy of this webhook may hold it: wait, then replay what it answered.
        # A row this transaction inserted is invisible to others until commit: no wait.
        locked = phone_surveys.locked_survey(session, survey.id)
        if locked is None:
            raise LookupError(f"survey of call {call.call_sid} vanished while locking it")
        replay = _receipt(session, call.call_sid, START_STEP)
        if replay is not None:
            return replay
        survey = locked
    return _begin(session, settings, now, survey)


def _number_given(call: CallInput) -> str | None:
    """The customer's number as Twilio gives it: the caller on an inbound call, the called
    party on an outbound one."""
    outbound = (call.direction or "inbound").startswith("outbound")
    return call.to_number if outbound else call.from_number


def _begin(session: Session, settings: Settings, now: datetime, survey: SurveySession) -> str:
    step = phone_surveys.begin(survey, now)
    survey.state = position(step.state, 0)
    flow = flow_of(survey)
    link = StepLink(survey.id, 1, _question_key(flow, step.state, step.finished))
    return step_twiml(step, flow, survey.language, link, settings)


def _start_callback(
    session: Session, settings: Settings, now: datetime, call: CallInput, survey_id: int
) -> str:
    survey = phone_surveys.locked_survey(session, survey_id)
    if survey is None or survey.kind is not SurveyKind.IVR_CALLBACK:
        logger.warning("call %s names survey %s, not a call-back survey", call.call_sid, survey_id)
        return str(hangup(settings))
    replay = _receipt(session, call.call_sid, START_STEP)
    if replay is not None:
        return replay
    if survey.provider_id != call.call_sid or survey.status is not SurveyStatus.SENDING:
        logger.warning(
            "call %s is not survey %s's current call (%s)", call.call_sid, survey.id, survey.status
        )
        return str(hangup(settings))
    if callback_surveys.is_machine(call.answered_by):
        callback_surveys.machine_answered(session, survey, call.call_sid, call.answered_by, now)
        return str(hangup(settings))
    return _begin(session, settings, now, survey)


# --- each step ----------------------------------------------------------------------------


def step_name(number: int) -> str:
    return f"step:{number}"


# In a voice survey's stored position: the number of the call's last step answered. Every
# answer to a step of a running survey stores it with the step's receipt (or ends the survey),
# so a step above it has no receipt yet and needs no look-up (see answer_step).
STEP = "step"


def position(state: FlowState, number: int) -> dict[str, Any]:
    """The survey's stored state after step `number` of its call (0: the call's start)."""
    return {**state.to_json(), STEP: number}


def answer_step(
    session: Session,
    settings: Settings,
    now: datetime,
    call: CallInput,
    survey_id: int,
    number: int,
    given: KeyInput,
) -> str:
    """Apply the caller's input at step `number`, commit-ready, and return the next TwiML.

    The survey row is locked first and the receipt read after, unless the row says this step
    is new (STEP): a retry, or a copy of this webhook another worker answered while we waited
    for the lock, gets the stored answer. A key press that records an answer (and the incident
    a low overall score opens) and moves on, and the survey's last one, are written without
    the ORM (`_keypress`); the rest (any answer that makes an event while a webhook receiver
    is subscribed, a follow-up survey's low score, a late comment) goes through the ORM,
    whose hooks keep the reports and events.
    """
    step_key = step_name(number)
    conn = session.connection()
    row = conn.execute(_STEP_ROW, {"survey_id": survey_id}).first()
    if row is None or row.provider_id != call.call_sid:
        logger.warning(
            "call %s sent a step of survey %s, which is not its own", call.call_sid, survey_id
        )
        return str(hangup(settings))  # not remembered: it changed nothing
    answered = (row.state or {}).get(STEP)
    if not (row.status is SurveyStatus.ACTIVE and isinstance(answered, int) and answered < number):
        # A step this call answered already (`answered` is read from the row as the lock left
        # it), or a survey no longer running: a retry, or a copy of this webhook another
        # worker answered while we waited for the lock, gets the stored answer.
        replay = conn.scalar(_RECEIPT, {"call_sid": call.call_sid, "step": step_key})
        if replay is not None:
            return str(replay)
    remember = {"call_sid": call.call_sid, "step": step_key, "now": now}
    body = _keypress(conn, flows_of(session), settings, row, number, given, remember)
    if body is not None:
        # Written without the ORM: a survey this session holds (several steps of a call in
        # one session: a command, a test) is read again when next used.
        cached = session.identity_map.get(identity_key(SurveySession, survey_id))
        if cached is not None:
            session.expire(cached)
        return body
    survey = phone_surveys.locked_survey(session, survey_id)  # locked above already: no wait
    if survey is None:
        raise LookupError(f"survey {survey_id} vanished while locked")
    body = _advance(session, settings, now, survey, number, given)
    return _remember(session, call.call_sid, step_key, body, now)


def _keypress(
    conn: Connection,
    flows: Flows,
    settings: Settings,
    row: Any,
    number: int,
    given: KeyInput,
    remember: dict[str, Any],
) -> str | None:
    """The common step of a running survey: store the answer (if the step gives one), the
    incident a low overall score opens, the new position and the step's receipt, and return
    the TwiML kept; None, with nothing written, when the step needs more than that: an event
    to a webhook receiver, a follow-up's low score (see answer_step).

    Nothing of the reports changes with it: a running survey counts once it ends (its last
    step: `_last_step`).
    """
    now = remember["now"]
    flow = flows.get(row.flow)
    if row.status is not SurveyStatus.ACTIVE or flow is None:
        return None
    state = FlowState.from_json(row.state)
    questions = flow.questions_for(CHANNEL)
    if state.index >= len(questions):
        return None
    step = advance(flow, CHANNEL, state, parse_given(questions[state.index], state, given))
    answer = step.recorded
    incident = None
    if step.finished:
        if not _last_step(conn, flows, settings, now, row, step, number):
            return None
    elif answer is not None and not plain_answer(flow, answer, settings):
        look = conn.execute(_ANSWER_LOOK, {"survey_id": row.id}).one()
        follow_up = look.follow_up_of_id is not None
        if look.subscribed or (follow_up and opens_incident(answer, settings)):
            return None
        incident = _incident(row.id, look.operator_id, answer, now, settings)
    link = StepLink(row.id, number + 1, _question_key(flow, step.state, step.finished))
    writes = {**remember, "body": step_twiml(step, flow, row.language, link, settings)}
    if step.finished:
        return _remembered(conn, _REMEMBER[_dialect(conn)], writes)
    writes.update(survey_id=row.id, state=position(step.state, number))
    if answer is not None:
        writes.update(answer_params(row.id, answer, now))
    if _dialect(conn) == "postgresql":
        if incident is not None:
            writes.update({f"incident_{name}": value for name, value in incident.items()})
            return _remembered(conn, _ANSWER_INCIDENT_AND_MOVE_ON, writes)
        return _remembered(conn, _ANSWER_AND_MOVE_ON if answer else _MOVE_ON, writes)
    if answer is not None and insert_answer(conn, row.id, answer, now) and incident is not None:
        conn.execute(NEW_INCIDENT["sqlite"], incident)
    conn.execute(_NEW_POSITION, writes)
    return _remembered(conn, _REMEMBER["sqlite"], writes)


def _incident(
    survey_id: int,
    operator_id: int | None,
    answer: RecordedAnswer,
    now: datetime,
    settings: Settings,
) -> dict[str, Any] | None:
    """The incident the answer opens (`new_incident`), if it opens one."""
    if answer.value is None or not opens_incident(answer, settings):
        return None
    return new_incident(survey_id, operator_id, answer.value, now, settings)


def _last_step(
    conn: Connection,
    flows: Flows,
    settings: Settings,
    now: datetime,
    row: Any,
    step: Step,
    number: int,
) -> bool:
    """The survey's end at its last key press, without the ORM: the answer (and the incident
    a low overall score opens), the survey completed with its score frozen (as
    survey_state.finish does) and its difference counted in the rollup, under the locks the
    rollup's hook takes (the survey's, then its contact's).

    False, with nothing written, when the ORM must do it: a webhook receiver is subscribed
    (the outbox hook builds its survey.completed event), or the survey is a follow-up.
    """
    contact = conn.execute(_LAST_LOOK, {"survey_id": row.id}).first()
    if contact is None or contact.subscribed:
        return False
    answer = step.recorded
    if answer is not None and insert_answer(conn, row.id, answer, now):
        incident = _incident(row.id, contact.operator_id, answer, now, settings)
        if incident is not None:
            conn.execute(NEW_INCIDENT[_dialect(conn)], incident)
    answers: dict[str, int | None] = {
        key: value for key, value in conn.execute(_ANSWERS, {"survey_id": row.id})
    }
    if contact.score_spec:
        spec = spec_from_json(contact.score_spec)
    else:
        spec = current_spec(flows, row.flow)
    score = frozen_score(answers, spec, now)
    status = survey_state.finish_row(conn, row.id, now, score, position(step.state, number))
    if status is None:
        raise RuntimeError(f"survey {row.id} stopped running while locked")
    after = {name: contact._mapping[name] for name in rollup.CONTACT_FIELDS}
    after.update(score, status=status)
    rollup.count_change(conn, contact, after, settings.report_zone)
    return True


def _advance(
    session: Session,
    settings: Settings,
    now: datetime,
    survey: SurveySession,
    number: int,
    given: KeyInput,
) -> str:
    flow = flow_of(survey)
    state = flow_state(survey)
    questions = flow.questions_for(CHANNEL)
    if survey.status is not SurveyStatus.ACTIVE:
        _late_comment(session, settings, now, survey, questions[state.index :], given)
        return str(hangup(settings))
    if state.index >= len(questions):
        survey_state.finish(survey, now, completed=True)
        return str(hangup(settings))
    step = advance(flow, CHANNEL, state, parse_given(questions[state.index], state, given))
    if step.recorded is not None:
        # Committed with this step: a hang-up right after keeps the answer.
        if step.finished and plain_answer(flow, step.recorded, settings):
            insert_answer(session.connection(), survey.id, step.recorded, now)
        else:
            record_answer(session, survey, step.recorded, settings, now)
    if step.finished:
        # Its score is frozen from the stored answers, this one included (an ORM answer is
        # flushed by the query); the new position goes in the same UPDATE as the end.
        survey_state.finish(survey, now, completed=True)
    survey.state = position(step.state, number)
    link = StepLink(survey.id, number + 1, _question_key(flow, step.state, step.finished))
    return step_twiml(step, flow, survey.language, link, settings)


def _late_comment(
    session: Session,
    settings: Settings,
    now: datetime,
    survey: SurveySession,
    remaining: tuple[Question, ...],
    given: KeyInput,
) -> None:
    """A comment recorded as the caller hung up may reach us after the status callback
    closed the survey; it is still the customer's comment."""
    if (
        survey.status in {SurveyStatus.COMPLETED, SurveyStatus.PARTIAL}
        and remaining
        and remaining[0].type is QuestionType.COMMENT
        and given.recording_url
        and (given.recording_duration or 0) > 0
    ):
        record_answer(
            session,
            survey,
            RecordedAnswer(
                remaining[0].key,
                None,
                recording_url=given.recording_url,
                recording_duration=given.recording_duration,
            ),
            settings,
            now,
        )


def parse_given(question: Question, state: FlowState, given: KeyInput) -> Given:
    """The engine's view of the caller's input to `question`."""
    if question.type is QuestionType.COMMENT and state.pending is None:
        if given.recording_url and (given.recording_duration or 0) > 0:
            return Recorded(given.recording_url, int(given.recording_duration or 0))
        return NoInput()
    return phone_surveys.digits_given(given.digits)


def _question_key(flow: Flow, state: FlowState, finished: bool) -> str | None:
    questions = flow.questions_for(CHANNEL)
    if finished or state.index >= len(questions):
        return None
    return questions[state.index].key
