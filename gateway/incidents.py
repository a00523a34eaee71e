"""Incidents worked as cases: a low overall score opens one; a supervisor assigns it,
comments, resolves it with a cause and a note, reopens or archives it.

This module owns the incident's state machine: every change goes through a function here,
which checks the transition, stamps the first action, and writes an audit event (who, when,
what). An incident is due INCIDENT_DUE_HOURS of business time after it opened (see
gateway.business_calendar) and overdue while it is open past that. Pure domain code: takes a
Session and plain values, imports neither Flask nor Celery.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from gateway.business_calendar import BusinessCalendar
from gateway.config import Settings
from gateway.db import utcnow
from gateway.models import (
    ApiRole,
    AuditEvent,
    Incident,
    IncidentStatus,
    Interaction,
    InteractionChannel,
    Operator,
    SurveySession,
    SurveyStatus,
    Team,
)

# The legacy name of the resolved status: still accepted as a filter (?status=closed).
LEGACY_CLOSED = "closed"
MAX_NOTE = 5000
FOLLOW_UP_ACTOR = "system:re-survey"


class IncidentError(ValueError):
    """The incident cannot change as asked; the message says why."""


def team_of(incident: Incident) -> int | None:
    """The team in charge of an incident: its operator's team at the time of the contact."""
    return incident.session.interaction.team_id


def find_incident(
    session: Session, incident_id: int, team_ids: Collection[int] | None
) -> Incident | None:
    """The incident if it exists and lies in the scope (the ids of the viewer's teams, or
    None for every team)."""
    incident = session.get(Incident, incident_id)
    if incident is None or (team_ids is not None and team_of(incident) not in team_ids):
        return None
    return incident


def may_call_back(role: ApiRole, team_ids: Collection[int] | None, incident: Incident) -> bool:
    """Who sees the customer's number in full, to call back: an admin, or a supervisor of the
    incident's team (one of theirs); anyone else sees it masked."""
    if role is ApiRole.ADMIN:
        return True
    return role is ApiRole.SUPERVISOR and team_ids is not None and team_of(incident) in team_ids


def due_at(opened_at: datetime, settings: Settings) -> datetime:
    """When an incident opened at `opened_at` is due: INCIDENT_DUE_HOURS business hours on."""
    return settings.business_calendar.add(opened_at, settings.incident_due_hours)


def is_overdue(incident: Incident, now: datetime) -> bool:
    return (
        incident.status == IncidentStatus.OPEN
        and incident.due_at is not None
        and incident.due_at <= now
    )


# The columns of a new incident, as `new_incident` gives them.
INCIDENT_COLUMNS = (
    "session_id",
    "operator_id",
    "score",
    "status",
    "opened_at",
    "due_at",
    "reopened_count",
)


def new_incident(
    survey_id: int, operator_id: int | None, score: int, now: datetime, settings: Settings | None
) -> dict[str, Any]:
    """The incident a low score opens: open, for the contact's operator, due by the incident
    calendar. `open_incident` makes it so through the ORM, and the IVR's key press that
    writes it without the ORM by `NEW_INCIDENT`."""
    due = due_at(now, settings) if settings is not None else None
    values = (survey_id, operator_id, score, IncidentStatus.OPEN.value, now, due, 0)
    return dict(zip(INCIDENT_COLUMNS, values, strict=True))


_incidents = cast(Table, Incident.__table__)
# A new incident in one statement (the columns of `new_incident`); one incident per survey,
# as open_incident keeps it: a survey that has one already keeps it.
NEW_INCIDENT = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_incidents)
    .values({name: bindparam(name) for name in INCIDENT_COLUMNS})
    .on_conflict_do_nothing(index_elements=["session_id"])
    for dialect in (postgresql, sqlite)
}


