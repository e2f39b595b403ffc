"""三长联动: handing a ticket up to the township (the admins' 升级 queue) or to one of the 三长联动 targets
(乡矛调中心, 派出所, 司法所, 人民法庭), with where and why; urgent tickets go up to the township at once.

Each 三长联动 target is a position an account can hold (bot.storage.staff.POSITIONS): escalating to it
puts the ticket in their queue (:func:`bot.services.tickets.access.visible_to`), and
:func:`bot.services.tickets.alerts.escalate_to` tells the holders (WeChat notice, back-office banner until
one of them opens it).
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
    "court": "人民法庭",
}
#: the 三长联动 queue: tickets escalated to one of these are what leader accounts see
LEADER_TARGETS: tuple[str, ...] = ("mediation_center", "police", "judicial", "court")
#: who answers for each 三长联动 target: the accounts holding this position
TARGET_POSITIONS: dict[str, str] = {
    "mediation_center": "centre_head",
    "police": "police_head",
    "judicial": "judicial_head",
    "court": "court",
}
POSITION_TARGETS: dict[str, str] = {position: target for target, position in TARGET_POSITIONS.items()}


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
    if target in TARGET_POSITIONS and (ticket.escalated_to != target or ticket.escalation_seen_at is not None):
        ticket.escalation_seen_at = None  # new for the target's people: their banner shows until they open it
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
