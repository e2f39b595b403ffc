"""Privacy requests (admins): find a villager (by name, village, phone, ticket number or booking code —
never by the WeChat openid), export everything stored about them, delete it; the audit trail in words."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import framework as adm
from bot.services import audit, villagers
from bot.services import tickets as svc
from bot.services.erasure import openid_suffix
from bot.storage.booking import Booking
from bot.storage.disputes import DisputeCase
from bot.storage.models import Village, Villager, utcnow
from bot.storage.staff import AuditLog, StaffUser
from bot.storage.tickets import Ticket

AUDIT_PAGE = 100


async def villagers_page(request: web.Request) -> web.StreamResponse:
    """Find a villager by name, village, phone (full, masked or its last digits), ticket number or booking code."""
    query = request.query.get("q", "").strip()[:64]
    found: list[villagers.Card] = []
    if query:
        async with adm.db(request)() as session, session.begin():
            found = await villagers.search(session, query)
            # not the words searched for (a name, a phone number): they would outlive an erasure here
            await adm.audit(session, request, "villager.search", object_type="villager", details={"found": len(found)})
    return await adm.render(
        request,
        "admin/villagers.html",
        {"q": query, "found": found, "searched": bool(query)},
        title="村民信息（导出/删除）",
    )


async def _openid(request: web.Request, session: AsyncSession) -> str:
    openid = await villagers.openid_of(session, int(request.match_info["id"]))
    if openid is None:
        adm.not_found("没有这个村民。")
    return openid


async def villager_page(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session, session.begin():
        openid = await _openid(request, session)
        card = (await villagers.cards(session, [openid]))[openid]
        villager = (await session.execute(select(Villager).where(Villager.openid == openid))).scalar_one()
        tickets = list(
            (await session.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id))).scalars()
        )
        # named as the erasure expects (bot.services.erasure scrubs these rows when the villager is erased)
        await adm.audit(session, request, "villager.view", object_type="villager", object_id=openid_suffix(openid))
    return await adm.render(
        request,
        "admin/villager.html",
        {"card": card, "villager": villager, "tickets": tickets, "q": request.query.get("q", "")[:64]},
        title=f"村民 {card.label}",
    )


async def export(request: web.Request) -> web.StreamResponse:
    villager_id = int(request.match_info["id"])
    async with adm.db(request)() as session, session.begin():
        openid = await _openid(request, session)
        data = await svc.export_villager(session, openid)
        await adm.audit(session, request, "villager.export", object_type="villager", object_id=openid_suffix(openid))
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"),
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="villager-{villager_id}.json"'},
    )


async def forget(request: web.Request) -> web.StreamResponse:
    villager_id = int(request.match_info["id"])
    data = await adm.form(request)
    if data.get("confirm") != "1":
        adm.flash(request, "请先勾选“确认删除”。", "error")
        adm.redirect(request, "admin-villager", id=villager_id)
    async with adm.db(request)() as session, session.begin():
        openid = await _openid(request, session)
        me = await session.get(StaffUser, adm.user(request).id)
        count = await svc.forget_villager(session, openid, utcnow(), staff=me)
        await adm.audit(  # the erased villager is not named here either
            session, request, "villager.forget_request", object_type="villager", details={"tickets": count}
        )
    adm.flash(request, f"已删除该村民的个人信息，{count} 个工单已匿名。")
    adm.redirect(request, "admin-villagers")


async def _object_filter(session: AsyncSession, text: str) -> Any:
    """A ticket number, booking code or dispute case number → the audit rows about that object."""
    for kind, model, column in (
        ("ticket", Ticket, Ticket.number),
        ("booking", Booking, Booking.code),
        ("dispute", DisputeCase, DisputeCase.case_no),
    ):
        found = (await session.execute(select(model.id).where(column == text))).scalar_one_or_none()
        if found is not None:
            return and_(AuditLog.object_type == kind, AuditLog.object_id == str(found))
    return AuditLog.object_id == text


async def audit_page(request: web.Request) -> web.StreamResponse:
    action = request.query.get("action", "").strip()[:64]
    who = request.query.get("who", "").strip()[:64]
    obj = request.query.get("object", "").strip()[:64]
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(AUDIT_PAGE)
    groups = dict(audit.GROUPS)
    if action in groups:
        stmt = stmt.where(AuditLog.action.in_([c for c in audit.ACTION_NAMES if audit.group_of(c) == groups[action]]))
    elif action:
        stmt = stmt.where(AuditLog.action.startswith(action))
    if who:
        stmt = stmt.where(AuditLog.username == who)
    async with adm.db(request)() as session:
        if obj:
            stmt = stmt.where(await _object_filter(session, obj))
        rows = list((await session.execute(stmt)).scalars())
        village_names = dict((await session.execute(select(Village.id, Village.name))).all())
        objects = await audit.describe(session, rows, village_names)
        people = list((await session.execute(select(StaffUser).order_by(StaffUser.id))).scalars())
    labels = {p.username: p.label for p in people}
    entries = [
        {
            "at": r.at,
            "who": "系统" if r.username == "system" else labels.get(r.username, r.username) or "未登录",
            "action": audit.action_name(r.action),
            "object": what,
            "ip": r.ip,
        }
        for r, what in zip(rows, objects, strict=True)
    ]
    return await adm.render(
        request,
        "admin/audit.html",
        {
            "entries": entries,
            "action": action,
            "who": who,
            "object": obj,
            "groups": audit.GROUPS,
            "people": [(p.username, p.label) for p in people],
        },
        title="操作记录",
    )


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/villagers", villagers_page, name="admin-villagers", roles=adm.ADMIN)
    adm.add_view(
        app,
        "GET",
        r"/admin/villagers/{id:\d+}/export",
        export,
        name="admin-villager-export",
        roles=adm.ADMIN,
    )
    adm.add_view(
        app,
        "POST",
        r"/admin/villagers/{id:\d+}/forget",
        forget,
        name="admin-villager-forget",
        roles=adm.ADMIN,
    )
    adm.add_view(app, "GET", r"/admin/villagers/{id:\d+}", villager_page, name="admin-villager", roles=adm.ADMIN)
    adm.add_view(app, "GET", "/admin/audit", audit_page, name="admin-audit", roles=adm.ADMIN)
    adm.add_nav(app, "村民信息", "admin-villagers", roles=adm.ADMIN, order=80)
    adm.add_nav(app, "操作记录", "admin-audit", roles=adm.ADMIN, order=90)
