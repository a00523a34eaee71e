"""Celery tasks of the gateway core: the sweep of due surveys, the privacy sweep, the
incident alerts."""

from __future__ import annotations

from celery import shared_task

from gateway.config import current_settings
from gateway.db import current_database, utcnow
from gateway.dispatch import sweep_until_caught_up


@shared_task(name="gateway.tasks.dispatch_due_surveys", ignore_result=True)
def dispatch_due_surveys() -> str:
    """Sweep due surveys (beat runs it every DISPATCH_INTERVAL_SECONDS, on the sweep queue);
    sweeps again at once while the batch was full."""
    settings = current_settings()
    database = current_database()
    report = sweep_until_caught_up(database.session_scope, settings, utcnow)
    return report.summary()


@shared_task(name="gateway.tasks.privacy_sweep", ignore_result=True)
def privacy_sweep() -> str:
    """Expire personal data past PERSONAL_DATA_RETENTION_DAYS, delete queued recordings at
    Twilio (run by beat every few minutes)."""
    from gateway.privacy_sweep import run_privacy_sweep

    return run_privacy_sweep(current_database(), current_settings(), utcnow())


@shared_task(name="gateway.tasks.send_incident_alerts", ignore_result=True)
def send_incident_alerts() -> str:
    """Email supervisors about new and newly overdue incidents, each at most once (beat runs
    it every DISPATCH_INTERVAL_SECONDS)."""
    from gateway.alerts import send_incident_alerts as send
    from gateway.mail import mailer_for

    settings = current_settings()
    with current_database().session_scope() as session:
        return send(session, settings, mailer_for(settings), utcnow()).summary()
