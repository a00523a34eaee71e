"""Admin actions on surveys: sending failed ones again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate

from gateway.api.auth import allow, authenticate_request, current_key
from gateway.api.schemas import DateOrDateTime
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.models import ApiRole, SurveyStatus
from gateway.retries import retry_surveys

bp = Blueprint(
    "survey_retry",
    __name__,
    url_prefix="/api/v1/surveys",
    description="Sending failed surveys again (admin)",
)
bp.before_request(authenticate_request)


class EndOfPeriod(DateOrDateTime):
    """The end of a period: a date includes its whole day (the next midnight, UTC)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if len(str(value).strip()) != 10:
            return moment
        try:
            return moment + timedelta(days=1)
        except OverflowError as exc:  # 9999-12-31 has no next day
            raise ValidationError("use a date before 9999-12-31") from exc


class RetryInSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["failed"]))
    from_ = DateOrDateTime(
        data_key="from", required=True, metadata={"description": "contacts ended on or after"}
    )
    to = EndOfPeriod(
        required=True,
        metadata={"description": "contacts ended before; a date counts as the whole day"},
    )
    reason = fields.String(
        allow_none=True,
        validate=validate.Length(1, 200),
        metadata={"description": "only surveys whose failure reason contains this"},
    )
    dry_run = fields.Boolean(load_default=False)


class RetryOutSchema(Schema):
    retried = fields.List(fields.Integer(), metadata={"description": "survey ids due again now"})
    skipped = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Integer()),
        metadata={"description": "survey ids left alone, by why"},
    )
    dry_run = fields.Boolean()


@bp.route("/retry")
class RetrySurveys(MethodView):
    @allow(ApiRole.ADMIN)
    @bp.arguments(RetryInSchema)
    @bp.response(200, RetryOutSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Schedule failed surveys again, never one that may have reached the customer;
        audited."""
        start, end = data["from_"], data["to"]
        if end <= start:
            abort(422, message="'to' must not be before 'from'")
        key = current_key()
        session = current_session()
        report = retry_surveys(
            session,
            current_settings(),
            status=SurveyStatus(data["status"]),
            ended_from=start,
            ended_before=end,
            reason=data.get("reason"),
            actor=f"{key.role.value}:{key.name}",
            now=utcnow(),
            dry_run=data["dry_run"],
        )
        if data["dry_run"]:
            session.rollback()
        else:
            session.commit()
        current_app.logger.info("survey retry by %s: %s", key.name, report.summary())
        return {"retried": report.retried, "skipped": report.skipped, "dry_run": data["dry_run"]}
