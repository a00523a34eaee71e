"""Recording interactions reported by other systems, idempotently, and scheduling their surveys.

Pure domain code: takes a Session and plain values, imports neither Flask nor Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.models import (
    AuditEvent,
    Customer,
    Interaction,
    InteractionChannel,
    Operator,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    Team,
)
from gateway.phones import normalize_phone
from gateway.survey_links import new_token

T = TypeVar("T")
logger = logging.getLogger(__name__)

DEFAULT_FLOW = "post_call"


@dataclass(frozen=True)
class OperatorInput:
    external_id: str
    name: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class CustomerInput:
    phone: str | None = None
    external_id: str | None = None
    name: str | None = None
    language: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class InteractionInput:
    external_id: str
    channel: InteractionChannel
    ended_at: datetime
    operator: OperatorInput | None = None
    customer: CustomerInput | None = None
    office: str | None = None
    # "sms", "ivr_callback", "web", "email", "none"; None: the channel's default
    survey: str | None = None
    disposition: str | None = None
    flow: str | None = None


def get_or_create(session: Session, find: Callable[[], T | None], make: Callable[[], T]) -> T:
    """Find a row or insert it; a concurrent insert of the same unique key is found instead."""
    found = find()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = make()
            session.add(row)
        return row
    except IntegrityError:
        found = find()
        if found is None:
            raise
        return found


def upsert_operator(session: Session, given: OperatorInput) -> Operator:
    """The operator with this external id, created or with its name brought up to date.

    A reported team places a new operator, or one without a team; it never moves an operator
    out of the team it is in: that changes which supervisor sees whose history, so it is an
    admin's audited act (`move_operator`), not a side effect of any integration's report.
    """
    team = None
    if given.team:
        team = get_or_create(
            session,
            lambda: session.scalar(select(Team).where(Team.name == given.team)),
            lambda: Team(name=given.team),
        )
    operator = get_or_create(
        session,
        lambda: session.scalar(select(Operator).where(Operator.external_id == given.external_id)),
        lambda: Operator(external_id=given.external_id, name=given.name, team=team),
    )
    if given.name and operator.name != given.name:
        operator.name = given.name
    if team is not None and operator.team_id is None:
        operator.team = team
    elif team is not None and operator.team_id != team.id:
        logger.warning(
            "operator %s reported in team %r but is in another; not moved (an admin moves "
            "operators: PUT /api/v1/operators/<external_id>/team)",
            operator.external_id,
            given.team,
        )
    return operator


def move_operator(
    session: Session, operator: Operator, team: Team | None, actor: str, now: datetime
) -> bool:
    """Move an operator to another team (None: no team), audited: who, when, from, to.
    False when the operator already is in that team."""
    old = operator.team
    if (old.id if old else None) == (team.id if team else None):
        return False
    operator.team = team
    session.add(
        AuditEvent(
            at=now,
            actor=actor[:200],
            action="operator.team_move",
            subject_type="operator",
            subject_id=operator.external_id,
            detail={"from": old.name if old else None, "to": team.name if team else None},
        )
    )
    return True


def assign_operator(interaction: Interaction, operator: Operator) -> None:
    """The contact's operator, and the team that operator is in now, kept with the contact."""
    interaction.operator = operator
    interaction.team = operator.team


def upsert_customer(session: Session, given: CustomerInput, settings: Settings) -> Customer:
    """The customer by external id, else by phone; new details fill in, never erase."""
    phone = normalize_phone(given.phone, settings.default_region) if given.phone else None

    def find() -> Customer | None:
        if given.external_id:
            return session.scalar(select(Customer).where(Customer.external_id == given.external_id))
        if phone:
            return session.scalar(
                select(Customer).where(Customer.phone == phone).order_by(Customer.id).limit(1)
            )
        return None

    customer = get_or_create(
        session,
        find,
        lambda: Customer(
            external_id=given.external_id,
            phone=phone,
            name=given.name,
            language=given.language,
            email=given.email,
        ),
    )
    fill_in_customer(customer, given, phone)
    return customer


class CustomerDetails(Protocol):
    """What a customer's record says of them: a stored customer, or one a batch is writing."""

    phone: str | None
    name: str | None
    language: str | None
    email: str | None


def fill_in_customer(customer: CustomerDetails, given: CustomerInput, phone: str | None) -> None:
    """The details given fill in the customer's, never erase them; a new number replaces the
    old one (`phone`: the given one in E.164)."""
    if phone and customer.phone != phone:
        customer.phone = phone
    if given.name:
        customer.name = given.name
    if given.language:
        customer.language = given.language
    if given.email:
        customer.email = given.email


def find_interaction(
    session: Session, channel: InteractionChannel, external_id: str
) -> Interaction | None:
    return session.scalar(
        select(Interaction).where(
            Interaction.channel == channel, Interaction.external_id == external_id
        )
    )


@dataclass(frozen=True)
class Difference:
    """A field of a re-posted interaction that differs from what was recorded."""

    field: str
    recorded: str | None
    given: str | None


