"""Taking a place without overbooking, and giving it back.

A place is taken only by ``UPDATE booking_slots SET taken = taken + 1 WHERE id = … AND taken < capacity``
on the slot's counter row, locked ``FOR UPDATE`` first (PostgreSQL; SQLite serialises writers with
``BEGIN IMMEDIATE``). Nothing is checked and then inserted. A booking's ``request_key`` is unique, so a
re-sent confirmation finds the booking it already made instead of booking twice. Also: a villager's
upcoming bookings, look-up by 预约码, attendance.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import FreeSlot, local_day, next_free_slots
from bot.services.booking.config import Rules
from bot.services.booking.formatting import fmt_day
from bot.services.booking.planning import Catalog, plan_day
from bot.services.booking.reminders import reminder_times
from bot.storage.booking import (
    UPCOMING_STATUSES,
    Booking,
    BookingSlot,
    BookingWaitlist,
)
from bot.storage.models import Villager


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


BookStatus = Literal["booked", "duplicate", "full", "gone", "limit"]


@dataclass
class BookOutcome:
    status: BookStatus
    booking: Booking | None = None
    alternatives: list[FreeSlot] = field(default_factory=list)
    upcoming: list[Booking] = field(default_factory=list)  # for "limit"
    replaced: Booking | None = None  # the booking a reschedule cancelled


def new_code() -> str:
    return str(100000 + secrets.randbelow(900000))


async def upcoming_bookings(session: AsyncSession, openid: str, now: dt.datetime) -> list[Booking]:
    rows = await session.execute(
        select(Booking)
        .where(Booking.openid == openid, Booking.status.in_(UPCOMING_STATUSES), Booking.starts_at > now)
        .order_by(Booking.starts_at, Booking.id)
    )
    return list(rows.scalars())


async def booking_by_code(session: AsyncSession, code: str) -> Booking | None:
    return (await session.execute(select(Booking).where(Booking.code == code.strip()))).scalar_one_or_none()


async def _lock_villager(session: AsyncSession, openid: str) -> None:
    """Serialise one villager's bookings (the upcoming limit) on their row."""
    await session.execute(select(Villager.id).where(Villager.openid == openid).with_for_update())


