"""Request and response schemas of the integration API.

The same schemas validate requests and generate /api/openapi.json (flask-smorest).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gateway.config import current_settings
from gateway.db import utcnow
from gateway.flows import current_flows
from gateway.interactions import ENDED_AT_MAX_SKEW
from gateway.models import InteractionChannel
from gateway.phones import InvalidPhoneNumber, normalize_phone

# Contacts and report periods fall in this window; far dates would overflow time arithmetic.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
IN_RANGE = validate.Range(EARLIEST, LATEST, error="must be between 2000 and 2100")
DATE_IN_RANGE = validate.Range(
    EARLIEST.date(), LATEST.date(), error="must be between 2000 and 2100"
)


class PhoneNumber(fields.String):
    """A phone number in any common writing, loaded as E.164 (region DEFAULT_REGION)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        region = current_settings().default_region
        try:
            return normalize_phone(text, region)
        except InvalidPhoneNumber as exc:
            raise ValidationError(str(exc)) from exc


class DateOrDateTime(fields.Field):
    """A date (its midnight in REPORT_TIMEZONE) or an ISO 8601 date-time with offset."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        text = str(value).strip()
        try:
            if len(text) == 10:
                zone = current_settings().report_zone
                return datetime.combine(date.fromisoformat(text), time(0), zone)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError("use a date (2026-11-01) or a date-time with offset") from exc
        if moment.tzinfo is None:
            raise ValidationError("a date-time needs a UTC offset, e.g. 2026-11-01T09:00:00+03:00")
        if not EARLIEST <= moment <= LATEST:
            raise ValidationError("must be between 2000 and 2100")
        return moment


class UtcDateTime(fields.DateTime):
    """A time in responses: always in UTC (+00:00), whatever offset it was given with."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def _ended(value: datetime) -> None:
    if value > utcnow() + ENDED_AT_MAX_SKEW:
        raise ValidationError(
            "is in the future: report a contact once it has ended "
            f"(clocks may differ by up to {ENDED_AT_MAX_SKEW.seconds // 60} minutes)"
        )


class OperatorSchema(Schema):
    external_id = fields.String(required=True, validate=validate.Length(1, 200))
    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    team = fields.String(allow_none=True, validate=validate.Length(max=200))


