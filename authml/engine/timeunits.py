"""Time values, intervals and date math as Elasticsearch reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MS_PER_UNIT = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TIME_VALUE = re.compile(r"^([+-]?)(\d+)(ms|s|m|h|d)$")
_TIME_SETTING = re.compile(r"^(\d+)(nanos|micros|ms|s|m|h|d)$")

# calendar_interval accepts exactly one unit, spelled either way (ES: DateHistogramAggregationBuilder).
CALENDAR_UNITS = {
    "minute": "minute", "1m": "minute",
    "hour": "hour", "1h": "hour",
    "day": "day", "1d": "day",
    "week": "week", "1w": "week",
    "month": "month", "1M": "month",
    "quarter": "quarter", "1q": "quarter",
    "year": "year", "1y": "year",
}  # fmt: skip


class TimeValueError(ValueError):
    pass


def fixed_interval_ms(text: str) -> int:
    """A fixed_interval such as ``90m`` or ``1h`` in milliseconds (units ms, s, m, h, d)."""
    match = _TIME_VALUE.match(str(text))
    if not match or match.group(1) or int(match.group(2)) <= 0:
        raise TimeValueError(f"[{text}] is not a positive fixed interval such as 30s, 90m, 1h or 1d")
    return int(match.group(2)) * MS_PER_UNIT[match.group(3)]


def offset_ms(text: str) -> int:
    """A date_histogram offset such as ``+6h`` or ``-30m`` in milliseconds."""
    match = _TIME_VALUE.match(str(text))
    if not match:
        raise TimeValueError(f"[{text}] is not an offset such as +6h, -30m or 1d")
    value = int(match.group(2)) * MS_PER_UNIT[match.group(3)]
    return -value if match.group(1) == "-" else value


def time_setting_ms(text: str) -> int:
    """A duration setting (``frequency``, ``sync.time.delay``) in milliseconds."""
    match = _TIME_SETTING.match(str(text))
    if not match:
        raise TimeValueError(f"[{text}] is not a time value such as 60s, 2m or 1h")
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "nanos":
        return amount // 1_000_000
    if unit == "micros":
        return amount // 1000
    return amount * MS_PER_UNIT[unit]


# Date math ------------------------------------------------------------------------------------

_MATH_OP = re.compile(r"([+-])(\d*)([yMwdhHms])|/([yMwdhHms])")


def _floor_unit(moment: datetime, unit: str) -> datetime:
    if unit == "y":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if unit == "d":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("h", "H"):
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


def _add(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in ("y", "M"):
        months = moment.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        last_day = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return moment.replace(year=year, month=month, day=min(moment.day, last_day))
    seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return moment + timedelta(seconds=amount * seconds)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_date(text: str) -> datetime:
    """An ISO 8601 date or date-time (strict_date_optional_time) as an aware UTC datetime."""
    value = str(text).strip()
    if re.fullmatch(r"\d{4}", value):
        value += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", value):
        value += "-01"
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as exc:
        raise TimeValueError(f"[{text}] is not a date in strict_date_optional_time format") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def resolve_date_math(expression: str | int | float, now: datetime, *, round_up: bool) -> datetime:
    """``now-1d/d`` or ``2020-01-01||+1M`` as a UTC datetime. Rounding goes to the first millisecond
    of the unit, or with ``round_up`` to its last one, as ES does for gt/lte bounds."""
    if isinstance(expression, bool):
        raise TimeValueError(f"[{expression}] is not a date")
    if isinstance(expression, int | float):
        return datetime.fromtimestamp(expression / 1000, tz=UTC)
    text = str(expression)
    if text.startswith("now"):
        anchor, math = now.astimezone(UTC), text[3:]
    elif "||" in text:
        head, math = text.split("||", 1)
        anchor = parse_date(head)
    else:
        if re.fullmatch(r"-?\d{5,}", text):
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        return parse_date(text)
    position = 0
    moment = anchor
    while position < len(math):
        match = _MATH_OP.match(math, position)
        if not match:
            raise TimeValueError(f"[{text}] is not valid date math (expected +1d, -2h, /d, ...)")
        if match.group(4):
            unit = match.group(4)
            moment = _floor_unit(moment, unit)
            if round_up:
                moment = _add(moment, 1, unit) - timedelta(milliseconds=1)
        else:
            amount = int(match.group(2) or 1)
            moment = _add(moment, -amount if match.group(1) == "-" else amount, match.group(3))
        position = match.end()
    return moment


def format_millis(epoch_millis: int) -> str:
    """ES's default date format for a millisecond instant: ``2017-02-18T00:00:00.000Z``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_millis(moment: datetime) -> int:
    """A datetime (naive = UTC) as epoch milliseconds, sub-millisecond digits dropped."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
