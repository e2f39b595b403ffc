"""Urgent alerts on every back-office page: a red banner (rendered with the page, then kept fresh by
``static/alerts.js`` polling ``GET /admin/alerts``) and an alarm sound (``static/alert.wav``) until a staff
member opens the ticket; tickets escalated to a 三长联动 position show in its holders' banner (no sound)
until one of them opens it. The poll of a visible page also records that its user is present
(bot.services.staff.presence), which is how the bot knows a person sees the banner right now.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.admin import framework as adm
from bot.services import staff as staff_svc
from bot.services import tickets as svc
from bot.storage.models import Village, utcnow
from bot.storage.tickets import Ticket

#: the page asks this often (milliseconds), see static/alerts.js
POLL_MS = 4000


async def _alerts(request: web.Request, staff: adm.Staff) -> list[dict[str, Any]]:
    async with adm.db(request)() as session:
        tickets = await svc.pending_alerts(session, staff.role, staff.id, staff.village_ids, position=staff.position)
        village_ids = {t.village_id for t in tickets if t.village_id is not None}
        villages = {v.id: v.name for v in [await session.get(Village, vid) for vid in village_ids] if v is not None}
    return [_item(request, t, villages) for t in tickets]


def _item(request: web.Request, ticket: Ticket, villages: dict[int, str]) -> dict[str, Any]:
    urgent = ticket.alert_pending
    item: dict[str, Any] = {
        "id": ticket.id,
        "number": ticket.number,
        "village": villages.get(ticket.village_id or 0, "未选村"),
        "urgent": urgent,
        "kind": f"升级到{svc.ESCALATION_TARGETS.get(ticket.escalated_to or '', '')}（三长联动）",
        "minutes": 0,
        "since": "",
        "escalated": False,
        "url": adm.url(request, "admin-ticket", id=ticket.id),
    }
    if urgent and ticket.alert_at is not None:
        item["kind"] = svc.kind_name(ticket.urgent_kind)
        item["minutes"] = max(0, int((utcnow() - ticket.alert_at).total_seconds() // 60))
        item["since"] = svc.format_time(ticket.alert_at)[11:]
        item["escalated"] = ticket.alert_escalated_at is not None
    return item


async def alerts(request: web.Request) -> web.StreamResponse:
    """``{"alerts": [{id, number, village, urgent, kind, minutes, since, escalated, url}], "count": n}``; a visible
    page (``?visible=1``) marks its user present."""
    staff = adm.user(request)
    if request.query.get("visible") == "1":
        async with adm.db(request)() as session, session.begin():
            await staff_svc.touch(session, staff.id, utcnow())
    items = await _alerts(request, staff)
    return web.json_response({"alerts": items, "count": len(items)}, headers={"Cache-Control": "no-store"})


async def banner(request: web.Request, staff: adm.Staff) -> dict[str, Any]:
    """Every page is rendered with the alerts already pending (the script then keeps them fresh)."""
    return {"alerts": await _alerts(request, staff), "alert_poll_ms": POLL_MS}


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/alerts", alerts, name="admin-alerts", roles=adm.ALL)
    adm.add_context_hook(app, banner)
