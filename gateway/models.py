"""The gateway's tables. Raw answers are the source of truth; every figure derives from them.

Schema changes go through Alembic (`gateway/migrations`); a test keeps models and
migrations in step.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import Base, utcnow


class StrEnum(enum.StrEnum):
    def __str__(self) -> str:
        return self.value


class InteractionChannel(StrEnum):
    CALL = "call"
    OFFICE_VISIT = "office_visit"
    REQUEST = "request"


class SurveyChannel(StrEnum):
    IVR = "ivr"
    SMS = "sms"
    WEB = "web"  # a link to the web survey page, shown by whoever holds it
    EMAIL = "email"  # the web survey's link sent by email


class SurveyKind(StrEnum):
    """How the survey reaches the customer."""

    POST_CALL = "post_call"  # caller handed to the IVR on the same call
    IVR_CALLBACK = "ivr_callback"  # outbound call placed later
    SMS = "sms"
    WEB = "web"  # a link handed back to the caller of the API (personal account, receipt)
    EMAIL = "email"  # an invitation email with the link and one-tap buttons


class SurveyStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for due_at
    SENDING = "sending"  # claimed by a dispatcher; lease in claimed_until
    ACTIVE = "active"  # first question delivered, answers may arrive
    COMPLETED = "completed"  # every question passed (answered or skipped)
    PARTIAL = "partial"  # ended early with at least one answer
    EXPIRED = "expired"  # ended with no answer at all
    NOT_SENT = "not_sent"  # a rule stopped it; see not_sent_reason
    NOT_REACHED = "not_reached"  # call attempts exhausted: no answer, busy, machine
    FAILED = "failed"  # the provider refused it permanently; see not_sent_reason

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        SurveyStatus.COMPLETED,
        SurveyStatus.PARTIAL,
        SurveyStatus.EXPIRED,
        SurveyStatus.NOT_SENT,
        SurveyStatus.NOT_REACHED,
        SurveyStatus.FAILED,
    }
)


class ApiRole(StrEnum):
    """What a key or an account may see and do (gateway.access holds the rule)."""

    INTEGRATION = "integration"  # a system: reports contacts, reads their scores
    OPERATOR = "operator"  # a person: their own figures and answers, no customer's number
    SUPERVISOR = "supervisor"  # a person: the figures and incidents of their teams
    ADMIN = "admin"  # everything


def _enum_column(enum_type: type[enum.Enum], name: str) -> Any:
    from sqlalchemy import Enum

    return Enum(
        enum_type,
        name=name,
        native_enum=False,
        validate_strings=True,
        length=20,
        values_callable=lambda members: [member.value for member in members],
    )


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    operators: Mapped[list[Operator]] = relationship(back_populates="team")


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    team: Mapped[Team | None] = relationship(back_populates="operators")


class Customer(Base):
    """A person surveyed. Opt-out belongs to the phone number it came from."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(5))
    email: Mapped[str | None] = mapped_column(String(320))
    opted_out_at: Mapped[datetime | None]
    opt_out_source: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Personal data erased on request or expired (gateway.privacy); the row stays, anonymous.
    erased_at: Mapped[datetime | None]


