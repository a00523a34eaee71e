"""Incidents worked as cases: listed with filters and paging, read as a card, assigned,
commented, resolved with a cause, reopened, archived; times per team."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.orm import Session

from gateway.api.auth import (
    allow,
    audit_number_reads,
    authenticate_request,
    current_key,
    current_scope,
)
from gateway.api.schemas import DATE_IN_RANGE, UtcDateTime
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.incidents import (
    LEGACY_CLOSED,
    IncidentError,
    IncidentFilter,
    archive_incident,
    assign_incident,
    close_incident,
    comment_incident,
    count_incidents,
    find_incident,
    follow_ups_of,
    history,
    is_overdue,
    list_incidents,
    low_parameters,
    may_call_back,
    reopen_incident,
    resolve_incident,
    team_report,
)
from gateway.models import (
    ApiRole,
    Incident,
    IncidentStatus,
    InteractionChannel,
    SurveySession,
)
from gateway.phones import mask_phone

bp = Blueprint(
    "incidents",
    __name__,
    url_prefix="/api/v1/incidents",
    description="Low scores worked as cases: assigned, commented, resolved, reopened, archived",
)
bp.before_request(authenticate_request)

STATUSES = [s.value for s in IncidentStatus]


class OperatorRefSchema(Schema):
    external_id = fields.String()
    name = fields.String(allow_none=True)
    team = fields.String(allow_none=True)


class IncidentSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": "open, resolved or archived"})
    score = fields.Integer(metadata={"description": "the overall score that opened it"})
    opened_at = UtcDateTime()
    due_at = UtcDateTime(
        allow_none=True,
        metadata={"description": "INCIDENT_DUE_HOURS business hours after it opened (or reopened)"},
    )
    overdue = fields.Boolean(metadata={"description": "open and past its due time"})
    first_action_at = UtcDateTime(allow_none=True)
    assignee = fields.String(allow_none=True)
    closed_at = UtcDateTime(allow_none=True, metadata={"description": "resolved at"})
    closed_by = fields.String(allow_none=True, metadata={"description": "resolved by"})
    cause = fields.String(allow_none=True, metadata={"description": "one of INCIDENT_CAUSES"})
    resolution = fields.String(allow_none=True, metadata={"description": "the resolution note"})
    archived_at = UtcDateTime(allow_none=True)
    reopened_count = fields.Integer()
    interaction_id = fields.Integer()
    channel = fields.String(metadata={"description": "the contact's channel"})
    team = fields.String(allow_none=True, metadata={"description": "team at the time of contact"})
    operator = fields.Nested(OperatorRefSchema, allow_none=True)
    customer_phone = fields.String(
        allow_none=True,
        metadata={
            "description": "in full for a supervisor of the incident's team or an admin (to "
            "call back); masked for anyone else"
        },
    )


class AnswerSchema(Schema):
    question = fields.String()
    value = fields.Integer(allow_none=True)
    text = fields.String(allow_none=True, metadata={"description": "a written comment"})
    recording_url = fields.String(allow_none=True, metadata={"description": "a voice comment"})
    answered_at = UtcDateTime()


class HistoryEntrySchema(Schema):
    at = UtcDateTime()
    actor = fields.String()
    action = fields.String(
        metadata={"description": "assign, comment, resolve, reopen, archive, alert"}
    )
    detail = fields.Dict(allow_none=True)


class FollowUpSchema(Schema):
    survey_id = fields.Integer()
    status = fields.String()
    channel = fields.String()
    requested_by = fields.String(allow_none=True)
    requested_at = UtcDateTime()
    overall = fields.Integer(allow_none=True)


class IncidentCardSchema(IncidentSchema):
    survey_id = fields.Integer()
    customer_name = fields.String(allow_none=True)
    customer_phone_full = fields.Boolean(
        metadata={"description": "whether customer_phone is shown in full (may call back)"}
    )
    answers = fields.List(fields.Nested(AnswerSchema))
    low_parameters = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "parameters rated at or below LOW_SCORE_THRESHOLD"},
    )
    voice_comment_url = fields.String(allow_none=True)
    comment = fields.String(allow_none=True, metadata={"description": "the written comment"})
    history = fields.List(fields.Nested(HistoryEntrySchema))
    follow_ups = fields.List(fields.Nested(FollowUpSchema))
    causes = fields.List(
        fields.String(), metadata={"description": "INCIDENT_CAUSES to choose from"}
    )


class IncidentQuerySchema(Schema):
    status = fields.String(
        validate=validate.OneOf([*STATUSES, LEGACY_CLOSED]),
        metadata={"description": "default: open and resolved; closed means resolved"},
    )
    team = fields.String(validate=validate.Length(1, 200), metadata={"description": "admin"})
    operator = fields.String(
        validate=validate.Length(1, 200), metadata={"description": "operator's external id"}
    )
    channel = fields.String(validate=validate.OneOf([c.value for c in InteractionChannel]))
    overdue = fields.Boolean()
    assignee = fields.String(validate=validate.Length(1, 200))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10_000_000))


class CloseSchema(Schema):
    resolution = fields.String(required=True, validate=validate.Length(1, 5000))


class ResolveSchema(Schema):
    cause = fields.String(
        required=True,
        validate=validate.Length(1, 50),
        metadata={"description": "one of INCIDENT_CAUSES (see the card's `causes`)"},
    )
    note = fields.String(required=True, validate=validate.Length(1, 5000))


class AssignSchema(Schema):
    assignee = fields.String(required=True, validate=validate.Length(1, 200))


class CommentSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(1, 5000))


class ReopenSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 5000))


class ReportQuerySchema(Schema):
    from_ = fields.Date(
        data_key="from",
        required=True,
        validate=DATE_IN_RANGE,
        metadata={"description": "first local day (REPORT_TIMEZONE) the incidents opened"},
    )
    to = fields.Date(
        required=True, validate=DATE_IN_RANGE, metadata={"description": "last local day"}
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data and data["from_"] > data["to"]:
            raise ValidationError("must not be before `from`", "to")


class DurationSchema(Schema):
    n = fields.Integer()
    mean_hours = fields.Float(allow_none=True)
    median_hours = fields.Float(allow_none=True)


class FollowUpFiguresSchema(Schema):
    sent = fields.Integer()
    answered = fields.Integer()
    overall_mean = fields.Float(allow_none=True)
    original_overall_mean = fields.Float(
        allow_none=True, metadata={"description": "the same incidents' original scores"}
    )


class TeamTimesSchema(Schema):
    team = fields.String(allow_none=True)
    opened = fields.Integer()
    open = fields.Integer()
    overdue = fields.Integer()
    resolved = fields.Integer()
    reopened = fields.Integer()
    time_to_first_action = fields.Nested(DurationSchema, metadata={"description": "business hours"})
    time_to_resolution = fields.Nested(DurationSchema, metadata={"description": "business hours"})
    causes = fields.Dict(keys=fields.String(), values=fields.Integer())
    follow_ups = fields.Nested(FollowUpFiguresSchema)


class IncidentReportSchema(Schema):
    teams = fields.List(fields.Nested(TeamTimesSchema))


def _actor() -> str:
    key = current_key()
    return f"{key.role.value}:{key.name}"


def to_resource(incident: Incident, now: datetime | None = None) -> dict[str, Any]:
    operator = incident.operator
    interaction = incident.session.interaction
    customer = interaction.customer
    phone = customer.phone if customer else None
    if phone and not _may_call_back(incident):
        phone = mask_phone(phone)
    return {
        "id": incident.id,
        "status": incident.status,
        "score": incident.score,
        "opened_at": incident.opened_at,
        "due_at": incident.due_at,
        "overdue": is_overdue(incident, now or utcnow()),
        "first_action_at": incident.first_action_at,
        "assignee": incident.assignee,
        "closed_at": incident.closed_at,
        "closed_by": incident.closed_by,
        "cause": incident.cause,
        "resolution": incident.resolution,
        "archived_at": incident.archived_at,
        "reopened_count": incident.reopened_count or 0,
        "interaction_id": interaction.id,
        "channel": interaction.channel.value,
        "team": interaction.team.name if interaction.team else None,
        "operator": operator
        and {
            "external_id": operator.external_id,
            "name": operator.name,
            "team": operator.team.name if operator.team else None,
        },
        "customer_phone": phone,
    }


def card(session: Session, incident: Incident, threshold: int) -> dict[str, Any]:
    """Everything a supervisor needs to work the incident: the answers, the low parameters,
    the comment, the history and the re-surveys."""
    survey: SurveySession = incident.session
    customer = survey.interaction.customer
    answers = list(survey.answers)
    resource = to_resource(incident)
    resource.update(
        survey_id=survey.id,
        customer_name=customer.name if customer else None,
        customer_phone_full=bool(customer and customer.phone) and _may_call_back(incident),
        answers=[
            {
                "question": a.question_key,
                "value": a.value,
                "text": a.raw_input if a.value is None and not a.recording_url else None,
                "recording_url": a.recording_url,
                "answered_at": a.answered_at,
            }
            for a in answers
        ],
        low_parameters=low_parameters(survey, threshold),
        voice_comment_url=next((a.recording_url for a in answers if a.recording_url), None),
        comment=next(
            (
                a.raw_input
                for a in answers
                if a.value is None and a.raw_input and not a.recording_url
            ),
            None,
        ),
        history=[
            {
                "at": e.at,
                "actor": e.actor,
                "action": e.action.removeprefix("incident."),
                "detail": e.detail,
            }
            for e in history(session, incident)
        ],
        follow_ups=[
            {
                "survey_id": f.id,
                "status": f.status.value,
                "channel": f.channel.value,
                "requested_by": f.requested_by,
                "requested_at": f.created_at,
                "overall": f.score_overall
                if f.score_overall is not None
                else next(
                    (a.value for a in f.answers if a.question_key == "overall"),
                    None,
                ),
            }
            for f in follow_ups_of(session, survey)
        ],
        causes=list(current_settings().incident_causes),
    )
    return resource


def _may_call_back(incident: Incident) -> bool:
    return may_call_back(current_key().role, team_scope(), incident)


def team_scope() -> frozenset[int] | None:
    """The teams a supervisor's key is limited to (gateway.access); None for an admin. A
    supervisor key without a team sees no incident."""
    return current_scope().team_ids


def _incident(incident_id: int) -> Incident:
    incident = find_incident(current_session(), incident_id, team_scope())
    if incident is None:
        abort(404, message=f"no incident {incident_id}")
    return cast(Incident, incident)  # abort() raises


def _audit_phone(incidents: list[Incident]) -> None:
    audit_number_reads(
        i.session.interaction.customer_id
        for i in incidents
        if i.session.interaction.customer
        and i.session.interaction.customer.phone
        and _may_call_back(i)
    )


def _changed(incident: Incident) -> dict[str, Any]:
    current_session().commit()
    return to_resource(incident)


@bp.route("")
class Incidents(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(IncidentQuerySchema, location="query")
    @bp.response(
        200,
        IncidentSchema(many=True),
        headers={
            "X-Total-Count": {
                "description": "how many incidents match the filters (all pages)",
                "schema": {"type": "integer"},
            }
        },
    )
    def get(self, query: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Incidents newest first, by status (default: open and resolved), team, operator,
        channel, overdue and assignee; a supervisor sees its own team's. Paged with `limit`
        and `offset`; the total is in `X-Total-Count`."""
        session, now = current_session(), utcnow()
        flt = IncidentFilter(
            status=query.get("status"),
            team_ids=team_scope(),
            team=query.get("team"),
            operator_external_id=query.get("operator"),
            channel=InteractionChannel(query["channel"]) if query.get("channel") else None,
            overdue=query.get("overdue"),
            assignee=query.get("assignee"),
        )
        rows = list(
            list_incidents(session, flt=flt, limit=query["limit"], offset=query["offset"], now=now)
        )
        total = count_incidents(session, flt, now)
        resources = [to_resource(r, now) for r in rows]
        _audit_phone(rows)
        return resources, {"X-Total-Count": str(total)}


