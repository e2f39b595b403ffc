"""Tickets: intake, assignment, deadlines, replies through the outbox, escalation, satisfaction, privacy.

Shared by the chat handlers (handlers/handoff.py), the back-office (bot/admin/tickets_views.py),
the operator CLI and the periodic job. Every function works inside the caller's transaction
(``session``) and never commits.

* **Numbers** — ``2026-0001``: a per-year counter row, incremented with ``UPDATE … RETURNING``
  (the row lock serialises concurrent intakes on PostgreSQL; SQLite serialises writers anyway).
* **Assignment** — round robin over the active mediators of the villager's village (the one whose
  last automatic assignment is oldest); no village or no mediator → the township queue
  (``assignee_id`` None).
* **Deadlines** — the first response is due within N *working hours*: clock hours that fall on a
  working day of the Chinese calendar (``chinese_calendar``: statutory holidays off, adjusted
  weekend working days on; plain Monday–Friday for years it does not know yet). N is
  ``LAWBOT_FIRST_RESPONSE_HOURS`` when that setting exists, else :data:`DEFAULT_FIRST_RESPONSE_HOURS`.
* **Overdue** — :func:`tick` marks tickets past their first-response deadline once, raises their
  priority and escalates them to the township admins (idempotent: ``UPDATE … WHERE overdue_at IS NULL``).
* **Privacy** — :func:`forget_villager` anonymises a villager's tickets and deletes personal fields;
  :func:`export_villager` returns everything stored about one openid. Other features join in by
  exposing ``async def erase_personal_data(session, openid)`` / ``async def export_personal_data(session,
  openid) -> dict`` in a module listed in :data:`PRIVACY_MODULES` (bot.services.booking does).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, false, func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.outbox import enqueue
from bot.storage.models import (
    ConversationState,
    InboundMessage,
    KnowledgeGap,
    OutboxMessage,
    UTCDateTime,
    Village,
    Villager,
    utcnow,
)
from bot.storage.staff import AuditLog, StaffUser, staff_villages
from bot.storage.tickets import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    IN_PROGRESS,
    MEDIATING,
    NEW,
    OPEN_STATUSES,
    PRIORITY_HIGH,
    RESOLVED,
    STATUSES,
    TRANSFERRED,
    Ticket,
    TicketCounter,
    TicketMessage,
)

if TYPE_CHECKING:
    from bot.services.jobs import JobContext
    from bot.services.knowledge import Knowledge, Texts
    from bot.settings import Settings

log = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
DEFAULT_FIRST_RESPONSE_HOURS = 24
#: a staff reply opens a follow-up chat: the villager's messages join the thread for this long
FOLLOWUP_WINDOW = dt.timedelta(hours=48)
#: a resolved ticket not reopened is closed after this long
AUTO_CLOSE_AFTER = dt.timedelta(days=7)
#: a phone number given with consent is deleted this long after the ticket is resolved or closed
PHONE_RETENTION = dt.timedelta(days=180)
#: the satisfaction question can be answered for this long
SATISFACTION_WINDOW = dt.timedelta(days=7)
#: 人民调解法第33条: judicial confirmation within 30 days of the mediation agreement taking effect
JUDICIAL_CONFIRMATION_DAYS = 30
#: 三长联动: where the township escalates a case
ESCALATION_TARGETS: dict[str, str] = {
    "township": "乡里（司法所值班）",
    "mediation_center": "乡矛盾纠纷调解中心",
    "police": "派出所",
    "judicial": "司法所",
}
#: statuses that need a reason when set by staff
REASON_REQUIRED: frozenset[str] = frozenset({TRANSFERRED, CLOSED})
SATISFACTION_NAMES: dict[int, str] = {1: "有帮助", 2: "一般", 3: "没帮助"}
REPLY_MAX_CHARS = 600
#: feature modules holding a villager's personal data (each may expose erase_personal_data/export_personal_data)
PRIVACY_MODULES: tuple[str, ...] = ("bot.services.booking", "bot.services.campaigns")
REDACTED = "[已应村民要求删除]"


class TicketError(ValueError):
    """A change staff asked for is not allowed (shown to them as a message)."""


# ---------------------------------------------------------------- settings
def first_response_hours(settings: Settings) -> int:
    return settings.first_response_hours if settings.first_response_hours > 0 else DEFAULT_FIRST_RESPONSE_HOURS


# ---------------------------------------------------------------- the working calendar
def is_workday(day: dt.date) -> bool:
    """A working day of the Chinese calendar (statutory holidays and adjusted working days)."""
    import chinese_calendar

    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package does not know yet: Monday to Friday
        return day.weekday() < 5


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(CHINA_TZ)


def add_working_hours(start: dt.datetime, hours: float) -> dt.datetime:
    """``start`` plus ``hours`` clock hours counted on working days only (returned in UTC)."""
    remaining = dt.timedelta(hours=hours)
    current = local(start)
    for _ in range(3660):  # ten years of days: the calendar never has that many holidays in a row
        next_midnight = dt.datetime.combine(current.date() + dt.timedelta(days=1), dt.time(), CHINA_TZ)
        if is_workday(current.date()):
            available = next_midnight - current
            if remaining <= available:
                return (current + remaining).astimezone(dt.UTC)
            remaining -= available
        current = next_midnight
    raise ValueError(f"no working day found after {start}")


def format_due(moment: dt.datetime) -> str:
    """'12月1日15:30前', or '12月1日内' for a deadline at midnight — how villagers read a deadline."""
    at = local(moment)
    if at.hour == 0 and at.minute == 0:
        day = at - dt.timedelta(days=1)
        return f"{day.month}月{day.day}日内"
    return f"{at.month}月{at.day}日{at:%H:%M}前"


def format_time(moment: dt.datetime | None) -> str:
    return "" if moment is None else f"{local(moment):%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class StatutoryClock:
    name: str
    deadline: dt.date
    days_left: int

    @property
    def urgent(self) -> bool:
        return self.days_left <= 7


def statutory_clock(ticket: Ticket, today: dt.date) -> StatutoryClock | None:
    """A signed mediation agreement: apply for judicial confirmation within 30 days (人民调解法第33条)."""
    if ticket.agreement_signed_on is None:
        return None
    deadline = ticket.agreement_signed_on + dt.timedelta(days=JUDICIAL_CONFIRMATION_DAYS)
    return StatutoryClock("调解协议司法确认申请期限（人民调解法第33条，30日）", deadline, (deadline - today).days)


def is_overdue(ticket: Ticket, now: dt.datetime) -> bool:
    return ticket.first_response_at is None and ticket.is_open and ticket.first_response_due_at <= now


# ---------------------------------------------------------------- helpers
def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


_PHONE_CHARS = re.compile(r"[\s\-－—()（）]")


def parse_phone(text: str) -> str | None:
    """A mainland mobile (11 digits starting 1) or a landline (7–12 digits, area code optional)."""
    raw = _PHONE_CHARS.sub("", text.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    raw = raw.removeprefix("+86").removeprefix("86") if len(raw) > 11 else raw
    if re.fullmatch(r"1[3-9]\d{9}", raw) or re.fullmatch(r"0\d{9,11}|\d{7,8}", raw):
        return raw
    return None


def summary_of(text: str, media: Sequence[dict[str, Any]] = ()) -> str:
    text = " ".join(text.split())
    if text:
        return text[:500]
    kinds = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "shortvideo": "[视频]"}
    return " ".join(kinds.get(str(m.get("type")), "[附件]") for m in media)[:500] or "（未说明）"


async def next_number(session: AsyncSession, now: dt.datetime) -> str:
    year = local(now).year
    await session.execute(
        _insert(session)(TicketCounter).values(year=year, last=0).on_conflict_do_nothing(index_elements=["year"])
    )
    number = (
        await session.execute(
            update(TicketCounter)
            .where(TicketCounter.year == year)
            .values(last=TicketCounter.last + 1)
            .returning(TicketCounter.last)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    return f"{year}-{number:04d}"


def guess_topic(knowledge: Knowledge, text: str) -> tuple[str | None, float | None]:
    """The FAQ matcher's best topic for the villager's words (a hint for staff, never shown to villagers)."""
    if not text.strip():
        return None, None
    result = knowledge.matcher.match(text)
    if result.outcome == "smalltalk" or result.entry is None:
        return None, None
    return result.entry.topic, round(float(result.score), 3)


# ---------------------------------------------------------------- who sees what
def visible_to(role: str, staff_id: int, village_ids: Sequence[int]) -> ColumnElement[bool]:
    """Tickets a staff member may read and change: admin all; mediator their villages (and theirs); volunteer theirs."""
    if role == "admin":
        return true()
    if role == "mediator":
        if village_ids:
            return or_(Ticket.village_id.in_(list(village_ids)), Ticket.assignee_id == staff_id)
        return Ticket.assignee_id == staff_id
    if role == "volunteer":
        return Ticket.assignee_id == staff_id
    return false()


def can_see(ticket: Ticket, role: str, staff_id: int, village_ids: Sequence[int]) -> bool:
    if role == "admin":
        return True
    if ticket.assignee_id == staff_id:
        return True
    return role == "mediator" and ticket.village_id is not None and ticket.village_id in village_ids


async def staff_of_village(session: AsyncSession, village_id: int | None) -> list[StaffUser]:
    """Active staff serving a village (everyone active when village_id is None)."""
    stmt = select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.role, StaffUser.id)
    if village_id is not None:
        stmt = stmt.join(staff_villages, staff_villages.c.staff_id == StaffUser.id).where(
            staff_villages.c.village_id == village_id
        )
    return list((await session.execute(stmt)).scalars())


# ---------------------------------------------------------------- the thread
def add_message(
    session: AsyncSession,
    ticket: Ticket,
    kind: str,
    body: str,
    now: dt.datetime,
    *,
    staff_id: int | None = None,
    inbound_id: int | None = None,
    outbox_id: int | None = None,
    media: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> TicketMessage:
    message = TicketMessage(
        ticket_id=ticket.id,
        kind=kind,
        body=body,
        staff_id=staff_id,
        inbound_id=inbound_id,
        outbox_id=outbox_id,
        media=media,
        details=details or {},
        created_at=now,
    )
    session.add(message)
    ticket.updated_at = now
    return message


def add_event(
    session: AsyncSession,
    ticket: Ticket,
    event: str,
    body: str,
    now: dt.datetime,
    *,
    staff: StaffUser | None = None,
    **details: Any,
) -> TicketMessage:
    return add_message(
        session, ticket, "event", body, now, staff_id=staff.id if staff else None, details={"event": event, **details}
    )


def audit_row(
    action: str,
    now: dt.datetime,
    *,
    staff: StaffUser | None = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
    ip: str = "",
) -> AuditLog:
    """An audit entry; ``staff`` None means the system (the periodic job, the villager's own request)."""
    return AuditLog(
        staff_id=staff.id if staff else None,
        username=staff.username if staff else "system",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        details=details or {},
        ip=ip,
        at=now,
    )


# ---------------------------------------------------------------- telling staff in WeChat
#: staff who linked their own WeChat (the campaign feature's "预览绑定" code) get these through the outbox
STAFF_NOTICES: dict[str, str] = {
    "new": "【乡法通】新工单 {number}（{village}）分给了您，请在 {due} 前首次答复：{url}",
    "urgent": "【乡法通·紧急】工单 {number}（{village}）涉及人身安全，已升级到乡里，请马上处理：{url}",
    "overdue": "【乡法通】工单 {number}（{village}）超过首次答复期限还没答复，已升级到乡里：{url}",
    "escalated": "【乡法通】工单 {number}（{village}）已升级到{target}：{url}",
    "assigned": "【乡法通】工单 {number}（{village}）转给了您：{url}",
}
STAFF_WECHAT_MODULE = "bot.storage.campaigns"


async def staff_openids(session: AsyncSession, staff_ids: Sequence[int]) -> dict[int, str]:
    """Staff id → their own WeChat openid, for those who linked one (none when that feature is absent)."""
    if not staff_ids or importlib.util.find_spec(STAFF_WECHAT_MODULE) is None:
        return {}
    model: Any = getattr(importlib.import_module(STAFF_WECHAT_MODULE), "StaffWeChat", None)
    if model is None:
        return {}
    rows = await session.execute(
        select(model.staff_id, model.openid).where(model.staff_id.in_(list(staff_ids)), model.openid.is_not(None))
    )
    return {int(staff_id): str(openid) for staff_id, openid in rows.all()}


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


# ---------------------------------------------------------------- intake
@dataclass
class Part:
    """One piece of what the villager told us: text, and/or a picture or a voice message."""

    text: str = ""
    inbound_id: int | None = None
    media: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "inbound_id": self.inbound_id, "media": self.media}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        inbound = data.get("inbound_id")
        media = data.get("media")
        return cls(str(data.get("text") or ""), int(inbound) if inbound else None, media if media else None)


