"""The report's months: a month's bounds in China time, the months to pick from, and a SQL expression that
puts a timestamp into one of twelve months (portable: no date functions, so SQLite and PostgreSQL agree)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, case, literal, null

from bot.services.tickets import CHINA_TZ, local


@dataclass(frozen=True)
class Month:
    label: str  # 2026-11
    start: dt.datetime  # first instant, China time (aware)
    end: dt.datetime  # first instant of the next month

    @property
    def short(self) -> str:
        """26-11: fits under a chart's axis."""
        return self.label[2:]


def _first(label: str) -> dt.date | None:
    try:
        year, mon = (int(p) for p in label.split("-", 1))
        return dt.date(year, mon, 1)
    except ValueError:
        return None


def _month(first: dt.date) -> Month:
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return Month(
        f"{first:%Y-%m}",
        dt.datetime.combine(first, dt.time(), CHINA_TZ),
        dt.datetime.combine(nxt, dt.time(), CHINA_TZ),
    )


def first_day(label: str, now: dt.datetime) -> dt.date:
    """'2026-11' → 2026-11-01; anything else → this month's first day (China time)."""
    return _first(label) or local(now).date().replace(day=1)


def month_bounds(label: str, now: dt.datetime) -> Month:
    """'2026-11' → that month; anything else (or the last month the calendar has) → the current month."""
    first = first_day(label, now)
    return _month(first if first.year < dt.MAXYEAR else first_day("", now))


def recent_months(now: dt.datetime, count: int = 12) -> list[str]:
    """The current month and the ones before it, newest first (the month picker)."""
    return [m.label for m in reversed(months_up_to(month_bounds("", now), count))]


def months_up_to(last: Month, count: int = 12) -> list[Month]:
    """``count`` months ending with ``last``, oldest first (a trend chart's axis)."""
    out = [last]
    while len(out) < count:
        out.append(_month((out[-1].start.date() - dt.timedelta(days=1)).replace(day=1)))
    return list(reversed(out))


def month_of(column: Any, months: Sequence[Month]) -> Any:
    """A CASE putting ``column`` into one of ``months`` by label (NULL outside them). Select it in a
    subquery and group by that column: PostgreSQL does not match a GROUP BY expression with bound
    parameters to the same expression in the SELECT list."""
    return case(
        *((and_(column >= m.start, column < m.end), literal(m.label, String())) for m in months),
        else_=null(),
    )


__all__ = ["Month", "first_day", "month_bounds", "month_of", "months_up_to", "recent_months"]
