"""Privacy requests (admins): find a villager, export everything stored about them, delete it; the audit trail."""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import framework as adm
from bot.services import tickets as svc
from bot.storage.models import Village, Villager, utcnow
from bot.storage.staff import AuditLog, StaffUser
from bot.storage.tickets import Ticket

AUDIT_PAGE = 100


async def _find_openid(session: AsyncSession, query: str) -> str | None:
    """A ticket number or an openid → the villager's openid."""
    if not query:
        return None
    openid = (await session.execute(select(Ticket.openid).where(Ticket.number == query))).scalar_one_or_none()
    if openid:
        return openid
    found = (await session.execute(select(Villager.openid).where(Villager.openid == query))).scalar_one_or_none()
    return found


async def villagers_page(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:64]
    villager = None
    tickets: list[Ticket] = []
    village = ""
    async with adm.db(request)() as session, session.begin():
        openid = await _find_openid(session, query)
        if openid:
            villager = (await session.execute(select(Villager).where(Villager.openid == openid))).scalar_one_or_none()
            tickets = list(
                (await session.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id))).scalars()
            )
            if villager is not None and villager.village_id:
                v = await session.get(Village, villager.village_id)
                village = v.name if v else ""
            await adm.audit(session, request, "villager.view", object_type="villager", object_id=openid[-12:])
    return await adm.render(
        request,
        "admin/villagers.html",
        {
            "q": query,
            "openid": openid,
            "villager": villager,
            "village": village,
            "tickets": tickets,
            "searched": bool(query),
        },
        title="村民信息（导出/删除）",
    )


async def export(request: web.Request) -> web.StreamResponse:
    openid = request.match_info["openid"]
    async with adm.db(request)() as session, session.begin():
        data = await svc.export_villager(session, openid)
        if data["villager"] is None and not data["tickets"]:
            adm.not_found("没有这个村民。")
        await adm.audit(session, request, "villager.export", object_type="villager", object_id=openid[-12:])
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"),
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="villager-{openid[-8:]}.json"'},
    )


async def forget(request: web.Request) -> web.StreamResponse:
    openid = request.match_info["openid"]
    data = await adm.form(request)
    if data.get("confirm") != "1":
        adm.flash(request, "请先勾选“确认删除”。", "error")
        adm.redirect(request, "admin-villagers", query={"q": openid})
    async with adm.db(request)() as session, session.begin():
        me = await session.get(StaffUser, adm.user(request).id)
        count = await svc.forget_villager(session, openid, utcnow(), staff=me)
        await adm.audit(  # the erased villager is not named here either
            session, request, "villager.forget_request", object_type="villager", details={"tickets": count}
        )
    adm.flash(request, f"已删除该村民的个人信息，{count} 个工单已匿名。")
    adm.redirect(request, "admin-villagers")


async def audit_page(request: web.Request) -> web.StreamResponse:
    action = request.query.get("action", "").strip()[:64]
    who = request.query.get("who", "").strip()[:64]
    obj = request.query.get("object", "").strip()[:64]
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(AUDIT_PAGE)
    if action:
        stmt = stmt.where(AuditLog.action.startswith(action))
    if who:
        stmt = stmt.where(AuditLog.username == who)
    if obj:
        stmt = stmt.where(or_(AuditLog.object_id == obj, AuditLog.object_type == obj))
    async with adm.db(request)() as session:
        rows = list((await session.execute(stmt)).scalars())
    return await adm.render(
        request,
        "admin/audit.html",
        {"rows": rows, "action": action, "who": who, "object": obj},
        title="操作记录",
    )


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/villagers", villagers_page, name="admin-villagers", roles=adm.ADMIN)
    adm.add_view(
        app,
        "GET",
        r"/admin/villagers/{openid:[\w\-]{1,64}}/export",
        export,
        name="admin-villager-export",
        roles=adm.ADMIN,
    )
    adm.add_view(
        app,
        "POST",
        r"/admin/villagers/{openid:[\w\-]{1,64}}/forget",
        forget,
        name="admin-villager-forget",
        roles=adm.ADMIN,
    )
    adm.add_view(app, "GET", "/admin/audit", audit_page, name="admin-audit", roles=adm.ADMIN)
    adm.add_nav(app, "村民信息", "admin-villagers", roles=adm.ADMIN, order=80)
    adm.add_nav(app, "操作记录", "admin-audit", roles=adm.ADMIN, order=90)