@dataclass
class Intake:
    openid: str
    village_id: int | None
    parts: list[Part] = field(default_factory=list)
    phone: str | None = None
    urgent: bool = False
    source: str = "wechat"
    inbound_id: int | None = None


async def pick_assignee(session: AsyncSession, village_id: int | None, now: dt.datetime) -> StaffUser | None:
    """Round robin over the village's active mediators; None → the township queue."""
    if village_id is None:
        return None
    stmt = (
        select(StaffUser)
        .join(staff_villages, staff_villages.c.staff_id == StaffUser.id)
        .where(staff_villages.c.village_id == village_id, StaffUser.role == "mediator", StaffUser.active.is_(True))
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=StaffUser)  # concurrent intakes wait here, then see fresh values
    mediators = list((await session.execute(stmt)).scalars())
    if not mediators:
        return None
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    chosen = min(mediators, key=lambda m: (m.last_assigned_at or oldest, m.id))
    chosen.last_assigned_at = now
    return chosen


async def create_ticket(
    session: AsyncSession, knowledge: Knowledge, settings: Settings, intake: Intake, now: dt.datetime
) -> Ticket:
    """File a ticket from the villager's words, assign it, set its deadline; urgent → escalate at once."""
    text = "\n".join(p.text for p in intake.parts if p.text).strip()
    media = [p.media for p in intake.parts if p.media]
    topic, score = guess_topic(knowledge, text)
    ticket = Ticket(
        number=await next_number(session, now),
        openid=intake.openid,
        village_id=intake.village_id,
        summary=summary_of(text, media),
        topic=topic,
        topic_score=score,
        source=intake.source,
        status=NEW,
        urgent=intake.urgent,
        priority=PRIORITY_HIGH if intake.urgent else 2,
        created_at=now,
        updated_at=now,
        first_response_due_at=add_working_hours(now, first_response_hours(settings)),
        last_villager_message_at=now,
        contact_phone=intake.phone,
        phone_consent_at=now if intake.phone else None,
        inbound_id=intake.inbound_id,
    )
    session.add(ticket)
    await session.flush()
    for part in intake.parts:
        add_message(session, ticket, "villager", part.text, now, inbound_id=part.inbound_id, media=part.media)
    village = await session.get(Village, intake.village_id) if intake.village_id else None
    add_event(
        session,
        ticket,
        "created",
        f"村民通过微信提交（{village.name if village else '未选村'}）" + ("，已同意留手机号" if intake.phone else ""),
        now,
    )
    assignee = await pick_assignee(session, intake.village_id, now)
    if assignee is not None:
        ticket.assignee_id = assignee.id
        ticket.assigned_at = now
        ticket.status = ASSIGNED
        add_event(session, ticket, "assigned", f"自动分派给{assignee.label}（轮流分派）", now, to=assignee.id)
    else:
        add_event(session, ticket, "queued", "进入乡里待分派队列", now)
    if intake.urgent:
        escalate(session, ticket, now, target="township", reason="紧急情况：村民消息涉及人身安全")
        await notify_staff(session, ticket, await admin_ids(session), "urgent", settings.base_url, now)
    if assignee is not None:
        await notify_staff(session, ticket, [assignee.id], "new", settings.base_url, now)
    session.add(
        audit_row("ticket.create", now, object_type="ticket", object_id=ticket.id, details={"source": intake.source})
    )
    return ticket


