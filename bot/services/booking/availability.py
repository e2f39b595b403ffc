"""Free places: the planned slots minus the places taken, per day; the open days ahead and the next
free times. Every instant is stored in UTC and shown in ``rules.timezone``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.config import Rules
from bot.services.booking.planning import Catalog, DayPlan, _local, plan_day
from bot.storage.booking import (
    BookingSlot,
)

#: how far ahead (calendar days) open days are looked for
SEARCH_DAYS = 60


@dataclass(frozen=True)
class FreeSlot:
    place_id: int
    service_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    taken: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken)


@dataclass(frozen=True)
class DayAvailability:
    plan: DayPlan
    slots: tuple[FreeSlot, ...]  # the slots that can still be booked (not too soon), full ones included

    @property
    def day(self) -> dt.date:
        return self.plan.day

    @property
    def free(self) -> int:
        return sum(s.free for s in self.slots)

    @property
    def free_slots(self) -> list[FreeSlot]:
        return [s for s in self.slots if s.free > 0]


def local_day(moment: dt.datetime, rules: Rules) -> dt.date:
    return moment.astimezone(rules.tz).date()


def day_bounds(day: dt.date, rules: Rules) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a local day, in UTC."""
    return _local(day, dt.time(0), rules.tz), _local(day + dt.timedelta(days=1), dt.time(0), rules.tz)


async def taken_counts(
    session: AsyncSession, place_id: int, service_id: int, start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, int]:
    rows = await session.execute(
        select(BookingSlot.starts_at, BookingSlot.taken).where(
            BookingSlot.place_id == place_id,
            BookingSlot.service_id == service_id,
            BookingSlot.starts_at >= start,
            BookingSlot.starts_at < end,
        )
    )
    return {s: int(t) for s, t in rows.all()}


async def availability(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    place_id: int,
    service_id: int,
    days: Sequence[dt.date],
    *,
    not_before: dt.datetime,
) -> list[DayAvailability]:
    """Free places per day; slots starting before ``not_before`` are left out."""
    if not days:
        return []
    taken = await taken_counts(
        session, place_id, service_id, day_bounds(min(days), rules)[0], day_bounds(max(days), rules)[1]
    )
    out = []
    for day in days:
        plan = plan_day(cat, rules, place_id, service_id, day)
        slots = tuple(
            FreeSlot(p.place_id, p.service_id, p.starts_at, p.ends_at, p.capacity, taken.get(p.starts_at, 0))
            for p in plan.slots
            if p.starts_at >= not_before
        )
        out.append(DayAvailability(plan, slots))
    return out


async def open_days(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    place_id: int,
    service_id: int,
    now: dt.datetime,
    *,
    count: int | None = None,
) -> list[DayAvailability]:
    """The next ``rules.days_ahead`` days on which the service is open at the place (full days included)."""
    count = count or rules.days_ahead
    today = local_day(now, rules)
    days = [today + dt.timedelta(days=i) for i in range(SEARCH_DAYS)]
    found = await availability(session, cat, rules, place_id, service_id, days, not_before=now + rules.min_lead)
    return [d for d in found if d.slots][:count]


async def next_free_slots(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    place_id: int,
    service_id: int,
    *,
    after: dt.datetime,
    now: dt.datetime,
    limit: int = 5,
) -> list[FreeSlot]:
    """The next free times from ``after`` on (the same day first, then the following open days)."""
    start_day = local_day(max(after, now), rules)
    days = [start_day + dt.timedelta(days=i) for i in range(SEARCH_DAYS)]
    found = await availability(
        session, cat, rules, place_id, service_id, days, not_before=max(after, now + rules.min_lead)
    )
    return [s for d in found for s in d.free_slots][:limit]
