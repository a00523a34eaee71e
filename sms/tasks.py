"""Celery tasks of the SMS channel: thin wrappers over sms.service."""

from __future__ import annotations

import time

from celery import shared_task

from gateway.config import current_settings
from gateway.db import current_database, utcnow
from sms.configured import provider_for
from sms.service import send_first_sms


# No acks_late and no autoretry: the send is at most once (gateway.dispatch); a lost task
# leaves the survey claimed, and the sweep recovers it when its lease expires.
@shared_task(name="sms.tasks.send_survey_sms", ignore_result=True)
def send_survey_sms(session_id: int) -> str:
    """Send the first SMS of a survey the sweep has claimed."""
    settings = current_settings()
    database = current_database()
    provider = provider_for(settings)
    try:
        with database.session_scope() as session:
            outcome = send_first_sms(session, settings, provider, session_id, utcnow(), time.sleep)
    finally:
        provider.close()
    return outcome.result


@shared_task(name="sms.tasks.reconcile_survey_sms", ignore_result=True)
def reconcile_survey_sms(session_id: int) -> str:
    """Settle a possibly sent survey by the provider's message list (the sweep claimed it)."""
    from sms.reconcile import reconcile_survey

    settings = current_settings()
    database = current_database()
    provider = provider_for(settings)
    try:
        with database.session_scope() as session:
            return reconcile_survey(session, settings, provider, session_id, utcnow())
    finally:
        provider.close()


@shared_task(name="sms.tasks.send_pending_replies", ignore_result=True)
def send_pending_replies() -> int:
    """Send the replies stored as pending by an SMSC incoming-message callback."""
    from sms.service import send_pending_replies as send_replies

    settings = current_settings()
    database = current_database()
    provider = provider_for(settings)
    try:
        with database.session_scope() as session:
            return send_replies(session, settings, provider, utcnow(), time.sleep)
    finally:
        provider.close()
