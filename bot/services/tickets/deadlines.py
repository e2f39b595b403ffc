"""Deadlines: the first response is due within N *working hours* — clock hours that fall on a working day
of the Chinese calendar (``chinese_calendar``: statutory holidays off, adjusted weekend working days on;
plain Monday–Friday for years it does not know yet). N is ``LAWBOT_FIRST_RESPONSE_HOURS`` when set, else
:data:`DEFAULT_FIRST_RESPONSE_HOURS`. Also the statutory clock of a signed mediation agreement (30 days to
apply for judicial confirmation) and how deadlines read in Chinese.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.storage.tickets import Ticket

if TYPE_CHECKING:
    from bot.settings import Settings


CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
DEFAULT_FIRST_RESPONSE_HOURS = 24
#: 人民调解法第33条: judicial confirmation within 30 days of the mediation agreement taking effect
JUDICIAL_CONFIRMATION_DAYS = 30


def first_response_hours(settings: Settings) -> int:
    return settings.first_response_hours if settings.first_response_hours > 0 else DEFAULT_FIRST_RESPONSE_HOURS


def is_workday(day: dt.date) -> bool:
    """A working day of the Chinese calendar (statutory holidays and adjusted working days)."""
    import chinese_calendar

    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package does not know yet: Monday to Friday
        return day.weekday() < 5


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(CHINA_TZ)


def add_working_hours(start: dt.datetime, hours: float) -> dt.datetime:
    """``start`` plus ``hours`` clock hours counted on working days only (returned in UTC)."""
    remaining = dt.timedelta(hours=hours)
    current = local(start)
    for _ in range(3660):  # ten years of days: the calendar never has that many holidays in a row
        next_midnight = dt.datetime.combine(current.date() + dt.timedelta(days=1), dt.time(), CHINA_TZ)
        if is_workday(current.date()):
            available = next_midnight - current
            if remaining <= available:
                return (current + remaining).astimezone(dt.UTC)
            remaining -= available
        current = next_midnight
    raise ValueError(f"no working day found after {start}")


def format_due(moment: dt.datetime) -> str:
    """'12月1日15:30前', or '12月1日内' for a deadline at midnight — how villagers read a deadline."""
    at = local(moment)
    if at.hour == 0 and at.minute == 0:
        day = at - dt.timedelta(days=1)
        return f"{day.month}月{day.day}日内"
    return f"{at.month}月{at.day}日{at:%H:%M}前"


def format_time(moment: dt.datetime | None) -> str:
    return "" if moment is None else f"{local(moment):%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class StatutoryClock:
    name: str
    deadline: dt.date
    days_left: int

    @property
    def urgent(self) -> bool:
        return self.days_left <= 7


def statutory_clock(ticket: Ticket, today: dt.date) -> StatutoryClock | None:
    """A signed mediation agreement: apply for judicial confirmation within 30 days (人民调解法第33条)."""
    if ticket.agreement_signed_on is None:
        return None
    deadline = ticket.agreement_signed_on + dt.timedelta(days=JUDICIAL_CONFIRMATION_DAYS)
    return StatutoryClock("调解协议司法确认申请期限（人民调解法第33条，30日）", deadline, (deadline - today).days)


def is_overdue(ticket: Ticket, now: dt.datetime) -> bool:
    return ticket.first_response_at is None and ticket.is_open and ticket.first_response_due_at <= now