class Interaction(Base):
    """One contact with a customer: a call, an office visit, a request."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_interactions_operator_ended", "operator_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[InteractionChannel] = mapped_column(
        _enum_column(InteractionChannel, "interaction_channel")
    )
    external_id: Mapped[str] = mapped_column(String(200))
    ended_at: Mapped[datetime] = mapped_column(index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    # The operator's team when the contact happened: reports and scopes go by it, so moving
    # an operator to another team leaves their earlier contacts with the old one.
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    office: Mapped[str | None] = mapped_column(String(100), index=True)
    # How the contact ended as the PBX reports it (e.g. transferred, operator_hangup),
    # so the survey funnel can show calls that never reached the survey.
    disposition: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the integration API reported it; None while only the IVR hand-over has seen it
    # (a re-post is compared with what was reported, never with what the hand-over guessed).
    reported_at: Mapped[datetime | None] = mapped_column(default=None)
    # The contact's personal data (texts, recordings) was removed: retention or erasure.
    anonymized_at: Mapped[datetime | None]

    operator: Mapped[Operator | None] = relationship()
    team: Mapped[Team | None] = relationship()
    customer: Mapped[Customer | None] = relationship()
    # The contact's original survey; follow-ups are SurveySession rows with follow_up_of_id.
    survey: Mapped[SurveySession | None] = relationship(
        back_populates="interaction",
        primaryjoin="and_(Interaction.id == SurveySession.interaction_id, "
        "SurveySession.follow_up_of_id.is_(None))",
    )


class SurveySession(Base):
    """The survey of one interaction: its schedule, delivery and conversation state.

    `state` holds the flow position only (see ivr_flows.engine.FlowState); it is keyed
    by the session, found by CallSid or by the customer's phone, never kept in memory.
    """

    __tablename__ = "survey_sessions"
    __table_args__ = (
        Index("ix_survey_sessions_due", "status", "due_at"),
        Index("ix_survey_sessions_customer_started", "customer_id", "started_at"),
        # One original survey per contact; follow-ups (re-surveys after a fix) come beside it.
        Index(
            "uq_survey_sessions_original",
            "interaction_id",
            unique=True,
            postgresql_where=text("follow_up_of_id IS NULL"),
            sqlite_where=text("follow_up_of_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"), index=True)
    # A re-survey after the matter was fixed: the survey it follows up. It counts as a
    # follow-up of that contact, never as a new contact of the operator (docs/metrics.md).
    follow_up_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("survey_sessions.id"), index=True
    )
    requested_by: Mapped[str | None] = mapped_column(String(200))  # who asked for a follow-up
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[SurveyChannel] = mapped_column(_enum_column(SurveyChannel, "survey_channel"))
    kind: Mapped[SurveyKind] = mapped_column(_enum_column(SurveyKind, "survey_kind"))
    flow: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(5))
    status: Mapped[SurveyStatus] = mapped_column(
        _enum_column(SurveyStatus, "survey_status"), default=SurveyStatus.SCHEDULED
    )
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    due_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)  # CallSid
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    not_sent_reason: Mapped[str | None] = mapped_column(String(200))
    # The web survey's link: /r/<link_token>. Random, unguessable, good for this survey only.
    link_token: Mapped[str | None] = mapped_column(String(40), unique=True)
    # A supervisor may exclude a rating (an appeal upheld): kept, shown, never counted.
    excluded_at: Mapped[datetime | None]
    excluded_by: Mapped[str | None] = mapped_column(String(200))
    exclusion_reason: Mapped[str | None] = mapped_column(Text)
    # The score frozen when the survey ended (gateway.reports.scoring): what the reports
    # count, so a later change of the flow's weights, or its removal, changes no past figure.
    scored_at: Mapped[datetime | None]
    score_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the weights used
    score_answered: Mapped[bool | None]  # any question answered (the funnel's "started")
    score_overall: Mapped[int | None] = mapped_column(Integer)
    score_parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # key -> 1..5
    score_csi: Mapped[float | None] = mapped_column(Float)  # every parameter
    score_csi_operator: Mapped[float | None] = mapped_column(Float)  # operator-controlled ones
    score_nps: Mapped[int | None] = mapped_column(Integer)
    score_nps_class: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    interaction: Mapped[Interaction] = relationship(back_populates="survey")
    customer: Mapped[Customer | None] = relationship()
    answers: Mapped[list[Answer]] = relationship(
        back_populates="session", order_by="Answer.id", cascade="all, delete-orphan"
    )
    attempt_log: Mapped[list[SurveyAttempt]] = relationship(
        back_populates="session", order_by="SurveyAttempt.number", cascade="all, delete-orphan"
    )


class SurveyAttempt(Base):
    """One try at reaching the customer: an outbound call or a survey's first SMS."""

    __tablename__ = "survey_attempts"
    __table_args__ = (UniqueConstraint("session_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("survey_sessions.id"))
    number: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(30))  # completed, busy, machine, ...
    error_code: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]

    session: Mapped[SurveySession] = relationship(back_populates="attempt_log")


class Answer(Base):
    """One question's answer in one session; `value` is None where it was skipped."""

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("session_id", "question_key"),
        CheckConstraint("value IS NULL OR (value >= 0 AND value <= 10)", name="value_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("survey_sessions.id"))
    question_key: Mapped[str] = mapped_column(String(50))
    value: Mapped[int | None] = mapped_column(Integer)
    raw_input: Mapped[str | None] = mapped_column(String(500))
    recording_url: Mapped[str | None] = mapped_column(String(500))
    recording_duration: Mapped[int | None] = mapped_column(Integer)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    session: Mapped[SurveySession] = relationship(back_populates="answers")


class Message(Base):
    """An SMS in or out; inbound webhooks are deduplicated on the provider's MessageSid."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("survey_sessions.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    direction: Mapped[str] = mapped_column(String(10))  # inbound, outbound
    phone: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookReceipt(Base):
    """A webhook already handled, with the answer it got, so a retry gets the same one."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("provider_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))  # CallSid or MessageSid
    step: Mapped[str] = mapped_column(String(100))
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentStatus(StrEnum):
    OPEN = "open"  # to be handled (assigned or not)
    RESOLVED = "resolved"  # handled: a cause and a note; may be reopened
    ARCHIVED = "archived"  # resolved and put away; out of the default list


