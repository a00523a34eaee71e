"""A customer's personal data over the API: the consent ledger, and erasure (admins only)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from gateway.api.auth import actor, allow, authenticate_request
from gateway.api.schemas import PhoneNumber
from gateway.db import current_session, utcnow
from gateway.models import ApiRole, Customer
from gateway.privacy import consent_json, erase_customers, find_customers

bp = Blueprint(
    "privacy",
    __name__,
    url_prefix="/api/v1/customers",
    description="A customer's consent to be surveyed, and erasure of their personal data",
)
bp.before_request(authenticate_request)


class ChannelConsentSchema(Schema):
    state = fields.String(metadata={"description": "opted_in or opted_out"})
    since = fields.String(allow_none=True)
    source = fields.String(allow_none=True)


class ConsentEventSchema(Schema):
    at = fields.String()
    channel = fields.String(metadata={"description": "sms, ivr, or all"})
    state = fields.String()
    source = fields.String(metadata={"description": "e.g. sms:STOP, twilio:21610"})
    reference = fields.String(allow_none=True, metadata={"description": "e.g. the MessageSid"})


class ConsentSchema(Schema):
    external_id = fields.String()
    channels = fields.Dict(keys=fields.String(), values=fields.Nested(ChannelConsentSchema))
    events = fields.List(fields.Nested(ConsentEventSchema))


class ErasureInSchema(Schema):
    phone = PhoneNumber(metadata={"description": "the customer's number, any common writing"})
    external_id = fields.String(validate=validate.Length(1, 200))
    reason = fields.String(load_default="the customer's request", validate=validate.Length(1, 500))

    @validates_schema
    def _one(self, data: dict[str, Any], **_: Any) -> None:
        if ("phone" in data) == ("external_id" in data):
            raise ValidationError("give exactly one of phone or external_id", "phone")


class ErasureSchema(Schema):
    customers = fields.List(fields.Integer(), metadata={"description": "ids of erased customers"})
    messages = fields.Integer()
    answers = fields.Integer()
    recordings = fields.Integer(metadata={"description": "queued for deletion at Twilio"})


@bp.route("/<string:external_id>/consent")
class Consent(MethodView):
    @allow(ApiRole.INTEGRATION)
    @bp.response(200, ConsentSchema)
    def get(self, external_id: str) -> dict[str, Any]:
        """The customer's consent per channel now, and every change: when, how, which request."""
        session = current_session()
        customer = session.scalar(select(Customer).where(Customer.external_id == external_id))
        if customer is None:
            abort(404, message=f"no customer {external_id!r}")
            raise AssertionError  # unreachable: abort raises
        return {"external_id": external_id, **consent_json(session, customer)}


@bp.route("/erasure")
class Erasure(MethodView):
    @allow()  # admins only
    @bp.arguments(ErasureInSchema)
    @bp.response(200, ErasureSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Erase a customer's personal data everywhere, keeping the anonymous scores; audited.
        Asking again erases nothing more and answers with no customers."""
        session = current_session()
        found = find_customers(
            session, phone=data.get("phone"), external_id=data.get("external_id")
        )
        report = erase_customers(session, found, actor(), data["reason"], utcnow())
        session.commit()
        return report.to_json()
