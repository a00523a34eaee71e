"""Subscriptions and the delivery sweep.

Delivery is AT LEAST ONCE, deduplicated by the receiver on the event id: a request whose
answer never came (a timeout, a worker that died after sending) is sent again, under the same
event id and with the same body. A receiver that answers 2xx gets no event again, except by a
manual re-delivery. The sweep claims due deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
so any number of workers share the work) with a lease, commits, sends outside any
transaction, then records the outcome.

Retries: after a failed try the next one waits WEBHOOK_RETRY_BASE_SECONDS, doubling each time,
at most an hour, for WEBHOOK_RETRY_HOURS from the first try; then the delivery is `failed` and
its subscription paused (it has failed for that long). A paused subscription still collects
its deliveries; resuming it sends them. When a receiver answers again after an outage, its
other waiting deliveries are brought forward to the next sweep instead of waiting out their
backoff.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.models import AuditEvent
from gateway.webhooks.events import EVENT_TYPES
from gateway.webhooks.mappings import FORMATS, MappingError, check_options, render
from gateway.webhooks.models import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from gateway.webhooks.signing import SIGNATURE_HEADER, new_secret, signature_header

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600
LEASE_SECONDS = 300
USER_AGENT = "survey-gateway-webhooks/1"
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class SubscriptionError(ValueError):
    """A subscription cannot be made or changed as asked; the message says why."""


# -- subscriptions --------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, allow_http: bool) -> str:
    """A receiver's URL: https, or plain http only to this machine or where WEBHOOK_ALLOW_HTTP
    allows it (the bodies hold customers' phone numbers and names)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SubscriptionError(f"the URL must be https://host/..., got {url!r}")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise SubscriptionError(
            f"the URL must be https://: {url!r} would send customers' personal data "
            "unencrypted (plain http is accepted only to this machine, or with "
            "WEBHOOK_ALLOW_HTTP=true)"
        )
    return url


def _check_events(events: Iterable[str], format: str) -> list[str]:
    chosen = list(dict.fromkeys(e.strip() for e in events if e.strip()))
    if not chosen:
        raise SubscriptionError("name at least one event: " + ", ".join(EVENT_TYPES))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise SubscriptionError(
            f"unknown event {', '.join(unknown)}; the events are " + ", ".join(EVENT_TYPES)
        )
    if format not in FORMATS:
        raise SubscriptionError(f"unknown format {format!r}; the formats are {', '.join(FORMATS)}")
    accepted = FORMATS[format]
    if accepted is not None and (wrong := [e for e in chosen if e not in accepted]):
        raise SubscriptionError(
            f"the {format} format takes {', '.join(accepted)}, not {', '.join(wrong)}"
        )
    return chosen


def _audit(session: Session, actor: str, action: str, subscription_id: int, now: datetime,
           detail: dict[str, Any] | None = None) -> None:  # fmt: skip
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action=action,
            subject_type="webhook_subscription",
            subject_id=str(subscription_id),
            detail=detail,
        )
    )


def create_subscription(
    session: Session,
    *,
    url: str,
    events: Iterable[str],
    actor: str,
    now: datetime,
    format: str = "event",
    options: dict[str, Any] | None = None,
    description: str | None = None,
    allow_http: bool = False,
) -> WebhookSubscription:
    """A new active subscription with a fresh secret (show it once to whoever set it up)."""
    checked_events = _check_events(events, format)
    try:
        checked_options = check_options(format, options)
    except MappingError as exc:
        raise SubscriptionError(str(exc)) from exc
    subscription = WebhookSubscription(
        url=_check_url(url, allow_http),
        events=checked_events,
        format=format,
        options=checked_options or None,
        secret=new_secret(),
        description=description,
        status="active",
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    session.flush()
    _audit(session, actor, "webhook.create", subscription.id, now, {"events": subscription.events})
    return subscription


def update_subscription(
    session: Session,
    subscription: WebhookSubscription,
    *,
    actor: str,
    now: datetime,
    url: str | None = None,
    events: Iterable[str] | None = None,
    description: str | None = None,
    allow_http: bool = False,
) -> WebhookSubscription:
    """Change where a subscription sends and which events it wants (from now on)."""
    if url is not None:
        subscription.url = _check_url(url, allow_http)
    if events is not None:
        subscription.events = _check_events(events, subscription.format)
    if description is not None:
        subscription.description = description
    _audit(session, actor, "webhook.update", subscription.id, now)
    return subscription


def pause_subscription(
    session: Session, subscription: WebhookSubscription, reason: str, actor: str, now: datetime
) -> None:
    """Stop sending; events keep collecting as pending deliveries until it is resumed."""
    if subscription.status == "paused":
        return
    subscription.status = "paused"
    subscription.paused_at = now
    subscription.paused_reason = reason
    _audit(session, actor, "webhook.pause", subscription.id, now, {"reason": reason})


def resume_subscription(
    session: Session, subscription: WebhookSubscription, actor: str, now: datetime
) -> int:
    """Send again: its waiting deliveries are due now with a fresh retry window; how many."""
    subscription.status = "active"
    subscription.paused_at = None
    subscription.paused_reason = None
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.status == "pending",
        )
        .values(next_attempt_at=now, first_attempt_at=None, claimed_until=None)
    )
    _audit(session, actor, "webhook.resume", subscription.id, now)
    return int(result.rowcount)  # type: ignore[attr-defined]


