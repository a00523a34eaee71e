"""Moving an operator to another team: an admin's audited act, never an integration's."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from gateway.api.auth import actor, allow, authenticate_request
from gateway.db import current_session, utcnow
from gateway.interactions import get_or_create, move_operator
from gateway.models import Operator, Team

bp = Blueprint(
    "operators",
    __name__,
    url_prefix="/api/v1/operators",
    description="Operators' teams: which supervisor sees whose contacts and incidents",
)
bp.before_request(authenticate_request)


class TeamInSchema(Schema):
    team = fields.String(
        required=True,
        allow_none=True,
        validate=validate.Length(1, 200),
        metadata={"description": "the new team; null: no team"},
    )


class OperatorTeamSchema(Schema):
    external_id = fields.String()
    name = fields.String(allow_none=True)
    team = fields.String(allow_none=True)
    moved = fields.Boolean(metadata={"description": "false when already in that team"})


@bp.route("/<string:external_id>/team")
class OperatorTeam(MethodView):
    @allow()  # admins only
    @bp.arguments(TeamInSchema)
    @bp.response(200, OperatorTeamSchema)
    def put(self, data: dict[str, Any], external_id: str) -> dict[str, Any]:
        """Move the operator to another team; audited (who, when, from, to)."""
        session = current_session()
        operator = session.scalar(select(Operator).where(Operator.external_id == external_id))
        if operator is None:
            abort(404, message=f"no operator {external_id!r}")
            raise AssertionError  # unreachable: abort raises
        name = data["team"]
        team = None
        if name:
            team = get_or_create(
                session,
                lambda: session.scalar(select(Team).where(Team.name == name)),
                lambda: Team(name=name),
            )
        moved = move_operator(session, operator, team, actor(), utcnow())
        session.commit()
        return {
            "external_id": operator.external_id,
            "name": operator.name,
            "team": team.name if team else None,
            "moved": moved,
        }
