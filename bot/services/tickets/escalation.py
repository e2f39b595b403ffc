"""三长联动: handing a ticket up to the township (the admins' 升级 queue), with where and why; urgent
tickets go up at once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.errors import TicketError
from bot.services.tickets.thread import add_event
from bot.storage.staff import StaffUser
from bot.storage.tickets import PRIORITY_HIGH, Ticket

#: 三长联动: where the township escalates a case
ESCALATION_TARGETS: dict[str, str] = {
    "township": "乡里（司法所值班）",
    "mediation_center": "乡矛盾纠纷调解中心",
    "police": "派出所",
    "judicial": "司法所",
}
#: the 三长联动 queue: tickets escalated to one of these are what leader accounts see
LEADER_TARGETS: tuple[str, ...] = ("mediation_center", "police", "judicial")


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
