"""The periodic job (every minute): expire stale held offers (offering the place on), offer free places to
the waiting list, queue due reminders, delete old phone numbers.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import SEARCH_DAYS, FreeSlot, availability, local_day
from bot.services.booking.config import Rules, load_config, load_texts
from bot.services.booking.planning import Catalog, load_catalog
from bot.services.booking.privacy import erase_old_phones
from bot.services.booking.reminders import queue_reminders
from bot.services.booking.reservations import _insert
from bot.services.booking.waitlist import cancel_booking, offer_place
from bot.services.jobs import JobContext
from bot.storage.booking import (
    Booking,
    BookingSeed,
    BookingSlot,
    BookingWaitlist,
)

log = logging.getLogger(__name__)


@dataclass
class TickStats:
    expired_holds: int = 0
    offers: int = 0
    eve_reminders: int = 0
    soon_reminders: int = 0
    skipped_reminders: int = 0
    phones_erased: int = 0
    waitlist_closed: int = 0


async def tick(ctx: JobContext) -> None:
    """Every minute: expire stale holds (offering the place on), queue due reminders, erase old phones."""
    await run_tick(ctx)


async def run_tick(ctx: JobContext, *, batch: int = 200) -> TickStats:
    now = ctx.now()
    config = load_config(ctx.settings.knowledge_dir)
    rules = config.rules
    texts = load_texts(ctx.settings.knowledge_dir)
    stats = TickStats()
    async with ctx.session_factory() as session, session.begin():
        if await session.scalar(select(BookingSeed.id).where(BookingSeed.id == 1)) is None:
            return stats  # booking never used: nothing to do
    today = local_day(now, rules)
    cat_end = today + dt.timedelta(days=SEARCH_DAYS)

    # 1. held offers that were not taken up in time: the place goes to the next in line
    async with ctx.session_factory() as session, session.begin():
        cat = await load_catalog(session, today, cat_end)
        stale = (
            await session.execute(
                select(Booking.id)
                .where(Booking.status == "held", Booking.hold_expires_at <= now)
                .order_by(Booking.hold_expires_at)
                .limit(batch)
            )
        ).scalars()
        for booking_id in list(stale):
            done = await cancel_booking(session, cat, rules, texts, booking_id, now=now, by="system", status="expired")
            if done is not None:
                stats.expired_holds += 1
                stats.offers += done.offered is not None

    # 2. places free on days somebody waits for (staff raised capacity, a missed offer …)
    async with ctx.session_factory() as session, session.begin():
        cat = await load_catalog(session, today, cat_end)
        lines = (
            await session.execute(
                select(BookingWaitlist.place_id, BookingWaitlist.service_id, BookingWaitlist.day)
                .where(BookingWaitlist.status == "waiting", BookingWaitlist.day >= today)
                .group_by(BookingWaitlist.place_id, BookingWaitlist.service_id, BookingWaitlist.day)
                .limit(batch)
            )
        ).all()
        for place_id, service_id, day in lines:
            (avail,) = await availability(
                session, cat, rules, place_id, service_id, [day], not_before=now + rules.min_lead
            )
            for free in avail.free_slots:
                slot_id = await _slot_id(session, cat, rules, free)
                if slot_id is None:
                    continue
                for _ in range(free.free):
                    if await offer_place(session, cat, rules, texts, slot_id, now=now) is None:
                        break
                    stats.offers += 1
        closed = await session.execute(
            update(BookingWaitlist)
            .where(BookingWaitlist.status == "waiting", BookingWaitlist.day < today)
            .values(status="expired")
            .execution_options(synchronize_session=False)
        )
        stats.waitlist_closed = int(closed.rowcount)  # type: ignore[attr-defined]

    # 3. reminders: the evening before and shortly before
    async with ctx.session_factory() as session, session.begin():
        cat = await load_catalog(session, today, cat_end)
        sent = await queue_reminders(session, cat, rules, texts, now, batch=batch)
        stats.eve_reminders += sent["eve"]
        stats.soon_reminders += sent["soon"]
        stats.skipped_reminders += sent["skipped"]

    # 4. phone numbers are kept only so long after the appointment
    async with ctx.session_factory() as session, session.begin():
        stats.phones_erased += await erase_old_phones(session, rules, now)
    if stats.expired_holds or stats.offers or stats.eve_reminders or stats.soon_reminders:
        log.info("booking tick: %s", stats)
    return stats


async def _slot_id(session: AsyncSession, cat: Catalog, rules: Rules, free: FreeSlot) -> int | None:
    """The counter row of a planned slot (created when missing)."""
    await session.execute(
        _insert(session)(BookingSlot)
        .values(
            place_id=free.place_id,
            service_id=free.service_id,
            starts_at=free.starts_at,
            ends_at=free.ends_at,
            capacity=free.capacity,
            taken=0,
        )
        .on_conflict_do_nothing(index_elements=["place_id", "service_id", "starts_at"])
    )
    slot_id: int | None = (
        await session.execute(
            select(BookingSlot.id).where(
                BookingSlot.place_id == free.place_id,
                BookingSlot.service_id == free.service_id,
                BookingSlot.starts_at == free.starts_at,
            )
        )
    ).scalar_one_or_none()
    if slot_id is not None:
        await session.execute(
            update(BookingSlot)
            .where(BookingSlot.id == slot_id, BookingSlot.capacity != free.capacity)
            .values(capacity=free.capacity)
            .execution_options(synchronize_session=False)
        )
    return slot_id
