"""Celery task of the outgoing webhooks: the delivery sweep, run by beat."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from gateway.db import utcnow
from gateway.webhooks.service import deliver_due


@shared_task(name="gateway.webhooks.tasks.deliver_webhooks", ignore_result=True)
def deliver_webhooks() -> str:
    """One sweep of due webhook deliveries (every DISPATCH_INTERVAL_SECONDS)."""
    settings = current_app.config["SETTINGS"]
    database = current_app.extensions["database"]
    with database.session_scope() as session:
        report = deliver_due(session, settings, utcnow)
    return report.summary()
