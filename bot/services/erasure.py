"""删除我的信息, the part no feature owns: the tables every feature shares (the villager row, the pushes they
sent with the replies we stored, messages to them in the outbox, chat state, knowledge gaps, the audit trail),
then a sweep over every table of the schema that removes whatever still carries the openid.

:func:`bot.services.tickets.forget_villager` runs the features' own erasure first (tickets, then each package
in ``PRIVACY_MODULES``: they anonymise what the township keeps as statistics and set its openid to NULL),
then :func:`erase_shared`. What survives is anonymous: a ticket's village, topic, status and dates; a
booking's place, service, time and status; the outbox row of a message that was sent (its kind, status and
times, without the text or the addressee); audit rows (who did what, when, without the details); campaign
counts. Everything else about the villager is deleted.

The sweep (:func:`sweep_openid`) is what makes this structural rather than a list that rots: it walks
``Base.metadata`` and deletes every row that still holds the openid in a column named ``openid`` (or
``…_openid``), after setting the nullable foreign keys that point at those rows to NULL; and it takes the
openid out of every JSON list column named ``openids``. A table added later is covered without a line here:
what a feature wants to keep, it must anonymise in its ``erase_personal_data`` before the sweep.

:func:`export_shared` is the matching export: everything this module erases, for the admin's export on a
villager's request (export ⊇ erase, tested).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Column, String, Table, Text, cast, delete, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.all import load_all
from bot.storage.models import ConversationState, InboundMessage, KnowledgeGap, OutboxMessage, Villager
from bot.storage.staff import AuditLog

#: what replaces the villager's words where a row is kept
REDACTED = "[已应村民要求删除]"
#: an audit row's object once the villager it named is erased
ERASED_OBJECT = "（已删除）"
#: why a message still waiting in the outbox was not sent
NOT_SENT = "村民已删除个人信息，不再发送 / not sent: the villager asked to delete their data"
WAITING = ("pending", "held", "sending")


def openid_suffix(openid: str) -> str:
    """How the back-office's audit rows name a villager (the openid's last 12 characters)."""
    return openid[-12:]


async def erase_shared(session: AsyncSession, openid: str, now: dt.datetime) -> None:
    """The shared tables, then the sweep. Run after the features' own erasure, in the same transaction."""
    # messages to them: not sent if still waiting; a kept row loses its text, its addressee and any key made
    # from the openid (the row itself stays: a ticket's reply points at it, and it counts as sent)
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.openid == openid, OutboxMessage.status.in_(WAITING))
        .values(status="failed", last_error=NOT_SENT, claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.openid == openid, OutboxMessage.idempotency_key.contains(openid, autoescape=True))
        .values(idempotency_key=literal("erased:") + cast(OutboxMessage.id, String))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.openid == openid)
        .values(openid=None, payload={}, result=None)
        .execution_options(synchronize_session=False)
    )
    # what they asked that the FAQ could not answer: their words, so the rows go (the sweep would only
    # clear the openid of this nullable column)
    await session.execute(delete(KnowledgeGap).where(KnowledgeGap.openid == openid))
    await scrub_audit_naming(session, openid)
    await sweep_openid(session, openid)


async def scrub_audit(session: AsyncSession, object_type: str, object_ids: Iterable[int | str]) -> None:
    """Audit rows about these objects keep who did what and when, not the details (which may quote the villager)."""
    ids = [str(i) for i in object_ids]
    if ids:
        await session.execute(
            update(AuditLog)
            .where(AuditLog.object_type == object_type, AuditLog.object_id.in_(ids))
            .values(details={})
            .execution_options(synchronize_session=False)
        )