def open_incident(
    session: Session,
    survey: SurveySession,
    score: int,
    now: datetime,
    settings: Settings | None = None,
) -> Incident:
    """An open incident for a low score, one per survey; due by the incident calendar."""
    found = session.scalar(select(Incident).where(Incident.session_id == survey.id))
    if found is not None:
        return found
    if survey.follow_up_of_id is not None:
        # A low score on the re-survey after a fix: the matter is not fixed; the original
        # incident is worked again rather than a second one opened.
        original = session.scalar(
            select(Incident).where(Incident.session_id == survey.follow_up_of_id)
        )
        if original is not None:
            if original.status != IncidentStatus.OPEN and settings is not None:
                reopen_incident(
                    session,
                    original,
                    FOLLOW_UP_ACTOR,
                    f"the re-survey after the fix scored {score}",
                    now,
                    settings,
                )
            return original
    incident = Incident(
        **new_incident(survey.id, survey.interaction.operator_id, score, now, settings)
    )
    session.add(incident)
    return incident


# -- changes --------------------------------------------------------------------------------


def _audit(
    session: Session, incident: Incident, actor: str, action: str, now: datetime, **detail: Any
) -> None:
    if incident.first_action_at is None:
        incident.first_action_at = now
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action=f"incident.{action}",
            subject_type="incident",
            subject_id=str(incident.id),
            detail=detail,
        )
    )


def _must_be_open(incident: Incident, doing: str) -> None:
    if incident.status != IncidentStatus.OPEN:
        raise IncidentError(
            f"incident {incident.id} is {incident.status}: reopen it before you {doing}"
        )


def assign_incident(
    session: Session, incident: Incident, actor: str, assignee: str, now: datetime
) -> Incident:
    """Name the person responsible for an open incident; audited."""
    _must_be_open(incident, "assign it")
    name = assignee.strip()
    if not name:
        raise IncidentError("name the person to assign")
    previous = incident.assignee
    incident.assignee = name[:200]
    _audit(session, incident, actor, "assign", now, assignee=incident.assignee, previous=previous)
    return incident


def comment_incident(
    session: Session, incident: Incident, actor: str, text: str, now: datetime
) -> Incident:
    """Add a comment to the incident's history (any status); audited."""
    note = text.strip()
    if not note:
        raise IncidentError("the comment is empty")
    _audit(session, incident, actor, "comment", now, comment=note[:MAX_NOTE])
    return incident


def resolve_incident(
    session: Session,
    incident: Incident,
    actor: str,
    cause: str | None,
    note: str,
    now: datetime,
    causes: Sequence[str],
) -> Incident:
    """Resolve an open incident with a cause from INCIDENT_CAUSES and a note; audited.

    `cause` may be None only through the legacy close call, which predates causes.
    """
    _must_be_open(incident, "resolve it")
    if cause is not None and cause not in causes:
        raise IncidentError(f"unknown cause {cause!r}; choose one of: {', '.join(causes)}")
    text = note.strip()
    if not text:
        raise IncidentError("say what was done: the resolution note is empty")
    incident.status = IncidentStatus.RESOLVED.value
    incident.cause = cause
    incident.resolution = text[:MAX_NOTE]
    incident.closed_at = now
    incident.closed_by = actor
    _audit(session, incident, actor, "resolve", now, cause=cause, resolution=incident.resolution)
    return incident


def reopen_incident(
    session: Session,
    incident: Incident,
    actor: str,
    reason: str,
    now: datetime,
    settings: Settings,
) -> Incident:
    """Reopen a resolved (or archived) incident; it is due again by the calendar from now."""
    if incident.status == IncidentStatus.OPEN:
        raise IncidentError(f"incident {incident.id} is open already")
    text = reason.strip()
    if not text:
        raise IncidentError("say why it is reopened")
    previous = {"status": incident.status, "cause": incident.cause}
    incident.status = IncidentStatus.OPEN.value
    incident.closed_at = None
    incident.closed_by = None
    incident.archived_at = None
    incident.reopened_count = (incident.reopened_count or 0) + 1
    incident.due_at = due_at(now, settings)
    _audit(session, incident, actor, "reopen", now, reason=text[:MAX_NOTE], previous=previous)
    return incident


def archive_incident(session: Session, incident: Incident, actor: str, now: datetime) -> Incident:
    """Put a resolved incident away: out of the default list, kept with its history."""
    if incident.status != IncidentStatus.RESOLVED:
        raise IncidentError(
            f"incident {incident.id} is {incident.status}: only a resolved incident is archived"
        )
    incident.status = IncidentStatus.ARCHIVED.value
    incident.archived_at = now
    _audit(session, incident, actor, "archive", now)
    return incident


def close_incident(
    session: Session, incident: Incident, actor: str, resolution: str, now: datetime
) -> Incident:
    """The legacy close: resolve without a cause."""
    return resolve_incident(session, incident, actor, None, resolution, now, ())


def history(session: Session, incident: Incident) -> Sequence[AuditEvent]:
    """Every change of the incident, oldest first."""
    return session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "incident", AuditEvent.subject_id == str(incident.id))
        .order_by(AuditEvent.at, AuditEvent.id)
    ).all()


# -- lists ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents to list. `status` None: open and resolved (archived only when asked)."""

    status: str | None = None
    team_ids: frozenset[int] | None = None  # the caller's scope (a supervisor's teams)
    team: str | None = None  # a team chosen by name
    operator_external_id: str | None = None
    channel: InteractionChannel | None = None
    overdue: bool | None = None
    assignee: str | None = None


def _filtered(flt: IncidentFilter, now: datetime) -> Select[Any]:
    query = (
        select(Incident)
        .join(SurveySession, Incident.session_id == SurveySession.id)
        .join(Interaction, SurveySession.interaction_id == Interaction.id)
        .join(Operator, Incident.operator_id == Operator.id, isouter=True)
    )
    status = IncidentStatus.RESOLVED.value if flt.status == LEGACY_CLOSED else flt.status
    if status:
        query = query.where(Incident.status == status)
    else:
        query = query.where(Incident.status != IncidentStatus.ARCHIVED.value)
    if flt.team_ids is not None:
        query = query.where(Interaction.team_id.in_(sorted(flt.team_ids)))
    if flt.team:
        query = query.where(Interaction.team_id.in_(select(Team.id).where(Team.name == flt.team)))
    if flt.operator_external_id:
        query = query.where(Operator.external_id == flt.operator_external_id)
    if flt.channel is not None:
        query = query.where(Interaction.channel == flt.channel)
    if flt.assignee:
        query = query.where(Incident.assignee == flt.assignee)
    overdue = (
        (Incident.status == IncidentStatus.OPEN.value)
        & Incident.due_at.is_not(None)
        & (Incident.due_at <= now)
    )
    if flt.overdue is True:
        query = query.where(overdue)
    elif flt.overdue is False:
        query = query.where(~overdue | Incident.due_at.is_(None))
    return query


def list_incidents(
    session: Session,
    *,
    status: str | None = None,
    team_ids: frozenset[int] | None = None,
    operator_external_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    flt: IncidentFilter | None = None,
    now: datetime | None = None,
) -> Sequence[Incident]:
    """Incidents newest first, by the filter (or the older keyword arguments)."""
    flt = flt or IncidentFilter(
        status=status, team_ids=team_ids, operator_external_id=operator_external_id
    )
    query = _filtered(flt, now or utcnow()).options(
        selectinload(Incident.operator).selectinload(Operator.team),
        selectinload(Incident.session)
        .selectinload(SurveySession.interaction)
        .selectinload(Interaction.customer),
        selectinload(Incident.session)
        .selectinload(SurveySession.interaction)
        .selectinload(Interaction.team),
    )
    return session.scalars(
        query.order_by(Incident.opened_at.desc(), Incident.id.desc()).limit(limit).offset(offset)
    ).all()


def count_incidents(session: Session, flt: IncidentFilter, now: datetime) -> int:
    counted = session.scalar(select(func.count()).select_from(_filtered(flt, now).subquery()))
    return int(counted or 0)


def low_parameters(survey: SurveySession, threshold: int) -> dict[str, int]:
    """The parameters the customer rated at or below the threshold (the frozen 1-5 figures,
    else the raw answers of rating questions)."""
    values = survey.score_parameters or {}
    return {k: int(v) for k, v in values.items() if v is not None and v <= threshold}


def follow_ups_of(session: Session, survey: SurveySession) -> Sequence[SurveySession]:
    return session.scalars(
        select(SurveySession)
        .where(SurveySession.follow_up_of_id == survey.id)
        .order_by(SurveySession.id)
        .options(selectinload(SurveySession.answers))
    ).all()


# -- times per team -------------------------------------------------------------------------


@dataclass
class Durations:
    """Business hours from opening to an event, over the incidents that reached it."""

    values: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        if not self.values:
            return {"n": 0, "mean_hours": None, "median_hours": None}
        return {
            "n": len(self.values),
            "mean_hours": round(statistics.fmean(self.values), 2),
            "median_hours": round(statistics.median(self.values), 2),
        }


