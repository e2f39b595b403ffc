"""The catalog (services, places, schedules, special days) and a day's planned slots at a place before
anybody booked: regular schedules, breaks, closures, extra openings and capacity.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.calendar import CalendarDay, calendar_day
from bot.services.booking.config import BookingConfigError, Rules, parse_span
from bot.storage.booking import (
    BookingPlace,
    BookingSchedule,
    BookingService,
    BookingSpecialDay,
)

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """Services, places, schedules and special days, as one chat message or page needs them."""

    services: dict[int, BookingService]
    places: dict[int, BookingPlace]
    schedules: list[BookingSchedule]
    specials: list[BookingSpecialDay]

    def active_services(self) -> list[BookingService]:
        return [s for s in self.services.values() if s.active]

    def places_for(self, service_id: int) -> list[BookingPlace]:
        """Active places with an active schedule (or a special opening) for the service."""
        ids = {s.place_id for s in self.schedules if s.active and s.service_id == service_id}
        ids |= {
            sp.place_id
            for sp in self.specials
            if sp.kind == "extra" and sp.start_time and sp.place_id and sp.service_id in (None, service_id)
        }
        return [p for p in self.places.values() if p.active and p.id in ids]


async def load_catalog(session: AsyncSession, start: dt.date | None = None, end: dt.date | None = None) -> Catalog:
    services = (
        await session.execute(select(BookingService).order_by(BookingService.sort_order, BookingService.id))
    ).scalars()
    places = (await session.execute(select(BookingPlace).order_by(BookingPlace.sort_order, BookingPlace.id))).scalars()
    schedules = (await session.execute(select(BookingSchedule).order_by(BookingSchedule.id))).scalars()
    q = select(BookingSpecialDay).order_by(BookingSpecialDay.day, BookingSpecialDay.id)
    if start is not None:
        q = q.where(BookingSpecialDay.day >= start)
    if end is not None:
        q = q.where(BookingSpecialDay.day <= end)
    specials = (await session.execute(q)).scalars()
    return Catalog(
        services={s.id: s for s in services},
        places={p.id: p for p in places},
        schedules=list(schedules),
        specials=list(specials),
    )


@dataclass(frozen=True)
class PlannedSlot:
    place_id: int
    service_id: int
    starts_at: dt.datetime  # UTC
    ends_at: dt.datetime  # UTC
    capacity: int


@dataclass(frozen=True)
class DayPlan:
    day: dt.date
    calendar: CalendarDay
    slots: tuple[PlannedSlot, ...]
    specials: tuple[BookingSpecialDay, ...] = ()  # the special days that apply (closures included)

    @property
    def closed_by(self) -> BookingSpecialDay | None:
        return next((s for s in self.specials if s.kind == "closed"), None)


def _local(day: dt.date, t: dt.time, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, t, tzinfo=tz).astimezone(dt.UTC)


def _session_slots(
    day: dt.date,
    start: dt.time,
    end: dt.time,
    minutes: int,
    breaks: Iterable[tuple[dt.time, dt.time]],
    tz: ZoneInfo,
) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    step = dt.timedelta(minutes=max(1, minutes))
    cursor = dt.datetime.combine(day, start)
    stop = dt.datetime.combine(day, end)
    spans = [(dt.datetime.combine(day, a), dt.datetime.combine(day, b)) for a, b in breaks]
    while cursor + step <= stop:
        nxt = cursor + step
        if not any(cursor < b_end and nxt > b_start for b_start, b_end in spans):
            out.append((cursor.replace(tzinfo=tz).astimezone(dt.UTC), nxt.replace(tzinfo=tz).astimezone(dt.UTC)))
        cursor = nxt
    return out


def _breaks(raw: Iterable[Any]) -> list[tuple[dt.time, dt.time]]:
    out = []
    for item in raw or []:
        try:
            out.append(parse_span(item, "breaks"))
        except BookingConfigError:
            log.warning("booking: ignoring a malformed break %r", item)
    return out


def plan_day(cat: Catalog, rules: Rules, place_id: int, service_id: int, day: dt.date) -> DayPlan:
    """The slots of one service at one place on one day, before anybody booked."""
    cal = calendar_day(day, rules)
    tz = rules.tz
    specials = tuple(
        sp
        for sp in cat.specials
        if sp.day == day and sp.place_id in (None, place_id) and sp.service_id in (None, service_id)
    )
    place, service = cat.places.get(place_id), cat.services.get(service_id)
    if place is None or service is None or not place.active or not service.active:
        return DayPlan(day, cal, (), specials)
    if any(sp.kind == "closed" for sp in specials):
        return DayPlan(day, cal, (), specials)
    regular = [s for s in cat.schedules if s.active and s.place_id == place_id and s.service_id == service_id]
    extras = [sp for sp in specials if sp.kind == "extra"]
    extra_capacity = sum(sp.extra_capacity for sp in extras if sp.start_time is None)
    slots: dict[dt.datetime, PlannedSlot] = {}

    def add(start: dt.time, end: dt.time, minutes: int, capacity: int, breaks: Iterable[Any]) -> None:
        for s, e in _session_slots(day, start, end, minutes, _breaks(breaks), tz):
            if capacity <= 0:
                continue
            if s not in slots or slots[s].capacity < capacity:
                slots[s] = PlannedSlot(place_id, service_id, s, e, capacity)

    opening = [sp for sp in extras if sp.start_time is not None and sp.end_time is not None]
    if opening:  # a special day with its own hours replaces the regular schedule that day
        default_capacity = max((s.capacity for s in regular), default=1)
        default_minutes = min((s.slot_minutes for s in regular), default=30)
        for sp in opening:
            assert sp.start_time is not None and sp.end_time is not None
            capacity = (sp.capacity if sp.capacity is not None else default_capacity) + sp.extra_capacity
            add(sp.start_time, sp.end_time, sp.slot_minutes or default_minutes, capacity, [])
    else:
        if cal.kind == "holiday":
            weekdays: set[int] = set()
        elif cal.kind == "adjusted_workday":
            weekdays = {rules.adjusted_workday_weekday, day.weekday()}
        else:  # a workday uses its own weekday; an ordinary weekend only what lists it explicitly
            weekdays = {day.weekday()}
        for sch in regular:
            if weekdays & {int(w) for w in sch.weekdays or []}:
                add(sch.start_time, sch.end_time, sch.slot_minutes, sch.capacity + extra_capacity, sch.breaks)
    return DayPlan(day, cal, tuple(slots[k] for k in sorted(slots)), specials)
