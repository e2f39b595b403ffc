"""A ticket's thread: villager messages, staff replies and notes, events; the audit row every change
leaves; and the delivery status shown next to a reply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import OutboxMessage
from bot.storage.staff import AuditLog, StaffUser
from bot.storage.tickets import Ticket, TicketMessage


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