def rotate_secret(
    session: Session, subscription: WebhookSubscription, actor: str, now: datetime
) -> str:
    """A new secret, used from the next request on."""
    subscription.secret = new_secret()
    _audit(session, actor, "webhook.rotate_secret", subscription.id, now)
    return subscription.secret


def delete_subscription(
    session: Session, subscription: WebhookSubscription, actor: str, now: datetime
) -> None:
    """Forget a subscription and its delivery log; events stay for other subscriptions."""
    _audit(session, actor, "webhook.delete", subscription.id, now, {"url": subscription.url})
    session.delete(subscription)


def list_deliveries(
    session: Session,
    subscription_id: int,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[WebhookDelivery]:
    """A subscription's delivery log, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return session.scalars(
        query.options(selectinload(WebhookDelivery.event))
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


def delivery_counts(session: Session, subscription_id: int) -> dict[str, int]:
    rows = session.execute(
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.subscription_id == subscription_id)
        .group_by(WebhookDelivery.status)
    ).all()
    counts = dict.fromkeys(DELIVERY_STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def redeliver(session: Session, delivery: WebhookDelivery, actor: str, now: datetime) -> None:
    """Send a delivery again at the next sweep, same event id, fresh retry window."""
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.first_attempt_at = None
    delivery.claimed_until = None
    delivery.delivered_at = None
    _audit(session, actor, "webhook.redeliver", delivery.subscription_id, now,
           {"delivery": delivery.id, "event": delivery.event.event_id})  # fmt: skip


def redeliver_failed(
    session: Session, subscription: WebhookSubscription, actor: str, now: datetime
) -> int:
    """Every failed delivery of a subscription due again; how many."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.status == "failed",
        )
        .values(status="pending", next_attempt_at=now, first_attempt_at=None, claimed_until=None)
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    _audit(session, actor, "webhook.redeliver_failed", subscription.id, now, {"count": count})
    return count


# -- the delivery sweep ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one request got: a status code, or the error that prevented one."""

    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


Sender = Callable[[Request, float], Outcome]


def post(request: Request, timeout: float) -> Outcome:
    """Send one request; never raises for the receiver's faults."""
    started = time.monotonic()
    try:
        response = requests.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], _ms_since(started))
    return Outcome(
        response.status_code,
        None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}",
        _ms_since(started),
        response.text[:500] or None,
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def build_request(delivery: WebhookDelivery, timestamp: int) -> Request:
    """The request of a delivery, signed at `timestamp` (Unix seconds, when it is sent)."""
    subscription, event = delivery.subscription, delivery.event
    if subscription.format == "event":
        body = event.body.encode()
    else:
        body = render(subscription.format, json.loads(event.body), subscription.options or {})
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Survey-Gateway-Event": event.type,
        "Survey-Gateway-Event-Id": event.event_id,
        "Survey-Gateway-Delivery": str(delivery.id),
        SIGNATURE_HEADER: signature_header(subscription.secret, timestamp, body),
    }
    return Request(subscription.url, body, headers)


def backoff(attempts: int, settings: Settings) -> timedelta:
    """Wait before the next try after `attempts` failed ones: doubling, at most an hour,
    with jitter so that deliveries failed together do not retry together."""
    base = settings.webhook_retry_base_seconds * 2 ** min(attempts - 1, 20)
    return timedelta(seconds=min(base, MAX_BACKOFF_SECONDS) * random.uniform(0.8, 1.0))


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    paused: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"delivered {len(self.delivered)}, to retry {len(self.retrying)}, "
            f"failed {len(self.failed)}, subscriptions paused {len(self.paused)}"
        )


