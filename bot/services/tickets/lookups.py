"""Villager-side look-ups: their open ticket, the follow-up thread (an open ticket staff replied to within
48 hours), their recent tickets.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import UTCDateTime, Villager
from bot.storage.tickets import OPEN_STATUSES, Ticket

#: a staff reply opens a follow-up chat: the villager's messages join the thread for this long
FOLLOWUP_WINDOW = dt.timedelta(hours=48)


async def latest_open_ticket(session: AsyncSession, openid: str) -> Ticket | None:
    return (
        await session.execute(
            select(Ticket)
            .where(Ticket.openid == openid, Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


@functools.cache
def _followup_query() -> Any:
    # asked for every villager message: built once, and run as a Core statement (no ORM
    # objects unless there is a follow-up to join)
    return (
        select(Ticket.id, Ticket.last_staff_reply_at, Ticket.villager_ended_at)
        .where(
            Ticket.openid == bindparam("openid"),
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.last_staff_reply_at >= bindparam("since", type_=UTCDateTime()),
        )
        .order_by(Ticket.last_staff_reply_at.desc())
        .limit(1)
    )


def may_follow_up(villager: Villager, now: dt.datetime) -> bool:
    """Cheap pre-check (no query): only a villager staff replied to within 48 hours can have a follow-up thread."""
    last = villager.last_staff_reply_at
    return last is not None and last >= now - FOLLOWUP_WINDOW


async def followup_ticket(session: AsyncSession, openid: str, now: dt.datetime) -> Ticket | None:
    """The open ticket staff replied to within 48 hours, unless the villager said "结束" since."""
    conn = await session.connection()
    row = (await conn.execute(_followup_query(), {"openid": openid, "since": now - FOLLOWUP_WINDOW})).first()
    if row is None or row.last_staff_reply_at is None:
        return None
    if row.villager_ended_at is not None and row.villager_ended_at >= row.last_staff_reply_at:
        return None
    return await session.get(Ticket, row.id)


async def tickets_of(session: AsyncSession, openid: str, limit: int = 5) -> list[Ticket]:
    return list(
        (
            await session.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id.desc()).limit(limit))
        ).scalars()
    )
