"""The life of a survey (gateway/survey_state.py): each change of status with the fields that
go with it, and no status assigned anywhere else in the code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.models import Answer, SurveySession, SurveyStatus
from tests.sms.conftest import record_visit, survey_of

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("gateway", "sms", "audio", "ivr_flows")


@pytest.fixture
def settings(app: object) -> Settings:
    return app.config["SETTINGS"]  # type: ignore[attr-defined, no-any-return]


def claimed() -> SurveySession:
    """A survey a sweep handed over: `sending`, under a lease."""
    survey = SurveySession(attempts=1, flow="post_call")
    survey_state.schedule(survey, NOW)
    survey.status = SurveyStatus.SENDING  # as the hand-over's UPDATE leaves it
    survey.claimed_until = NOW + timedelta(minutes=5)
    return survey


# -- each change, on a row in memory, as the engine's tests do -------------------------------


def test_a_new_survey_is_scheduled_for_its_due_time() -> None:
    survey = SurveySession()
    survey_state.schedule(survey, LATER)
    assert (survey.status, survey.due_at) == (SurveyStatus.SCHEDULED, LATER)


def test_a_web_survey_is_open_at_once_until_its_link_expires() -> None:
    survey = SurveySession()
    survey_state.open_link(survey, LATER)
    assert (survey.status, survey.expires_at, survey.started_at) == (
        SurveyStatus.ACTIVE,
        LATER,
        None,
    )


def test_rescheduling_drops_the_lease() -> None:
    survey = claimed()
    survey_state.reschedule(survey, LATER)
    assert (survey.status, survey.due_at, survey.claimed_until) == (
        SurveyStatus.SCHEDULED,
        LATER,
        None,
    )


def test_sent_opens_the_survey_until_it_expires() -> None:
    survey = claimed()
    survey_state.sent(survey, NOW, LATER, "queued", provider_id="SM1")
    assert survey.status is SurveyStatus.ACTIVE
    assert (survey.provider_id, survey.delivery_status) == ("SM1", "queued")
    assert (survey.started_at, survey.last_sent_at, survey.expires_at) == (NOW, NOW, LATER)
    assert survey.claimed_until is None


def test_an_invitation_sent_after_the_survey_was_answered_by_its_link_keeps_it_answered() -> None:
    survey = claimed()
    survey.status = SurveyStatus.COMPLETED
    survey_state.sent(survey, NOW, LATER, "sent")
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.delivery_status == "sent"


def test_possibly_sent_is_open_for_replies_from_the_first_send_never_sent_again() -> None:
    survey = claimed()
    survey_state.possibly_sent(survey, NOW, timedelta(hours=24))
    assert (survey.status, survey.delivery_status) == (SurveyStatus.ACTIVE, "unknown")
    assert survey.expires_at == NOW + timedelta(hours=24)
    survey_state.possibly_sent(survey, LATER, timedelta(hours=24))
    assert survey.last_sent_at == NOW  # the first send counts


def test_send_again_forgets_the_try() -> None:
    survey = claimed()
    survey_state.sent(survey, NOW, LATER, "undelivered", provider_id="SM1")
    survey.state = '{"index": 1}'
    survey_state.send_again(survey, LATER)
    assert (survey.status, survey.due_at) == (SurveyStatus.SCHEDULED, LATER)
    assert [
        survey.started_at,
        survey.last_sent_at,
        survey.expires_at,
        survey.provider_id,
        survey.delivery_status,
        survey.state,
        survey.claimed_until,
        survey.finished_at,
        survey.not_sent_reason,
    ] == [None] * 9


def test_a_failed_survey_sent_again_is_scheduled_without_its_reason() -> None:
    survey = claimed()
    survey_state.fail(survey, NOW, "refused")
    survey_state.send_again(survey, LATER)
    assert (survey.status, survey.not_sent_reason, survey.finished_at) == (
        SurveyStatus.SCHEDULED,
        None,
        None,
    )


def test_a_customer_on_the_line_begins_the_survey_a_final_one_stays_final() -> None:
    new = SurveySession()
    survey_state.begin(new, NOW)
    assert (new.status, new.started_at) == (SurveyStatus.ACTIVE, NOW)
    survey_state.begin(new, LATER)
    assert new.started_at == NOW
    ended = claimed()
    survey_state.exclude(ended, NOW, "customer opted out")
    survey_state.begin(ended, LATER)
    assert ended.status is SurveyStatus.NOT_SENT


def test_fail_keeps_a_reason_that_fits_its_column() -> None:
    survey = claimed()
    survey_state.fail(survey, NOW, "x" * 500)
    assert survey.status is SurveyStatus.FAILED
    assert survey.not_sent_reason == "x" * 200
    assert (survey.finished_at, survey.claimed_until) == (NOW, None)


def test_not_reached_says_how_many_calls() -> None:
    survey = claimed()
    survey.attempts = 3
    survey_state.not_reached(survey, NOW)
    assert (survey.status, survey.not_sent_reason) == (
        SurveyStatus.NOT_REACHED,
        "not reached in 3 call(s)",
    )


def test_exclude_records_the_rule_that_stopped_it() -> None:
    survey = claimed()
    survey_state.exclude(survey, NOW, "cooldown")
    assert (survey.status, survey.not_sent_reason, survey.finished_at, survey.claimed_until) == (
        SurveyStatus.NOT_SENT,
        "cooldown",
        NOW,
        None,
    )


# -- the changes that read the database -------------------------------------------------------


def test_a_survey_is_handed_over_once(session: Session, settings: Settings) -> None:
    survey = survey_of(session, record_visit(session, settings, ended_at=NOW))
    lease = NOW + timedelta(minutes=5)
    assert survey_state.hand_over(session, survey.id, lease) is True
    assert survey_state.hand_over(session, survey.id, lease) is False
    assert (survey.status, survey.claimed_until) == (SurveyStatus.SENDING, lease)
    survey_state.give_back(session, [survey.id])
    session.expire(survey)
    assert (survey.status, survey.claimed_until) == (SurveyStatus.SCHEDULED, None)


@pytest.mark.parametrize(
    ("answers", "completed", "status"),
    [
        ({"overall": 5}, True, SurveyStatus.COMPLETED),
        ({"overall": 2}, False, SurveyStatus.PARTIAL),
        ({}, False, SurveyStatus.EXPIRED),
    ],
)
def test_finish_ends_completed_partial_or_expired_with_a_frozen_score(
    session: Session,
    settings: Settings,
    answers: dict[str, int],
    completed: bool,
    status: SurveyStatus,
) -> None:
    survey = survey_of(session, record_visit(session, settings, ended_at=NOW))
    for key, value in answers.items():
        session.add(Answer(session_id=survey.id, question_key=key, value=value, answered_at=NOW))
    session.flush()
    session.expire(survey, ["answers"])
    survey_state.finish(survey, LATER, completed=completed)
    assert (survey.status, survey.finished_at, survey.scored_at) == (status, LATER, LATER)
    survey_state.finish(survey, LATER + timedelta(hours=1), completed=True)
    assert (survey.status, survey.finished_at) == (status, LATER)  # final: never changes


# -- nobody else assigns a status ---------------------------------------------------------------


def _mentions_survey_status(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "SurveyStatus" for n in ast.walk(node))


def _targets(node: ast.AST) -> Iterator[ast.expr]:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            yield from (target.elts if isinstance(target, ast.Tuple) else [target])
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        yield node.target


def status_assignments(source: str) -> list[int]:
    """Lines that set a survey's status: `x.status = SurveyStatus...` (also in a tuple, or
    `survey.status = <anything>`), and `status=SurveyStatus.X` in a call (a constructor, an
    UPDATE's `.values`)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        for target in _targets(node):
            if isinstance(target, ast.Attribute) and target.attr == "status":
                owner = ast.unparse(target.value).lower()
                value = getattr(node, "value", None)
                if "survey" in owner or (value is not None and _mentions_survey_status(value)):
                    lines.append(node.lineno)
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if (
                    keyword.arg == "status"
                    and isinstance(keyword.value, ast.Attribute)
                    and _mentions_survey_status(keyword.value)
                ):
                    lines.append(node.lineno)
    return lines


def test_no_status_is_assigned_outside_survey_state() -> None:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "gateway" / "survey_state.py":
                continue
            for line in status_assignments(path.read_text(encoding="utf-8")):
                found.append(f"{path.relative_to(ROOT)}:{line}")
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "survey.status = SurveyStatus.FAILED",
        "survey.status, survey.due_at = SurveyStatus.SCHEDULED, now",
        "existing.status = SurveyStatus.ACTIVE",
        "survey.status = status",
        "SurveySession(flow='x', status=SurveyStatus.ACTIVE)",
        "update(SurveySession).values(status=SurveyStatus.NOT_SENT)",
    ],
)
def test_the_check_finds_each_way_of_assigning_a_status(source: str) -> None:
    assert status_assignments(source) == [1]


@pytest.mark.parametrize(
    "source",
    [
        "incident.status = 'closed'",
        "retry_surveys(session, status=SurveyStatus(data['status']))",
        "select(SurveySession).where(SurveySession.status == SurveyStatus.ACTIVE)",
    ],
)
def test_the_check_leaves_other_statuses_and_filters_alone(source: str) -> None:
    assert status_assignments(source) == []