class Incident(Base):
    """A low score, worked as a case by a responsible person (gateway.incidents)."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("survey_sessions.id"), unique=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    assignee: Mapped[str | None] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Due in business hours of the incident calendar (INCIDENT_DUE_HOURS, BUSINESS_HOURS...).
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    # The first thing anyone did about it (assign, comment, resolve): time to first action.
    first_action_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  # resolved at
    closed_by: Mapped[str | None] = mapped_column(String(200))
    cause: Mapped[str | None] = mapped_column(String(50))  # one of INCIDENT_CAUSES
    resolution: Mapped[str | None] = mapped_column(Text)  # the resolution note
    archived_at: Mapped[datetime | None]
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)

    session: Mapped[SurveySession] = relationship()
    operator: Mapped[Operator | None] = relationship()


class IncidentAlert(Base):
    """An email about an incident to its supervisor: one row per incident, kind (opened,
    overdue) and opening (0, then one more for each reopening), written and committed before
    the mail is sent, so it goes at most once."""

    __tablename__ = "incident_alerts"
    __table_args__ = (UniqueConstraint("incident_id", "kind", "opening"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(20))  # opened, overdue
    # The incident's reopened_count when the alert was due: a reopened incident that runs
    # late is told of again.
    opening: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recipients: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))  # sent, failed, no_recipient
    detail: Mapped[str | None] = mapped_column(String(500))


class ApiKey(Base):
    """An API key; only its SHA-256 is stored, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[ApiRole] = mapped_column(_enum_column(ApiRole, "api_role"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))  # operator role
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: until revoked
    last_used_at: Mapped[datetime | None]  # to the minute or so (see gateway.apikeys)

    team: Mapped[Team | None] = relationship()
    operator: Mapped[Operator | None] = relationship()


account_teams = Table(
    "account_teams",
    Base.metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("team_id", ForeignKey("teams.id"), primary_key=True),
)


class Account(Base):
    """A person who signs in to the dashboard (gateway.accounts): a supervisor of some teams,
    an operator bound to their operator record, or an admin. Only an Argon2id hash of the
    password is stored; failed sign-ins lock the account for a while (`locked_until`)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[ApiRole] = mapped_column(_enum_column(ApiRole, "account_role"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)  # since the last success
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]

    teams: Mapped[list[Team]] = relationship(secondary=account_teams, order_by="Team.name")
    operator: Mapped[Operator | None] = relationship()


class DashboardSession(Base):
    """A signed-in browser (gateway.sessions): the cookie's token, hashed; ended on sign-out."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Sessions of the key-based sign-in of earlier releases; new ones belong to an account.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class AuthFailure(Base):
    """Failed authentications of one client address or key prefix in the current window
    (gateway.throttle)."""

    __tablename__ = "auth_failures"

    scope: Mapped[str] = mapped_column(String(20), primary_key=True)  # client, prefix
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[datetime]
    failures: Mapped[int] = mapped_column(Integer)


class ConsentEvent(Base):
    """One change of a customer's consent to be surveyed on a channel (or on all of them)."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # sms, ivr, all
    state: Mapped[str] = mapped_column(String(10))  # opted_in, opted_out
    source: Mapped[str] = mapped_column(String(100))  # e.g. sms:STOP, twilio:21610, api
    reference: Mapped[str | None] = mapped_column(String(200))  # the request: a MessageSid...
    at: Mapped[datetime] = mapped_column(default=utcnow)


class VoiceRecording(Base):
    """A caller's voice comment recorded by the gateway itself (the SIP channel), as 8 kHz
    mono WAV: kept in the database, so any web worker can play it and erasing the customer
    deletes it (gateway.privacy). An answer names it as `recording:<id>`."""

    __tablename__ = "voice_recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("survey_sessions.id"), index=True)
    question_key: Mapped[str] = mapped_column(String(50))
    audio: Mapped[bytes] = mapped_column(LargeBinary)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecordingDeletion(Base):
    """A recording to delete at the provider after its contact was erased or expired."""

    __tablename__ = "recording_deletions"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class AuditEvent(Base):
    """Who did what to which record: exclusions, incident closures, opt-outs, keys."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RateLimitSlot(Base):
    """The next free send time of one sender, shared by every worker through the database."""

    __tablename__ = "rate_limit_slots"

    sender: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_free_at: Mapped[datetime]


class ProviderCircuit(Base):
    """Whether a provider is paused after an account-level refusal (gateway.circuit); one row
    per provider, shared by every worker through the database."""

    __tablename__ = "provider_circuits"

    provider: Mapped[str] = mapped_column(String(50), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), default="closed")  # closed, open
    opened_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(20))
    refusals: Mapped[int] = mapped_column(Integer, default=0)
    next_probe_at: Mapped[datetime | None]
    probe_session_id: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# The reports' rollup lives with its domain; imported here so the metadata (and Alembic) has it.
from gateway.reports.models import (  # noqa: E402, F401
    RollupState,
    ScoreBucket,
    ScoreBucketDisposition,
    ScoreBucketParameter,
    ScoreMonth,
    ScoreMonthDisposition,
    ScoreMonthParameter,
)
from gateway.webhooks.models import (  # noqa: E402, F401
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