# How far ahead of the gateway's clock a reported end may be: the reporting system's clock
# may run a little fast; a contact further in the future has not ended.
ENDED_AT_MAX_SKEW = timedelta(minutes=5)


class EndedInFuture(ValueError):
    """An interaction reported to have ended later than now (beyond the clock skew allowed)."""

    def __init__(self, given: InteractionInput, now: datetime) -> None:
        self.external_id = given.external_id
        super().__init__(
            f"{given.channel.value} {given.external_id!r} ended at "
            f"{given.ended_at.isoformat()}, which is in the future: report a contact once it "
            f"has ended (clocks may differ by up to {ENDED_AT_MAX_SKEW.seconds // 60} minutes)"
        )


def check_ended(given: InteractionInput, now: datetime) -> None:
    """Raise EndedInFuture if `given` ends after `now` plus the clock skew allowed."""
    if given.ended_at > now + ENDED_AT_MAX_SKEW:
        raise EndedInFuture(given, now)


class InteractionConflict(Exception):
    """The same channel + external id posted again with other contact data."""

    def __init__(self, interaction: Interaction, differences: list[Difference]) -> None:
        self.interaction_id = interaction.id
        self.differences = differences
        listed = "; ".join(
            f"{d.field}: {d.recorded!r} recorded, {d.given!r} given" for d in differences
        )
        super().__init__(
            f"{interaction.channel.value} {interaction.external_id!r} was recorded with other "
            f"data ({listed}); post a new external_id for another contact"
        )


def differences(
    recorded: Interaction, given: InteractionInput, settings: Settings
) -> list[Difference]:
    """What a re-post says otherwise than the recorded interaction.

    Only what identifies the contact counts: the operator's and the customer's names, team and
    language are details of people, which any later post may bring up to date. The customer is
    compared by external id when one is given, else by phone; an office or disposition left
    out is not a change.
    """

    def text(value: object) -> str | None:
        if value is None:
            return None
        return value.isoformat() if isinstance(value, datetime) else str(value)

    survey = recorded.survey
    if survey is not None and survey.kind is SurveyKind.POST_CALL:
        survey = None  # the hand-over's, not the report's: a report cannot ask for it
    pairs: list[tuple[str, object, object]] = [
        ("ended_at", recorded.ended_at, given.ended_at),
        *(
            (name, was, said)
            for name, was, said in (
                ("office", recorded.office, given.office),
                ("disposition", recorded.disposition, given.disposition),
            )
            if said is not None  # left out of a re-post: not said again, not a change
        ),
        (
            "operator.external_id",
            recorded.operator and recorded.operator.external_id,
            given.operator and given.operator.external_id,
        ),
        ("survey", survey and survey.kind.value, _survey_choice(given)),
    ]
    if survey is not None:
        pairs.append(("flow", survey.flow, given.flow or DEFAULT_FLOW))
    customer, wanted = recorded.customer, given.customer
    if wanted is not None and wanted.external_id:
        pairs.append(
            ("customer.external_id", customer and customer.external_id, wanted.external_id)
        )
    elif wanted is not None and wanted.phone:
        phone = normalize_phone(wanted.phone, settings.default_region)
        pairs.append(("customer.phone", customer and customer.phone, phone))
    # Datetimes compare as instants, whatever offset each is written with.
    return [Difference(name, text(was), text(now)) for name, was, now in pairs if was != now]


def record_interaction(
    session: Session,
    given: InteractionInput,
    settings: Settings,
    now: datetime,
) -> tuple[Interaction, bool]:
    """Store an interaction and schedule its survey; the same channel + external id again
    returns the stored one and `created` False, and schedules nothing.

    Raises InvalidPhoneNumber or EndedInFuture before anything is written.
    """
    check_ended(given, now)
    if given.customer and given.customer.phone:
        normalize_phone(given.customer.phone, settings.default_region)  # fail before writing

    existing = find_interaction(session, given.channel, given.external_id)
    if existing is not None:
        return existing, False
    try:
        # Claim the unique (channel, external_id) first: a concurrent identical request
        # waits here and then finds this row, before it creates anything of its own.
        with session.begin_nested():
            interaction = Interaction(
                channel=given.channel,
                external_id=given.external_id,
                ended_at=given.ended_at,
                office=given.office,
                disposition=given.disposition,
            )
            session.add(interaction)
            session.flush()
    except IntegrityError:
        existing = find_interaction(session, given.channel, given.external_id)
        if existing is None:
            raise
        return existing, False

    if given.operator:
        assign_operator(interaction, upsert_operator(session, given.operator))
    if given.customer:
        interaction.customer = upsert_customer(session, given.customer, settings)
    survey = plan_survey(interaction, given, settings, now)
    if survey is not None:
        session.add(survey)
    session.flush()
    return interaction, True


