"""The sweep of due surveys: the delay, the rules before sending, leases and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cli import main
from gateway.config import QuietHours, Settings
from gateway.dispatch import (
    PLACE_CALL_TASK,
    REASON_COOLDOWN,
    REASON_NOT_MOBILE,
    REASON_OPTED_OUT,
    REASON_TOO_LATE,
    RECONCILE_SMS_TASK,
    SEND_SMS_TASK,
    local_timezone,
    quiet_hours_end,
    sweep,
)
from gateway.models import (
    Answer,
    Customer,
    InteractionChannel,
    SurveyAttempt,
    SurveyStatus,
)
from tests.sms.conftest import NOON_MSK, minutes, record_visit, survey_of

pytestmark = pytest.mark.both_databases

OFFICES = {
    "central": "Europe/Moscow",
    "vladivostok": "Asia/Vladivostok",
    "kaliningrad": "Europe/Kaliningrad",
}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"office_timezones": OFFICES, "sms_rate_per_second": 50.0}


def test_the_survey_goes_out_an_hour_after_the_visit_not_before(
    session: Session, settings: Settings
) -> None:
    ended = NOON_MSK - minutes(59)
    visit = record_visit(session, settings, ended_at=ended)
    survey = survey_of(session, visit)
    assert survey.due_at == ended + minutes(60)

    early = sweep(session, settings, NOON_MSK)  # 59 minutes after the visit
    session.commit()
    assert early.handed_over == []
    assert survey_of(session, visit).status is SurveyStatus.SCHEDULED

    late = sweep(session, settings, NOON_MSK + minutes(2))  # 61 minutes after
    session.commit()
    assert late.handed_over == [(SEND_SMS_TASK, survey.id)]
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.SENDING
    assert survey.claimed_until == NOON_MSK + minutes(2) + timedelta(
        seconds=settings.dispatch_lease_seconds
    )

    again = sweep(session, settings, NOON_MSK + minutes(3))
    assert again.handed_over == [], "a claimed survey is never handed over twice"


def test_a_visit_reported_late_is_still_surveyed_within_the_lateness_limit(
    session: Session, settings: Settings
) -> None:
    recent = record_visit(session, settings, ended_at=NOON_MSK - timedelta(hours=20))
    too_old = record_visit(
        session, settings, ended_at=NOON_MSK - timedelta(hours=25), phone="+79161234568"
    )
    report = sweep(session, settings, NOON_MSK)
    session.commit()
    assert (SEND_SMS_TASK, survey_of(session, recent).id) in report.handed_over
    old = survey_of(session, too_old)
    assert old.status is SurveyStatus.NOT_SENT
    assert old.not_sent_reason == REASON_TOO_LATE


@pytest.mark.parametrize(
    ("office", "utc_hour", "local_end_utc"),
    [
        # 21:30 in Vladivostok (UTC+10): quiet until 09:00 local, 23:00 UTC.
        ("vladivostok", 11.5, datetime(2026, 3, 10, 23, 0, tzinfo=UTC)),
        # 08:00 in Kaliningrad (UTC+2): quiet until 09:00 local, 07:00 UTC.
        ("kaliningrad", 6, datetime(2026, 3, 10, 7, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_move_the_survey_to_the_end_of_the_window_in_local_time(
    session: Session,
    settings: Settings,
    office: str,
    utc_hour: float,
    local_end_utc: datetime,
) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC) + timedelta(hours=utc_hour)
    visit = record_visit(session, settings, ended_at=now - minutes(61), office=office)
    report = sweep(session, settings, now)
    session.commit()
    survey = survey_of(session, visit)
    assert report.handed_over == []
    assert survey.status is SurveyStatus.SCHEDULED
    assert survey.due_at == local_end_utc

    assert sweep(session, settings, local_end_utc - minutes(1)).handed_over == []
    assert sweep(session, settings, local_end_utc).handed_over == [(SEND_SMS_TASK, survey.id)]


def test_the_same_moment_is_quiet_in_vladivostok_and_not_in_kaliningrad(
    session: Session, settings: Settings
) -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 22:00 Vladivostok, 14:00 Kaliningrad
    east = record_visit(session, settings, ended_at=now - minutes(61), office="vladivostok")
    west = record_visit(
        session, settings, ended_at=now - minutes(61), office="kaliningrad", phone="+79161234599"
    )
    report = sweep(session, settings, now)
    session.commit()
    assert report.handed_over == [(SEND_SMS_TASK, survey_of(session, west).id)]
    assert survey_of(session, east).due_at == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)


def test_local_time_comes_from_the_office_then_the_number_then_the_default(
    settings: Settings,
) -> None:
    mobile = "+79161234567"  # Russian mobile ranges span every zone: ambiguous
    vladivostok_landline = "+74232123456"
    assert local_timezone("vladivostok", mobile, settings) == ZoneInfo("Asia/Vladivostok")
    # The office wins over the number: a visitor is near the office.
    assert local_timezone("kaliningrad", vladivostok_landline, settings) == ZoneInfo(
        "Europe/Kaliningrad"
    )
    assert local_timezone(None, vladivostok_landline, settings) == ZoneInfo("Asia/Vladivostok")
    assert local_timezone("unknown-office", "+12015550123", settings) == ZoneInfo(
        "America/New_York"
    )
    assert local_timezone(None, mobile, settings) == ZoneInfo("Europe/Moscow")


def test_quiet_hours_end_wraps_midnight_and_leaves_other_times_alone() -> None:
    quiet = QuietHours.parse("21:00-09:00")
    zone = ZoneInfo("Europe/Moscow")
    evening = datetime(2026, 3, 10, 19, 30, tzinfo=UTC)  # 22:30 MSK
    night = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # 02:30 MSK next day
    day = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # 12:00 MSK
    assert quiet_hours_end(evening, zone, quiet) == datetime(2026, 3, 11, 6, 0, tzinfo=UTC)
    assert quiet_hours_end(night, zone, quiet) == datetime(2026, 3, 11, 6, 0, tzinfo=UTC)
    assert quiet_hours_end(day, zone, quiet) is None
    assert quiet_hours_end(evening, zone, None) is None
    assert quiet_hours_end(datetime(2026, 3, 11, 6, 0, tzinfo=UTC), zone, quiet) is None


def test_an_opted_out_number_is_not_surveyed_on_any_channel(
    session: Session, settings: Settings
) -> None:
    sms = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    call = record_visit(
        session,
        settings,
        ended_at=NOON_MSK - minutes(61),
        survey="ivr_callback",
        channel=InteractionChannel.CALL,
        customer_id="crm-2",
    )
    # Another customer row with the same number opted out: opt-out follows the number.
    for customer in session.scalars(select(Customer)).all():
        if customer.external_id == "crm-2":
            customer.opted_out_at = NOON_MSK - timedelta(days=1)
            customer.opt_out_source = "sms:STOP"
    session.commit()
    report = sweep(session, settings, NOON_MSK)
    session.commit()
    assert report.handed_over == []
    for visit in (sms, call):
        survey = survey_of(session, visit)
        assert survey.status is SurveyStatus.NOT_SENT
        assert survey.not_sent_reason == REASON_OPTED_OUT


def test_a_landline_gets_no_sms_but_may_get_a_call_back(
    session: Session, settings: Settings
) -> None:
    sms = record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone="+74951234567")
    call = record_visit(
        session,
        settings,
        ended_at=NOON_MSK - minutes(61),
        phone="+74951234568",
        survey="ivr_callback",
        channel=InteractionChannel.CALL,
    )
    report = sweep(session, settings, NOON_MSK)
    session.commit()
    assert survey_of(session, sms).not_sent_reason == REASON_NOT_MOBILE
    assert report.handed_over == [(PLACE_CALL_TASK, survey_of(session, call).id)]


def test_a_customer_surveyed_within_the_cooldown_is_not_surveyed_again(
    session: Session, settings: Settings
) -> None:
    first = record_visit(session, settings, ended_at=NOON_MSK - timedelta(days=6))
    survey = survey_of(session, first)
    survey.status = SurveyStatus.COMPLETED
    survey.started_at = NOON_MSK - timedelta(days=6) + minutes(60)
    session.commit()
    second = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    sweep(session, settings, NOON_MSK)
    session.commit()
    assert survey_of(session, second).not_sent_reason == REASON_COOLDOWN

    # Eight days on, the same customer is surveyed again.
    third = record_visit(session, settings, ended_at=NOON_MSK + timedelta(days=2) - minutes(61))
    report = sweep(session, settings, NOON_MSK + timedelta(days=2))
    assert report.handed_over == [(SEND_SMS_TASK, survey_of(session, third).id)]


def test_two_due_surveys_of_one_customer_in_one_sweep_send_only_one(
    session: Session, settings: Settings
) -> None:
    record_visit(session, settings, ended_at=NOON_MSK - minutes(62))
    record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    report = sweep(session, settings, NOON_MSK)
    assert len(report.handed_over) == 1
    assert [reason for _, reason in report.not_sent] == [REASON_COOLDOWN]


def test_a_lease_expired_before_the_provider_was_called_makes_the_survey_due_again(
    session: Session, settings: Settings
) -> None:
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    sweep(session, settings, NOON_MSK)
    session.commit()
    lease_over = NOON_MSK + timedelta(seconds=settings.dispatch_lease_seconds + 1)
    report = sweep(session, settings, lease_over)
    session.commit()
    survey = survey_of(session, visit)
    assert [r for _, r in report.recovered] == ["due again: the provider was never called"]
    assert report.handed_over == [(SEND_SMS_TASK, survey.id)]
    assert survey.status is SurveyStatus.SENDING


def test_a_lease_expired_with_an_attempt_in_flight_is_never_sent_again(
    session: Session, settings: Settings
) -> None:
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    sweep(session, settings, NOON_MSK)
    survey = survey_of(session, visit)
    survey.attempts = 1
    session.add(SurveyAttempt(session_id=survey.id, number=1, started_at=NOON_MSK))
    session.commit()
    lease_over = NOON_MSK + timedelta(seconds=settings.dispatch_lease_seconds + 1)
    report = sweep(session, settings, lease_over)
    session.commit()
    survey = survey_of(session, visit)
    # Not sent again blindly: only checked against the provider's message list (sms.reconcile).
    assert report.handed_over == [(RECONCILE_SMS_TASK, survey.id)]
    assert survey.status is SurveyStatus.ACTIVE, "open for a reply, in case it went out"
    assert survey.delivery_status == "unknown"
    assert survey.attempt_log[0].outcome == "unknown"
    assert sweep(session, settings, lease_over + minutes(1)).handed_over == []


def test_silent_sms_surveys_expire_a_day_after_the_last_message_keeping_answers(
    session: Session, settings: Settings
) -> None:
    answered = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    silent = record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone="+79161230000")
    for visit in (answered, silent):
        survey = survey_of(session, visit)
        survey.status = SurveyStatus.ACTIVE
        survey.started_at = NOON_MSK
        survey.last_sent_at = NOON_MSK + timedelta(hours=2)  # a reply was answered later
    session.add(
        Answer(
            session_id=survey_of(session, answered).id,
            question_key="overall",
            value=4,
            answered_at=NOON_MSK,
        )
    )
    session.commit()
    assert sweep(session, settings, NOON_MSK + timedelta(hours=25)).expired == []
    report = sweep(session, settings, NOON_MSK + timedelta(hours=26))
    session.commit()
    assert sorted(report.expired) == sorted(
        [survey_of(session, answered).id, survey_of(session, silent).id]
    )
    assert survey_of(session, answered).status is SurveyStatus.PARTIAL
    assert survey_of(session, silent).status is SurveyStatus.EXPIRED


def test_dispatch_due_command_runs_one_sweep_and_says_what_it_did(
    live_app, database_url: str, tmp_path
) -> None:
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        settings = live_app.config["SETTINGS"]
        now = datetime.now(UTC)
        due = record_visit(session, settings, ended_at=now - minutes(61), office=None)
        not_yet = record_visit(
            session, settings, ended_at=now - minutes(5), office=None, phone="+79161234500"
        )
        due_id, not_yet_id = due.survey.id, not_yet.survey.id
        session.close()
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path), "QUIET_HOURS": ""}
    result = CliRunner().invoke(main, ["surveys", "dispatch-due"], env=env)
    assert result.exit_code == 0, result.output
    assert "handed over 1 (1 sms, 0 calls)" in result.output
    assert f"survey {due_id}: queued {SEND_SMS_TASK}" in result.output
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        from gateway.models import SurveySession

        assert session.get(SurveySession, due_id).status is SurveyStatus.SENDING
        assert session.get(SurveySession, not_yet_id).status is SurveyStatus.SCHEDULED


def test_one_sweep_hands_over_about_two_intervals_of_sms_at_the_rate_limit(
    session: Session, settings: Settings
) -> None:
    import dataclasses

    slow = dataclasses.replace(settings, sms_rate_per_second=1.0, dispatch_interval_seconds=5.0)
    for n in range(12):
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=f"+791612345{n:02d}")
    first = sweep(session, slow, NOON_MSK)
    session.commit()
    assert len(first.handed_over) == 10
    assert first.left_for_next == 2
    second = sweep(session, slow, NOON_MSK + timedelta(seconds=5))
    assert len(second.handed_over) == 2
