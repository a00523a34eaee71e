"""`GET /metrics`: what an on-call engineer watches, in Prometheus' text format.

Two kinds of figure:

* **From the database, at each scrape** (the same for every process and machine): surveys by
  status and channel, the due backlog and the age of its oldest survey, surveys possibly sent
  and waiting for reconciliation, whether each provider's circuit is open, outgoing webhook
  events waiting for their receivers, and the depth of the Celery queues (Redis).
* **Counted by the process that saw it**: sends by channel, outcome and error class (in the
  workers) and the latency of every HTTP route (in the web workers). Under gunicorn and
  Celery's prefork pool each process counts on its own, so prometheus-client's multiprocess
  mode is used when PROMETHEUS_MULTIPROC_DIR is set (as `make run` sets it): every process
  writes its figures to files there and /metrics adds them up. Web and workers of one machine
  share the folder; scrape each machine.

Access: with METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>`; without it,
only clients on the loopback interface (a Prometheus on the same machine, `make run`).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gateway.config import current_settings
from gateway.db import utcnow
from gateway.models import ProviderCircuit, SurveySession, SurveyStatus
from gateway.telemetry import REQUEST_SECONDS, SENDS

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class DatabaseCollector(Collector):
    """Figures read from the database (and the broker) when /metrics is scraped."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.app.app_context():
            database = self.app.extensions["database"]
            with database.session_scope() as session:
                yield from self._surveys(session, utcnow())
                yield self._circuits(session)
                yield from self._webhooks(session, utcnow())
            yield self._queues()

    def _surveys(self, session: Any, now: datetime) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "survey_gateway_surveys", "Surveys by status and channel", labels=["status", "channel"]
        )
        rows = session.execute(
            select(SurveySession.status, SurveySession.channel, func.count()).group_by(
                SurveySession.status, SurveySession.channel
            )
        )
        for status, channel, count in rows:
            by_status.add_metric([str(status), str(channel)], count)
        yield by_status
        count, oldest = session.execute(
            select(func.count(), func.min(SurveySession.due_at)).where(
                SurveySession.status == SurveyStatus.SCHEDULED, SurveySession.due_at <= now
            )
        ).one()
        yield GaugeMetricFamily(
            "survey_gateway_due_backlog", "Surveys due now and not yet handed over", value=count
        )
        age = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "survey_gateway_oldest_due_age_seconds",
            "How long the oldest due survey has been waiting (0 when none is due)",
            value=max(age, 0.0),
        )
        unknown = session.scalar(
            select(func.count()).where(
                SurveySession.status == SurveyStatus.ACTIVE,
                SurveySession.delivery_status == "unknown",
            )
        )
        yield GaugeMetricFamily(
            "survey_gateway_possibly_sent",
            "SMS surveys whose send had an unknown outcome, not yet reconciled",
            value=unknown or 0,
        )

    def _webhooks(self, session: Any, now: datetime) -> Iterator[GaugeMetricFamily]:
        """Outgoing webhooks: what waits for each subscription, and which ones are paused."""
        from gateway.webhooks.models import WebhookDelivery, WebhookSubscription

        waiting = GaugeMetricFamily(
            "survey_gateway_webhook_deliveries_pending",
            "Webhook deliveries not yet accepted by their receiver, by subscription",
            labels=["subscription"],
        )
        oldest = GaugeMetricFamily(
            "survey_gateway_webhook_oldest_pending_age_seconds",
            "Age of the oldest event still waiting for its receiver, by subscription",
            labels=["subscription"],
        )
        rows = session.execute(
            select(
                WebhookDelivery.subscription_id,
                func.count(),
                func.min(WebhookDelivery.created_at),
            )
            .where(WebhookDelivery.status == "pending")
            .group_by(WebhookDelivery.subscription_id)
        )
        for subscription_id, count, created in rows:
            waiting.add_metric([str(subscription_id)], count)
            oldest.add_metric(
                [str(subscription_id)], max((now - _aware(created)).total_seconds(), 0.0)
            )
        yield waiting
        yield oldest
        paused = session.scalar(select(func.count()).where(WebhookSubscription.status == "paused"))
        yield GaugeMetricFamily(
            "survey_gateway_webhook_subscriptions_paused",
            "Webhook subscriptions paused (by an admin, or after failing for WEBHOOK_RETRY_HOURS)",
            value=paused or 0,
        )

    def _circuits(self, session: Any) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "survey_gateway_provider_circuit_open",
            "1 while a provider refuses the account and sending to it is paused",
            labels=["provider"],
        )
        settings = self.app.config["SETTINGS"]
        rows = session.execute(select(ProviderCircuit.provider, ProviderCircuit.state))
        states = {provider: state for provider, state in rows}
        states.setdefault(settings.provider, "closed")
        states.setdefault(settings.sms_provider_name, "closed")
        for provider, state in sorted(states.items()):
            gauge.add_metric([provider], 1.0 if state == "open" else 0.0)
        return gauge

    def _queues(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "survey_gateway_queue_depth", "Messages waiting in each Celery queue", labels=["queue"]
        )
        settings = self.app.config["SETTINGS"]
        if not settings.redis_url:
            return gauge
        from gateway.tasking import queue_names

        celery = self.app.extensions["celery"]
        try:
            with celery.connection_for_read() as conn:
                client = conn.default_channel.client
                for name in queue_names(settings.task_queue_prefix):
                    gauge.add_metric([name], client.llen(name))
        except Exception as exc:  # the broker down: the other figures still matter
            logger.warning("queue depth unavailable: %s", type(exc).__name__)
        return gauge


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _allowed() -> bool:
    token = current_settings().metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
    return request.remote_addr in LOOPBACK


@bp.get("/metrics")
def metrics() -> Response:
    """The figures in Prometheus' text format."""
    if not _allowed():
        abort(403)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(SENDS)
        registry.register(REQUEST_SECONDS)
    registry.register(current_app.extensions["metrics_collector"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


# The histogram's child of each route and method, looked up once per process: `labels()`
# checks and joins its label values and takes a lock on every call.
_ROUTE_SECONDS: dict[tuple[str, str], Any] = {}


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    req = request._get_current_object()  # type: ignore[attr-defined]
    rule = req.url_rule.rule if req.url_rule is not None else "unmatched"
    if started is not None and rule != "/metrics":
        key = (rule, req.method)
        child = _ROUTE_SECONDS.get(key)
        if child is None:
            child = _ROUTE_SECONDS[key] = REQUEST_SECONDS.labels(*key)
        child.observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    app.extensions["metrics_collector"] = DatabaseCollector(app)
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.register_blueprint(bp)
