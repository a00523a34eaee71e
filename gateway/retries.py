"""Sending failed surveys again, on an operator's word: `survey-gateway surveys retry` and
`POST /api/v1/surveys/retry`.

After a provider outage fixed too late, or a sender misconfigured for a day, the surveys it
failed can be scheduled again. Only those that certainly never reached the customer: every
attempt ended refused by the provider or undelivered by the carrier, and nothing was
answered. A survey with an attempt that was sent, possibly sent (unknown outcome) or still
in flight is never retried. A survey already later than SMS_SURVEY_MAX_LATENESS_HOURS is not
either: it would only be stopped again by the sweep. Each retried survey is audited with who
asked and the reason it had failed; then the sweep applies every rule anew (opt-out, quiet
hours, cooldown) as for any due survey.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway import survey_state
from gateway.config import Settings
from gateway.dispatch import too_late_at
from gateway.models import AuditEvent, Interaction, SurveySession, SurveyStatus

# Outcomes of attempts that certainly did not reach the customer.
REFUSED_OUTCOMES = frozenset({"retry", "refused", "failed", "error", "undelivered", "not_accepted"})
RETRYABLE_STATUSES = frozenset({SurveyStatus.FAILED})
SKIP_REACHED = "may have reached the customer"
SKIP_TOO_LATE = "too late to send (SMS_SURVEY_MAX_LATENESS_HOURS)"


@dataclass
class RetryReport:
    """What a retry did (or, dry, would do)."""

    retried: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"scheduled again {len(self.retried)}"]
        parts += [f"left alone, {why}: {len(ids)}" for why, ids in sorted(self.skipped.items())]
        return ", ".join(parts)


def may_have_reached(survey: SurveySession) -> bool:
    """An attempt sent, possibly sent or in flight, or any answer: never sent again."""
    return bool(survey.answers) or any(
        attempt.outcome not in REFUSED_OUTCOMES for attempt in survey.attempt_log
    )


def retry_surveys(
    session: Session,
    settings: Settings,
    *,
    status: SurveyStatus,
    ended_from: datetime,
    ended_before: datetime,
    reason: str | None,
    actor: str,
    now: datetime,
    dry_run: bool = False,
) -> RetryReport:
    """Schedule again, due now, the surveys in `status` of contacts that ended in
    [ended_from, ended_before) whose failure reason contains `reason`; audited. The caller
    commits."""
    if status not in RETRYABLE_STATUSES:
        raise ValueError(f"only failed surveys are sent again, not {status.value}")
    conditions = [
        SurveySession.status == status,
        Interaction.ended_at >= ended_from,
        Interaction.ended_at < ended_before,
    ]
    if reason:
        conditions.append(SurveySession.not_sent_reason.icontains(reason, autoescape=True))
    stmt = (
        select(SurveySession)
        .join(SurveySession.interaction)
        .where(*conditions)
        .order_by(SurveySession.id)
        .options(selectinload(SurveySession.attempt_log), selectinload(SurveySession.answers))
    )
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update(of=SurveySession)
    report = RetryReport()
    for survey in session.scalars(stmt):
        if may_have_reached(survey):
            report.skipped.setdefault(SKIP_REACHED, []).append(survey.id)
            continue
        if now > too_late_at(survey, settings):
            report.skipped.setdefault(SKIP_TOO_LATE, []).append(survey.id)
            continue
        report.retried.append(survey.id)
        if dry_run:
            continue
        session.add(
            AuditEvent(
                at=now,
                actor=actor,
                action="survey.retry",
                subject_type="survey_session",
                subject_id=str(survey.id),
                detail={"failed_because": survey.not_sent_reason, "attempts": survey.attempts},
            )
        )
        survey_state.send_again(survey, now)
    session.flush()
    return report
