"""Celery task of the outgoing webhooks: the delivery sweep, run by beat."""

from __future__ import annotations

from celery import shared_task

from gateway.config import current_settings
from gateway.db import current_database, utcnow
from gateway.webhooks.service import deliver_due


@shared_task(name="gateway.webhooks.tasks.deliver_webhooks", ignore_result=True)
def deliver_webhooks() -> str:
    """One sweep of due webhook deliveries (every DISPATCH_INTERVAL_SECONDS)."""
    settings = current_settings()
    database = current_database()
    with database.session_scope() as session:
        report = deliver_due(session, settings, utcnow)
    return report.summary()
