"""The queue and the ticket page: thread, reply (through the outbox), notes, assign, escalate, statuses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import framework as adm
from bot.knowledge import Entry
from bot.services import staff as staff_svc
from bot.services import tickets as svc
from bot.services import villagers
from bot.services.knowledge import match_level
from bot.services.privacy import find_phones, mask_phone, mask_phones, shown_to_staff
from bot.storage.models import Village, utcnow
from bot.storage.staff import ROLE_NAMES, StaffUser
from bot.storage.tickets import OPEN_STATUSES, PRIORITY_NAMES, STATUSES, Ticket, TicketMessage
from bot.wechat.errors import WeChatError

PAGE_SIZE = 50
_Sel = TypeVar("_Sel", bound="Select[*tuple[Any, ...]]")
KIND_NAMES = {"villager": "村民", "reply": "公开回复", "note": "内部备注", "event": "系统"}


# ---------------------------------------------------------------- access
def scope(staff: adm.Staff) -> ColumnElement[bool]:
    return svc.visible_to(staff.role, staff.id, staff.village_ids, position=staff.position)


async def ticket_for(request: web.Request, session: AsyncSession) -> Ticket:
    """The ticket in the URL, or 404; 403 when it is outside the user's villages / assignments."""
    try:
        ticket_id = int(request.match_info["id"])
    except (KeyError, ValueError):
        adm.not_found()
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        adm.not_found("没有这个工单。")
    staff = adm.user(request)
    if not svc.can_see(ticket, staff.role, staff.id, staff.village_ids, position=staff.position):
        adm.forbid("这个工单不归您管，不能查看或修改。")
    return ticket


async def _staff_by_id(session: AsyncSession) -> dict[int, StaffUser]:
    return {s.id: s for s in (await session.execute(select(StaffUser))).scalars()}


async def _villages(session: AsyncSession) -> dict[int, Village]:
    return {v.id: v for v in (await session.execute(select(Village).order_by(Village.id))).scalars()}


async def assignable(session: AsyncSession, staff: adm.Staff, ticket: Ticket) -> list[StaffUser]:
    """Whom this user may hand the ticket to: admins anyone active; mediators the ticket village's staff."""
    if staff.is_admin:
        return await svc.staff_of_village(session, None)
    if staff.role == "mediator":
        return await svc.staff_of_village(session, ticket.village_id) if ticket.village_id else []
    return []



def _assign_labels(options: list[StaffUser]) -> list[tuple[int, str]]:
    """Names in the 分派 list: display name and role, plus the sign-in name where two people share a
    display name (two 王调解员 must not look the same)."""
    seen: dict[str, int] = {}
    for s in options:
        seen[s.label] = seen.get(s.label, 0) + 1
    return [
        (
            s.id,
            f"{s.label}（{ROLE_NAMES.get(s.role, s.role)}"
            + (f"，登录名 {s.username}" if seen[s.label] > 1 and s.username != s.label else "")
            + "）",
        )
        for s in options
    ]

# ---------------------------------------------------------------- the queue
@dataclass(frozen=True)
class Filters:
    status: str
    village: str
    topic: str
    priority: str
    assignee: str
    overdue: bool
    urgent: bool
    escalated: bool
    q: str
    page: int

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        def flag(name: str) -> bool:
            return str(query.get(name, "")) in ("1", "on", "true")

        try:
            page = min(max(1, int(query.get("page", "1"))), adm.MAX_PAGE)
        except ValueError:
            page = 1
        return cls(
            status=str(query.get("status", ""))[:16],
            village=str(query.get("village", ""))[:8],
            topic=str(query.get("topic", ""))[:64],
            priority=str(query.get("priority", ""))[:2],
            assignee=str(query.get("assignee", ""))[:8],
            overdue=flag("overdue"),
            urgent=flag("urgent"),
            escalated=flag("escalated"),
            q=str(query.get("q", "")).strip()[:32],
            page=page,
        )

    def as_query(self, **changes: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "status": self.status,
            "village": self.village,
            "topic": self.topic,
            "priority": self.priority,
            "assignee": self.assignee,
            "overdue": "1" if self.overdue else "",
            "urgent": "1" if self.urgent else "",
            "escalated": "1" if self.escalated else "",
            "q": self.q,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v not in ("", None)}


