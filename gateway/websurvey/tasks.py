"""Celery task of the email invitations: a thin wrapper over gateway.websurvey.email."""

from __future__ import annotations

from celery import shared_task

from gateway.config import current_settings
from gateway.db import current_database, utcnow
from gateway.mail import mailer_for
from gateway.websurvey.email import send_invitation


# No acks_late and no autoretry: the send is at most once (gateway.dispatch); a lost task
# leaves the survey claimed, and the sweep recovers it when its lease expires.
@shared_task(name="gateway.websurvey.tasks.send_survey_email", ignore_result=True)
def send_survey_email(session_id: int) -> str:
    """Send the invitation of an email survey the sweep has claimed."""
    settings = current_settings()
    database = current_database()
    with database.session_scope() as session:
        outcome = send_invitation(session, settings, mailer_for(settings), session_id, utcnow())
    return outcome.result