def _claimable(now: datetime) -> Select[Any]:
    return (
        select(WebhookDelivery)
        .join(WebhookSubscription, WebhookDelivery.subscription_id == WebhookSubscription.id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            WebhookSubscription.status == "active",
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
    )


def claim(session: Session, settings: Settings, now: datetime) -> tuple[list[int], datetime]:
    """Lease due deliveries of active subscriptions to this sweep; their ids and the lease
    (which also tells this sweep's claim from a later one). The caller commits."""
    stmt = _claimable(now).limit(settings.webhook_batch_size)
    if not is_sqlite(session):
        stmt = stmt.with_for_update(skip_locked=True, of=WebhookDelivery)
    deliveries = list(session.scalars(stmt))
    lease = now + timedelta(seconds=LEASE_SECONDS)
    for delivery in deliveries:
        delivery.claimed_until = lease
    return [d.id for d in deliveries], lease


def _renew(session: Session, delivery_id: int, lease: datetime, now: datetime) -> datetime | None:
    """Extend this sweep's lease on one delivery just before sending it; None when the lease
    ran out meanwhile (a batch of slow receivers) and another sweep claimed it: then that
    sweep sends it, and this one must not."""
    renewed = now + timedelta(seconds=LEASE_SECONDS)
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.claimed_until == lease,
        )
        .values(claimed_until=renewed)
        .execution_options(synchronize_session=False)
    )
    return renewed if result.rowcount == 1 else None  # type: ignore[attr-defined]


def record(
    session: Session,
    delivery: WebhookDelivery,
    outcome: Outcome,
    settings: Settings,
    now: datetime,
    report: DeliveryReport,
) -> None:
    """Log a try and move the delivery on: delivered, retried later, or failed."""
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            started_at=now,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error,
            response_excerpt=outcome.response_excerpt,
        )
    )
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.first_attempt_at = delivery.first_attempt_at or now
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    delivery.claimed_until = None
    if outcome.ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        report.delivered.append(delivery.id)
        # The receiver is back: what waits out a backoff for it goes at the next sweep.
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.subscription_id == delivery.subscription_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at > now,
                WebhookDelivery.id != delivery.id,
            )
            .values(next_attempt_at=now)
        )
        return
    if now - delivery.first_attempt_at < timedelta(hours=settings.webhook_retry_hours):
        delivery.next_attempt_at = now + backoff(delivery.attempts, settings)
        report.retrying.append(delivery.id)
        return
    delivery.status = "failed"
    delivery.next_attempt_at = None
    report.failed.append(delivery.id)
    subscription = delivery.subscription
    if subscription.status == "active":
        pause_subscription(
            session,
            subscription,
            f"paused: a delivery failed for {settings.webhook_retry_hours} h "
            f"({outcome.error or 'no answer'})",
            "system",
            now,
        )
        report.paused.append(subscription.id)
        logger.warning("webhook subscription %s paused: failing for hours", subscription.id)


def deliver_due(
    session: Session,
    settings: Settings,
    now: Callable[[], datetime],
    send: Sender = post,
) -> DeliveryReport:
    """One sweep: claim due deliveries, send each, record each. Commits as it goes."""
    report = DeliveryReport()
    ids, lease = claim(session, settings, now())
    session.commit()
    for delivery_id in ids:
        if _renew(session, delivery_id, lease, now()) is None:
            session.commit()
            continue
        delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
        if delivery is None:
            continue
        request = build_request(delivery, int(time.time()))
        session.commit()  # hold no transaction while the receiver thinks
        outcome = send(request, settings.webhook_timeout_seconds)
        record(session, delivery, outcome, settings, now(), report)
        session.commit()
        if not outcome.ok:
            logger.info(
                "webhook delivery %s (subscription %s) failed: %s",
                delivery.id,
                delivery.subscription_id,
                outcome.error,
            )
    return report


def erase_customer_events(session: Session, customer_ids: Iterable[int]) -> int:
    """Delete the outbox events holding these customers' data, with their deliveries and
    delivery log (for erasure); how many events."""
    ids = list(customer_ids)
    event_ids = select(OutboxEvent.id).where(OutboxEvent.customer_id.in_(ids))
    delivery_ids = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(event_ids))
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(event_ids)))
    result = session.execute(delete(OutboxEvent).where(OutboxEvent.customer_id.in_(ids)))
    return int(result.rowcount)  # type: ignore[attr-defined]
