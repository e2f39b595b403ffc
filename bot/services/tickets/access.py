"""Who sees what: an admin every ticket, a mediator their villages' (and their own), a volunteer their
own — "their own" being the tickets assigned to them or, for urgent ones, those they are on duty for —, a
三长联动 member (leader) the open tickets escalated to the 三长; the staff serving a village.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.escalation import LEADER_TARGETS
from bot.storage.staff import StaffUser, staff_villages
from bot.storage.tickets import OPEN_STATUSES, Ticket


def visible_to(role: str, staff_id: int, village_ids: Sequence[int]) -> ColumnElement[bool]:
    """Tickets a staff member may read and change: admin all; mediator their villages (and theirs); volunteer theirs."""
    if role == "admin":
        return true()
    own = or_(Ticket.assignee_id == staff_id, Ticket.duty_staff_id == staff_id)
    if role == "mediator":
        if village_ids:
            return or_(Ticket.village_id.in_(list(village_ids)), own)
        return own
    if role == "volunteer":
        return own
    if role == "leader":  # 三长联动: open tickets escalated to the mediation centre, police or judicial office
        return and_(Ticket.escalated_to.in_(LEADER_TARGETS), Ticket.status.in_(OPEN_STATUSES))
    return false()


def can_see(ticket: Ticket, role: str, staff_id: int, village_ids: Sequence[int]) -> bool:
    if role == "admin":
        return True
    if staff_id in (ticket.assignee_id, ticket.duty_staff_id):
        return True
    if role == "leader":
        return ticket.escalated_to in LEADER_TARGETS and ticket.is_open
    return role == "mediator" and ticket.village_id is not None and ticket.village_id in village_ids


async def staff_of_village(session: AsyncSession, village_id: int | None) -> list[StaffUser]:
    """Active staff serving a village (everyone active when village_id is None)."""
    stmt = select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.role, StaffUser.id)
    if village_id is not None:
        stmt = stmt.join(staff_villages, staff_villages.c.staff_id == StaffUser.id).where(
            staff_villages.c.village_id == village_id
        )
    return list((await session.execute(stmt)).scalars())
