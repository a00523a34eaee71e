"""Incidents opened by low scores: listed for supervisors, assigned and closed with a resolution."""

from __future__ import annotations

from typing import Any, cast

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from gateway.api.auth import allow, audit_number_reads, authenticate_request, current_key
from gateway.api.schemas import UtcDateTime
from gateway.apikeys import team_scope
from gateway.db import current_session, utcnow
from gateway.incidents import (
    IncidentError,
    assign_incident,
    close_incident,
    list_incidents,
    team_of,
)
from gateway.models import ApiRole, Incident

bp = Blueprint(
    "incidents",
    __name__,
    url_prefix="/api/v1/incidents",
    description="Low scores that a responsible person must handle and close",
)
bp.before_request(authenticate_request)


class IncidentSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    score = fields.Integer()
    opened_at = UtcDateTime()
    assignee = fields.String(allow_none=True)
    closed_at = UtcDateTime(allow_none=True)
    closed_by = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)
    interaction_id = fields.Integer()
    operator = fields.Dict(allow_none=True)
    customer_phone = fields.String(allow_none=True)


class IncidentQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(["open", "closed"]))
    operator = fields.String(
        validate=validate.Length(1, 200), metadata={"description": "operator's external id"}
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10_000_000))


class CloseSchema(Schema):
    resolution = fields.String(required=True, validate=validate.Length(1, 5000))


class AssignSchema(Schema):
    assignee = fields.String(required=True, validate=validate.Length(1, 200))


def _actor() -> str:
    key = current_key()
    return f"{key.role.value}:{key.name}"


def to_resource(incident: Incident) -> dict[str, Any]:
    operator = incident.operator
    customer = incident.session.interaction.customer
    return {
        "id": incident.id,
        "status": incident.status,
        "score": incident.score,
        "opened_at": incident.opened_at,
        "assignee": incident.assignee,
        "closed_at": incident.closed_at,
        "closed_by": incident.closed_by,
        "resolution": incident.resolution,
        "interaction_id": incident.session.interaction_id,
        "operator": operator
        and {
            "external_id": operator.external_id,
            "name": operator.name,
            "team": operator.team.name if operator.team else None,
        },
        "customer_phone": customer.phone if customer else None,
    }


def _team_scope() -> int | None:
    return team_scope(current_key())


def _incident(incident_id: int) -> Incident:
    incident = current_session().get(Incident, incident_id)
    team = _team_scope()
    if incident is None or (team is not None and team_of(incident) != team):
        abort(404, message=f"no incident {incident_id}")
    return cast(Incident, incident)  # abort() raises


@bp.route("")
class Incidents(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(IncidentQuerySchema, location="query")
    @bp.response(200, IncidentSchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Incidents newest first; a supervisor sees its own team's."""
        rows = list_incidents(
            current_session(),
            status=query.get("status"),
            team_id=_team_scope(),
            operator_external_id=query.get("operator"),
            limit=query["limit"],
            offset=query["offset"],
        )
        resources = [to_resource(r) for r in rows]
        audit_number_reads(
            r.session.interaction.customer_id
            for r in rows
            if r.session.interaction.customer and r.session.interaction.customer.phone
        )
        return resources


@bp.route("/<int:incident_id>/close")
class CloseIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(CloseSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Close an open incident with its resolution."""
        session = current_session()
        incident = _incident(incident_id)
        try:
            close_incident(session, incident, _actor(), data["resolution"], utcnow())
        except IncidentError as exc:
            abort(409, message=str(exc))
        session.commit()
        return to_resource(incident)


@bp.route("/<int:incident_id>/assign")
class AssignIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(AssignSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Name who is responsible for an open incident."""
        session = current_session()
        incident = _incident(incident_id)
        try:
            assign_incident(session, incident, _actor(), data["assignee"], utcnow())
        except IncidentError as exc:
            abort(409, message=str(exc))
        session.commit()
        return to_resource(incident)
