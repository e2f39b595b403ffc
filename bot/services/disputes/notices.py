"""Short WeChat notices to staff who bound their own WeChat (the staff-binding lookup), through the outbox.

They never carry a party's name or the facts: the case number, the village, what is due and a link.
The outbox idempotency key makes each notice once-only, however many workers run the jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.outbox import enqueue
from bot.services.staff import staff_openids
from bot.storage.disputes import DisputeCase
from bot.storage.staff import StaffUser, staff_villages


async def send(session: AsyncSession, staff_ids: Sequence[int], content: str, key: str, source: str) -> int:
    """Queue ``content`` to each staff member with a bound WeChat; ``key`` is made unique per person."""
    openids = await staff_openids(session, sorted(set(staff_ids)))
    for staff_id, openid in openids.items():
        await enqueue(
            session,
            kind="cs_text",
            openid=openid,
            payload={"content": content},
            idempotency_key=f"{key}:{staff_id}",
            source=source,
        )
    return len(openids)


async def mediators_of(session: AsyncSession, village_id: int) -> list[int]:
    rows = await session.execute(
        select(StaffUser.id)
        .join(staff_villages, staff_villages.c.staff_id == StaffUser.id)
        .where(staff_villages.c.village_id == village_id, StaffUser.role == "mediator", StaffUser.active.is_(True))
    )
    return list(rows.scalars())


async def case_mediators(session: AsyncSession, case: DisputeCase) -> list[int]:
    """The case's mediator, or the village's mediators when it has none (or theirs is inactive)."""
    if case.mediator_id is not None:
        mediator = await session.get(StaffUser, case.mediator_id)
        if mediator is not None and mediator.active:
            return [mediator.id]
    return await mediators_of(session, case.village_id)


async def leaders(session: AsyncSession) -> list[int]:
    """三长联动 members: leader accounts and anyone holding a 三长联动 position."""
    rows = await session.execute(
        select(StaffUser.id).where(
            StaffUser.active.is_(True), or_(StaffUser.role == "leader", StaffUser.position != "")
        )
    )
    return list(rows.scalars())


def case_url(base_url: str, case: DisputeCase) -> str:
    return f"{base_url}/admin/disputes/{case.id}"


async def staff_by_openid(session: AsyncSession, openid: str) -> StaffUser | None:
    """The active staff member who bound this WeChat ("预览绑定"), with their villages."""
    from sqlalchemy.orm import selectinload

    from bot.storage.campaigns import StaffWeChat

    staff_id = (
        await session.execute(select(StaffWeChat.staff_id).where(StaffWeChat.openid == openid).limit(1))
    ).scalar_one_or_none()
    if staff_id is None:
        return None
    return (
        await session.execute(
            select(StaffUser)
            .options(selectinload(StaffUser.villages))
            .where(StaffUser.id == staff_id, StaffUser.active.is_(True))
        )
    ).scalar_one_or_none()