@dataclass
class TeamFigures:
    team: str | None
    opened: int = 0
    open: int = 0
    overdue: int = 0
    resolved: int = 0
    reopened: int = 0
    first_action: Durations = field(default_factory=Durations)
    resolution: Durations = field(default_factory=Durations)
    causes: dict[str, int] = field(default_factory=dict)
    follow_ups_sent: int = 0
    follow_ups_answered: int = 0
    follow_up_overall: list[int] = field(default_factory=list)
    original_overall: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def mean(values: list[int]) -> float | None:
            return round(statistics.fmean(values), 2) if values else None

        return {
            "team": self.team,
            "opened": self.opened,
            "open": self.open,
            "overdue": self.overdue,
            "resolved": self.resolved,
            "reopened": self.reopened,
            "time_to_first_action": self.first_action.figures(),
            "time_to_resolution": self.resolution.figures(),
            "causes": dict(sorted(self.causes.items())),
            "follow_ups": {
                "sent": self.follow_ups_sent,
                "answered": self.follow_ups_answered,
                "overall_mean": mean(self.follow_up_overall),
                "original_overall_mean": mean(self.original_overall),
            },
        }


def _hours(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    return calendar.between(start, end) / timedelta(hours=1)


_SENT = (
    SurveyStatus.ACTIVE,
    SurveyStatus.COMPLETED,
    SurveyStatus.PARTIAL,
    SurveyStatus.EXPIRED,
    SurveyStatus.NOT_REACHED,
)


def team_report(
    session: Session,
    starts_at: datetime,
    ends_before: datetime,
    settings: Settings,
    now: datetime,
    team_ids: frozenset[int] | None = None,
) -> list[dict[str, Any]]:
    """Per team, the incidents opened in the period: how many, how many still open or overdue,
    business hours to the first action and to resolution, causes, and the re-surveys sent
    after a fix with their overall score beside the original one."""
    calendar = settings.business_calendar
    query = (
        select(Incident, Interaction.team_id, Team.name)
        .join(SurveySession, Incident.session_id == SurveySession.id)
        .join(Interaction, SurveySession.interaction_id == Interaction.id)
        .join(Team, Interaction.team_id == Team.id, isouter=True)
        .where(Incident.opened_at >= starts_at, Incident.opened_at < ends_before)
    )
    if team_ids is not None:
        query = query.where(Interaction.team_id.in_(sorted(team_ids)))
    teams: dict[int | None, TeamFigures] = {}
    incidents: dict[int, tuple[Incident, TeamFigures]] = {}
    for incident, row_team_id, team_name in session.execute(query):
        figures = teams.setdefault(row_team_id, TeamFigures(team_name))
        incidents[incident.session_id] = (incident, figures)
        figures.opened += 1
        figures.reopened += 1 if incident.reopened_count else 0
        if incident.status == IncidentStatus.OPEN:
            figures.open += 1
            figures.overdue += 1 if is_overdue(incident, now) else 0
        else:
            figures.resolved += 1
            if incident.closed_at is not None:
                figures.resolution.values.append(
                    _hours(calendar, incident.opened_at, incident.closed_at)
                )
            cause = incident.cause or "unspecified"
            figures.causes[cause] = figures.causes.get(cause, 0) + 1
        if incident.first_action_at is not None:
            figures.first_action.values.append(
                _hours(calendar, incident.opened_at, incident.first_action_at)
            )
    if incidents:
        follow_ups = session.scalars(
            select(SurveySession).where(SurveySession.follow_up_of_id.in_(list(incidents)))
        )
        for follow_up in follow_ups:
            incident, figures = incidents[follow_up.follow_up_of_id]  # type: ignore[index]
            if follow_up.status in _SENT:
                figures.follow_ups_sent += 1
            if follow_up.score_overall is not None:
                figures.follow_ups_answered += 1
                figures.follow_up_overall.append(follow_up.score_overall)
                figures.original_overall.append(incident.score)
    return [
        f.as_dict()
        for _, f in sorted(teams.items(), key=lambda item: (item[1].team is None, item[1].team))
    ]
