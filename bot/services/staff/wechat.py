"""Staff members' own WeChat: binding their openid with a code ("绑定微信 <code>", shown on their 我的账号 page
and on the campaign pages, sent from their phone; the older "预览绑定 <code>" still works), a limit on wrong
codes per sender, the binding's state, and which bound staff a WeChat notice can reach right now.

A customer-service message reaches a WeChat user only within 48 hours of their last message to the account;
after that only a template message does (``LAWBOT_WECHAT_STAFF_TEMPLATE_ID``). :func:`channels` says which
of the two a notice to each bound staff member should use, or that none can reach them.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.campaigns import StaffWeChat
from bot.storage.models import Villager, utcnow

BIND_CODE_TTL = dt.timedelta(minutes=10)
#: what staff send from their WeChat, followed by the code
BIND_WORD = "绑定微信"
#: every word that starts a binding message (the campaign page used to say 预览绑定)
BIND_WORDS: tuple[str, ...] = (BIND_WORD, "预览绑定")
#: codes one WeChat may send within BIND_FAILURE_WINDOW before it has to wait (a six-digit code is not to be guessed)
MAX_BIND_FAILURES = 5
BIND_FAILURE_WINDOW = dt.timedelta(hours=1)
#: customer-service messages reach a WeChat that wrote to the account within 48 hours (kept with a margin)
CS_WINDOW = dt.timedelta(hours=47)


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


async def bound_openids(session: AsyncSession) -> set[str]:
    """Every openid bound to a staff account: they are staff, not villagers (no broadcasts, no follow-ups)."""
    rows = await session.execute(select(StaffWeChat.openid).where(StaffWeChat.openid.is_not(None)))
    return {str(o) for o in rows.scalars()}


async def is_staff_openid(session: AsyncSession, openid: str) -> bool:
    found = await session.scalar(select(func.count()).select_from(StaffWeChat).where(StaffWeChat.openid == openid))
    return bool(found)


async def binding_code(session: AsyncSession, staff_id: int, *, now: dt.datetime | None = None) -> str:
    """A fresh 6-digit code the staff member sends as "绑定微信 <code>" from their own WeChat."""
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


async def bind_with_code(session: AsyncSession, code: str, openid: str, *, now: dt.datetime | None = None) -> str:
    """The chat side of binding: ``"ok"`` (bound) or ``"bad"`` (wrong or expired code). How many codes one
    WeChat may try is counted by the caller, atomically, before this runs (handlers/staff.py)."""
    now = now or utcnow()
    code = code.strip()
    row = None
    if re.fullmatch(r"\d{6}", code):
        row = (
            await session.execute(
                select(StaffWeChat).where(StaffWeChat.code == code, StaffWeChat.code_expires_at > now).limit(1)
            )
        ).scalar_one_or_none()
    if row is None:
        return "bad"
    # one WeChat belongs to one staff member: binding it here ends an older binding elsewhere
    await session.execute(delete(StaffWeChat).where(StaffWeChat.openid == openid, StaffWeChat.staff_id != row.staff_id))
    row.openid, row.bound_at, row.code, row.code_expires_at = openid, now, None, None
    return "ok"


async def bind_openid(session: AsyncSession, code: str, openid: str, *, now: dt.datetime | None = None) -> bool:
    """A valid, unexpired code binds the sender's openid (once); see :func:`bind_with_code`."""
    return await bind_with_code(session, code, openid, now=now) == "ok"


async def unbind(session: AsyncSession, staff_id: int) -> None:
    await session.execute(delete(StaffWeChat).where(StaffWeChat.staff_id == staff_id))


@dataclass(frozen=True)
class Binding:
    """What a staff member's 我的账号 page shows about their WeChat."""

    openid: str | None
    bound_at: dt.datetime | None
    code: str | None  # a code still valid, or None
    code_expires_at: dt.datetime | None
    last_message_at: dt.datetime | None  # when this WeChat last wrote to the account

    @property
    def bound(self) -> bool:
        return self.openid is not None

    def in_window(self, now: dt.datetime) -> bool:
        """Customer-service messages reach this WeChat now (it wrote within 48 hours)."""
        return self.last_message_at is not None and now - self.last_message_at < CS_WINDOW


async def binding(session: AsyncSession, staff_id: int, *, now: dt.datetime | None = None) -> Binding:
    now = now or utcnow()
    row = await session.get(StaffWeChat, staff_id)
    if row is None:
        return Binding(None, None, None, None, None)
    valid = row.code is not None and row.code_expires_at is not None and row.code_expires_at > now
    last = None
    if row.openid is not None:
        last = await session.scalar(select(Villager.last_inbound_at).where(Villager.openid == row.openid))
    return Binding(row.openid, row.bound_at, row.code if valid else None, row.code_expires_at if valid else None, last)


async def channels(
    session: AsyncSession, staff_ids: Sequence[int], now: dt.datetime, *, template_ready: bool
) -> dict[int, tuple[str, str | None]]:
    """Bound staff → (openid, ``"cs"`` | ``"template"`` | None): a customer-service message when their WeChat
    wrote within 48 hours, else a template message when a staff template is configured, else None (a
    customer-service message would wait until they next write)."""
    openids = await staff_openids(session, staff_ids)
    if not openids:
        return {}
    rows = await session.execute(
        select(Villager.openid, Villager.last_inbound_at).where(Villager.openid.in_(list(openids.values())))
    )
    last = {str(o): at for o, at in rows.all()}
    out: dict[int, tuple[str, str | None]] = {}
    for staff_id, openid in openids.items():
        at = last.get(openid)
        if at is not None and now - at < CS_WINDOW:
            out[staff_id] = (openid, "cs")
        else:
            out[staff_id] = (openid, "template" if template_ready else None)
    return out
