"""Business hours: working days, working hours and holidays in one local time zone.

An incident is due INCIDENT_DUE_HOURS of business time after it opened: 24 h counted from
09:00 to 18:00 on working days is nearly three working days, and a weekend or a holiday
does not eat into it. Pure code: standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# More than any real calendar needs to find the next working day (a year of holidays).
_MAX_DAYS_SEARCHED = 400


class CalendarError(ValueError):
    """A calendar setting is malformed or leaves no working time at all."""


@dataclass(frozen=True)
class BusinessCalendar:
    zone: ZoneInfo
    opens: time = time(9, 0)
    closes: time = time(18, 0)
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO: Monday is 1
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.closes <= self.opens and self.closes != time(0):
            raise CalendarError("business hours must end after they start, e.g. 09:00-18:00")
        if not self.weekdays:
            raise CalendarError("at least one working day is needed")

    def is_working_day(self, day: date) -> bool:
        return day.isoweekday() in self.weekdays and day not in self.holidays

    def _window(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, self.opens, self.zone)
        if self.closes == time(0):  # "09:00-00:00": until midnight
            end = datetime.combine(day + timedelta(days=1), time(0), self.zone)
        else:
            end = datetime.combine(day, self.closes, self.zone)
        return start, end

    def _windows_from(self, moment: datetime) -> Iterable[tuple[datetime, datetime]]:
        """The working windows that end after `moment`, in order, the first clipped to it."""
        day = moment.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS_SEARCHED * 10):
            if self.is_working_day(day):
                start, end = self._window(day)
                if end > moment:
                    yield max(start, moment), end
            day += timedelta(days=1)
        raise CalendarError("no working time found within years; check the holidays")

    def add(self, moment: datetime, hours: float) -> datetime:
        """The moment `hours` of business time after `moment` (aware datetimes)."""
        left = timedelta(hours=hours)
        for start, end in self._windows_from(moment):
            if end - start >= left:
                return start + left
            left -= end - start
        raise CalendarError("unreachable")  # _windows_from raises first

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end` (zero if `end` is not later)."""
        total = timedelta(0)
        if end <= start:
            return total
        for window_start, window_end in self._windows_from(start):
            if window_start >= end:
                break
            total += min(window_end, end) - window_start
        return total


def parse_hours(text: str) -> tuple[time, time]:
    """`09:00-18:00`; `00:00-00:00` is round the clock."""
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        return time.fromisoformat(start_text), time.fromisoformat(end_text)
    except ValueError as exc:
        raise CalendarError(f"BUSINESS_HOURS must look like 09:00-18:00, got {text!r}") from exc


def parse_weekdays(text: str) -> frozenset[int]:
    """`1-5` or `1,2,3,4,5,6` (ISO weekdays: Monday is 1, Sunday 7)."""
    days: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
            if not 1 <= low <= high <= 7:
                raise ValueError(part)
            days.update(range(low, high + 1))
    except ValueError as exc:
        raise CalendarError(
            f"BUSINESS_DAYS must look like 1-5 (Monday is 1), got {text!r}"
        ) from exc
    if not days:
        raise CalendarError("BUSINESS_DAYS names no day")
    return frozenset(days)


def parse_holidays(text: str) -> frozenset[date]:
    """`2027-01-01,2027-01-02,...`: days off that would otherwise be working days."""
    try:
        return frozenset(date.fromisoformat(p.strip()) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise CalendarError(f"HOLIDAYS must be dates like 2027-01-01, got {text!r}") from exc