async def scrub_audit_naming(session: AsyncSession, openid: str) -> None:
    """Audit rows that name the villager (views and exports of their data): the name goes, the fact stays."""
    await session.execute(
        update(AuditLog)
        .where(AuditLog.object_type == "villager", AuditLog.object_id.in_([openid, openid_suffix(openid)]))
        .values(object_id=ERASED_OBJECT, details={})
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(AuditLog)
        .where(cast(AuditLog.details, Text).contains(openid_suffix(openid), autoescape=True))
        .values(details={})
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- the sweep
def openid_columns(table: Table) -> list[Column[Any]]:
    """The columns of a table that hold one villager's openid."""
    return [
        c
        for c in table.columns
        if (c.name == "openid" or c.name.endswith("_openid")) and isinstance(c.type, String | Text)
    ]


def openid_list_columns(table: Table) -> list[Column[Any]]:
    """JSON columns holding lists of openids (a campaign's audience, a mass send's part)."""
    return [c for c in table.columns if c.name == "openids" and isinstance(c.type, JSON)]


async def sweep_openid(session: AsyncSession, openid: str) -> None:
    """Delete every row still holding ``openid`` in an openid column (dependents first), after pointing the
    nullable foreign keys that reference those rows at NULL; take it out of every JSON openid list."""
    metadata = load_all().metadata
    tables = list(reversed(metadata.sorted_tables))
    for table in tables:
        for column in openid_columns(table):
            doomed = column == openid
            if await session.scalar(select(column).where(doomed).limit(1)) is None:
                continue
            await _unlink(session, tables, table, doomed)
            await session.execute(delete(table).where(doomed).execution_options(synchronize_session=False))
        for column in openid_list_columns(table):
            await _drop_from_lists(session, table, column, openid)


async def _unlink(session: AsyncSession, tables: Sequence[Table], target: Table, doomed: Any) -> None:
    for table in tables:
        for fk in table.foreign_keys:
            if fk.column.table is not target or not fk.parent.nullable:
                continue  # a NOT NULL reference must be ON DELETE CASCADE (or the delete fails loudly)
            await session.execute(
                update(table)
                .where(fk.parent.in_(select(fk.column).where(doomed)))
                .values({fk.parent.name: None})
                .execution_options(synchronize_session=False)
            )


async def _drop_from_lists(session: AsyncSession, table: Table, column: Column[Any], openid: str) -> None:
    key = list(table.primary_key.columns)
    rows = await session.execute(select(*key, column).where(cast(column, Text).contains(openid, autoescape=True)))
    for row in rows.all():
        values = row[-1]
        if not isinstance(values, list) or openid not in values:
            continue
        await session.execute(
            update(table)
            .where(*(k == v for k, v in zip(key, row[:-1], strict=True)))
            .values({column.name: [v for v in values if v != openid]})
            .execution_options(synchronize_session=False)
        )


# ---------------------------------------------------------------- export
def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def row_dict(obj: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {c: _iso(getattr(obj, c)) for c in columns}


async def export_shared(session: AsyncSession, openid: str) -> dict[str, Any]:
    """What :func:`erase_shared` removes, as JSON-ready data: the villager row, every push with the reply we
    stored, every message to them, the chat state, unanswered questions, and the audit rows naming them."""
    villager = (await session.execute(select(Villager).where(Villager.openid == openid))).scalar_one_or_none()
    inbound = (
        await session.execute(select(InboundMessage).where(InboundMessage.openid == openid).order_by(InboundMessage.id))
    ).scalars()
    outbox = (
        await session.execute(select(OutboxMessage).where(OutboxMessage.openid == openid).order_by(OutboxMessage.id))
    ).scalars()
    state = await session.get(ConversationState, openid)
    gaps = (
        await session.execute(select(KnowledgeGap).where(KnowledgeGap.openid == openid).order_by(KnowledgeGap.id))
    ).scalars()
    audit = (
        await session.execute(
            select(AuditLog)
            .where(
                or_(
                    (AuditLog.object_type == "villager") & AuditLog.object_id.in_([openid, openid_suffix(openid)]),
                    cast(AuditLog.details, Text).contains(openid_suffix(openid), autoescape=True),
                )
            )
            .order_by(AuditLog.id)
        )
    ).scalars()
    villager_columns = [c.name for c in Villager.__table__.columns if c.name != "id"]
    return {
        "villager": row_dict(villager, villager_columns) if villager else None,
        "messages_received": [
            row_dict(m, [c.name for c in InboundMessage.__table__.columns if c.name not in ("id", "openid")])
            for m in inbound
        ],
        "messages_sent": [
            row_dict(m, ("kind", "payload", "idempotency_key", "status", "last_error", "created_at", "sent_at"))
            | {"source": m.source, "result": m.result}
            for m in outbox
        ],
        "chat_state": row_dict(state, ("state", "data", "context", "expires_at", "updated_at")) if state else None,
        "unanswered_questions": [
            row_dict(g, ("text", "normalized", "outcome", "candidates", "created_at")) for g in gaps
        ],
        "staff_views_of_their_data": [
            row_dict(a, ("action", "username", "object_type", "object_id", "details", "at")) for a in audit
        ],
    }
