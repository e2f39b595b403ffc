"""The township duty roster (值班): who answers urgent matters on a given day, kept by the judicial office in
the back-office (值班 page).

A person is rostered for a weekday (every Monday …) or for one date (a holiday, a swap); the date wins.
Days run midnight to midnight, Beijing time. A rostered account that is no longer active does not count.
Nobody on duty → urgent matters go to every active township admin (:func:`duty_or_admins`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.staff import DutyShift, StaffUser

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
WEEKDAY_NAMES: tuple[str, ...] = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
#: who may be put on duty: the township's own staff and village mediators (volunteers see only their tickets)
DUTY_ROLES: tuple[str, ...] = ("admin", "mediator")


class DutyError(ValueError):
    """Shown to the admin as is."""


@dataclass(frozen=True)
class OnDuty:
    """Who is on duty on a day and why: ``source`` is "date" (a date entry) or "weekday"."""

    staff: StaffUser
    day: dt.date
    source: str

    @property
    def reason(self) -> str:
        if self.source == "date":
            return f"{self.day.month}月{self.day.day}日的安排"
        return f"每{WEEKDAY_NAMES[self.day.weekday()]}"


def local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(CHINA_TZ).date()


async def on_duty(session: AsyncSession, moment: dt.datetime) -> OnDuty | None:
    """The active person on duty at ``moment`` (a date entry first, then the weekday), or None."""
    day = local_day(moment)
    rows = (
        await session.execute(
            select(DutyShift, StaffUser)
            .join(StaffUser, StaffUser.id == DutyShift.staff_id)
            .where((DutyShift.day == day) | (DutyShift.weekday == day.weekday()))
        )
    ).all()
    ordered = sorted(rows, key=lambda r: (r[0].day is None, r[0].id))  # the date's entry first
    for shift, person in ordered:
        if person.active:
            return OnDuty(person, day, "date" if shift.day is not None else "weekday")
    return None


async def active_admins(session: AsyncSession) -> list[StaffUser]:
    rows = await session.execute(
        select(StaffUser).where(StaffUser.role == "admin", StaffUser.active.is_(True)).order_by(StaffUser.id)
    )
    return list(rows.scalars())


async def duty_or_admins(session: AsyncSession, moment: dt.datetime) -> tuple[OnDuty | None, list[StaffUser]]:
    """The person on duty and [them]; nobody on duty → (None, every active admin)."""
    duty = await on_duty(session, moment)
    if duty is not None:
        return duty, [duty.staff]
    return None, await active_admins(session)


@dataclass(frozen=True)
class Roster:
    weekdays: dict[int, StaffUser]  # 0 = Monday
    days: list[tuple[DutyShift, StaffUser]]  # date entries from today on, soonest first


async def roster(session: AsyncSession, today: dt.date) -> Roster:
    rows = (
        await session.execute(
            select(DutyShift, StaffUser).join(StaffUser, StaffUser.id == DutyShift.staff_id).order_by(DutyShift.day)
        )
    ).all()
    weekdays = {int(s.weekday): u for s, u in rows if s.weekday is not None}
    days = [(s, u) for s, u in rows if s.day is not None and s.day >= today]
    return Roster(weekdays, days)


async def _duty_person(session: AsyncSession, staff_id: int) -> StaffUser:
    person = await session.get(StaffUser, staff_id)
    if person is None or not person.active or person.role not in DUTY_ROLES:
        raise DutyError("这个人不能值班（账号已停用，或不是乡管理员/调解员）。")
    return person


async def set_weekday(session: AsyncSession, weekday: int, staff_id: int | None) -> None:
    """Put someone on duty every ``weekday`` (0 = Monday), or nobody (None)."""
    if not 0 <= weekday <= 6:
        raise DutyError("星期不对。")
    await session.execute(delete(DutyShift).where(DutyShift.weekday == weekday))
    if staff_id is not None:
        await _duty_person(session, staff_id)
        session.add(DutyShift(staff_id=staff_id, weekday=weekday))
    await session.flush()


async def set_weekdays(session: AsyncSession, chosen: Sequence[int | None]) -> None:
    """The whole week at once: ``chosen[i]`` is Monday+i's person or None."""
    if len(chosen) != 7:
        raise DutyError("要填满一周七天。")
    for weekday, staff_id in enumerate(chosen):
        await set_weekday(session, weekday, staff_id)


async def set_day(session: AsyncSession, day: dt.date, staff_id: int) -> None:
    """Put someone on duty on one date (replaces an earlier entry for that date)."""
    await _duty_person(session, staff_id)
    await session.execute(delete(DutyShift).where(DutyShift.day == day))
    session.add(DutyShift(staff_id=staff_id, day=day))
    await session.flush()


async def clear_day(session: AsyncSession, shift_id: int) -> dt.date | None:
    shift = await session.get(DutyShift, shift_id)
    if shift is None or shift.day is None:
        return None
    day = shift.day
    await session.delete(shift)
    return day
