"""Telling staff in WeChat: a short notice (number, village, link — no villager details) through the outbox
to staff who bound their own WeChat (bot.services.staff).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.outbox import enqueue
from bot.services.staff import staff_openids
from bot.services.tickets.deadlines import format_due
from bot.services.tickets.escalation import ESCALATION_TARGETS
from bot.storage.models import Village
from bot.storage.staff import StaffUser
from bot.storage.tickets import Ticket

#: staff who linked their own WeChat (the campaign feature's "预览绑定" code) get these through the outbox
STAFF_NOTICES: dict[str, str] = {
    "new": "【乡法通】新工单 {number}（{village}）分给了您，请在 {due} 前首次答复：{url}",
    "urgent": "【乡法通·紧急】工单 {number}（{village}）涉及人身安全，已升级到乡里，请马上处理：{url}",
    "overdue": "【乡法通】工单 {number}（{village}）超过首次答复期限还没答复，已升级到乡里：{url}",
    "escalated": "【乡法通】工单 {number}（{village}）已升级到{target}：{url}",
    "assigned": "【乡法通】工单 {number}（{village}）转给了您：{url}",
}


async def admin_ids(session: AsyncSession) -> list[int]:
    rows = await session.execute(select(StaffUser.id).where(StaffUser.role == "admin", StaffUser.active.is_(True)))
    return list(rows.scalars())


async def notify_staff(
    session: AsyncSession,
    ticket: Ticket,
    staff_ids: Sequence[int],
    kind: str,
    base_url: str,
    now: dt.datetime,
    *,
    target: str = "",
) -> int:
    """Queue a short WeChat notice (no villager details: number, village, link) to each staff member."""
    openids = await staff_openids(session, staff_ids)
    if not openids:
        return 0
    village = await session.get(Village, ticket.village_id) if ticket.village_id else None
    content = STAFF_NOTICES[kind].format(
        number=ticket.number,
        village=village.name if village else "未选村",
        due=format_due(ticket.first_response_due_at),
        url=f"{base_url}/admin/tickets/{ticket.id}",
        target=ESCALATION_TARGETS.get(target, target),
    )
    once = kind in ("new", "urgent", "overdue")
    for staff_id, openid in openids.items():
        key = f"ticket-staff:{ticket.id}:{kind}:{staff_id}" + ("" if once else f":{int(now.timestamp())}")
        await enqueue(
            session,
            kind="cs_text",
            openid=openid,
            payload={"content": content},
            idempotency_key=key,
            source=f"ticket:{ticket.id}",
        )
    return len(openids)
