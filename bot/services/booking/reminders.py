"""Reminders: the evening before (``rules.reminder_eve_time``) and shortly before
(``rules.reminder_before_minutes``), queued through the outbox under idempotency keys
``booking:<id>:eve`` / ``booking:<id>:soon``, so ticks on several workers never send one twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.availability import local_day
from bot.services.booking.config import Rules
from bot.services.booking.formatting import fmt_time, relative_day, summary
from bot.services.booking.planning import Catalog, _local
from bot.services.knowledge import Texts
from bot.services.outbox import enqueue
from bot.storage.booking import (
    Booking,
)


def reminder_times(
    starts_at: dt.datetime, now: dt.datetime, rules: Rules
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(the day before at 18:00 local, 2 hours before), each None when already past at booking time."""
    day_before = local_day(starts_at, rules) - dt.timedelta(days=1)
    eve: dt.datetime | None = _local(day_before, rules.reminder_eve_time, rules.tz)
    soon: dt.datetime | None = starts_at - rules.reminder_before
    if soon is not None and soon <= now:
        soon = None
    if eve is not None and (eve <= now or eve >= starts_at - rules.reminder_before):
        eve = None
    return eve, soon


def reminder_text(cat: Catalog, rules: Rules, texts: Texts, booking: Booking, which: str, now: dt.datetime) -> str:
    service = cat.services.get(booking.service_id)
    return texts.get(
        "booking_reminder_eve" if which == "eve" else "booking_reminder_soon",
        day=relative_day(local_day(booking.starts_at, rules), local_day(now, rules)),
        time=fmt_time(booking.starts_at, rules),
        summary=summary(cat, booking, rules),
        bring=(service.bring if service and service.bring else "身份证"),
        code=booking.code,
    )


async def queue_reminders(
    session: AsyncSession, cat: Catalog, rules: Rules, texts: Texts, now: dt.datetime, *, batch: int
) -> dict[str, int]:
    """Due reminders → outbox (each claimed once); one whose moment has passed is skipped, not sent late.
    Returns how many: ``eve``, ``soon``, ``skipped``."""
    sent = {"eve": 0, "soon": 0, "skipped": 0}
    for which in ("eve", "soon"):
        due_col = Booking.remind_eve_at if which == "eve" else Booking.remind_soon_at
        sent_col = Booking.remind_eve_sent_at if which == "eve" else Booking.remind_soon_sent_at
        due = (
            await session.execute(
                select(Booking)
                .where(Booking.status == "confirmed", due_col <= now, sent_col.is_(None))
                .order_by(due_col)
                .limit(batch)
            )
        ).scalars()
        for booking in list(due):
            claimed = (
                await session.execute(
                    update(Booking)
                    .where(Booking.id == booking.id, sent_col.is_(None), Booking.status == "confirmed")
                    .values({sent_col: now})
                    .returning(Booking.id)
                    .execution_options(synchronize_session=False)
                )
            ).scalar_one_or_none()
            if claimed is None:
                continue  # another worker took it
            # a reminder whose moment has passed (the worker was down) is not sent late
            too_late = booking.starts_at <= now or (which == "eve" and now >= booking.starts_at - rules.reminder_before)
            if too_late or not booking.openid:
                sent["skipped"] += 1
                continue
            await enqueue(
                session,
                kind="cs_text",
                openid=booking.openid,
                payload={"content": reminder_text(cat, rules, texts, booking, which, now)},
                idempotency_key=f"booking:{booking.id}:{which}",
                source=f"booking:{booking.id}",
            )
            if which == "eve":
                sent["eve"] += 1
            else:
                sent["soon"] += 1
    return sent
