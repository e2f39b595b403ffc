"""The periodic job: urgent alerts nobody opened within the deadline go to every township admin (once);
tickets past their first-response deadline are marked once, raised in priority and escalated to the
township (``UPDATE … WHERE overdue_at IS NULL``); resolved ones close after 7 days; expired phone numbers go.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.alerts import escalate_unseen
from bot.services.tickets.notices import admin_ids, notify_staff
from bot.services.tickets.privacy import purge_phones
from bot.services.tickets.thread import add_event, audit_row
from bot.storage.tickets import CLOSED, OPEN_STATUSES, PRIORITY_HIGH, RESOLVED, Ticket

if TYPE_CHECKING:
    from bot.services.jobs import JobContext

log = logging.getLogger(__name__)


#: a resolved ticket not reopened is closed after this long
AUTO_CLOSE_AFTER = dt.timedelta(days=7)


async def escalate_overdue(
    session: AsyncSession,
    now: dt.datetime,
    base_url: str = "",
    *,
    template_id: str = "",
    told: frozenset[int] = frozenset(),
) -> list[int]:
    """Mark tickets past their first-response deadline (once) and escalate them to the township; the admins
    are told in WeChat unless ``told`` (they just heard of it as an unopened urgent alert)."""
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
        if ticket.id not in told:
            await notify_staff(
                session, ticket, await admin_ids(session), "overdue", base_url, now, template_id=template_id
            )
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


async def tick(ctx: JobContext) -> None:
    """Periodic: unopened urgent alerts and overdue tickets → escalation, resolved → closed after 7 days,
    expired phone numbers deleted."""
    now = ctx.now()
    async with ctx.session_factory() as session, session.begin():
        unseen = await escalate_unseen(session, ctx.settings, now)
        await escalate_overdue(
            session,
            now,
            ctx.settings.base_url,
            template_id=ctx.settings.wechat_staff_template_id,
            told=frozenset(unseen),
        )
        await close_resolved(session, now)
        await purge_phones(session, now)