def escalate(
    session: AsyncSession,
    ticket: Ticket,
    now: dt.datetime,
    *,
    target: str = "township",
    reason: str = "",
    staff: StaffUser | None = None,
) -> None:
    """三长联动: hand the ticket up to the township (the admins' 升级 queue), with where and why."""
    if target not in ESCALATION_TARGETS:
        raise TicketError("升级去向不对")
    ticket.escalated_at = ticket.escalated_at or now
    ticket.escalated_to = target
    ticket.escalation_reason = reason or ticket.escalation_reason
    ticket.priority = PRIORITY_HIGH
    add_event(
        session,
        ticket,
        "escalated",
        f"升级到{ESCALATION_TARGETS[target]}" + (f"：{reason}" if reason else ""),
        now,
        staff=staff,
        target=target,
        reason=reason,
    )


def mark_urgent(session: AsyncSession, ticket: Ticket, now: dt.datetime, reason: str) -> None:
    if not ticket.urgent:
        ticket.urgent = True
        escalate(session, ticket, now, target="township", reason=reason)


def add_villager_message(
    session: AsyncSession,
    ticket: Ticket,
    now: dt.datetime,
    *,
    text: str,
    inbound_id: int | None,
    media: dict[str, Any] | None = None,
) -> TicketMessage:
    """The villager added to the ticket: it goes back to staff's 处理中 if it had been answered."""
    message = add_message(session, ticket, "villager", text, now, inbound_id=inbound_id, media=media)
    ticket.last_villager_message_at = now
    if ticket.status == ANSWERED:
        ticket.status = IN_PROGRESS
        add_event(session, ticket, "status", "村民发来新消息，状态回到处理中", now, to=IN_PROGRESS)
    return message


