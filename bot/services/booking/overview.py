"""The back-office's day and week: every slot of every service at a place with capacity, places taken
and the bookings, and the day's table for CSV and XLSX export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import availability, day_bounds
from bot.services.booking.calendar import CalendarDay, calendar_day
from bot.services.booking.config import Rules
from bot.services.booking.formatting import fmt_time
from bot.services.booking.planning import Catalog, plan_day
from bot.storage.booking import (
    OCCUPYING_STATUSES,
    Booking,
    BookingPlace,
    BookingService,
    BookingSlot,
    BookingSpecialDay,
)

OCCUPYING = frozenset(OCCUPYING_STATUSES)


@dataclass
class SlotRow:
    """One slot of one service on the day view: its places and who booked them."""

    service: BookingService
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int  # 0 when the slot is no longer in the schedule (a closure added after booking)
    taken: int
    bookings: list[Booking] = field(default_factory=list)

    @property
    def planned(self) -> bool:
        return self.capacity > 0

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken)


class _Totals:
    """capacity / taken / free of a day, summed over its slots (``_parts``)."""

    @property
    def _parts(self) -> Sequence[SlotRow | WeekCell]:
        raise NotImplementedError

    @property
    def capacity(self) -> int:
        return sum(p.capacity for p in self._parts)

    @property
    def taken(self) -> int:
        return sum(p.taken for p in self._parts)

    @property
    def free(self) -> int:
        return sum(p.free for p in self._parts)


@dataclass
class DayOverview(_Totals):
    place: BookingPlace
    day: dt.date
    calendar: CalendarDay
    specials: list[BookingSpecialDay]
    rows: list[SlotRow]
    cancelled: list[Booking]

    @property
    def _parts(self) -> Sequence[SlotRow]:
        return self.rows

    @property
    def bookings(self) -> list[Booking]:
        return [b for r in self.rows for b in r.bookings]

    def count(self, status: str) -> int:
        return sum(1 for b in self.bookings if b.status == status)


async def day_overview(session: AsyncSession, cat: Catalog, rules: Rules, place_id: int, day: dt.date) -> DayOverview:
    """Every slot of every service at a place on a day, with capacity, places taken and the bookings."""
    place = cat.places[place_id]
    start, end = day_bounds(day, rules)
    booked = list(
        (
            await session.execute(
                select(Booking)
                .where(Booking.place_id == place_id, Booking.starts_at >= start, Booking.starts_at < end)
                .order_by(Booking.starts_at, Booking.id)
            )
        ).scalars()
    )
    taken_rows = (
        await session.execute(
            select(BookingSlot.service_id, BookingSlot.starts_at, BookingSlot.taken).where(
                BookingSlot.place_id == place_id, BookingSlot.starts_at >= start, BookingSlot.starts_at < end
            )
        )
    ).all()
    taken = {(sid, s): int(t) for sid, s, t in taken_rows}
    rows: dict[tuple[int, dt.datetime], SlotRow] = {}
    specials: dict[int, BookingSpecialDay] = {}
    for service in cat.services.values():
        plan = plan_day(cat, rules, place_id, service.id, day)
        specials.update({sp.id: sp for sp in plan.specials})
        for p in plan.slots:
            rows[(service.id, p.starts_at)] = SlotRow(
                service, p.starts_at, p.ends_at, p.capacity, taken.get((service.id, p.starts_at), 0)
            )
    cancelled = []
    for b in booked:
        if b.status not in OCCUPYING:
            cancelled.append(b)
            continue
        key = (b.service_id, b.starts_at)
        if key not in rows:  # booked before the schedule changed: shown so staff can call the villager
            gone = cat.services.get(b.service_id)
            if gone is None:
                continue
            rows[key] = SlotRow(gone, b.starts_at, b.ends_at, 0, taken.get(key, 0))
        rows[key].bookings.append(b)
    ordered = sorted(rows.values(), key=lambda r: (r.starts_at, r.service.sort_order, r.service.id))
    return DayOverview(
        place, day, calendar_day(day, rules), sorted(specials.values(), key=lambda s: s.id), ordered, cancelled
    )


@dataclass
class WeekCell:
    service: BookingService
    capacity: int
    taken: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken)


@dataclass
class WeekDay(_Totals):
    day: dt.date
    calendar: CalendarDay
    specials: list[BookingSpecialDay]
    cells: list[WeekCell]

    @property
    def _parts(self) -> Sequence[WeekCell]:
        return self.cells


async def week_overview(
    session: AsyncSession, cat: Catalog, rules: Rules, place_id: int, start: dt.date, days: int = 7
) -> list[WeekDay]:
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    out = [WeekDay(d, calendar_day(d, rules), [], []) for d in dates]
    for service in cat.services.values():
        found = await availability(
            session, cat, rules, place_id, service.id, dates, not_before=day_bounds(dates[0], rules)[0]
        )
        for week_day, avail in zip(out, found, strict=True):
            seen = {sp.id for sp in week_day.specials}
            week_day.specials += [sp for sp in avail.plan.specials if sp.id not in seen]
            if avail.slots:
                week_day.cells.append(
                    WeekCell(service, sum(s.capacity for s in avail.slots), sum(s.taken for s in avail.slots))
                )
    return out


EXPORT_HEADER = ("时间", "事项", "姓名", "手机", "预约码", "状态", "来源", "备注")
STATUS_NAMES = {
    "held": "候补保留中",
    "confirmed": "已预约",
    "checked_in": "已到",
    "no_show": "未到",
    "cancelled": "已取消",
    "expired": "已过期",
}
SOURCE_NAMES = {"wechat": "公众号", "staff": "工作人员代约", "waitlist": "候补"}


def export_rows(overview: DayOverview, rules: Rules) -> list[list[str]]:
    """The day's bookings as a table (header first) for CSV and XLSX; cancelled ones at the end."""
    rows = [list(EXPORT_HEADER)]
    for b in [*overview.bookings, *overview.cancelled]:
        service = next((r.service.name for r in overview.rows if r.service.id == b.service_id), "")
        rows.append(
            [
                f"{fmt_time(b.starts_at, rules)}-{fmt_time(b.ends_at, rules)}",
                service,
                b.name,
                b.phone or "",
                b.code,
                STATUS_NAMES.get(b.status, b.status),
                SOURCE_NAMES.get(b.source, b.source),
                b.note,
            ]
        )
    return rows
