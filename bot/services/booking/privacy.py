"""A villager's personal data in booking: erased or exported on request, and phone numbers deleted
``rules.phone_retention_days`` after the appointment.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import local_day
from bot.services.booking.config import Rules
from bot.storage.booking import (
    Booking,
    BookingWaitlist,
)


async def erase_personal_data(session: AsyncSession, openid: str) -> int:
    """'删除我的信息': names and phone numbers on this villager's bookings and waiting-list entries go."""
    result = await session.execute(
        update(Booking)
        .where(Booking.openid == openid)
        .values(name="（已删除）", phone=None, phone_consent_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.openid == openid)
        .values(name="（已删除）", phone=None, phone_consent_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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