def _apply(stmt: _Sel, f: Filters, staff: adm.Staff, now: dt.datetime, *, status: bool = True) -> _Sel:
    stmt = stmt.where(scope(staff))
    if status:
        if f.status == "all":
            pass
        elif f.status in STATUSES:
            stmt = stmt.where(Ticket.status == f.status)
        else:
            stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    if f.village == "none":
        stmt = stmt.where(Ticket.village_id.is_(None))
    elif f.village.isdigit():
        stmt = stmt.where(Ticket.village_id == int(f.village))
    if f.topic == "none":
        stmt = stmt.where(Ticket.topic.is_(None))
    elif f.topic:
        stmt = stmt.where(Ticket.topic == f.topic)
    if f.priority.isdigit():
        stmt = stmt.where(Ticket.priority == int(f.priority))
    if f.assignee == "me":
        stmt = stmt.where(or_(Ticket.assignee_id == staff.id, Ticket.duty_staff_id == staff.id))
    elif f.assignee == "none":
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    elif f.assignee.isdigit():
        stmt = stmt.where(Ticket.assignee_id == int(f.assignee))
    if f.overdue:
        stmt = stmt.where(
            Ticket.first_response_at.is_(None),
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.first_response_due_at <= now,
        )
    if f.urgent:
        stmt = stmt.where(Ticket.urgent.is_(True))
    if f.escalated:
        stmt = stmt.where(Ticket.escalated_at.is_not(None))
    if f.q:
        stmt = stmt.where(Ticket.number.contains(f.q))
    return stmt


