"""Presence: which staff have a back-office page open right now. Every open page asks for alerts every few
seconds (bot/admin/alert_views.py); a visible page's ask records ``StaffUser.last_seen_at`` (at most every
:data:`TOUCH_EVERY`). A staff member seen within :data:`PRESENT_WITHIN` has a page that shows the red banner
and plays the alarm within one poll, so an urgent alert reaches them even without a bound WeChat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.staff import StaffUser

#: a page polls every 4 s; a hidden browser tab may be slowed to once a minute
PRESENT_WITHIN = dt.timedelta(seconds=90)
TOUCH_EVERY = dt.timedelta(seconds=20)


async def touch(session: AsyncSession, staff_id: int, now: dt.datetime) -> None:
    """Record that ``staff_id`` has a visible back-office page open (one small UPDATE, skipped when recent)."""
    await session.execute(
        update(StaffUser)
        .where(
            StaffUser.id == staff_id,
            or_(StaffUser.last_seen_at.is_(None), StaffUser.last_seen_at < now - TOUCH_EVERY),
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


async def present(session: AsyncSession, staff_ids: Collection[int], now: dt.datetime) -> set[int]:
    """Those of ``staff_ids`` (active) with a back-office page open right now."""
    if not staff_ids:
        return set()
    rows = await session.execute(
        select(StaffUser.id).where(
            StaffUser.id.in_(list(staff_ids)),
            StaffUser.active.is_(True),
            StaffUser.last_seen_at >= now - PRESENT_WITHIN,
        )
    )
    return {int(i) for i in rows.scalars()}


def is_present(staff: StaffUser, now: dt.datetime) -> bool:
    return staff.active and staff.last_seen_at is not None and staff.last_seen_at >= now - PRESENT_WITHIN
