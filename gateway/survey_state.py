"""The life of a survey: every change of its status, one named function each.

Nothing else assigns `SurveySession.status` (tests/test_survey_state.py reads the code for
it): the channels (SMS, voice, web, email) and the sweep call these functions, which set the
status together with the fields that go with it (the lease, the reason, the times).

    new        ─schedule─▶ scheduled   ─open_link─▶ active (a web survey)   ─begin─▶ active
    scheduled  ─hand_over─▶ sending (a send task holds it under a lease)
               ─exclude─▶ not_sent (a rule)   ─fail─▶ failed (given up: too late)
               ─begin─▶ active (the customer is on the line, or on its page)
    sending    ─sent, possibly_sent─▶ active   ─reschedule, give_back─▶ scheduled
               ─fail─▶ failed   ─not_reached─▶ not_reached   ─exclude─▶ not_sent
    active     ─finish, expire─▶ completed | partial | expired
               ─send_again─▶ scheduled (the message reached nobody)
    failed     ─send_again─▶ scheduled (an operator's retry)

A final status (completed, partial, expired, not_sent, not_reached, failed) never changes
again, but for `send_again`, the deliberate retry of a survey that reached nobody.

Pure domain code: functions take the row (or a Session for the set-wise changes) and plain
values; the caller holds the row's lock and commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, exists, update
from sqlalchemy.orm import Session

from gateway.models import SurveyAttempt, SurveySession, SurveyStatus
from gateway.reports.scoring import freeze_score

_surveys = cast(Table, SurveySession.__table__)
# The score columns `finish_row` writes (gateway.reports.scoring.frozen_score).
SCORE_COLUMNS = (
    "scored_at",
    "score_spec",
    "score_answered",
    "score_overall",
    "score_parameters",
    "score_csi",
    "score_csi_operator",
    "score_nps",
    "score_nps_class",
)
# `finish(completed=True)` of a running survey as one prebuilt UPDATE (see `finish_row`).
_FINISH_ROW = (
    update(_surveys)
    .where(_surveys.c.id == bindparam("survey_id"), _surveys.c.status == SurveyStatus.ACTIVE)
    .values(
        status=SurveyStatus.COMPLETED,
        finished_at=bindparam("now"),
        claimed_until=None,
        state=bindparam("new_state"),
        updated_at=bindparam("now"),
        **{name: bindparam(f"new_{name}") for name in SCORE_COLUMNS},
    )
)


def schedule(survey: SurveySession, due_at: datetime) -> None:
    """A new survey, due at `due_at` (the sweep hands it over then)."""
    survey.status = SurveyStatus.SCHEDULED
    survey.due_at = due_at


def open_link(survey: SurveySession, expires_at: datetime) -> None:
    """A new web survey: open at once, through its link, until `expires_at`."""
    survey.status = SurveyStatus.ACTIVE
    survey.expires_at = expires_at


def hand_over(session: Session, survey_id: int, lease_until: datetime) -> bool:
    """Claim a due survey for its channel's send task: `sending` under a lease, if it is still
    `scheduled` (a compare-and-set, whatever the locking). True if this call claimed it."""
    result = session.execute(
        update(SurveySession)
        .where(SurveySession.id == survey_id, SurveySession.status == SurveyStatus.SCHEDULED)
        .values(status=SurveyStatus.SENDING, claimed_until=lease_until)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]  # a CursorResult


def hand_over_all(session: Session, survey_ids: list[int], lease_until: datetime) -> set[int]:
    """`hand_over` for many surveys in one statement; the ids this call claimed."""
    if not survey_ids:
        return set()
    result = session.execute(
        update(SurveySession)
        .where(SurveySession.id.in_(survey_ids), SurveySession.status == SurveyStatus.SCHEDULED)
        .values(status=SurveyStatus.SENDING, claimed_until=lease_until)
        .returning(SurveySession.id)
        .execution_options(synchronize_session="fetch")
    )
    return set(result.scalars())


def give_back(session: Session, survey_ids: list[int]) -> None:
    """Claimed surveys whose send task was never queued: due again at once. Only those still
    `sending` with no attempt in flight (an attempt in flight may have reached the customer)."""
    in_flight = exists().where(
        SurveyAttempt.session_id == SurveySession.id, SurveyAttempt.outcome.is_(None)
    )
    session.execute(
        update(SurveySession)
        .where(
            SurveySession.id.in_(survey_ids),
            SurveySession.status == SurveyStatus.SENDING,
            ~in_flight,
        )
        .values(status=SurveyStatus.SCHEDULED, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def reschedule(survey: SurveySession, due_at: datetime) -> None:
    """Back in the schedule, untouched, until `due_at`: a rate-limit slot, the call cap, a
    paused provider, a transient error, or a lease that ran out before any attempt."""
    survey.status = SurveyStatus.SCHEDULED
    survey.due_at = due_at
    survey.claimed_until = None


def send_again(survey: SurveySession, due_at: datetime) -> None:
    """As if never sent, due at `due_at`: a message the provider never accepted or could not
    deliver, or a failed survey an operator retries (`surveys retry`). Forgets the try's
    reason, times, message id, delivery status and the conversation's state."""
    survey.status = SurveyStatus.SCHEDULED
    survey.due_at = due_at
    survey.not_sent_reason = None
    survey.finished_at = survey.claimed_until = None
    survey.started_at = survey.last_sent_at = survey.expires_at = None
    survey.provider_id = survey.delivery_status = None
    survey.state = None


