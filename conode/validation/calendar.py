"""Calendar months and dates from integer timestamps (µs since 1970, UTC): no clock, no ``datetime``.

A *period* is a calendar month counted from 1970-01 = 0. Rules that speak of
months (the exchange's monthly re-estimates, a duty owed by the first of the
next month) compute them here, from a record's own timestamp, so every peer
reaches the same month. Hinnant's civil-date algorithms: pure integer arithmetic.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DAY_US", "date_label", "period_label", "period_of", "period_start"]

DAY_US: Final = 86_400_000_000


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month 1-12, day 1-31) of a day counted from 1970-01-01."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def period_of(timestamp_us: int) -> int:
    """The month of a timestamp (µs since 1970, UTC): months since 1970-01."""
    year, month, _ = _civil(timestamp_us // DAY_US)
    return (year - 1970) * 12 + month - 1


def period_start(period: int) -> int:
    """The first microsecond of a month (months since 1970-01)."""
    year, month = 1970 + period // 12, period % 12 + 1
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146_097 + doe - 719_468) * DAY_US


def period_label(period: int) -> str:
    """``YYYY-MM`` for a month."""
    return f"{1970 + period // 12:04d}-{period % 12 + 1:02d}"


def date_label(timestamp_us: int) -> str:
    """``YYYY-MM-DD`` (UTC) for a timestamp."""
    year, month, day = _civil(timestamp_us // DAY_US)
    return f"{year:04d}-{month:02d}-{day:02d}"
