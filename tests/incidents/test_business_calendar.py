"""Due times in business hours: working days, hours and holidays in local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.business_calendar import BusinessCalendar, parse_holidays, parse_weekdays
from gateway.config import ConfigError, load_settings

MOSCOW = ZoneInfo("Europe/Moscow")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW)


def test_24_business_hours_from_friday_evening_skip_the_weekend() -> None:
    calendar = BusinessCalendar(MOSCOW)  # 09:00-18:00, Monday to Friday
    # Friday 17:00: 1 h on Friday, 9 on Monday, 9 on Tuesday, 5 on Wednesday.
    assert calendar.add(at("2026-11-27T17:00"), 24) == at("2026-12-02T14:00")


def test_a_score_at_night_starts_counting_when_the_office_opens() -> None:
    calendar = BusinessCalendar(MOSCOW)
    assert calendar.add(at("2026-11-24T23:30"), 2) == at("2026-11-25T11:00")
    assert calendar.add(at("2026-11-24T06:00"), 9) == at("2026-11-24T18:00")


def test_holidays_are_not_working_days() -> None:
    calendar = BusinessCalendar(MOSCOW, holidays=parse_holidays("2026-12-31, 2027-01-01"))
    # Wednesday 30 December 17:00: 1 h that day, then Monday 4 January.
    assert calendar.add(at("2026-12-30T17:00"), 3) == at("2027-01-04T11:00")
    assert not calendar.is_working_day(date(2027, 1, 1))


def test_business_time_between_two_moments() -> None:
    calendar = BusinessCalendar(MOSCOW)
    assert calendar.between(at("2026-11-27T17:00"), at("2026-11-30T10:30")) == timedelta(
        hours=2, minutes=30
    )
    assert calendar.between(at("2026-11-30T10:00"), at("2026-11-30T09:00")) == timedelta(0)


def test_a_six_day_week_round_the_clock() -> None:
    calendar = BusinessCalendar(
        MOSCOW,
        opens=datetime.min.time(),
        closes=datetime.min.time(),
        weekdays=parse_weekdays("1-6"),
    )
    assert calendar.add(at("2026-11-28T12:00"), 24) == at("2026-11-30T12:00")  # Sunday skipped


def test_the_due_time_follows_the_local_zone_whatever_the_offset_given() -> None:
    calendar = BusinessCalendar(MOSCOW)
    opened = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 17:00 in Moscow
    assert calendar.add(opened, 2) == at("2026-11-25T10:00")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("BUSINESS_HOURS", "18:00-09:00", "end after they start"),
        ("BUSINESS_HOURS", "nine to five", "09:00-18:00"),
        ("BUSINESS_DAYS", "0-8", "Monday is 1"),
        ("HOLIDAYS", "31.12.2026", "2027-01-01"),
        ("INCIDENT_CAUSES", "tariff, ?", "comma-separated codes"),
        ("INCIDENT_DUE_HOURS", "0", "positive"),
        ("ALERT_EMAILS", "Hotline", "Team=address"),
    ],
)
def test_a_malformed_incident_setting_is_refused_at_start_up(
    name: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings({name: value})


def test_alert_recipients_by_team_else_the_default() -> None:
    settings = load_settings(
        {"ALERT_EMAILS": "Hotline=olga@example.ru;ivan@example.ru", "ALERT_TO": "qa@example.ru"}
    )
    assert settings.alert_recipients("Hotline") == ["olga@example.ru", "ivan@example.ru"]
    assert settings.alert_recipients("Front office") == ["qa@example.ru"]
    assert load_settings({}).alert_recipients("Hotline") == []