async def book(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    *,
    place_id: int,
    service_id: int,
    starts_at: dt.datetime,
    request_key: str,
    now: dt.datetime,
    openid: str | None,
    name: str,
    phone: str | None = None,
    phone_consent_at: dt.datetime | None = None,
    source: str = "wechat",
    status: Literal["confirmed", "held"] = "confirmed",
    hold_until: dt.datetime | None = None,
    created_by: str | None = None,
    note: str = "",
    replaces: Booking | None = None,
    check_limit: bool = True,
    lead: dt.timedelta | None = None,
) -> BookOutcome:
    """Take one place in a slot, or say why not. Idempotent on ``request_key``.

    Runs in the caller's transaction. ``replaces`` (改约) is cancelled in the same transaction once
    the new place is taken. ``lead`` (default ``rules.min_lead``) is how soon before its start a
    slot can still be booked; staff booking by phone pass ``timedelta(0)``.
    """
    starts_at = starts_at.astimezone(dt.UTC)
    lead = rules.min_lead if lead is None else lead
    existing = (await session.execute(select(Booking).where(Booking.request_key == request_key))).scalar_one_or_none()
    if existing is not None:
        return BookOutcome("duplicate", existing)

    async def alternatives() -> list[FreeSlot]:
        return await next_free_slots(session, cat, rules, place_id, service_id, after=starts_at, now=now)

    plan = plan_day(cat, rules, place_id, service_id, local_day(starts_at, rules))
    planned = next((p for p in plan.slots if p.starts_at == starts_at), None)
    if planned is None or starts_at < now + lead:
        return BookOutcome("gone", alternatives=await alternatives())
    if openid is not None and check_limit:
        await _lock_villager(session, openid)
        upcoming = [b for b in await upcoming_bookings(session, openid, now) if replaces is None or b.id != replaces.id]
        if len(upcoming) >= rules.max_upcoming:
            return BookOutcome("limit", upcoming=upcoming)

    # the counter row: created from the plan if it is not there yet, then locked (ordered by id)
    await session.execute(
        _insert(session)(BookingSlot)
        .values(
            place_id=place_id,
            service_id=service_id,
            starts_at=starts_at,
            ends_at=planned.ends_at,
            capacity=planned.capacity,
            taken=0,
        )
        .on_conflict_do_nothing(index_elements=["place_id", "service_id", "starts_at"])
    )
    slot_id = (
        await session.execute(
            select(BookingSlot.id).where(
                BookingSlot.place_id == place_id,
                BookingSlot.service_id == service_id,
                BookingSlot.starts_at == starts_at,
            )
        )
    ).scalar_one()
    lock_ids = sorted({slot_id, replaces.slot_id} if replaces is not None else {slot_id})
    await session.execute(
        select(BookingSlot.id).where(BookingSlot.id.in_(lock_ids)).order_by(BookingSlot.id).with_for_update()
    )
    # the schedule is the truth for capacity (staff may have changed it since the row was made)
    await session.execute(
        update(BookingSlot)
        .where(BookingSlot.id == slot_id, BookingSlot.capacity != planned.capacity)
        .values(capacity=planned.capacity, ends_at=planned.ends_at)
        .execution_options(synchronize_session=False)
    )
    # a twin of this request may have committed while we waited for the lock
    existing = (await session.execute(select(Booking).where(Booking.request_key == request_key))).scalar_one_or_none()
    if existing is not None:
        return BookOutcome("duplicate", existing)
    took = (
        await session.execute(
            update(BookingSlot)
            .where(BookingSlot.id == slot_id, BookingSlot.taken < BookingSlot.capacity)
            .values(taken=BookingSlot.taken + 1)
            .returning(BookingSlot.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if took is None:
        return BookOutcome("full", alternatives=await alternatives())

    eve, soon = reminder_times(starts_at, now, rules) if status == "confirmed" else (None, None)
    values = {
        "request_key": request_key,
        "slot_id": slot_id,
        "place_id": place_id,
        "service_id": service_id,
        "starts_at": starts_at,
        "ends_at": planned.ends_at,
        "openid": openid,
        "name": name[:64],
        "phone": phone if phone and phone_consent_at else None,
        "phone_consent_at": phone_consent_at if phone else None,
        "status": status,
        "source": source,
        "hold_expires_at": hold_until if status == "held" else None,
        "remind_eve_at": eve,
        "remind_soon_at": soon,
        "created_at": now,
        "confirmed_at": now if status == "confirmed" else None,
        "created_by": created_by,
        "note": note,
        "rescheduled_from_id": replaces.id if replaces is not None else None,
    }
    booking_id: int | None = None
    for _ in range(8):  # a clash of the random 预约码 is retried with a new one
        booking_id = (
            await session.execute(
                _insert(session)(Booking)
                .values(code=new_code(), **values)
                .on_conflict_do_nothing()
                .returning(Booking.id)
            )
        ).scalar_one_or_none()
        if booking_id is not None:
            break
        twin = (await session.execute(select(Booking).where(Booking.request_key == request_key))).scalar_one_or_none()
        if twin is not None:  # not reachable while the slot lock is held; kept for safety
            await _release_place(session, slot_id)
            return BookOutcome("duplicate", twin)
    if booking_id is None:  # pragma: no cover - 8 clashes in a million codes
        raise RuntimeError("could not allocate a booking code")
    booking = await session.get(Booking, booking_id, populate_existing=True)
    assert booking is not None
    if openid is not None and status == "confirmed":  # booked that day after all: no longer waiting for it
        await session.execute(
            update(BookingWaitlist)
            .where(
                BookingWaitlist.openid == openid,
                BookingWaitlist.place_id == place_id,
                BookingWaitlist.service_id == service_id,
                BookingWaitlist.day == local_day(starts_at, rules),
                BookingWaitlist.status == "waiting",
            )
            .values(status="booked", booking_id=booking_id)
            .execution_options(synchronize_session=False)
        )
    outcome = BookOutcome("booked", booking)
    if replaces is not None:
        outcome.replaced = await _end_booking(
            session, replaces.id, now=now, by="villager", status="cancelled", note="改约"
        )
    return outcome


async def _release_place(session: AsyncSession, slot_id: int) -> None:
    await session.execute(
        update(BookingSlot)
        .where(BookingSlot.id == slot_id, BookingSlot.taken > 0)
        .values(taken=BookingSlot.taken - 1)
        .execution_options(synchronize_session=False)
    )


async def _end_booking(
    session: AsyncSession, booking_id: int, *, now: dt.datetime, by: str, status: str, note: str = ""
) -> Booking | None:
    """held/confirmed → cancelled/expired, freeing its place. None when it was not active any more."""
    ended = (
        await session.execute(
            update(Booking)
            .where(Booking.id == booking_id, Booking.status.in_(UPCOMING_STATUSES))
            .values(status=status, cancelled_at=now, cancelled_by=by[:64], hold_expires_at=None)
            .returning(Booking.slot_id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if ended is None:
        return None
    await _release_place(session, ended)
    booking = await session.get(Booking, booking_id, populate_existing=True)
    assert booking is not None
    if note:
        booking.note = (booking.note + "\n" + note).strip()
    # a held offer that ends closes its waiting-list entry
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.booking_id == booking_id, BookingWaitlist.status == "offered")
        .values(status="expired" if status == "expired" else "cancelled")
        .execution_options(synchronize_session=False)
    )
    return booking


class AttendanceError(ValueError):
    """Refused: ``str(error)`` is a sentence for staff (Chinese)."""


async def mark_attendance(
    session: AsyncSession,
    booking_id: int,
    status: Literal["checked_in", "no_show", "confirmed"],
    *,
    by: str,
    now: dt.datetime,
    rules: Rules,
) -> Booking | None:
    """Staff mark a villager as come (checked_in), not come (no_show), or undo (confirmed).

    到了 only on the booking's own day (never a day early, as the evening before's list would allow);
    没来 only once its time has come (later days too: catching up on yesterday's list). None: the booking
    was cancelled or expired."""
    booking = await session.get(Booking, booking_id)
    if booking is None:
        return None
    day = local_day(booking.starts_at, rules)
    if status == "checked_in" and day != local_day(now, rules):
        raise AttendanceError(f"这是{fmt_day(day)}的预约，只能在当天登记“到了”。")
    if status == "no_show" and booking.starts_at > now:
        raise AttendanceError("预约时间还没到，不能登记“没来”。")
    done = (
        await session.execute(
            update(Booking)
            .where(Booking.id == booking_id, Booking.status.in_(("confirmed", "checked_in", "no_show")))
            .values(status=status, checked_in_at=now if status == "checked_in" else None, marked_by=by[:64])
            .returning(Booking.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if done is None:
        return None
    return await session.get(Booking, booking_id, populate_existing=True)


async def last_contact(session: AsyncSession, openid: str) -> tuple[str, str | None] | None:
    """The name (and phone, if it was given with consent and is still kept) of the villager's last booking."""
    row = (
        await session.execute(
            select(Booking.name, Booking.phone)
            .where(Booking.openid == openid, Booking.name != "", Booking.name != "（已删除）")
            .order_by(Booking.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return str(row[0]), row[1]
