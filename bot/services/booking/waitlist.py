"""Cancelling and the waiting list: a freed place (cancellation, an offer declined or expired) is held
for the first villager waiting for that day, who is told through the outbox and says yes with "1".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import local_day
from bot.services.booking.config import Rules
from bot.services.booking.formatting import fmt_time, relative_day, summary
from bot.services.booking.planning import Catalog
from bot.services.booking.reminders import reminder_times
from bot.services.booking.reservations import _end_booking, _insert, _lock_villager, book, upcoming_bookings
from bot.services.knowledge import Texts
from bot.services.outbox import enqueue
from bot.storage.booking import (
    Booking,
    BookingSlot,
    BookingWaitlist,
)
from bot.storage.models import ConversationState

#: a freed place is offered to the waiting list only if the villager has at least this long to say yes
MIN_OFFER = dt.timedelta(minutes=10)


@dataclass
class CancelOutcome:
    booking: Booking
    offered: Booking | None = None  # the place went to this villager on the waiting list


async def cancel_booking(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    texts: Texts,
    booking_id: int,
    *,
    now: dt.datetime,
    by: str,
    status: Literal["cancelled", "expired"] = "cancelled",
    reason: str = "",
    notify_villager: bool = False,
) -> CancelOutcome | None:
    """Cancel (or expire a held offer), free the place at once and offer it to the waiting list."""
    booking = await _end_booking(session, booking_id, now=now, by=by, status=status, note=reason)
    if booking is None:
        return None
    if notify_villager and booking.openid:
        await enqueue(
            session,
            kind="cs_text",
            openid=booking.openid,
            payload={
                "content": texts.get(
                    "booking_cancelled_by_staff",
                    summary=summary(cat, booking, rules),
                    reason=reason or "工作安排有变",
                )
            },
            idempotency_key=f"booking:{booking.id}:cancelled",
            source=f"booking:{booking.id}",
        )
    offered = await offer_place(session, cat, rules, texts, booking.slot_id, now=now)
    return CancelOutcome(booking, offered)


async def offer_place(
    session: AsyncSession, cat: Catalog, rules: Rules, texts: Texts, slot_id: int, *, now: dt.datetime
) -> Booking | None:
    """Hold a free place of this slot for the first villager waiting for its day; tell them via the outbox."""
    slot = await session.get(BookingSlot, slot_id, populate_existing=True)
    if slot is None or slot.taken >= slot.capacity:
        return None
    hold_until = min(now + dt.timedelta(minutes=rules.offer_hold_minutes), slot.starts_at - rules.min_lead)
    if hold_until - now < MIN_OFFER:  # too late to offer: the place is simply free to book
        return None
    waiting = (
        await session.execute(
            select(BookingWaitlist)
            .where(
                BookingWaitlist.place_id == slot.place_id,
                BookingWaitlist.service_id == slot.service_id,
                BookingWaitlist.day == local_day(slot.starts_at, rules),
                BookingWaitlist.status == "waiting",
            )
            .order_by(BookingWaitlist.created_at, BookingWaitlist.id)
            .limit(20)
        )
    ).scalars()
    for entry in waiting:
        if len(await upcoming_bookings(session, entry.openid, now)) >= rules.max_upcoming:
            continue  # booked elsewhere meanwhile: keeps their place in line for later
        outcome = await book(
            session,
            cat,
            rules,
            place_id=slot.place_id,
            service_id=slot.service_id,
            starts_at=slot.starts_at,
            request_key=f"offer:{entry.id}",
            now=now,
            openid=entry.openid,
            name=entry.name,
            phone=entry.phone,
            phone_consent_at=entry.phone_consent_at,
            source="waitlist",
            status="held",
            hold_until=hold_until,
            check_limit=False,
        )
        if outcome.status != "booked" or outcome.booking is None:
            return None
        held = outcome.booking
        entry.status, entry.offered_at, entry.booking_id = "offered", now, held.id
        await enqueue(
            session,
            kind="cs_text",
            openid=entry.openid,
            payload={
                "content": texts.get(
                    "booking_offer",
                    summary=summary(cat, held, rules),
                    until=fmt_time(hold_until, rules),
                    until_day=relative_day(local_day(hold_until, rules), local_day(now, rules)),
                )
            },
            idempotency_key=f"booking:{held.id}:offer",
            source=f"booking:{held.id}",
        )
        await _offer_state(session, entry.openid, held, hold_until, now)
        return held
    return None


async def _offer_state(session: AsyncSession, openid: str, held: Booking, until: dt.datetime, now: dt.datetime) -> None:
    """Put an idle villager in the 'offer' step, so a plain '1' accepts (never clobbers another step)."""
    await session.execute(
        _insert(session)(ConversationState)
        .values(openid=openid, state=None, data={}, context={}, updated_at=now)
        .on_conflict_do_nothing(index_elements=["openid"])
    )
    await session.execute(
        update(ConversationState)
        .where(
            ConversationState.openid == openid,
            or_(ConversationState.state.is_(None), ConversationState.expires_at <= now),
        )
        .values(state="booking.offer", data={"held": held.id}, expires_at=until)
        .execution_options(synchronize_session=False)
    )


async def accept_offer(session: AsyncSession, rules: Rules, openid: str, *, now: dt.datetime) -> Booking | None:
    """The villager said yes to a held place: it becomes a confirmed booking."""
    held = (
        await session.execute(
            select(Booking)
            .where(Booking.openid == openid, Booking.status == "held", Booking.hold_expires_at > now)
            .order_by(Booking.starts_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if held is None:
        return None
    eve, soon = reminder_times(held.starts_at, now, rules)
    done = (
        await session.execute(
            update(Booking)
            .where(Booking.id == held.id, Booking.status == "held")
            .values(
                status="confirmed",
                confirmed_at=now,
                hold_expires_at=None,
                remind_eve_at=eve,
                remind_soon_at=soon,
            )
            .returning(Booking.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if done is None:
        return None
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.booking_id == held.id)
        .values(status="booked")
        .execution_options(synchronize_session=False)
    )
    return await session.get(Booking, held.id, populate_existing=True)


async def held_offer(session: AsyncSession, openid: str, now: dt.datetime) -> Booking | None:
    return (
        await session.execute(
            select(Booking)
            .where(Booking.openid == openid, Booking.status == "held", Booking.hold_expires_at > now)
            .order_by(Booking.starts_at)
            .limit(1)
        )
    ).scalar_one_or_none()


async def join_waitlist(
    session: AsyncSession,
    *,
    openid: str,
    place_id: int,
    service_id: int,
    day: dt.date,
    name: str,
    phone: str | None,
    phone_consent_at: dt.datetime | None,
    now: dt.datetime,
) -> tuple[BookingWaitlist, int]:
    """Join (once) the line for a full day; returns the entry and the villager's place in line."""
    await _lock_villager(session, openid)
    entry = (
        await session.execute(
            select(BookingWaitlist).where(
                BookingWaitlist.openid == openid,
                BookingWaitlist.place_id == place_id,
                BookingWaitlist.service_id == service_id,
                BookingWaitlist.day == day,
                BookingWaitlist.status.in_(("waiting", "offered")),
            )
        )
    ).scalar_one_or_none()
    if entry is None:
        entry = BookingWaitlist(
            openid=openid,
            place_id=place_id,
            service_id=service_id,
            day=day,
            name=name[:64],
            phone=phone if phone and phone_consent_at else None,
            phone_consent_at=phone_consent_at if phone else None,
            status="waiting",
            created_at=now,
        )
        session.add(entry)
        await session.flush()
    ahead = await session.scalar(
        select(func.count())
        .select_from(BookingWaitlist)
        .where(
            BookingWaitlist.place_id == place_id,
            BookingWaitlist.service_id == service_id,
            BookingWaitlist.day == day,
            BookingWaitlist.status == "waiting",
            BookingWaitlist.id < entry.id,
        )
    )
    return entry, int(ahead or 0) + 1


async def waiting_entries(session: AsyncSession, openid: str, today: dt.date) -> list[BookingWaitlist]:
    rows = await session.execute(
        select(BookingWaitlist)
        .where(BookingWaitlist.openid == openid, BookingWaitlist.status == "waiting", BookingWaitlist.day >= today)
        .order_by(BookingWaitlist.day, BookingWaitlist.id)
    )
    return list(rows.scalars())


async def leave_waitlist(session: AsyncSession, entry_id: int) -> None:
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.id == entry_id, BookingWaitlist.status == "waiting")
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )
