"""Calendar facts the generator needs: local midnights in each office's zone (daylight saving
included), weekends and public holidays, and a fast formatter for @timestamp."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def epoch_day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


@lru_cache(maxsize=4096)
def local_midnight_ms(zone: str, day_number: int) -> int:
    """UTC epoch milliseconds of local midnight of the given epoch day in ``zone``."""
    day = date(1970, 1, 1) + timedelta(days=day_number)
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return int(local.astimezone(UTC).timestamp() * 1000)


def local_hour(zone: str, ts_ms: int) -> float:
    """The hour of day (with fraction) of a UTC instant in ``zone``."""
    moment = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(zone))
    return moment.hour + moment.minute / 60


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (0 = Monday) of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


@lru_cache(maxsize=64)
def holidays(region: str, year: int) -> frozenset[date]:
    """Public holidays on which an office is closed (the main ones; no substitute days)."""
    easter = _easter(year)
    common = {date(year, 1, 1), date(year, 12, 25)}
    if region == "US":
        extra = {
            _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            date(year, 7, 4),
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving
            _nth_weekday(year, 11, 3, 4) + timedelta(days=1),
            date(year, 12, 24),
        }
    elif region == "UK":
        extra = {
            easter - timedelta(days=2),
            easter + timedelta(days=1),
            _nth_weekday(year, 5, 0, 1),
            _nth_weekday(year, 5, 0, -1),
            _nth_weekday(year, 8, 0, -1),
            date(year, 12, 26),
        }
    elif region == "DE":
        extra = {
            easter - timedelta(days=2),
            easter + timedelta(days=1),
            date(year, 5, 1),
            easter + timedelta(days=39),
            easter + timedelta(days=50),
            date(year, 10, 3),
            date(year, 12, 24),
            date(year, 12, 26),
        }
    elif region == "SG":
        extra = {date(year, 5, 1), date(year, 8, 9), easter - timedelta(days=2)}
    else:
        extra = set()
    return frozenset(common | extra)


def is_day_off(region: str, day_number: int) -> bool:
    """Weekend or public holiday in the region."""
    day = date(1970, 1, 1) + timedelta(days=day_number)
    return day.weekday() >= 5 or day in holidays(region, day.year)


class TimestampFormatter:
    """ISO 8601 UTC with milliseconds, as Winlogbeat writes @timestamp; caches the date part."""

    def __init__(self) -> None:
        self._day = -1
        self._prefix = ""

    def __call__(self, ts_ms: int) -> str:
        day, in_day = divmod(ts_ms, DAY_MS)
        if day != self._day:
            self._day = day
            self._prefix = (date(1970, 1, 1) + timedelta(days=day)).isoformat() + "T"
        seconds, millis = divmod(in_day, 1000)
        minutes, sec = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return f"{self._prefix}{hour:02d}:{minute:02d}:{sec:02d}.{millis:03d}Z"