def report_interaction(
    session: Session,
    given: InteractionInput,
    settings: Settings,
    now: datetime,
) -> tuple[Interaction, bool]:
    """An interaction as the integration API reports it: recorded once, then idempotent.

    The same channel + external id again returns the recorded one (`created` False) if it
    says the same; with other contact data it raises InteractionConflict, as an idempotency
    key reused for another request does. A call the IVR hand-over recorded first is not
    compared: the report is its first account of the contact.
    """
    interaction, created = record_interaction(session, given, settings, now)
    if interaction.reported_at is None:
        if not created:
            _complete(session, interaction, given, settings)
        interaction.reported_at = now
    elif not created:
        found = differences(interaction, given, settings)
        if found:
            raise InteractionConflict(interaction, found)
    return interaction, created


def _complete(
    session: Session,
    interaction: Interaction,
    given: InteractionInput,
    settings: Settings,
) -> None:
    """The report of a call the IVR hand-over recorded first: what it says of the contact
    replaces what the hand-over knew (its own clock, the URL's operator, the caller's number).
    The hand-over's survey stays the interaction's one survey."""
    interaction.ended_at = given.ended_at
    if given.office is not None:
        interaction.office = given.office
    if given.disposition is not None:
        interaction.disposition = given.disposition
    if given.operator is not None:
        assign_operator(interaction, upsert_operator(session, given.operator))
    if given.customer is not None:
        interaction.customer = upsert_customer(session, given.customer, settings)


def _survey_choice(given: InteractionInput) -> str | None:
    kind = survey_kind_for(given)
    return kind.value if kind is not None else None


def survey_kind_for(given: InteractionInput) -> SurveyKind | None:
    choice = given.survey
    if choice is None:
        choice = "sms" if given.channel is InteractionChannel.OFFICE_VISIT else "none"
    return {
        "sms": SurveyKind.SMS,
        "ivr_callback": SurveyKind.IVR_CALLBACK,
        "web": SurveyKind.WEB,
        "email": SurveyKind.EMAIL,
    }.get(choice)


def plan_survey(
    interaction: Interaction, given: InteractionInput, settings: Settings, now: datetime
) -> SurveySession | None:
    """The survey session an interaction asks for (`new_survey`), attached to it."""
    customer = interaction.customer
    survey = new_survey(
        given,
        interaction.ended_at,
        settings,
        now,
        phone=customer.phone if customer else None,
        email=customer.email if customer else None,
        language=customer.language if customer else None,
    )
    if survey is not None:
        survey.interaction = interaction
        survey.customer = customer
        survey.answers = []  # none yet: known, so the answer to the API reads no table for them
    return survey


def new_survey(
    given: InteractionInput,
    ended_at: datetime,
    settings: Settings,
    now: datetime,
    *,
    phone: str | None,
    email: str | None,
    language: str | None,
) -> SurveySession | None:
    """The survey an interaction asks for, given its customer's phone, email and language,
    scheduled at its due time (not sent without an address for it); None: no survey. Not yet
    attached to the interaction: a large batch writes its columns without the ORM
    (gateway.intake).

    Whether it may really be sent (opt-out, quiet hours, cooldown...) is decided when it
    falls due, on what is true then.
    """
    kind = survey_kind_for(given)
    if kind is None:
        return None
    flow = given.flow or DEFAULT_FLOW
    language = language or settings.default_language
    if kind is SurveyKind.WEB:
        return _web_survey(flow, language, settings, now)
    if kind is SurveyKind.SMS:
        channel, delay = SurveyChannel.SMS, settings.sms_survey_delay_minutes
    elif kind is SurveyKind.EMAIL:
        channel, delay = SurveyChannel.EMAIL, settings.sms_survey_delay_minutes
    else:
        channel, delay = SurveyChannel.IVR, settings.ivr_callback_delay_minutes
    survey = SurveySession(channel=channel, kind=kind, flow=flow, language=language, attempts=0)
    survey_state.schedule(survey, ended_at + timedelta(minutes=delay))
    if kind is SurveyKind.EMAIL:
        survey.link_token = new_token()
        if not email:
            _not_sent(survey, "no email address for the customer", now)
    elif not phone:
        _not_sent(survey, "no phone number for the customer", now)
    return survey


def _not_sent(survey: SurveySession, reason: str, now: datetime) -> None:
    survey_state.exclude(survey, now, reason)
    survey.due_at = None


def _web_survey(flow: str, language: str, settings: Settings, now: datetime) -> SurveySession:
    """A web survey is open at once: its link goes back in the API's answer, for the caller to
    show (a personal account, a messenger bot, a receipt). No delay, no quiet hours: the
    customer opens it when they choose. It expires WEB_SURVEY_EXPIRY_DAYS later."""
    survey = SurveySession(
        channel=SurveyChannel.WEB,
        kind=SurveyKind.WEB,
        flow=flow,
        language=language,
        link_token=new_token(),
        attempts=0,
    )
    survey_state.open_link(survey, now + timedelta(days=settings.web_survey_expiry_days))
    return survey
