"""Staff actions on a ticket: a public reply (thread + outbox), a note, assign or transfer, a status change
(with a reason where needed; 已解决 asks the satisfaction question), the mediation agreement date.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.knowledge.base import DISCLAIMER
from bot.services.outbox import enqueue
from bot.services.staff import is_staff_openid
from bot.services.tickets.deadlines import JUDICIAL_CONFIRMATION_DAYS
from bot.services.tickets.errors import TicketError
from bot.services.tickets.thread import add_event, add_message
from bot.storage.models import Villager
from bot.storage.staff import StaffUser
from bot.storage.tickets import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    IN_PROGRESS,
    MEDIATING,
    NEW,
    OPEN_STATUSES,
    RESOLVED,
    STATUSES,
    TRANSFERRED,
    Ticket,
    TicketMessage,
)

if TYPE_CHECKING:
    from bot.services.knowledge import Texts

#: statuses that need a reason when set by staff
REASON_REQUIRED: frozenset[str] = frozenset({TRANSFERRED, CLOSED})
REPLY_MAX_CHARS = 600


def _reply_key(message_id: int) -> str:
    return f"ticket-reply:{message_id}"


def clean_reply(body: str) -> str:
    """One line ending throughout; the legal-education disclaimer (from an inserted FAQ answer) once, at the
    end — never in the middle of what the staff member wrote after it."""
    body = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if DISCLAIMER not in body:
        return body
    lines = [line.rstrip() for line in body.replace(DISCLAIMER, "\n").split("\n")]
    text = "\n".join(lines).strip()
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return f"{text}\n{DISCLAIMER}"


async def staff_reply(
    session: AsyncSession, ticket: Ticket, staff: StaffUser, body: str, texts: Texts, now: dt.datetime
) -> TicketMessage:
    """A public reply: into the thread and the outbox (customer-service message, or held + notification)."""
    body = clean_reply(body)
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
    if (
        status == RESOLVED
        and ticket.openid
        and ticket.satisfaction is None
        and ticket.satisfaction_asked_at is None
        and not await is_staff_openid(session, ticket.openid)  # staff trying the bot are not asked
    ):
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
