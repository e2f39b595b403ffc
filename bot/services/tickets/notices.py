"""Telling staff in WeChat: a short notice (number, village, link — no villager details) through the outbox
to staff who bound their own WeChat (bot.services.staff).

A bound WeChat that wrote to the account within 48 hours gets a customer-service message; otherwise a
template message when ``LAWBOT_WECHAT_STAFF_TEMPLATE_ID`` is set (the template's fields: first, keyword1
工单编号, keyword2 村, keyword3 时间, remark); otherwise the customer-service message waits in the outbox
until that WeChat writes again. :func:`notify_staff` returns how many notices can reach someone now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.outbox import enqueue
from bot.services.staff import channels
from bot.services.tickets.deadlines import format_due, local
from bot.services.tickets.escalation import ESCALATION_TARGETS
from bot.storage.models import Village
from bot.storage.staff import StaffUser
from bot.storage.tickets import Ticket

STAFF_NOTICES: dict[str, str] = {
    "new": "【乡法通】新工单 {number}（{village}）分给了您，请在{due}首次答复",
    "urgent": "【乡法通·紧急】工单 {number}（{village}）{what}，请马上打开处理，{due}要答复",
    "urgent_unseen": "【乡法通·紧急】工单 {number}（{village}）{what}，{minutes}分钟内没有人打开，请马上处理",
    "overdue": "【乡法通】工单 {number}（{village}）超过首次答复期限还没答复，已升级到乡里",
    "escalated": "【乡法通】工单 {number}（{village}）已升级到{target}",
    "assigned": "【乡法通】工单 {number}（{village}）转给了您",
}
#: the template message's first line, per notice
TEMPLATE_TITLES: dict[str, str] = {
    "new": "新工单分给了您",
    "urgent": "紧急求助，请马上处理",
    "urgent_unseen": "紧急求助无人查看，请马上处理",
    "overdue": "工单超时未答复",
    "escalated": "工单已升级",
    "assigned": "工单转给了您",
}
#: what an urgent notice says the matter is (never the villager's words)
URGENT_WHAT: dict[str, str] = {
    "suicide": "有自杀风险",
    "threat_to_life": "有生命危险",
    "violence_now": "正在遭受暴力",
    "minors": "涉及未成年人受侵害",
}
#: sent once per ticket (and, for urgent ones, once per alert)
_ONCE = ("new", "urgent", "urgent_unseen", "overdue")


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
    template_id: str = "",
    minutes: int = 0,
) -> int:
    """Queue a short WeChat notice (no villager details: number, village, link) to each staff member who
    bound a WeChat; returns how many can reach someone now (see the module docstring)."""
    reach = await channels(session, list(dict.fromkeys(staff_ids)), now, template_ready=bool(template_id))
    if not reach:
        return 0
    village = await session.get(Village, ticket.village_id) if ticket.village_id else None
    url = f"{base_url}/admin/tickets/{ticket.id}"
    text = STAFF_NOTICES[kind].format(
        number=ticket.number,
        village=village.name if village else "未选村",
        due=format_due(ticket.first_response_due_at),
        target=ESCALATION_TARGETS.get(target, target),
        what=URGENT_WHAT.get(ticket.urgent_kind or "", "涉及人身安全"),
        minutes=minutes,
    )
    content = f"{text}：{url}"
    # an urgent ticket may raise a new alert later (a new urgent message after staff opened it)
    alert = f":{ticket.alert_at:%Y%m%d%H%M%S%f}" if kind.startswith("urgent") and ticket.alert_at else ""
    reached = 0
    for staff_id, (openid, channel) in reach.items():
        key = f"ticket-staff:{ticket.id}:{kind}:{staff_id}" + (alert if kind in _ONCE else f":{int(now.timestamp())}")
        if channel == "template":
            at = local(now)
            await enqueue(
                session,
                kind="template",
                openid=openid,
                payload={
                    "template_id": template_id,
                    "url": url,
                    "data": {
                        "first": {"value": TEMPLATE_TITLES.get(kind, "工单提醒")},
                        "keyword1": {"value": ticket.number},
                        "keyword2": {"value": village.name if village else "未选村"},
                        "keyword3": {"value": f"{at:%Y-%m-%d %H:%M}"},
                        "remark": {"value": text},
                    },
                },
                idempotency_key=key,
                source=f"ticket:{ticket.id}",
            )
        else:
            await enqueue(
                session,
                kind="cs_text",
                openid=openid,
                payload={"content": content},
                idempotency_key=key,
                source=f"ticket:{ticket.id}",
            )
        if channel is not None:
            reached += 1
    return reached
