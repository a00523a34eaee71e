"""Re-surveys: a supervisor asks a contact's customer again after fixing the matter."""

from __future__ import annotations

from typing import Any, cast

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import fields

from gateway.api.auth import actor, allow, authenticate_request, current_key
from gateway.api.interactions import survey_resource
from gateway.api.schemas import SurveyOutSchema
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.models import ApiRole, Interaction
from gateway.resurvey import ResurveyError, request_follow_up

bp = Blueprint(
    "resurvey",
    __name__,
    url_prefix="/api/v1/interactions",
    description="Follow-up surveys after a fix, counted apart from the operator's contacts",
)
bp.before_request(authenticate_request)


class FollowUpOutSchema(SurveyOutSchema):
    follow_up_of = fields.Integer(metadata={"description": "the original survey's id"})


@bp.route("/<int:interaction_id>/resurvey")
class Resurvey(MethodView):
    @allow(ApiRole.SUPERVISOR)
    @bp.response(201, FollowUpOutSchema)
    def post(self, interaction_id: int) -> dict[str, Any]:
        """Survey the customer again after the matter was fixed, on the contact's channel
        (a call is called back). Counted as a follow-up, not a new contact; the opt-out, quiet
        hours and cooldown apply when it is sent. 409 while the first survey or another
        re-survey is under way, or when the customer cannot be asked."""
        session = current_session()
        interaction = session.get(Interaction, interaction_id)
        key = current_key()
        if interaction is None or (
            key.role is ApiRole.SUPERVISOR and interaction.team_id != key.team_id
        ):
            abort(404, message=f"no interaction {interaction_id}")
        try:
            follow_up = request_follow_up(
                session,
                cast(Interaction, interaction),
                actor(),
                current_settings(),
                utcnow(),
            )
        except ResurveyError as exc:
            abort(409, message=str(exc))
        session.commit()
        return survey_resource(follow_up)
