"""Privacy: :func:`forget_villager` anonymises a villager's tickets and deletes personal fields;
:func:`export_villager` returns everything stored about one openid; phone numbers go 180 days after the
ticket ends. Other features join in by exposing ``async def erase_personal_data(session, openid)`` /
``async def export_personal_data(session, openid) -> dict`` in a package listed in :data:`PRIVACY_MODULES`
(bot.services.booking does).
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.thread import add_event, audit_row
from bot.storage.models import ConversationState, InboundMessage, KnowledgeGap, OutboxMessage, Villager, utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import CLOSED, OPEN_STATUSES, Ticket, TicketMessage

#: a phone number given with consent is deleted this long after the ticket is resolved or closed
PHONE_RETENTION = dt.timedelta(days=180)
#: feature modules holding a villager's personal data (each may expose erase_personal_data/export_personal_data)
PRIVACY_MODULES: tuple[str, ...] = ("bot.services.booking", "bot.services.campaigns", "bot.services.disputes")
REDACTED = "[已应村民要求删除]"


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
