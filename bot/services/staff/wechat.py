"""Staff members' own WeChat: the "预览绑定 <code>" binding of their openid (from the back-office's
profile page, sent from their phone) and the openids it gives, for campaign previews and staff notices."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.campaigns import StaffWeChat
from bot.storage.models import utcnow

BIND_CODE_TTL = dt.timedelta(minutes=10)
BIND_WORD = "预览绑定"


async def staff_openid(session: AsyncSession, staff_id: int) -> str | None:
    row = await session.get(StaffWeChat, staff_id)
    return row.openid if row is not None else None


async def staff_openids(session: AsyncSession, staff_ids: Sequence[int]) -> dict[int, str]:
    """Staff id → their own WeChat openid, for those who linked one."""
    if not staff_ids:
        return {}
    rows = await session.execute(
        select(StaffWeChat.staff_id, StaffWeChat.openid).where(
            StaffWeChat.staff_id.in_(list(staff_ids)), StaffWeChat.openid.is_not(None)
        )
    )
    return {int(staff_id): str(openid) for staff_id, openid in rows.all()}


async def binding_code(session: AsyncSession, staff_id: int, *, now: dt.datetime | None = None) -> str:
    """A fresh 6-digit code the staff member sends as "预览绑定 <code>" from their own WeChat."""
    now = now or utcnow()
    row = await session.get(StaffWeChat, staff_id)
    if row is None:
        row = StaffWeChat(staff_id=staff_id)
        session.add(row)
    for _ in range(20):
        code = f"{secrets.randbelow(1_000_000):06d}"
        clash = await session.scalar(
            select(func.count())
            .select_from(StaffWeChat)
            .where(StaffWeChat.code == code, StaffWeChat.code_expires_at > now, StaffWeChat.staff_id != staff_id)
        )
        if not clash:
            break
    row.code, row.code_expires_at = code, now + BIND_CODE_TTL
    await session.flush()
    return code


async def bind_openid(session: AsyncSession, code: str, openid: str, *, now: dt.datetime | None = None) -> bool:
    """The chat side of binding: a valid, unexpired code binds the sender's openid (once)."""
    now = now or utcnow()
    code = code.strip()
    if not re.fullmatch(r"\d{6}", code):
        return False
    row = (
        await session.execute(
            select(StaffWeChat).where(StaffWeChat.code == code, StaffWeChat.code_expires_at > now).limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    row.openid, row.bound_at, row.code, row.code_expires_at = openid, now, None, None
    return True


async def unbind(session: AsyncSession, staff_id: int) -> None:
    await session.execute(delete(StaffWeChat).where(StaffWeChat.staff_id == staff_id))
