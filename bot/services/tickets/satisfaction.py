"""The one satisfaction question after 已解决: is it pending, was it the last thing the villager saw, and
their answer.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.thread import add_event
from bot.storage.models import InboundMessage, OutboxMessage
from bot.storage.tickets import Ticket

#: the satisfaction question can be answered for this long
SATISFACTION_WINDOW = dt.timedelta(days=7)
SATISFACTION_NAMES: dict[int, str] = {1: "有帮助", 2: "一般", 3: "没帮助"}


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
