"""Incidents: a low overall score asks a responsible person to act and close it.

Opened by gateway.surveys.record_answer; listed and closed here. Pure domain code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.models import AuditEvent, Incident, Interaction, Operator, SurveySession


class IncidentError(ValueError):
    """The incident cannot change as asked; the message says why."""


def team_of(incident: Incident) -> int | None:
    """The team in charge of an incident: its operator's team at the time of the contact."""
    return incident.session.interaction.team_id


def list_incidents(
    session: Session,
    *,
    status: str | None = None,
    team_id: int | None = None,
    operator_external_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Incident]:
    """Incidents newest first, optionally by status, team (the operator's team at the time of
    the contact) and operator."""
    query = select(Incident).join(Incident.operator, isouter=True)
    if status:
        query = query.where(Incident.status == status)
    if team_id is not None:
        query = query.where(
            Incident.session_id.in_(
                select(SurveySession.id)
                .join(SurveySession.interaction)
                .where(Interaction.team_id == team_id)
            )
        )
    if operator_external_id:
        query = query.where(Operator.external_id == operator_external_id)
    query = query.options(
        selectinload(Incident.operator).selectinload(Operator.team),
        selectinload(Incident.session)
        .selectinload(SurveySession.interaction)
        .selectinload(Interaction.customer),
    )
    return session.scalars(
        query.order_by(Incident.opened_at.desc(), Incident.id.desc()).limit(limit).offset(offset)
    ).all()


def close_incident(
    session: Session, incident: Incident, actor: str, resolution: str, now: datetime
) -> Incident:
    """Close an open incident with what was done about it; audited."""
    if incident.status == "closed":
        raise IncidentError(f"incident {incident.id} was closed already")
    if not resolution.strip():
        raise IncidentError("say what was done: the resolution is empty")
    incident.status = "closed"
    incident.closed_at = now
    incident.closed_by = actor
    incident.resolution = resolution.strip()
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action="incident.close",
            subject_type="incident",
            subject_id=str(incident.id),
            detail={"resolution": incident.resolution},
        )
    )
    return incident


def assign_incident(
    session: Session, incident: Incident, actor: str, assignee: str, now: datetime
) -> Incident:
    """Name the person responsible for an open incident; audited."""
    if incident.status == "closed":
        raise IncidentError(f"incident {incident.id} is closed")
    incident.assignee = assignee.strip()
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action="incident.assign",
            subject_type="incident",
            subject_id=str(incident.id),
            detail={"assignee": incident.assignee},
        )
    )
    return incident
