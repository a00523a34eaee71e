"""Celery tasks of the SMS channel: thin wrappers over sms.service."""

from __future__ import annotations

import time

from celery import shared_task

from gateway.config import current_settings
from gateway.db import current_database, utcnow
from sms.configured import provider_for
from sms.service import send_first_sms_batch


# No acks_late and no autoretry: the send is at most once (gateway.dispatch); a lost task
# leaves the surveys claimed, and the sweep recovers them when their lease expires.
@shared_task(name="sms.tasks.send_survey_sms", ignore_result=True)
def send_survey_sms(session_ids: list[int] | int) -> str:
    """Send the first SMS of surveys the sweep has claimed: a batch of ids (the sweep queues
    them so), or one id (as queued by earlier releases). One provider connection for all."""
    ids = [session_ids] if isinstance(session_ids, int) else list(session_ids)
    settings = current_settings()
    database = current_database()
    provider = provider_for(settings)
    try:
        with database.session_scope() as session:
            outcomes = send_first_sms_batch(session, settings, provider, ids, utcnow(), time.sleep)
    finally:
        provider.close()
    results = [outcome.result for outcome in outcomes.values()]
    if len(results) == 1:
        return results[0]
    return ", ".join(f"{name} {results.count(name)}" for name in sorted(set(results)))


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