@bp.route("/report")
class IncidentReport(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(ReportQuerySchema, location="query")
    @bp.response(200, IncidentReportSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Per team, the incidents opened in the period: counts, business hours to the first
        action and to resolution, causes, and re-surveys after the fix."""
        settings = current_settings()
        zone = settings.report_zone
        start = datetime.combine(query["from_"], time(0), zone)
        end = datetime.combine(query["to"] + timedelta(days=1), time(0), zone)
        teams = team_report(
            current_session(),
            start.astimezone(UTC),
            end.astimezone(UTC),
            settings,
            utcnow(),
            team_ids=team_scope(),
        )
        return {"teams": teams}


@bp.route("/<int:incident_id>")
class IncidentCard(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.response(200, IncidentCardSchema)
    def get(self, incident_id: int) -> dict[str, Any]:
        """The incident's card: its answers, low parameters, comment, history, re-surveys."""
        incident = _incident(incident_id)
        resource = card(current_session(), incident, current_settings().low_score_threshold)
        _audit_phone([incident])
        return resource


def _apply(incident_id: int, change: Any) -> dict[str, Any]:
    session = current_session()
    incident = _incident(incident_id)
    try:
        change(session, incident, _actor(), utcnow())
    except IncidentError as exc:
        abort(409, message=str(exc))
    return _changed(incident)


@bp.route("/<int:incident_id>/assign")
class AssignIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(AssignSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Name who is responsible for an open incident."""
        return _apply(
            incident_id,
            lambda s, i, actor, now: assign_incident(s, i, actor, data["assignee"], now),
        )


@bp.route("/<int:incident_id>/comments")
class CommentIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(CommentSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Add a comment to the incident's history."""
        return _apply(
            incident_id,
            lambda s, i, actor, now: comment_incident(s, i, actor, data["text"], now),
        )


@bp.route("/<int:incident_id>/resolve")
class ResolveIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(ResolveSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Resolve an open incident with a cause from INCIDENT_CAUSES and a note."""
        causes = current_settings().incident_causes
        return _apply(
            incident_id,
            lambda s, i, actor, now: resolve_incident(
                s, i, actor, data["cause"], data["note"], now, causes
            ),
        )


@bp.route("/<int:incident_id>/close")
class CloseIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(CloseSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Resolve an open incident with a note and no cause (the earlier call; prefer
        /resolve)."""
        return _apply(
            incident_id,
            lambda s, i, actor, now: close_incident(s, i, actor, data["resolution"], now),
        )


@bp.route("/<int:incident_id>/reopen")
class ReopenIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(ReopenSchema)
    @bp.response(200, IncidentSchema)
    def post(self, data: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Reopen a resolved or archived incident; it is due again from now."""
        settings = current_settings()
        return _apply(
            incident_id,
            lambda s, i, actor, now: reopen_incident(s, i, actor, data["reason"], now, settings),
        )


@bp.route("/<int:incident_id>/archive")
class ArchiveIncident(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.response(200, IncidentSchema)
    def post(self, incident_id: int) -> dict[str, Any]:
        """Archive a resolved incident: out of the default list, kept with its history."""
        return _apply(incident_id, archive_incident)