def sent(
    survey: SurveySession,
    now: datetime,
    expires_at: datetime,
    delivery_status: str | None,
    provider_id: str | None = None,
) -> None:
    """The survey's message went out (an SMS, an email invitation): open for answers until
    `expires_at`. A survey answered meanwhile through its link keeps its status."""
    if not survey.status.is_final:
        survey.status = SurveyStatus.ACTIVE
    if provider_id is not None:
        survey.provider_id = provider_id
    survey.delivery_status = delivery_status
    survey.started_at = survey.started_at or now
    survey.last_sent_at = now
    survey.expires_at = expires_at
    survey.claimed_until = None


def possibly_sent(survey: SurveySession, sent_at: datetime, open_for: timedelta) -> None:
    """The message may have gone out (its outcome is unknown): open for answers, never sent
    again, `open_for` after it was sent; delivery status "unknown"."""
    survey.status = SurveyStatus.ACTIVE
    survey.delivery_status = "unknown"
    survey.started_at = survey.started_at or sent_at
    survey.last_sent_at = survey.last_sent_at or sent_at
    survey.expires_at = survey.last_sent_at + open_for
    survey.claimed_until = None


def begin(survey: SurveySession, now: datetime) -> None:
    """The customer is taking the survey now: on the line (a new post-call survey, too), or
    on its page."""
    if survey.status is not None and survey.status.is_final:
        return
    survey.status = SurveyStatus.ACTIVE
    survey.started_at = survey.started_at or now
    survey.claimed_until = None


def begun(now: datetime) -> dict[str, Any]:
    """`begin` of a new survey as the columns of its row, for a row written without the ORM
    (the IVR's first step)."""
    return {"status": SurveyStatus.ACTIVE, "started_at": now, "claimed_until": None}


def fail(survey: SurveySession, now: datetime, reason: str) -> None:
    """The provider refused it for good, or it was given up: `failed`, with the reason (an
    operator may send it again with `surveys retry`)."""
    survey.status = SurveyStatus.FAILED
    survey.not_sent_reason = reason[:200]
    survey.finished_at = now
    survey.claimed_until = None


def not_reached(survey: SurveySession, now: datetime) -> None:
    """Every call-back try ended without the customer (no answer, busy, a machine)."""
    survey.status = SurveyStatus.NOT_REACHED
    survey.not_sent_reason = f"not reached in {survey.attempts} call(s)"
    survey.finished_at = now
    survey.claimed_until = None


def exclude(survey: SurveySession, now: datetime, reason: str) -> None:
    """A rule stopped it before anything was sent (opted out, no number, cooldown, too late,
    erased): `not_sent`, with the rule as its reason."""
    survey.status = SurveyStatus.NOT_SENT
    survey.not_sent_reason = reason
    survey.finished_at = now
    survey.claimed_until = None


def exclude_unsent(session: Session, survey_ids: list[int], now: datetime, reason: str) -> None:
    """`exclude` every survey of `survey_ids` not sent yet (scheduled or claimed), in one
    statement."""
    session.execute(
        update(SurveySession)
        .where(
            SurveySession.id.in_(survey_ids),
            SurveySession.status.in_([SurveyStatus.SCHEDULED, SurveyStatus.SENDING]),
        )
        .values(status=SurveyStatus.NOT_SENT, not_sent_reason=reason, due_at=None, finished_at=now)
    )


def finish(survey: SurveySession, now: datetime, *, completed: bool) -> None:
    """Close a survey: completed, else partial when it has any answer, else expired; its score
    is frozen (gateway.reports.scoring). A final status never changes again."""
    if survey.status.is_final:
        return
    freeze_score(survey, now)
    if completed:
        survey.status = SurveyStatus.COMPLETED
    elif any(a.value is not None or a.recording_url for a in survey.answers):
        survey.status = SurveyStatus.PARTIAL
    else:
        survey.status = SurveyStatus.EXPIRED
    survey.finished_at = now
    survey.claimed_until = None


def finish_row(
    conn: Connection,
    survey_id: int,
    now: datetime,
    score: Mapping[str, Any],
    state: dict[str, Any],
) -> SurveyStatus | None:
    """`finish(completed=True)` of a running survey in one UPDATE, with the score the caller
    froze (`score`: gateway.reports.scoring.frozen_score) and the flow's last position: the
    IVR's last key press, written without the ORM. The new status; None if the survey was
    not running."""
    given = {f"new_{name}": score[name] for name in SCORE_COLUMNS}
    result = conn.execute(
        _FINISH_ROW, {"survey_id": survey_id, "now": now, "new_state": state, **given}
    )
    return SurveyStatus.COMPLETED if result.rowcount == 1 else None


def expire(survey: SurveySession, now: datetime) -> None:
    """Nobody finished it in time: partial with the answers it has, else expired."""
    finish(survey, now, completed=False)
