"""A villager's personal data in booking: erased or exported on request (删除我的信息 cancels what is still
to come), and phone numbers deleted ``rules.phone_retention_days`` after the appointment.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String, cast, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import local_day
from bot.services.booking.config import Rules
from bot.services.booking.reservations import _end_booking
from bot.services.erasure import scrub_audit
from bot.storage.booking import UPCOMING_STATUSES, Booking, BookingWaitlist
from bot.storage.models import utcnow

ERASED_NAME = "（已删除）"


async def erase_personal_data(session: AsyncSession, openid: str, now: dt.datetime | None = None) -> int:
    """'删除我的信息': an appointment still to come is cancelled (its place freed, the job offers it to the
    waiting list); every booking keeps its place, service, time and status for the statistics, without the
    openid, name, phone or note; waiting-list entries are deleted. Returns how many bookings were touched."""
    now = now or utcnow()
    upcoming = await session.execute(
        select(Booking.id).where(
            Booking.openid == openid, Booking.status.in_(UPCOMING_STATUSES), Booking.starts_at > now
        )
    )
    for booking_id in upcoming.scalars().all():
        await _end_booking(session, booking_id, now=now, by="villager", status="cancelled")
    ids = list((await session.execute(select(Booking.id).where(Booking.openid == openid))).scalars())
    if ids:
        await session.execute(
            update(Booking)
            .where(Booking.id.in_(ids))
            .values(
                openid=None,
                name=ERASED_NAME,
                phone=None,
                phone_consent_at=None,
                note="",
                request_key=literal("erased:") + cast(Booking.id, String),  # it held the openid
            )
            .execution_options(synchronize_session=False)
        )
        await scrub_audit(session, "booking", ids)
    await session.execute(delete(BookingWaitlist).where(BookingWaitlist.openid == openid))
    return len(ids)


async def export_personal_data(session: AsyncSession, openid: str) -> dict[str, list[dict[str, Any]]]:
    """Everything booking keeps about a villager, for a privacy export (JSON-ready)."""
    bookings = (await session.execute(select(Booking).where(Booking.openid == openid).order_by(Booking.id))).scalars()
    waiting = (
        await session.execute(
            select(BookingWaitlist).where(BookingWaitlist.openid == openid).order_by(BookingWaitlist.id)
        )
    ).scalars()
    return {
        "bookings": [
            {
                "code": b.code,
                "starts_at": b.starts_at.isoformat(),
                "status": b.status,
                "name": b.name,
                "phone": b.phone,
                "phone_consent_at": b.phone_consent_at.isoformat() if b.phone_consent_at else None,
                "note": b.note,
                "request_key": b.request_key,
                "created_at": b.created_at.isoformat(),
            }
            for b in bookings
        ],
        "waiting_list": [
            {"day": e.day.isoformat(), "status": e.status, "name": e.name, "phone": e.phone} for e in waiting
        ],
    }


async def erase_old_phones(session: AsyncSession, rules: Rules, now: dt.datetime) -> int:
    """Phone numbers are kept only ``rules.phone_retention_days`` after the appointment. Returns how many went."""
    erased_count = 0
    cutoff = now - dt.timedelta(days=rules.phone_retention_days)
    erased = await session.execute(
        update(Booking)
        .where(Booking.phone.is_not(None), Booking.ends_at < cutoff)
        .values(phone=None)
        .execution_options(synchronize_session=False)
    )
    erased_count += int(erased.rowcount)  # type: ignore[attr-defined]
    erased = await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.phone.is_not(None), BookingWaitlist.day < local_day(cutoff, rules))
        .values(phone=None)
        .execution_options(synchronize_session=False)
    )
    erased_count += int(erased.rowcount)  # type: ignore[attr-defined]
    return erased_count