# ---------------------------------------------------------------- villager-side look-ups
async def latest_open_ticket(session: AsyncSession, openid: str) -> Ticket | None:
    return (
        await session.execute(
            select(Ticket)
            .where(Ticket.openid == openid, Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


@functools.cache
def _followup_query() -> Any:
    # asked for every villager message: built once, and run as a Core statement (no ORM
    # objects unless there is a follow-up to join)
    return (
        select(Ticket.id, Ticket.last_staff_reply_at, Ticket.villager_ended_at)
        .where(
            Ticket.openid == bindparam("openid"),
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.last_staff_reply_at >= bindparam("since", type_=UTCDateTime()),
        )
        .order_by(Ticket.last_staff_reply_at.desc())
        .limit(1)
    )


def may_follow_up(villager: Villager, now: dt.datetime) -> bool:
    """Cheap pre-check (no query): only a villager staff replied to within 48 hours can have a follow-up thread."""
    last = villager.last_staff_reply_at
    return last is not None and last >= now - FOLLOWUP_WINDOW


async def followup_ticket(session: AsyncSession, openid: str, now: dt.datetime) -> Ticket | None:
    """The open ticket staff replied to within 48 hours, unless the villager said "结束" since."""
    conn = await session.connection()
    row = (await conn.execute(_followup_query(), {"openid": openid, "since": now - FOLLOWUP_WINDOW})).first()
    if row is None or row.last_staff_reply_at is None:
        return None
    if row.villager_ended_at is not None and row.villager_ended_at >= row.last_staff_reply_at:
        return None
    return await session.get(Ticket, row.id)


async def tickets_of(session: AsyncSession, openid: str, limit: int = 5) -> list[Ticket]:
    return list(
        (
            await session.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id.desc()).limit(limit))
        ).scalars()
    )


async def pending_satisfaction(session: AsyncSession, openid: str, now: dt.datetime) -> Ticket | None:
    return (
        await session.execute(
            select(Ticket)
            .where(
                Ticket.openid == openid,
                Ticket.satisfaction.is_(None),
                Ticket.satisfaction_asked_at >= now - SATISFACTION_WINDOW,
            )
            .order_by(Ticket.satisfaction_asked_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def satisfaction_question_is_last(session: AsyncSession, ticket: Ticket, inbound_id: int) -> bool:
    """Was our satisfaction question the last thing the villager saw (sent after their previous message)?"""
    question = (
        await session.execute(
            select(OutboxMessage.sent_at).where(OutboxMessage.idempotency_key == f"ticket-satisfaction:{ticket.id}")
        )
    ).scalar_one_or_none()
    if question is None:
        return False
    previous = (
        await session.execute(
            select(func.max(InboundMessage.received_at)).where(
                InboundMessage.openid == ticket.openid,
                InboundMessage.id != inbound_id,
                or_(
                    InboundMessage.event.is_(None),
                    InboundMessage.event.notin_(["templatesendjobfinish", "masssendjobfinish"]),
                ),
            )
        )
    ).scalar_one_or_none()
    return previous is None or question >= previous


def record_satisfaction(session: AsyncSession, ticket: Ticket, score: int, now: dt.datetime) -> None:
    ticket.satisfaction = score
    ticket.satisfaction_at = now
    add_event(session, ticket, "satisfaction", f"村民评价：{SATISFACTION_NAMES.get(score, score)}", now, score=score)


# ---------------------------------------------------------------- staff actions
def _reply_key(message_id: int) -> str:
    return f"ticket-reply:{message_id}"


async def staff_reply(
    session: AsyncSession, ticket: Ticket, staff: StaffUser, body: str, texts: Texts, now: dt.datetime
) -> TicketMessage:
    """A public reply: into the thread and the outbox (customer-service message, or held + notification)."""
    body = body.strip()
    if not body:
        raise TicketError("回复内容是空的")
    if len(body) > REPLY_MAX_CHARS:
        raise TicketError(f"回复太长了（最多{REPLY_MAX_CHARS}字），请分两次发")
    if ticket.openid is None:
        raise TicketError("村民已删除个人信息，无法再回复")
    message = add_message(session, ticket, "reply", body, now, staff_id=staff.id)
    await session.flush()
    content = texts.get("ticket_reply", number=ticket.number, body=body)
    row = await enqueue(
        session,
        kind="cs_text",
        openid=ticket.openid,
        payload={"content": content},
        idempotency_key=_reply_key(message.id),
        source=f"ticket:{ticket.id}",
    )
    message.outbox_id = row.id
    ticket.first_response_at = ticket.first_response_at or now
    ticket.last_staff_reply_at = now
    await session.execute(
        update(Villager).where(Villager.openid == ticket.openid).values(last_staff_reply_at=now),
        execution_options={"synchronize_session": False},
    )
    if ticket.assignee_id is None:
        ticket.assignee_id = staff.id
        ticket.assigned_at = now
    if ticket.status in (NEW, ASSIGNED, IN_PROGRESS):
        ticket.status = ANSWERED
    return message


def add_note(session: AsyncSession, ticket: Ticket, staff: StaffUser, body: str, now: dt.datetime) -> TicketMessage:
    body = body.strip()
    if not body:
        raise TicketError("备注内容是空的")
    return add_message(session, ticket, "note", body[:4000], now, staff_id=staff.id)


def assign(
    session: AsyncSession, ticket: Ticket, assignee: StaffUser | None, staff: StaffUser, now: dt.datetime
) -> None:
    """Assign or transfer; None puts the ticket in the township queue."""
    if assignee is not None and not assignee.active:
        raise TicketError("这个账号已停用")
    if (assignee.id if assignee else None) == ticket.assignee_id:
        return
    ticket.assignee_id = assignee.id if assignee else None
    ticket.assigned_at = now if assignee else None
    if assignee is not None and ticket.status == NEW:
        ticket.status = ASSIGNED
    if assignee is None:
        add_event(session, ticket, "assigned", f"{staff.label}把它交回乡里待分派队列", now, staff=staff, to=None)
    else:
        add_event(session, ticket, "assigned", f"{staff.label}分派给{assignee.label}", now, staff=staff, to=assignee.id)


async def set_status(
    session: AsyncSession,
    ticket: Ticket,
    status: str,
    reason: str,
    staff: StaffUser,
    texts: Texts,
    now: dt.datetime,
) -> None:
    """Change the status (with a reason where one is needed); 已解决 asks the villager one satisfaction question."""
    reason = reason.strip()
    if status not in STATUSES:
        raise TicketError("没有这个状态")
    if status in REASON_REQUIRED and not reason:
        raise TicketError(f"改成“{status}”需要写明原因")
    if status == ticket.status and not reason:
        return
    previous = ticket.status
    ticket.status = status
    ticket.status_reason = reason or None
    if status == RESOLVED:
        ticket.resolved_at = now
    elif status == CLOSED:
        ticket.closed_at = now
    elif status in OPEN_STATUSES:
        ticket.resolved_at = ticket.closed_at = None
    add_event(
        session,
        ticket,
        "status",
        f"{staff.label}：{previous} → {status}" + (f"（{reason}）" if reason else ""),
        now,
        staff=staff,
        to=status,
        reason=reason,
    )
    if status == RESOLVED and ticket.openid and ticket.satisfaction is None and ticket.satisfaction_asked_at is None:
        await enqueue(
            session,
            kind="cs_text",
            openid=ticket.openid,
            payload={"content": texts.get("ticket_satisfaction_question", number=ticket.number)},
            idempotency_key=f"ticket-satisfaction:{ticket.id}",
            source=f"ticket:{ticket.id}",
        )
        ticket.satisfaction_asked_at = now


def set_agreement(
    session: AsyncSession, ticket: Ticket, signed_on: dt.date | None, staff: StaffUser, now: dt.datetime
) -> None:
    ticket.agreement_signed_on = signed_on
    if signed_on is None:
        add_event(session, ticket, "agreement", f"{staff.label}清除了调解协议日期", now, staff=staff)
        return
    deadline = signed_on + dt.timedelta(days=JUDICIAL_CONFIRMATION_DAYS)
    add_event(
        session,
        ticket,
        "agreement",
        f"{staff.label}登记调解协议签订日期 {signed_on:%Y-%m-%d}，司法确认须在 {deadline:%Y-%m-%d} 前申请",
        now,
        staff=staff,
    )
    if ticket.status in (NEW, ASSIGNED, IN_PROGRESS, ANSWERED):
        ticket.status = MEDIATING


# ---------------------------------------------------------------- delivery shown in the thread
DELIVERY_NAMES: dict[str, str] = {
    "pending": "等待发送",
    "sending": "正在发送",
    "sent": "已送达微信",
    "held": "等村民下次发消息后送达",
    "failed": "发送失败",
}


@dataclass(frozen=True)
class Delivery:
    status: str
    label: str
    reason: str | None
    at: dt.datetime | None


async def deliveries(session: AsyncSession, outbox_ids: Sequence[int]) -> dict[int, Delivery]:
    if not outbox_ids:
        return {}
    rows = await session.execute(
        select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.last_error, OutboxMessage.sent_at).where(
            OutboxMessage.id.in_(list(outbox_ids))
        )
    )
    return {
        r.id: Delivery(r.status, DELIVERY_NAMES.get(r.status, r.status), r.last_error, r.sent_at) for r in rows.all()
    }


# ---------------------------------------------------------------- the periodic job
async def escalate_overdue(session: AsyncSession, now: dt.datetime, base_url: str = "") -> list[int]:
    """Mark tickets past their first-response deadline (once) and escalate them to the township."""
    ids = list(
        (
            await session.execute(
                update(Ticket)
                .where(
                    Ticket.overdue_at.is_(None),
                    Ticket.first_response_at.is_(None),
                    Ticket.status.in_(OPEN_STATUSES),
                    Ticket.first_response_due_at <= now,
                )
                .values(overdue_at=now, priority=PRIORITY_HIGH, updated_at=now)
                .returning(Ticket.id)
                .execution_options(synchronize_session=False)
            )
        ).scalars()
    )
    if not ids:
        return []
    tickets = list((await session.execute(select(Ticket).where(Ticket.id.in_(ids)))).scalars())
    for ticket in tickets:
        first = ticket.escalated_at is None
        ticket.escalated_at = ticket.escalated_at or now
        ticket.escalated_to = ticket.escalated_to or "township"
        add_event(
            session,
            ticket,
            "overdue",
            "超过首次答复期限未答复，已自动升级到乡里" if first else "超过首次答复期限未答复",
            now,
        )
        session.add(audit_row("ticket.overdue_escalate", now, object_type="ticket", object_id=ticket.id))
        await notify_staff(session, ticket, await admin_ids(session), "overdue", base_url, now)
    log.warning("tickets overdue and escalated to the township: %s", ids)
    return ids


async def close_resolved(session: AsyncSession, now: dt.datetime) -> int:
    rows = list(
        (
            await session.execute(
                select(Ticket).where(Ticket.status == RESOLVED, Ticket.resolved_at <= now - AUTO_CLOSE_AFTER)
            )
        ).scalars()
    )
    for ticket in rows:
        ticket.status = CLOSED
        ticket.closed_at = now
        add_event(session, ticket, "status", f"已解决满{AUTO_CLOSE_AFTER.days}天，自动关闭", now, to=CLOSED)
    return len(rows)


async def purge_phones(session: AsyncSession, now: dt.datetime) -> int:
    """Phone numbers are kept until 180 days after the ticket is resolved/closed (as villagers are told)."""
    cutoff = now - PHONE_RETENTION
    result = await session.execute(
        update(Ticket)
        .where(
            Ticket.contact_phone.is_not(None),
            Ticket.status.notin_(OPEN_STATUSES),
            or_(Ticket.closed_at <= cutoff, and_(Ticket.closed_at.is_(None), Ticket.resolved_at <= cutoff)),
        )
        .values(contact_phone=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def tick(ctx: JobContext) -> None:
    """Periodic: overdue → escalation, resolved → closed after 7 days, expired phone numbers deleted."""
    now = ctx.now()
    async with ctx.session_factory() as session, session.begin():
        await escalate_overdue(session, now, ctx.settings.base_url)
        await close_resolved(session, now)
        await purge_phones(session, now)


# ---------------------------------------------------------------- privacy
async def forget_villager(
    session: AsyncSession, openid: str, now: dt.datetime, *, staff: StaffUser | None = None
) -> int:
    """删除我的信息: anonymise the villager's tickets (kept for the monthly numbers) and delete personal fields.

    Returns how many tickets were anonymised. Open tickets are closed with the reason."""
    tickets = list((await session.execute(select(Ticket).where(Ticket.openid == openid))).scalars())
    ticket_ids = [t.id for t in tickets]
    for ticket in tickets:
        if ticket.is_open:
            ticket.status = CLOSED
            ticket.closed_at = now
            ticket.status_reason = "村民要求删除个人信息"
        ticket.openid = None
        ticket.summary = REDACTED
        ticket.contact_phone = None
        ticket.phone_consent_at = None
        ticket.escalation_reason = None
        ticket.anonymised_at = now
        ticket.updated_at = now
    if ticket_ids:
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ticket_ids), TicketMessage.kind.in_(["villager", "reply", "note"]))
            .values(body=REDACTED, media=None)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ticket_ids), TicketMessage.kind == "event")
            .values(details={})
            .execution_options(synchronize_session=False)
        )
        for ticket in tickets:
            add_event(session, ticket, "anonymised", "村民要求删除个人信息：内容已删除，只保留统计数据", now)
    await session.execute(
        update(Villager)
        .where(Villager.openid == openid)
        .values(phone=None, phone_consent_at=None, display_name=None, village_id=None, village_source=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(InboundMessage)
        .where(InboundMessage.openid == openid)
        .values(content=None, payload={}, media_id=None, event_key=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.openid == openid, OutboxMessage.status.in_(["sent", "failed"]))
        .values(payload={"content": REDACTED})
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(ConversationState)
        .where(ConversationState.openid == openid)
        .values(context={}, data={}, state=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(KnowledgeGap).where(KnowledgeGap.openid == openid))
    for module in _privacy_modules():
        erase = getattr(module, "erase_personal_data", None)
        if erase is not None:
            await erase(session, openid)
    session.add(
        audit_row(
            "villager.forget",
            now,
            staff=staff,
            object_type="villager",
            object_id=f"{len(ticket_ids)} tickets",
            details={"tickets": ticket_ids},
        )
    )
    return len(ticket_ids)


def _privacy_modules() -> list[Any]:
    return [importlib.import_module(m) for m in PRIVACY_MODULES if importlib.util.find_spec(m) is not None]


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _row(obj: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {c: _iso(getattr(obj, c)) for c in columns}


async def export_villager(session: AsyncSession, openid: str) -> dict[str, Any]:
    """Everything stored about one villager, as JSON-ready data (admin export on the villager's request)."""
    villager = (await session.execute(select(Villager).where(Villager.openid == openid))).scalar_one_or_none()
    tickets = list((await session.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id))).scalars())
    messages: dict[int, list[TicketMessage]] = {}
    if tickets:
        for m in (
            await session.execute(
                select(TicketMessage)
                .where(TicketMessage.ticket_id.in_([t.id for t in tickets]), TicketMessage.kind != "note")
                .order_by(TicketMessage.id)
            )
        ).scalars():
            messages.setdefault(m.ticket_id, []).append(m)
    inbound = (
        await session.execute(select(InboundMessage).where(InboundMessage.openid == openid).order_by(InboundMessage.id))
    ).scalars()
    outbox = (
        await session.execute(select(OutboxMessage).where(OutboxMessage.openid == openid).order_by(OutboxMessage.id))
    ).scalars()
    gaps = (await session.execute(select(KnowledgeGap).where(KnowledgeGap.openid == openid))).scalars()
    ticket_columns = (
        "number",
        "village_id",
        "summary",
        "status",
        "status_reason",
        "urgent",
        "created_at",
        "first_response_at",
        "resolved_at",
        "closed_at",
        "satisfaction",
        "contact_phone",
        "phone_consent_at",
    )
    data: dict[str, Any] = {
        "openid": openid,
        "exported_at": utcnow().isoformat(),
        "villager": _row(
            villager,
            (
                "village_id",
                "subscribed",
                "first_seen_at",
                "last_inbound_at",
                "display_name",
                "phone",
                "phone_consent_at",
            ),
        )
        if villager
        else None,
        "tickets": [
            {
                **_row(t, ticket_columns),
                "messages": [_row(m, ("kind", "body", "media", "created_at")) for m in messages.get(t.id, [])],
            }
            for t in tickets
        ],
        "messages_received": [_row(m, ("msg_type", "event", "content", "media_id", "received_at")) for m in inbound],
        "messages_sent": [_row(m, ("kind", "payload", "status", "created_at", "sent_at")) for m in outbox],
        "unanswered_questions": [_row(g, ("text", "created_at")) for g in gaps],
    }
    for module in _privacy_modules():
        export = getattr(module, "export_personal_data", None)
        if export is not None:
            data[module.__name__.rsplit(".", 1)[-1]] = await export(session, openid)
    return data


__all__ = [
    "ANSWERED",
    "ASSIGNED",
    "CLOSED",
    "IN_PROGRESS",
    "MEDIATING",
    "NEW",
    "OPEN_STATUSES",
    "RESOLVED",
    "STATUSES",
    "TRANSFERRED",
]
