"""POST and GET of interactions: how a CRM, PBX or office queue reports contacts, reads scores."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from gateway import access
from gateway.api.auth import allow, audit_number_reads, authenticate_request, current_scope
from gateway.api.errors import flatten_errors, problem
from gateway.api.schemas import (
    InteractionBatchInSchema,
    InteractionBatchOutSchema,
    InteractionInSchema,
    InteractionOutSchema,
    InteractionPageSchema,
    InteractionQuerySchema,
)
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.intake import CREATED, ERROR, EXISTING, ITEM_STATUSES, ItemResult, report_interactions
from gateway.interactions import CustomerInput, InteractionInput, OperatorInput
from gateway.models import ApiRole, Interaction, InteractionChannel, Operator, SurveySession
from gateway.survey_links import link_resource
from gateway.surveys import scores_of

bp = Blueprint(
    "interactions",
    __name__,
    url_prefix="/api/v1/interactions",
    description="Contacts reported by other systems, their surveys and scores",
)
bp.before_request(authenticate_request)


def survey_resource(survey: SurveySession) -> dict[str, Any]:
    """The API's view of a survey: an interaction's, or a follow-up (which says of which)."""
    link = None
    if survey.link_token is not None:
        link = link_resource(
            current_settings().public_base_url,
            survey.link_token,
            survey.language,
            survey.expires_at,
        )
    return {
        "id": survey.id,
        "follow_up_of": survey.follow_up_of_id,
        "status": survey.status.value,
        "channel": survey.channel.value,
        "kind": survey.kind.value,
        "flow": survey.flow,
        "language": survey.language,
        "due_at": survey.due_at,
        "started_at": survey.started_at,
        "finished_at": survey.finished_at,
        "attempts": survey.attempts,
        "delivery_status": survey.delivery_status,
        "not_sent_reason": survey.not_sent_reason,
        "excluded": survey.excluded_at is not None,
        "exclusion_reason": survey.exclusion_reason,
        "link": link,
    }


def to_resource(interaction: Interaction) -> dict[str, Any]:
    """The API's view of an interaction, its survey and its scores."""
    operator, customer, survey = interaction.operator, interaction.customer, interaction.survey
    return {
        "id": interaction.id,
        "external_id": interaction.external_id,
        "channel": interaction.channel.value,
        "ended_at": interaction.ended_at,
        "office": interaction.office,
        "disposition": interaction.disposition,
        "operator": operator
        and {
            "external_id": operator.external_id,
            "name": operator.name,
            "team": operator.team.name if operator.team else None,
        },
        "customer": customer
        and {
            "external_id": customer.external_id,
            "phone": customer.phone,
            "name": customer.name,
            "language": customer.language,
            "email": customer.email,
        },
        "survey": survey and survey_resource(survey),
        "scores": scores_of(survey),
        "created_at": interaction.created_at,
    }


def _input_from(data: dict[str, Any]) -> InteractionInput:
    operator, customer = data["operator"], data["customer"]
    return InteractionInput(
        external_id=data["external_id"],
        channel=InteractionChannel(data["channel"]),
        ended_at=data["ended_at"],
        operator=OperatorInput(operator["external_id"], operator.get("name"), operator.get("team")),
        customer=CustomerInput(
            customer.get("phone"),
            customer.get("external_id"),
            customer.get("name"),
            customer.get("language"),
            customer.get("email"),
        ),
        office=data.get("office"),
        survey=data.get("survey"),
        flow=data.get("flow"),
        disposition=data.get("disposition"),
    )


def _visible(query: Any) -> Any:
    """What the key's scope sees (gateway.access): a supervisor their team's interactions
    (those whose operator was in the team at the time of the contact), an operator their own."""
    return access.restrict_interactions(query, current_scope())


def _shown(interaction: Interaction) -> dict[str, Any]:
    """The resource as the key's scope may see it: an operator never sees the customer."""
    resource = to_resource(interaction)
    if not current_scope().sees_customer_contacts:
        resource["customer"] = None
    return resource


def _audit_numbers(rows: list[Interaction]) -> None:
    if current_scope().sees_customer_contacts:
        audit_number_reads(r.customer_id for r in rows if r.customer and r.customer.phone)


def _with_details(query: Any) -> Any:
    return query.options(
        selectinload(Interaction.operator).selectinload(Operator.team),
        selectinload(Interaction.customer),
        selectinload(Interaction.survey).selectinload(SurveySession.answers),
    )


