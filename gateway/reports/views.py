"""Reports, exclusions and a customer's satisfaction over the API: thin views over services.

Roles (gateway.access): supervisors read their own team's reports only (naming another team
is 403); operators their own figures; admins all; integrations a customer's satisfaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import access
from gateway.api.auth import actor, allow, authenticate_request, current_scope
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.flows import current_flows
from gateway.models import ApiRole, Customer, InteractionChannel, Team
from gateway.reports import export, service
from gateway.reports.schemas import (
    ExclusionInSchema,
    ExclusionOutSchema,
    FunnelSchema,
    OperatorsReportSchema,
    ReinstateInSchema,
    ReportQuerySchema,
    SatisfactionQuerySchema,
    SatisfactionSchema,
    TeamsReportSchema,
    TrendQuerySchema,
    TrendSchema,
)

bp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1/reports",
    description="Operator ratings, trends, teams, the survey funnel and scored interactions; "
    "JSON, CSV (Accept: text/csv) or XLSX",
)
surveys_bp = Blueprint(
    "survey_exclusions",
    __name__,
    url_prefix="/api/v1/surveys",
    description="Excluding a rating from every figure (an appeal upheld), and reinstating it",
)
customers_bp = Blueprint(
    "customers",
    __name__,
    url_prefix="/api/v1/customers",
    description="A customer's satisfaction, for the CRM",
)
for _blueprint in (bp, surveys_bp, customers_bp):
    _blueprint.before_request(authenticate_request)


def _export_doc(json_schema: str | None) -> dict[str, Any]:
    """OpenAPI of a response that may also be CSV or XLSX (content negotiation)."""
    content: dict[str, Any] = {
        export.CSV: {"schema": {"type": "string"}},
        export.XLSX: {"schema": {"type": "string", "format": "binary"}},
    }
    if json_schema:
        content = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{json_schema}"}},
            **content,
        }
    return {
        "responses": {
            "200": {
                "description": "JSON, or CSV or XLSX as the Accept header or ?format= asks",
                "content": content,
            }
        }
    }


def _filter(query: Mapping[str, Any]) -> service.ReportFilter:
    try:
        limits = access.report_limits(current_scope(), query.get("team"))
    except access.OutOfScope as exc:
        abort(403, message=str(exc))
        raise  # unreachable: abort raises
    team = limits.team
    if (
        team is not None
        and current_session().scalar(select(Team.id).where(Team.name == team)) is None
    ):
        abort(404, message=f"no team named {team!r}")
    try:
        return service.ReportFilter(
            start=query["from_"],
            end=query["to"],
            channel=InteractionChannel(query["channel"]) if "channel" in query else None,
            team=team,
            office=query.get("office"),
            team_ids=limits.team_ids,
            operator_id=limits.operator_id,
            zone=current_settings().report_zone,
        )
    except service.ReportError as exc:
        abort(422, message=str(exc))
        raise  # unreachable: abort raises


def _wanted(query: Mapping[str, Any]) -> str:
    """json, csv or xlsx: the format parameter, else the Accept header, else json."""
    if "format" in query:
        return str(query["format"])
    best = request.accept_mimetypes.best_match(
        ["application/json", export.CSV, export.XLSX], default="application/json"
    )
    return {export.CSV: "csv", export.XLSX: "xlsx"}.get(best or "", "json")


def _filename(stem: str, query: Mapping[str, Any]) -> str:
    start: date = query["from_"]
    end: date = query["to"]
    return f"{stem}-{start.isoformat()}-{end.isoformat()}"


def _table_response(
    wanted: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], filename: str
) -> Response:
    """A CSV or XLSX download; the read is over (nothing was written) before it streams."""
    return export.table_download(wanted, columns, rows, filename, current_session().rollback)


@bp.route("/operators")
class OperatorsReport(MethodView):
    @allow(ApiRole.SUPERVISOR, ApiRole.OPERATOR)
    @bp.arguments(ReportQuerySchema, location="query")
    @bp.response(200, OperatorsReportSchema)
    @bp.doc(**_export_doc("OperatorsReport"))
    def get(self, query: dict[str, Any]) -> Any:
        """Per-operator ratings for a period; ranked operators first, then the unranked (an
        operator key gets their own row only)."""
        rows = service.operators_report(current_session(), _filter(query), current_settings())
        wanted = _wanted(query)
        if wanted == "json":
            return {"operators": rows}
        columns = export.operator_columns(rows)
        flat = (export.flatten_operator_row(r) for r in rows)
        return _table_response(wanted, columns, flat, _filename("operators", query))


@bp.route("/teams")
class TeamsReport(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(ReportQuerySchema, location="query")
    @bp.response(200, TeamsReportSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Per-team figures for a period (every parameter counts in a team's CSI), and the total."""
        return service.teams_report(current_session(), _filter(query), current_settings())


