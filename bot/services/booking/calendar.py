"""The working calendar: statutory holidays and 调休 working days from chinesecalendar (Monday–Friday
minus ``rules.fallback_holidays`` for years it does not know).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import chinese_calendar

from bot.services.booking.config import Rules

DayKind = Literal["workday", "adjusted_workday", "holiday", "weekend"]


@dataclass(frozen=True)
class CalendarDay:
    day: dt.date
    kind: DayKind
    holiday: str | None = None  # 春节, 国庆节 … (Chinese name)
    known: bool = True  # False: chinesecalendar has no data for this year (fallback rules used)

    @property
    def working(self) -> bool:
        return self.kind in ("workday", "adjusted_workday")


def _holiday_name(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return str(chinese_calendar.Holiday(name).chinese)
    except ValueError:
        return name


def calendar_day(day: dt.date, rules: Rules) -> CalendarDay:
    """Statutory holidays and 调休 working days from chinesecalendar (fallback rules for unknown years)."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        if f"{day:%m-%d}" in rules.fallback_holidays:
            return CalendarDay(day, "holiday", None, known=False)
        return CalendarDay(day, "workday" if day.weekday() < 5 else "weekend", None, known=False)
    if not on_holiday:
        kind: DayKind = "adjusted_workday" if day.weekday() >= 5 else "workday"
        return CalendarDay(day, kind, _holiday_name(name) if kind == "adjusted_workday" else None)
    if name is not None:
        return CalendarDay(day, "holiday", _holiday_name(name))
    return CalendarDay(day, "weekend")


def calendar_data_until() -> int:
    """The last year chinesecalendar knows holidays for."""
    years: list[int] = [d.year for d in chinese_calendar.holidays]
    return max(years)