class CustomerSchema(Schema):
    phone = PhoneNumber(
        allow_none=True,
        metadata={"description": "any common writing; stored and returned as E.164"},
    )
    external_id = fields.String(allow_none=True, validate=validate.Length(1, 200))
    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    language = fields.String(allow_none=True, validate=validate.OneOf(["ru", "en"]))
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))

    @validates_schema
    def _identified(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("phone") and not data.get("external_id"):
            raise ValidationError("give the customer's phone, external_id or both", "phone")


def _known_flow(name: str) -> None:
    known = current_flows()
    if name not in known:
        raise ValidationError(f"unknown flow; known: {', '.join(sorted(known))}")


class InteractionInSchema(Schema):
    external_id = fields.String(
        required=True,
        validate=validate.Length(1, 200),
        metadata={"description": "the id the reporting system gives this contact"},
    )
    channel = fields.String(
        required=True, validate=validate.OneOf([c.value for c in InteractionChannel])
    )
    ended_at = fields.AwareDateTime(
        required=True,
        validate=[IN_RANGE, _ended],
        metadata={
            "description": "ISO 8601 with a UTC offset; not more than 5 minutes ahead of the "
            "gateway's clock"
        },
        error_messages={
            "invalid": "not a date-time; write it as ISO 8601, e.g. 2026-11-23T10:00:00+03:00",
            "invalid_awareness": "the time needs its UTC offset, e.g. 2026-11-23T10:00:00+03:00",
        },
    )
    operator = fields.Nested(OperatorSchema, required=True)
    customer = fields.Nested(CustomerSchema, required=True)
    office = fields.String(allow_none=True, validate=validate.Length(max=100))
    survey = fields.String(
        allow_none=True,
        validate=validate.OneOf(["sms", "ivr_callback", "web", "email", "none"]),
        metadata={
            "description": "how to survey; an office visit defaults to sms, else none. web: the "
            "answer carries the survey's link, QR code and text to show; email: the link is "
            "emailed to customer.email after the delay, by the SMS's rules"
        },
    )
    flow = fields.String(allow_none=True, validate=_known_flow)
    disposition = fields.String(
        allow_none=True,
        validate=validate.Length(max=50),
        metadata={
            "description": "how the contact ended, as the PBX reports it "
            "(e.g. completed, transferred, operator_hangup)"
        },
    )


class OperatorOutSchema(Schema):
    external_id = fields.String()
    name = fields.String(allow_none=True)
    team = fields.String(allow_none=True)


class CustomerOutSchema(Schema):
    external_id = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class SurveyLinkSchema(Schema):
    url = fields.String(metadata={"description": "{PUBLIC_BASE_URL}/r/<token>"})
    expires_at = fields.DateTime(allow_none=True)
    text = fields.String(metadata={"description": "a ready invitation with the link"})
    qr_svg = fields.String(metadata={"description": "the link as a QR code, an SVG data: URI"})


class SurveyOutSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    channel = fields.String()
    kind = fields.String()
    flow = fields.String()
    language = fields.String()
    due_at = UtcDateTime(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    attempts = fields.Integer()
    delivery_status = fields.String(allow_none=True)
    not_sent_reason = fields.String(allow_none=True)
    excluded = fields.Boolean()
    exclusion_reason = fields.String(allow_none=True)
    link = fields.Nested(
        SurveyLinkSchema,
        allow_none=True,
        metadata={"description": "web and email surveys: the survey page's link"},
    )


class InteractionOutSchema(Schema):
    id = fields.Integer()
    external_id = fields.String()
    channel = fields.String()
    ended_at = UtcDateTime()
    office = fields.String(allow_none=True)
    disposition = fields.String(allow_none=True)
    operator = fields.Nested(OperatorOutSchema, allow_none=True)
    customer = fields.Nested(CustomerOutSchema, allow_none=True)
    survey = fields.Nested(SurveyOutSchema, allow_none=True)
    scores = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "answered value by question key; unanswered keys are absent"},
    )
    created_at = UtcDateTime()


# Deep enough for any real listing; a larger page would overflow the database's offset.
MAX_PAGE = 100_000


class InteractionQuerySchema(Schema):
    channel = fields.String(validate=validate.OneOf([c.value for c in InteractionChannel]))
    external_id = fields.String(validate=validate.Length(1, 200))
    operator = fields.String(
        validate=validate.Length(1, 200), metadata={"description": "operator's external id"}
    )
    from_ = DateOrDateTime(data_key="from", metadata={"description": "ended at or after"})
    to = DateOrDateTime(metadata={"description": "ended before"})
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class InteractionPageSchema(Schema):
    items = fields.List(fields.Nested(InteractionOutSchema))
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


class InteractionBatchInSchema(Schema):
    interactions = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(1, 1000, error="give 1 to 1000 interactions"),
        metadata={
            "description": "up to 1,000 interactions, each as POST /api/v1/interactions takes it"
        },
    )


class BatchSurveyOutSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    due_at = UtcDateTime(allow_none=True)


class BatchItemOutSchema(Schema):
    index = fields.Integer(metadata={"description": "the item's position in the request"})
    status = fields.String(metadata={"description": "created, existing or error"})
    id = fields.Integer(metadata={"description": "the interaction's id (created, existing)"})
    external_id = fields.String()
    channel = fields.String()
    survey = fields.Nested(BatchSurveyOutSchema, allow_none=True)
    errors = fields.List(
        fields.Dict(keys=fields.String(), values=fields.String()),
        metadata={"description": "error: each field at fault ('customer.phone') and why"},
    )
    interaction_id = fields.Integer(
        metadata={"description": "error of a re-post with other data: the recorded interaction"}
    )


class InteractionBatchOutSchema(Schema):
    results = fields.List(fields.Nested(BatchItemOutSchema))
    created = fields.Integer()
    existing = fields.Integer()
    errors = fields.Integer()
