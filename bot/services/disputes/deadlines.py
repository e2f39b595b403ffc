"""Dates of the grid's work, in China time (Asia/Shanghai): months, the monthly report's due day,
the 30-day 司法确认 period and its reminders, the 回访 after a case is resolved.

* 司法确认 — 民事诉讼法第二百零五条 (and 人民调解法第三十三条): the parties apply *jointly*
  "自调解协议生效之日起三十日内". The agreement takes effect on the day every party signed and the
  committee sealed it (人民调解法第二十九条). Counted as 民法典第二百零一条 counts periods (the first
  day not included), the last day is the effective day + 30. 民法典第二百零三条 would move a last
  day that falls on a statutory holiday to the next working day; we show the unmoved date, which
  is never later than the real one, so nobody is told a date that is too late.
* Reminders to the mediator on day 20 and day 27 of the period; the 回访 is due 30 days after 已化解.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from bot.services.tickets import CHINA_TZ, local

CONFIRMATION_DAYS = 30
CONFIRMATION_REMINDER_DAYS: tuple[int, ...] = (20, 27)
VISIT_AFTER_DAYS = 30
#: reminders go out from this local time on their day (not at midnight)
REMIND_FROM = dt.time(9, 0)
DEFAULT_REPORT_DAY = 25
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class MonthError(ValueError):
    """Not a month written as YYYY-MM."""


def today(now: dt.datetime) -> dt.date:
    return local(now).date()


def parse_month(month: str) -> tuple[dt.date, dt.date]:
    """'2026-03' → (first day, last day)."""
    match = MONTH_RE.match(month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise MonthError(f"月份应写成 2026-03 这样：{month}")
    year, mon = int(match.group(1)), int(match.group(2))
    return dt.date(year, mon, 1), dt.date(year, mon, calendar.monthrange(year, mon)[1])


def month_of(day: dt.date) -> str:
    return f"{day:%Y-%m}"


def previous_months(day: dt.date, count: int = 12) -> list[str]:
    first = day.replace(day=1)
    months = []
    for _ in range(count):
        months.append(month_of(first))
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return months


def report_due_on(month: str, report_day: int) -> dt.date:
    """The day the month's screening report is due (the configured day, or the month's last day)."""
    first, last = parse_month(month)
    return first.replace(day=min(report_day, last.day))


def confirmation_deadline(agreement_on: dt.date) -> dt.date:
    """The last day to apply for 司法确认 (民事诉讼法第二百零五条: within 30 days of taking effect)."""
    return agreement_on + dt.timedelta(days=CONFIRMATION_DAYS)


def visit_due(resolved_on: dt.date) -> dt.date:
    return resolved_on + dt.timedelta(days=VISIT_AFTER_DAYS)


def is_remind_time(now: dt.datetime) -> bool:
    return local(now).time() >= REMIND_FROM


def start_of_day(day: dt.date) -> dt.datetime:
    """Local midnight of ``day``, in UTC (for timeline times of dates read from a ledger)."""
    return dt.datetime.combine(day, dt.time(), CHINA_TZ).astimezone(dt.UTC)


def chinese_date(day: dt.date | None) -> str:
    return "" if day is None else f"{day.year}年{day.month}月{day.day}日"
