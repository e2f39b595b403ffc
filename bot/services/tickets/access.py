"""Who sees what: an admin every ticket, a mediator their villages' (and their own), a volunteer their
own — "their own" being the tickets assigned to them or, for urgent ones, those they are on duty for —, a
三长联动 member (leader) the open tickets escalated to the 三长; anyone holding a 三长联动 position the open
tickets escalated to their target (派出所负责人 → 派出所 …); the staff serving a village.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.escalation import LEADER_TARGETS, POSITION_TARGETS
from bot.storage.staff import StaffUser, staff_villages
from bot.storage.tickets import OPEN_STATUSES, Ticket


def visible_to(role: str, staff_id: int, village_ids: Sequence[int], *, position: str = "") -> ColumnElement[bool]:
    """Tickets a staff member may read and change: admin all; mediator their villages (and theirs); volunteer
    theirs; leader the 三长联动 queue; a position holder also the open tickets escalated to their target."""
    if role == "admin":
        return true()
    clauses: list[ColumnElement[bool]] = [Ticket.assignee_id == staff_id, Ticket.duty_staff_id == staff_id]
    if role == "mediator" and village_ids:
        clauses.append(Ticket.village_id.in_(list(village_ids)))
    if role == "leader":  # 三长联动: open tickets escalated to the mediation centre, police, judicial office, court
        clauses.append(and_(Ticket.escalated_to.in_(LEADER_TARGETS), Ticket.status.in_(OPEN_STATUSES)))
    elif position in POSITION_TARGETS:
        clauses.append(and_(Ticket.escalated_to == POSITION_TARGETS[position], Ticket.status.in_(OPEN_STATUSES)))
    if role not in ("mediator", "volunteer", "leader") and position not in POSITION_TARGETS:
        return false()
    return or_(*clauses)


def can_see(ticket: Ticket, role: str, staff_id: int, village_ids: Sequence[int], *, position: str = "") -> bool:
    if role == "admin":
        return True
    if role not in ("mediator", "volunteer", "leader") and position not in POSITION_TARGETS:
        return False
    if staff_id in (ticket.assignee_id, ticket.duty_staff_id):
        return True
    if role == "leader" and ticket.escalated_to in LEADER_TARGETS and ticket.is_open:
        return True
    if position in POSITION_TARGETS and ticket.escalated_to == POSITION_TARGETS[position] and ticket.is_open:
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
