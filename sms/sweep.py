"""SMS's steps of the sweep, added to it by `sms.init_app` (gateway.dispatch runs them and
imports no channel): asking the provider about messages of unknown outcome, and closing
surveys whose customer never answered."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.dispatch import skip_locked
from gateway.models import SurveyChannel, SurveySession, SurveyStatus


def claim_possibly_sent(session: Session, settings: Settings, now: datetime) -> list[int]:
    """SMS surveys possibly sent (unknown outcome) SMS_RECONCILE_AFTER_SECONDS ago: claimed
    (a lease in `claimed_until`) for the reconciliation task (sms.reconcile); their ids."""
    cutoff = now - timedelta(seconds=settings.sms_reconcile_after_seconds)
    stmt = skip_locked(
        select(SurveySession)
        .where(
            SurveySession.channel == SurveyChannel.SMS,
            SurveySession.status == SurveyStatus.ACTIVE,
            SurveySession.delivery_status == "unknown",
            SurveySession.provider_id.is_(None),
            SurveySession.last_sent_at <= cutoff,
            or_(SurveySession.claimed_until.is_(None), SurveySession.claimed_until < now),
        )
        .order_by(SurveySession.last_sent_at)
        .limit(settings.dispatch_batch_size),
        session,
    )
    claimed = list(session.scalars(stmt))
    for survey in claimed:
        survey.claimed_until = now + timedelta(seconds=settings.dispatch_lease_seconds)
    return [survey.id for survey in claimed]


def expire_sms_surveys(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Close SMS surveys unanswered SMS_SURVEY_EXPIRY_HOURS after their last message was sent,
    keeping the answers they have (partial) or none (expired); their ids."""
    cutoff = now - timedelta(hours=settings.sms_survey_expiry_hours)
    stmt = skip_locked(
        select(SurveySession)
        .where(
            SurveySession.channel == SurveyChannel.SMS,
            SurveySession.status == SurveyStatus.ACTIVE,
            SurveySession.last_sent_at <= cutoff,
        )
        .order_by(SurveySession.last_sent_at)
        .limit(settings.dispatch_batch_size),
        session,
    )
    expired = list(session.scalars(stmt))
    for survey in expired:
        survey_state.expire(survey, now)
    return [survey.id for survey in expired]