async def queue(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    f = Filters.from_query(request.query)
    now = utcnow()
    kb = adm.services(request).knowledge.kb
    async with adm.db(request)() as session, session.begin():
        total = (await session.execute(_apply(select(func.count(Ticket.id)), f, staff, now))).scalar_one()
        rows = list(
            (
                await session.execute(
                    _apply(select(Ticket), f, staff, now)
                    .order_by(Ticket.priority, Ticket.first_response_due_at, Ticket.id.desc())
                    .limit(PAGE_SIZE)
                    .offset((f.page - 1) * PAGE_SIZE)
                )
            ).scalars()
        )
        status_rows = await session.execute(
            _apply(select(Ticket.status, func.count(Ticket.id)), f, staff, now, status=False).group_by(Ticket.status)
        )
        by_status: dict[str, int] = {str(s): int(n) for s, n in status_rows.all()}
        open_scope = select(func.count(Ticket.id)).where(scope(staff), Ticket.status.in_(OPEN_STATUSES))
        counts = {
            "overdue": (
                await session.execute(
                    open_scope.where(Ticket.first_response_at.is_(None), Ticket.first_response_due_at <= now)
                )
            ).scalar_one(),
            "urgent": (await session.execute(open_scope.where(Ticket.urgent.is_(True)))).scalar_one(),
            "escalated": (await session.execute(open_scope.where(Ticket.escalated_at.is_not(None)))).scalar_one(),
            "unassigned": (await session.execute(open_scope.where(Ticket.assignee_id.is_(None)))).scalar_one(),
            "mine": (
                await session.execute(
                    open_scope.where(or_(Ticket.assignee_id == staff.id, Ticket.duty_staff_id == staff.id))
                )
            ).scalar_one(),
        }
        villages = await _villages(session)
        staff_rows = await _staff_by_id(session)
        duty = await staff_svc.on_duty(session, now)
        if staff.is_admin:
            assignee_options = [s for s in staff_rows.values() if s.active]
        elif staff.role == "mediator":
            colleagues = {s.id: s for vid in staff.village_ids for s in await svc.staff_of_village(session, vid)}
            assignee_options = list(colleagues.values())
        else:
            assignee_options = []
        await adm.audit(session, request, "tickets.list", object_type="ticket", details=f.as_query())
    visible_villages = [v for v in villages.values() if staff.can_see_village(v.id)]
    items = [
        {
            "ticket": t,
            "village": villages[t.village_id].name if t.village_id in villages else "未选村",
            "topic": svc.category_name(kb, t),
            "summary": mask_phones(t.summary),  # the queue never shows a phone number
            "assignee": staff_rows[t.assignee_id].label if t.assignee_id in staff_rows else "乡里待分派",
            "duty": staff_rows[t.duty_staff_id].label if t.duty_staff_id in staff_rows else "",
            "overdue": svc.is_overdue(t, now),
            "waiting": t.is_open
            and t.last_villager_message_at is not None
            and (t.last_staff_reply_at is None or t.last_villager_message_at > t.last_staff_reply_at),
        }
        for t in rows
    ]
    pages = max(1, (int(total) + PAGE_SIZE - 1) // PAGE_SIZE)
    return await adm.render(
        request,
        "admin/queue.html",
        {
            "items": items,
            "f": f,
            "total": total,
            "pages": pages,
            "by_status": by_status,
            "counts": counts,
            "statuses": STATUSES,
            "villages": visible_villages,
            "topics": sorted(kb.topics.values(), key=lambda t: t.id),
            "priorities": PRIORITY_NAMES,
            "assignees": assignee_options,
            "duty": duty,
        },
        title="工单",
    )


# ---------------------------------------------------------------- the ticket page
def _faq_suggestions(request: web.Request, ticket: Ticket) -> tuple[list[Entry], list[Entry]]:
    knowledge = adm.services(request).knowledge
    suggested: list[Entry] = []
    if ticket.summary and ticket.anonymised_at is None:
        result = knowledge.matcher.match(ticket.summary)
        suggested = [c.entry for c in result.candidates[:3]]
    found: list[Entry] = []
    query = request.query.get("faq_q", "").strip()[:100]
    if query:
        found = [c.entry for c in knowledge.matcher.match(query).candidates[:5]]
    return suggested, found


async def ticket_page(request: web.Request) -> web.StreamResponse:
    staff = adm.user(request)
    now = utcnow()
    services = adm.services(request)
    kb = services.knowledge.kb
    async with adm.db(request)() as session, session.begin():
        ticket = await ticket_for(request, session)
        svc.mark_opened(session, ticket, staff.id, staff.label, now, position=staff.position)  # ends its alerts
        messages = list(
            (
                await session.execute(
                    select(TicketMessage).where(TicketMessage.ticket_id == ticket.id).order_by(TicketMessage.id)
                )
            ).scalars()
        )
        deliveries = await svc.deliveries(session, [m.outbox_id for m in messages if m.outbox_id])
        people = await _staff_by_id(session)
        village = await session.get(Village, ticket.village_id) if ticket.village_id else None
        card = (await villagers.cards(session, [ticket.openid])).get(ticket.openid or "")
        options = await assignable(session, staff, ticket)
        is_assignee = ticket.assignee_id == staff.id
        reveal = request.query.get("show_phone") == "1" and (staff.is_admin or is_assignee)
        # phone numbers, given with consent or typed into the story, 补充 or any message: in full for the
        # assignee, or after an admin's audited reveal; masked for everyone else (one rule: services.privacy)
        full = is_assignee or reveal
        has_phone = bool(ticket.contact_phone) or any(
            find_phones(text) for text in (ticket.summary, *(m.body for m in messages))
        )
        await adm.audit(session, request, "ticket.view", object_type="ticket", object_id=ticket.id)
        if full and has_phone:
            await adm.audit(session, request, "ticket.phone_view", object_type="ticket", object_id=ticket.id)
    suggested, found = _faq_suggestions(request, ticket)
    if ticket.urgent_kind == "suicide":
        suggested = []  # a crisis: no legal Q&A to paste in
    insert = request.query.get("insert", "")
    # the staff member's reply carries no disclaimer of its own in the middle (see svc.staff_reply)
    draft = kb.render_answer(kb.by_id[insert], disclaimer=False) if insert in kb.by_id else ""
    thread = []
    for m in messages:
        author = people[m.staff_id].label if m.staff_id in people else ""
        media = m.media or {}
        thread.append(
            {
                "m": m,
                "kind": KIND_NAMES.get(m.kind, m.kind),
                "author": author,
                "body": shown_to_staff(m.body, full=full),
                "delivery": deliveries.get(m.outbox_id) if m.outbox_id else None,
                "outbox_id": m.outbox_id,
                "media_type": str(media.get("type", "")),
                "recognised": bool(media.get("recognised", False)),
                "media_url": adm.url(request, "admin-ticket-media", id=ticket.id, message_id=m.id)
                if media.get("media_id")
                else "",
            }
        )
    clock = svc.statutory_clock(ticket, svc.local(now).date())
    return await adm.render(
        request,
        "admin/ticket.html",
        {
            "t": ticket,
            "thread": thread,
            "village": village.name if village else "未选村",
            "topic": svc.category_name(kb, ticket),
            "topic_level": match_level(ticket.topic_score) if ticket.topic_score is not None else "",
            "urgent_kind": svc.kind_name(ticket.urgent_kind) if ticket.urgent else "",
            "crisis": ticket.urgent_kind == "suicide",
            "assignee": people[ticket.assignee_id].label if ticket.assignee_id in people else "乡里待分派",
            "duty": people[ticket.duty_staff_id].label if ticket.duty_staff_id in people else "",
            "opened_by": people[ticket.first_opened_by].label if ticket.first_opened_by in people else "",
            "overdue": svc.is_overdue(ticket, now),
            "clock": clock,
            "phone": ticket.contact_phone if full else mask_phone(ticket.contact_phone),
            "status_reason": shown_to_staff(ticket.status_reason, full=full),
            "escalation_reason": shown_to_staff(ticket.escalation_reason, full=full),
            "can_reveal": has_phone and staff.is_admin and not full,
            "villager": _villager_label(card),
            "villager_id": card.id if card else None,
            "suggested": suggested,
            "found": found,
            "faq_q": request.query.get("faq_q", "")[:100],
            "draft": draft,
            "assignable": _assign_labels(options),
            "can_assign": staff.role != "volunteer",
            "statuses": STATUSES,
            "targets": svc.ESCALATION_TARGETS,
            "priority": PRIORITY_NAMES.get(ticket.priority, ""),
            "reply_max": svc.REPLY_MAX_CHARS,
            "satisfaction": svc.SATISFACTION_NAMES.get(ticket.satisfaction or 0, ""),
        },
        title=f"工单 {ticket.number}",
    )


def _villager_label(card: villagers.Card | None) -> str:
    """The villager by name (never the openid), and how many tickets they have."""
    if card is None:
        return villagers.ERASED
    return (card.name or "未留名") + (f"（共 {card.tickets} 个工单）" if card.tickets > 1 else "")


# ---------------------------------------------------------------- changes
async def _change(request: web.Request, action: str) -> web.StreamResponse:
    staff = adm.user(request)
    data = await adm.form(request)
    now = utcnow()
    texts = adm.services(request).texts
    base_url = adm.services(request).settings.base_url
    template_id = adm.services(request).settings.wechat_staff_template_id
    warn = ""
    async with adm.db(request)() as session, session.begin():
        ticket = await ticket_for(request, session)
        me = await session.get(StaffUser, staff.id)
        assert me is not None
        details: dict[str, Any] = {}
        try:
            if action == "reply":
                message = await svc.staff_reply(session, ticket, me, adm.field_text(data, "body", 5000), texts, now)
                details = {"outbox_id": message.outbox_id}
                done = "已发出，正在送达村民的微信。"
            elif action == "note":
                svc.add_note(session, ticket, me, adm.field_text(data, "body"), now)
                done = "备注已保存（村民看不到）。"
            elif action == "assign":
                if staff.role == "volunteer":
                    adm.forbid("法律明白人不能分派工单；需要别人接手请“升级”或联系调解员。")
                target_id = adm.field_text(data, "assignee", 12)
                target: StaffUser | None = None
                if target_id:
                    options = {s.id: s for s in await assignable(session, staff, ticket)}
                    if not target_id.isdigit() or int(target_id) not in options:
                        adm.forbid("不能分派给这个人。")
                    target = options[int(target_id)]
                svc.assign(session, ticket, target, me, now)
                if target is not None and target.id != me.id:
                    await svc.notify_staff(
                        session, ticket, [target.id], "assigned", base_url, now, template_id=template_id
                    )
                details = {"to": target.id if target else None}
                done = f"已分派给{target.label}。" if target else "已交回乡里待分派队列。"
            elif action == "status":
                status = adm.field_text(data, "status", 16)
                reason = adm.field_text(data, "reason", 500)
                await svc.set_status(session, ticket, status, reason, me, texts, now)
                details = {"to": status, "reason": reason}
                done = f"状态已改为“{status}”。"
            elif action == "escalate":
                target_key = adm.field_text(data, "target", 32) or "township"
                reason = adm.field_text(data, "reason", 500)
                outcome = await svc.escalate_to(
                    session, ticket, adm.services(request).settings, now, target=target_key, reason=reason, staff=me
                )
                details = {"target": target_key, "reason": reason, "told": [h.id for h in outcome.holders]}
                name = svc.ESCALATION_TARGETS.get(target_key, target_key)
                done = f"已升级到{name}（三长联动）。"
                if target_key in svc.TARGET_POSITIONS:
                    who = "、".join(h.label for h in outcome.holders)
                    done += f"已通知{who}（微信 {outcome.wechat} 人）。" if who else ""
                    if not who:
                        warn = f"还没有账号担任{name}的负责人，没有人收到通知：请管理员在“人员”里设置。"
            elif action == "agreement":
                raw = adm.field_text(data, "signed_on", 10)
                try:
                    signed_on = adm.in_calendar(dt.date.fromisoformat(raw)) if raw else None
                except ValueError:
                    raise svc.TicketError("日期格式应为 2026-01-31") from None
                svc.set_agreement(session, ticket, signed_on, me, now)
                details = {"signed_on": raw}
                done = "调解协议日期已登记。" if signed_on else "调解协议日期已清除。"
            else:  # pragma: no cover - routes are fixed
                adm.not_found()
        except svc.TicketError as exc:
            adm.flash(request, str(exc), "error")
            adm.redirect(request, "admin-ticket", id=request.match_info["id"])
        await adm.audit(
            session, request, f"ticket.{action}", object_type="ticket", object_id=ticket.id, details=details
        )
    adm.flash(request, done)
    if warn:
        adm.flash(request, warn, "warn")
    adm.redirect(request, "admin-ticket", id=ticket.id)


def _action(action: str) -> adm.Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        return await _change(request, action)

    view.__name__ = f"ticket_{action}"
    return view


MEDIA_TYPES_INLINE = ("image/jpeg", "image/png", "image/gif", "image/webp")


async def media(request: web.Request) -> web.StreamResponse:
    """A villager's picture (or voice/video file), fetched from WeChat through the API client."""
    async with adm.db(request)() as session, session.begin():
        ticket = await ticket_for(request, session)
        try:
            message_id = int(request.match_info["message_id"])
        except ValueError:
            adm.not_found()
        message = await session.get(TicketMessage, message_id)
        if message is None or message.ticket_id != ticket.id or not (message.media or {}).get("media_id"):
            adm.not_found("没有这个附件。")
        media_id = str((message.media or {})["media_id"])
        await adm.audit(session, request, "ticket.media_view", object_type="ticket", object_id=ticket.id)
    try:
        file = await adm.wechat(request).get_media(media_id)
    except WeChatError as exc:
        raise web.HTTPNotFound(text=f"取不到这个文件（微信临时素材只保存3天）：{exc}") from None
    inline = file.content_type in MEDIA_TYPES_INLINE
    headers = {
        "Content-Disposition": "inline" if inline else f'attachment; filename="ticket-{ticket.id}-{message_id}"',
        "Cache-Control": "private, max-age=3600",
    }
    return web.Response(
        body=file.content,
        content_type=file.content_type if inline else "application/octet-stream",
        headers=headers,
    )


# ---------------------------------------------------------------- badges in the menu
async def badges(request: web.Request, staff: adm.Staff) -> dict[str, Any]:
    now = utcnow()
    async with adm.db(request)() as session:
        base = select(func.count(Ticket.id)).where(scope(staff), Ticket.status.in_(OPEN_STATUSES))
        if staff.is_admin:
            attention = base.where(
                or_(
                    Ticket.escalated_at.is_not(None),
                    and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at <= now),
                )
            )
        else:
            attention = base.where(Ticket.assignee_id == staff.id)
        count = (await session.execute(attention)).scalar_one()
    return {"badges": {"admin-tickets": int(count)}}


async def delivery_states(request: web.Request) -> web.StreamResponse:
    """How far the staff replies on this ticket got on their way to the villager's WeChat, for the ticket
    page's script (static/ticket.js): it asks while a reply is still 等待发送/正在发送, so "已送达微信"
    shows up without a reload (and without losing a reply being typed)."""
    async with adm.db(request)() as session:
        ticket = await ticket_for(request, session)
        ids = (
            await session.execute(
                select(TicketMessage.outbox_id).where(
                    TicketMessage.ticket_id == ticket.id, TicketMessage.outbox_id.is_not(None)
                )
            )
        ).scalars()
        found = await svc.deliveries(session, [int(i) for i in ids if i is not None])
    return web.json_response(
        {
            str(outbox_id): {
                "status": d.status,
                "text": d.label + (f" · {svc.format_time(d.at)}" if d.at else ""),
                "reason": d.reason if d.reason and d.status != "sent" else "",
            }
            for outbox_id, d in found.items()
        },
        headers={"Cache-Control": "no-store"},
    )


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/tickets", queue, name="admin-tickets", roles=adm.ALL)
    adm.add_view(app, "GET", r"/admin/tickets/{id:\d+}", ticket_page, name="admin-ticket", roles=adm.ALL)
    for action in ("reply", "note", "assign", "status", "escalate", "agreement"):
        adm.add_view(
            app,
            "POST",
            rf"/admin/tickets/{{id:\d+}}/{action}",
            _action(action),
            name=f"admin-ticket-{action}",
            roles=adm.ALL,
        )
    adm.add_view(
        app,
        "GET",
        r"/admin/tickets/{id:\d+}/deliveries",
        delivery_states,
        name="admin-ticket-deliveries",
        roles=adm.ALL,
    )
    adm.add_view(
        app,
        "GET",
        r"/admin/tickets/{id:\d+}/media/{message_id:\d+}",
        media,
        name="admin-ticket-media",
        roles=adm.ALL,
    )
    adm.add_nav(app, "工单", "admin-tickets", roles=adm.ALL, order=10)
    adm.add_context_hook(app, badges)
