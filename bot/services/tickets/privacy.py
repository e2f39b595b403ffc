"""Privacy: :func:`forget_villager` (删除我的信息) anonymises a villager's tickets, runs every feature's
erasure and then :mod:`bot.services.erasure` (the shared tables and a sweep over the whole schema), so that
nothing identifying the villager or repeating their words is left; :func:`export_villager` returns everything
stored about one openid (a superset of what erasure removes); phone numbers go 180 days after the ticket ends.

Other features join in by exposing ``async def erase_personal_data(session, openid)`` / ``async def
export_personal_data(session, openid) -> dict`` in a package listed in :data:`PRIVACY_MODULES` (booking,
campaigns and disputes do): erase what must go, anonymise what the township keeps as statistics and set its
openid to NULL — the sweep deletes any row that still carries the openid.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import inspect
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.erasure import REDACTED, erase_shared, export_shared, row_dict, scrub_audit
from bot.services.privacy import remove_phones
from bot.services.retention import PHONE_RETENTION  # also for a ticket: the number goes 180 days after it ends
from bot.services.tickets.thread import add_event, audit_row
from bot.storage.models import utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import CLOSED, OPEN_STATUSES, Ticket, TicketMessage

#: feature modules holding a villager's personal data (each may expose erase_personal_data/export_personal_data)
PRIVACY_MODULES: tuple[str, ...] = ("bot.services.booking", "bot.services.campaigns", "bot.services.disputes")


async def purge_phones(session: AsyncSession, now: dt.datetime, *, batch: int = 200) -> int:
    """Phone numbers are kept until 180 days after the ticket is resolved/closed (as villagers are told): the
    consented one, and those typed into the story, 补充 or any entry of the thread (a batch of tickets per
    run, marked ``phones_erased_at``). The raw pushes go the same way (:mod:`bot.services.retention`)."""
    cutoff = now - PHONE_RETENTION
    ended = and_(
        Ticket.status.notin_(OPEN_STATUSES),
        or_(Ticket.closed_at <= cutoff, and_(Ticket.closed_at.is_(None), Ticket.resolved_at <= cutoff)),
    )
    result = await session.execute(
        update(Ticket)
        .where(Ticket.contact_phone.is_not(None), ended)
        .values(contact_phone=None)
        .execution_options(synchronize_session=False)
    )
    tickets = list(
        (
            await session.execute(select(Ticket).where(Ticket.phones_erased_at.is_(None), ended).limit(batch))
        ).scalars()
    )
    for ticket in tickets:
        ticket.summary = remove_phones(ticket.summary)
        ticket.status_reason = remove_phones(ticket.status_reason) if ticket.status_reason else ticket.status_reason
        if ticket.escalation_reason:
            ticket.escalation_reason = remove_phones(ticket.escalation_reason)
        ticket.phones_erased_at = now
    if tickets:
        messages = await session.execute(
            select(TicketMessage.id, TicketMessage.body).where(TicketMessage.ticket_id.in_([t.id for t in tickets]))
        )
        for message_id, body in messages.all():
            if body and remove_phones(body) != body:
                await session.execute(
                    update(TicketMessage)
                    .where(TicketMessage.id == message_id)
                    .values(body=remove_phones(body))
                    .execution_options(synchronize_session=False)
                )
    return int(result.rowcount) + len(tickets)  # type: ignore[attr-defined]


async def forget_villager(
    session: AsyncSession, openid: str, now: dt.datetime, *, staff: StaffUser | None = None
) -> int:
    """删除我的信息: nothing that identifies the villager or repeats their words is left (see
    :mod:`bot.services.erasure` for what is kept as anonymous statistics and why).

    Tickets first (anonymised: village, topic, status and dates stay for the monthly numbers; open ones are
    closed with the reason), then each feature in :data:`PRIVACY_MODULES`, then the shared tables and the
    sweep over every table. Returns how many tickets were anonymised."""
    ticket_ids = await _anonymise_tickets(session, openid, now)
    for module in _privacy_modules():
        erase = getattr(module, "erase_personal_data", None)
        if erase is not None:
            takes_now = "now" in inspect.signature(erase).parameters
            await (erase(session, openid, now=now) if takes_now else erase(session, openid))
    await erase_shared(session, openid, now)
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


async def _anonymise_tickets(session: AsyncSession, openid: str, now: dt.datetime) -> list[int]:
    tickets = list((await session.execute(select(Ticket).where(Ticket.openid == openid))).scalars())
    ticket_ids = [t.id for t in tickets]
    for ticket in tickets:
        if ticket.is_open:
            ticket.status = CLOSED
            ticket.closed_at = now
        ticket.status_reason = "村民要求删除个人信息"  # whatever staff wrote about the matter goes too
        ticket.openid = None
        ticket.summary = REDACTED
        ticket.contact_phone = None
        ticket.phone_consent_at = None
        ticket.escalation_reason = None
        ticket.inbound_id = None
        ticket.anonymised_at = now
        ticket.updated_at = now
    if not ticket_ids:
        return []
    # every entry of the thread (their words, staff replies and notes about them, events with reasons)
    await session.execute(
        update(TicketMessage)
        .where(TicketMessage.ticket_id.in_(ticket_ids))
        .values(body=REDACTED, media=None, details={}, inbound_id=None)
        .execution_options(synchronize_session=False)
    )
    await scrub_audit(session, "ticket", ticket_ids)
    for ticket in tickets:
        add_event(session, ticket, "anonymised", "村民要求删除个人信息：内容已删除，只保留统计数据", now)
    return ticket_ids


def _privacy_modules() -> list[Any]:
    return [importlib.import_module(m) for m in PRIVACY_MODULES if importlib.util.find_spec(m) is not None]


async def export_villager(session: AsyncSession, openid: str) -> dict[str, Any]:
    """Everything stored about one villager, as JSON-ready data (admin export on the villager's request):
    everything :func:`forget_villager` removes is in it (tests/test_privacy_erasure.py checks export ⊇ erase)."""
    tickets = list((await session.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id))).scalars())
    messages: dict[int, list[TicketMessage]] = {}
    if tickets:
        for m in (
            await session.execute(
                select(TicketMessage)
                .where(TicketMessage.ticket_id.in_([t.id for t in tickets]))
                .order_by(TicketMessage.id)
            )
        ).scalars():
            messages.setdefault(m.ticket_id, []).append(m)
    ticket_columns = (
        "number",
        "village_id",
        "summary",
        "status",
        "status_reason",
        "escalation_reason",
        "urgent",
        "created_at",
        "first_response_at",
        "resolved_at",
        "closed_at",
        "satisfaction",
        "contact_phone",
        "phone_consent_at",
    )
    shared = await export_shared(session, openid)
    data: dict[str, Any] = {
        "openid": openid,
        "exported_at": utcnow().isoformat(),
        "villager": shared.pop("villager"),
        "tickets": [
            {
                **row_dict(t, ticket_columns),
                "messages": [
                    row_dict(m, ("kind", "body", "media", "details", "created_at")) for m in messages.get(t.id, [])
                ],
            }
            for t in tickets
        ],
        **shared,
    }
    for module in _privacy_modules():
        export = getattr(module, "export_personal_data", None)
        if export is not None:
            data[module.__name__.rsplit(".", 1)[-1]] = await export(session, openid)
    return data