@bp.route("")
class Interactions(MethodView):
    @allow(ApiRole.INTEGRATION)
    @bp.arguments(InteractionInSchema)
    @bp.response(201, InteractionOutSchema, description="recorded, survey scheduled")
    @bp.alt_response(200, schema=InteractionOutSchema, description="already recorded: the same one")
    @bp.alt_response(
        409,
        description="this channel and external_id are recorded with other data; `conflicts` "
        "lists each field that differs with its recorded and given value",
    )
    def post(self, data: dict[str, Any]) -> Any:
        """Record an interaction; the same channel and external_id again returns it unchanged
        (409 if it says something else)."""
        session = current_session()
        # The batch's path with one item (gateway.intake): the same rules, fewer statements.
        [result] = report_interactions(session, [_input_from(data)], current_settings(), utcnow())
        conflict = result.conflict
        if conflict is not None:
            session.rollback()
            return problem(
                409,
                "Conflict",
                str(conflict),
                interaction_id=conflict.interaction_id,
                conflicts=[
                    {"field": d.field, "recorded": d.recorded, "given": d.given}
                    for d in conflict.differences
                ],
            )
        interaction, created = result.interaction, result.status == CREATED
        if interaction is None:
            raise LookupError(f"no interaction recorded for {data['external_id']!r}")
        session.commit()
        if created:
            current_app.logger.info(
                "interaction %s recorded (%s %s)",
                interaction.id,
                interaction.channel.value,
                interaction.external_id,
            )
        return to_resource(interaction), 201 if created else 200

    @allow(ApiRole.INTEGRATION, ApiRole.SUPERVISOR, ApiRole.OPERATOR)
    @bp.arguments(InteractionQuerySchema, location="query")
    @bp.response(200, InteractionPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Look interactions up by channel and external_id, or page through them by period."""
        conditions = []
        if "channel" in query:
            conditions.append(Interaction.channel == InteractionChannel(query["channel"]))
        if "external_id" in query:
            conditions.append(Interaction.external_id == query["external_id"])
        if "from_" in query:
            conditions.append(Interaction.ended_at >= query["from_"])
        if "to" in query:
            conditions.append(Interaction.ended_at < query["to"])
        if "operator" in query:
            conditions.append(Interaction.operator.has(Operator.external_id == query["operator"]))
        base = _visible(select(Interaction).where(*conditions))
        session = current_session()
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
        page, size = query["page"], query["page_size"]
        rows = session.scalars(
            _with_details(base)
            .order_by(Interaction.ended_at.desc(), Interaction.id.desc())
            .limit(size)
            .offset((page - 1) * size)
        ).all()
        _audit_numbers(list(rows))
        return {
            "items": [_shown(r) for r in rows],
            "page": page,
            "page_size": size,
            "total": total,
        }


def _batch_item(index: int, result: ItemResult) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "status": result.status}
    recorded = result.recorded()
    if recorded is not None:
        item.update(
            id=recorded.id,
            external_id=recorded.external_id,
            channel=recorded.channel.value,
            survey=recorded.survey_status
            and {
                "id": recorded.survey_id,
                "status": recorded.survey_status.value,
                "due_at": recorded.survey_due_at,
            },
        )
    if result.errors:
        item["errors"] = result.errors
    if result.conflict is not None:
        item["interaction_id"] = result.conflict.interaction_id
    return item


@bp.route("/batch")
class InteractionBatch(MethodView):
    @allow(ApiRole.INTEGRATION)
    @bp.arguments(InteractionBatchInSchema)
    @bp.response(200, InteractionBatchOutSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Record up to 1,000 interactions; a result per item (created, existing, or error
        with the fields at fault), each idempotent as the single endpoint is."""
        schema = InteractionInSchema()
        results: list[ItemResult | None] = []
        valid: list[InteractionInput] = []
        for item in data["interactions"]:
            if not isinstance(item, dict):
                message = "an item must be an object"
                results.append(ItemResult(ERROR, errors=[{"field": "", "message": message}]))
                continue
            try:
                loaded = schema.load(item)
            except ValidationError as invalid:
                results.append(ItemResult(ERROR, errors=flatten_errors(invalid.messages)))
                continue
            results.append(None)
            valid.append(_input_from(loaded))
        session = current_session()
        recorded = iter(
            report_interactions(session, valid, current_settings(), utcnow(), as_rows=True)
        )
        session.commit()
        final = [result if result is not None else next(recorded) for result in results]
        counts = {status: sum(1 for r in final if r.status == status) for status in ITEM_STATUSES}
        current_app.logger.info("interaction batch: %s", counts)
        return {
            "results": [_batch_item(i, r) for i, r in enumerate(final)],
            "created": counts[CREATED],
            "existing": counts[EXISTING],
            "errors": counts[ERROR],
        }


@bp.route("/<int:interaction_id>")
class InteractionById(MethodView):
    @allow(ApiRole.INTEGRATION, ApiRole.SUPERVISOR, ApiRole.OPERATOR)
    @bp.response(200, InteractionOutSchema)
    def get(self, interaction_id: int) -> dict[str, Any]:
        """One interaction with its survey and scores (an operator key: their own, without
        the customer)."""
        found = current_session().scalar(
            _with_details(_visible(select(Interaction).where(Interaction.id == interaction_id)))
        )
        if found is None:
            abort(404, message=f"no interaction {interaction_id}")
        _audit_numbers([found])
        return _shown(found)