@bp.route("/funnel")
class FunnelReport(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(ReportQuerySchema, location="query")
    @bp.response(200, FunnelSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """The survey funnel per operator: contacts, surveys offered, sent, started, completed,
        calls that never reached the survey, and re-surveys of the same customer."""
        return {"operators": service.funnel_report(current_session(), _filter(query))}


@bp.route("/operators/<string:external_id>/trend")
class OperatorTrend(MethodView):
    @allow(ApiRole.SUPERVISOR, ApiRole.OPERATOR)
    @bp.arguments(TrendQuerySchema, location="query")
    @bp.response(200, TrendSchema)
    def get(self, query: dict[str, Any], external_id: str) -> Any:
        """One operator's figures per local day, ISO week or month of the period; a
        supervisor sees the contacts the operator had in the supervisor's team."""
        session = current_session()
        flt = _filter({k: v for k, v in query.items() if k != "team"})
        try:
            operator = service.find_operator(session, external_id, None)
        except service.NotVisible as exc:
            abort(404, message=str(exc))
        if not access.operator_visible(session, current_scope(), operator):
            abort(404, message=f"no operator {external_id!r}")
        granularity = query["granularity"]
        return {
            "operator": service.operator_ref(operator),
            "granularity": granularity,
            "points": service.operator_trend(
                session, operator, flt, granularity, current_settings()
            ),
        }


@bp.route("/interactions")
class ScoredInteractions(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.arguments(ReportQuerySchema, location="query")
    @bp.response(200, description="CSV (the default) or XLSX, one row per surveyed interaction")
    @bp.doc(**_export_doc(None))
    def get(self, query: dict[str, Any]) -> Any:
        """The period's surveyed interactions scored from their raw answers, streamed."""
        wanted = _wanted(query)
        if wanted == "json":
            wanted = "csv"  # a year of rows is a file, not a JSON document
        rows = service.scored_interactions(current_session(), _filter(query))
        return _table_response(
            wanted, service.scored_columns(current_flows()), rows, _filename("interactions", query)
        )


def _exclusion(survey: Any) -> dict[str, Any]:
    return {
        "survey_id": survey.id,
        "interaction_id": survey.interaction_id,
        "excluded": survey.excluded_at is not None,
        "excluded_at": survey.excluded_at,
        "excluded_by": survey.excluded_by,
        "exclusion_reason": survey.exclusion_reason,
    }


def _actor() -> str:
    return actor()


def _find_survey(session: Session, survey_id: int) -> Any:
    try:
        survey = service.find_survey(session, survey_id, None)
    except service.NotVisible as exc:
        abort(404, message=str(exc))
    if not access.survey_visible(current_scope(), survey):
        abort(404, message=f"no survey {survey_id}")
    return survey


@surveys_bp.route("/<int:survey_id>/exclusion")
class Exclusion(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @surveys_bp.arguments(ExclusionInSchema)
    @surveys_bp.response(201, ExclusionOutSchema, description="excluded from every figure")
    @surveys_bp.alt_response(200, schema=ExclusionOutSchema, description="already excluded")
    def post(self, data: dict[str, Any], survey_id: int) -> Any:
        """Exclude this survey's rating from the operator's figures, with a written reason."""
        session = current_session()
        survey = _find_survey(session, survey_id)
        try:
            changed = service.exclude_rating(session, survey, data["reason"], _actor(), utcnow())
        except service.ReportError as exc:
            abort(422, message=str(exc))
        session.commit()
        return _exclusion(survey), 201 if changed else 200

    @allow(ApiRole.SUPERVISOR)
    @surveys_bp.arguments(ReinstateInSchema, required=False)
    @surveys_bp.response(200, ExclusionOutSchema, description="counted again")
    def delete(self, data: dict[str, Any] | None, survey_id: int) -> Any:
        """Reinstate an excluded rating: it counts in every figure again."""
        session = current_session()
        survey = _find_survey(session, survey_id)
        reason = (data or {}).get("reason")
        service.reinstate_rating(session, survey, _actor(), utcnow(), reason)
        session.commit()
        return _exclusion(survey)


@customers_bp.route("/<string:external_id>/satisfaction")
class CustomerSatisfaction(MethodView):
    @allow(ApiRole.INTEGRATION)
    @customers_bp.response(200, SatisfactionSchema)
    def get(self, external_id: str) -> Any:
        """A customer's latest scores, their mean and NPS class, by the CRM's customer id."""
        session = current_session()
        customer = session.scalar(select(Customer).where(Customer.external_id == external_id))
        if customer is None:
            abort(404, message=f"no customer {external_id!r}")
            raise AssertionError  # unreachable: abort raises
        return service.customer_satisfaction(session, [customer])


@customers_bp.route("/satisfaction")
class CustomerSatisfactionByPhone(MethodView):
    @allow(ApiRole.INTEGRATION)
    @customers_bp.arguments(SatisfactionQuerySchema, location="query")
    @customers_bp.response(200, SatisfactionSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """The same, by phone number (any common writing); every customer with that number."""
        session = current_session()
        customers = session.scalars(
            select(Customer).where(Customer.phone == query["phone"]).order_by(Customer.id)
        ).all()
        if not customers:
            abort(404, message="no customer with this phone number")
        return service.customer_satisfaction(session, customers)
