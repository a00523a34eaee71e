"""Webhook subscriptions over the API (admins only): create, change, pause, resume, read the
delivery log, re-deliver."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.auth import authenticate_request, current_key
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.webhooks import service
from gateway.webhooks.events import EVENT_TYPES
from gateway.webhooks.mappings import FORMATS
from gateway.webhooks.models import WebhookDelivery, WebhookSubscription

bp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/api/v1/webhooks",
    description="Outgoing webhooks: subscriptions, their delivery log, re-delivery (admins)",
)
bp.before_request(authenticate_request)  # no @allow: admin keys only


class SubscriptionInSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(1, 2000))
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1),
    )
    format = fields.String(load_default="event", validate=validate.OneOf(list(FORMATS)))
    options = fields.Dict(load_default=None, allow_none=True)
    description = fields.String(load_default=None, allow_none=True)


class SubscriptionPatchSchema(Schema):
    url = fields.String(validate=validate.Length(1, 2000))
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)), validate=validate.Length(min=1)
    )
    description = fields.String(allow_none=True)
    status = fields.String(
        validate=validate.OneOf(["active", "paused"]),
        metadata={"description": "paused stops sending (events keep collecting); active "
                  "resumes and sends what collected"},
    )  # fmt: skip


class SubscriptionSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    format = fields.String()
    options = fields.Dict(allow_none=True)
    description = fields.String(allow_none=True)
    status = fields.String()
    paused_at = fields.DateTime(allow_none=True)
    paused_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    deliveries = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "count by status"}
    )
    secret = fields.String(
        metadata={"description": "shown only when the subscription is made or its secret rotated"}
    )


class DeliveryQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(service.DELIVERY_STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class AttemptSchema(Schema):
    at = fields.DateTime(attribute="started_at")
    duration_ms = fields.Integer(allow_none=True)
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    response_excerpt = fields.String(allow_none=True)


class DeliverySchema(Schema):
    id = fields.Integer()
    subscription_id = fields.Integer()
    event_id = fields.String()
    event = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    attempt_log = fields.List(fields.Nested(AttemptSchema))


class CountSchema(Schema):
    count = fields.Integer()


def _http_allowed() -> bool:
    return current_settings().webhooks_may_use_http()


def _actor() -> str:
    key = current_key()
    return f"{key.role.value}:{key.name}"


def _subscription(subscription_id: int) -> WebhookSubscription:
    found = current_session().get(WebhookSubscription, subscription_id)
    if found is None:
        abort(404, message=f"no webhook subscription {subscription_id}")
    return found  # type: ignore[return-value]


def _delivery(subscription_id: int, delivery_id: int) -> WebhookDelivery:
    found = current_session().get(WebhookDelivery, delivery_id)
    if found is None or found.subscription_id != subscription_id:
        abort(404, message=f"no delivery {delivery_id} of subscription {subscription_id}")
    return found  # type: ignore[return-value]


def subscription_resource(
    session: Session, row: WebhookSubscription, *, with_secret: bool = False
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "format": row.format,
        "options": row.options,
        "description": row.description,
        "status": row.status,
        "paused_at": row.paused_at,
        "paused_reason": row.paused_reason,
        "created_at": row.created_at,
        "deliveries": service.delivery_counts(session, row.id),
    }
    if with_secret:
        resource["secret"] = row.secret
    return resource


def delivery_resource(row: WebhookDelivery, *, with_attempts: bool = False) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription_id": row.subscription_id,
        "event_id": row.event.event_id,
        "event": row.event.type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_attempt_at": row.last_attempt_at,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "delivered_at": row.delivered_at,
        "created_at": row.created_at,
        **({"attempt_log": row.attempt_log} if with_attempts else {}),
    }


@bp.route("/subscriptions")
class Subscriptions(MethodView):
    @bp.response(200, SubscriptionSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Every subscription, with its deliveries counted by status."""
        session = current_session()
        rows = session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
        return [subscription_resource(session, r) for r in rows]

    @bp.arguments(SubscriptionInSchema)
    @bp.response(201, SubscriptionSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Subscribe a URL to events; the answer holds the signing secret, shown only now."""
        session = current_session()
        try:
            row = service.create_subscription(
                session, actor=_actor(), now=utcnow(), allow_http=_http_allowed(), **data
            )
        except service.SubscriptionError as exc:
            abort(422, message=str(exc))
        session.commit()
        return subscription_resource(session, row, with_secret=True)


@bp.route("/subscriptions/<int:subscription_id>")
class Subscription(MethodView):
    @bp.response(200, SubscriptionSchema)
    def get(self, subscription_id: int) -> dict[str, Any]:
        """One subscription."""
        return subscription_resource(current_session(), _subscription(subscription_id))

    @bp.arguments(SubscriptionPatchSchema)
    @bp.response(200, SubscriptionSchema)
    def patch(self, data: dict[str, Any], subscription_id: int) -> dict[str, Any]:
        """Change the URL, events or description; pause it, or resume it (status)."""
        session = current_session()
        row = _subscription(subscription_id)
        now, actor = utcnow(), _actor()
        status = data.pop("status", None)
        try:
            service.update_subscription(
                session, row, actor=actor, now=now, allow_http=_http_allowed(), **data
            )
        except service.SubscriptionError as exc:
            abort(422, message=str(exc))
        if status == "paused":
            service.pause_subscription(session, row, "paused by " + actor, actor, now)
        elif status == "active" and row.status != "active":
            service.resume_subscription(session, row, actor, now)
        session.commit()
        return subscription_resource(session, row)

    @bp.response(204)
    def delete(self, subscription_id: int) -> None:
        """Forget a subscription and its delivery log."""
        session = current_session()
        service.delete_subscription(session, _subscription(subscription_id), _actor(), utcnow())
        session.commit()


@bp.route("/subscriptions/<int:subscription_id>/rotate-secret")
class RotateSecret(MethodView):
    @bp.response(200, SubscriptionSchema)
    def post(self, subscription_id: int) -> dict[str, Any]:
        """A new signing secret, used from the next request on; shown only now."""
        session = current_session()
        row = _subscription(subscription_id)
        service.rotate_secret(session, row, _actor(), utcnow())
        session.commit()
        return subscription_resource(session, row, with_secret=True)


@bp.route("/subscriptions/<int:subscription_id>/deliveries")
class Deliveries(MethodView):
    @bp.arguments(DeliveryQuerySchema, location="query")
    @bp.response(200, DeliverySchema(many=True))
    def get(self, query: dict[str, Any], subscription_id: int) -> list[dict[str, Any]]:
        """The subscription's delivery log, newest first."""
        session = current_session()
        _subscription(subscription_id)
        rows = service.list_deliveries(session, subscription_id, **query)
        return [delivery_resource(r) for r in rows]


@bp.route("/subscriptions/<int:subscription_id>/deliveries/<int:delivery_id>")
class Delivery(MethodView):
    @bp.response(200, DeliverySchema)
    def get(self, subscription_id: int, delivery_id: int) -> dict[str, Any]:
        """One delivery with every try: when, how long, what came back."""
        return delivery_resource(_delivery(subscription_id, delivery_id), with_attempts=True)


@bp.route("/subscriptions/<int:subscription_id>/deliveries/<int:delivery_id>/redeliver")
class Redeliver(MethodView):
    @bp.response(202, DeliverySchema)
    def post(self, subscription_id: int, delivery_id: int) -> dict[str, Any]:
        """Send this event again at the next sweep, under the same event id."""
        session = current_session()
        row = _delivery(subscription_id, delivery_id)
        service.redeliver(session, row, _actor(), utcnow())
        session.commit()
        return delivery_resource(row)


@bp.route("/subscriptions/<int:subscription_id>/redeliver-failed")
class RedeliverFailed(MethodView):
    @bp.response(202, CountSchema)
    def post(self, subscription_id: int) -> dict[str, int]:
        """Every failed delivery of the subscription again, each under its event id."""
        session = current_session()
        count = service.redeliver_failed(
            session, _subscription(subscription_id), _actor(), utcnow()
        )
        session.commit()
        return {"count": count}
