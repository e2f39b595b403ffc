"""Phone numbers do not stay for ever: 180 days (:data:`PHONE_RETENTION`) after the matter ends they go.

A ticket's consented phone and the numbers typed into its story, 补充 and thread go 180 days after the ticket
is resolved or closed (:func:`bot.services.tickets.privacy.purge_phones`). This module does the raw copies:
the pushes as received (content, every field, the passive reply we stored for WeChat's retries), outbox
payloads and the questions kept for knowledge review — 180 days after they were written, which is never later
than the ticket they belong to (a push is received before its ticket ends). Numbers, and the masked forms a
reply echoed, become "[电话已删除]" (:func:`bot.services.privacy.remove_phones`).

The periodic :func:`tick` works through each table in id order, a batch at a time, and remembers how far it
got in ``job_marks`` (shared by every worker; a second worker repeating a batch changes nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.privacy import remove_phones_deep
from bot.storage.models import InboundMessage, JobMark, KnowledgeGap, OutboxMessage, utcnow

if TYPE_CHECKING:
    from bot.services.jobs import JobContext

PHONE_RETENTION = dt.timedelta(days=180)
BATCH = 500
#: (mark, model, when the row was written, the columns that may hold a villager's words)
TABLES: tuple[tuple[str, Any, Any, tuple[str, ...]], ...] = (
    ("phones:inbound", InboundMessage, InboundMessage.received_at, ("content", "payload", "reply")),
    ("phones:outbox", OutboxMessage, OutboxMessage.created_at, ("payload",)),
    ("phones:knowledge_gaps", KnowledgeGap, KnowledgeGap.created_at, ("text", "normalized")),
)


async def tick(ctx: JobContext) -> None:
    now = ctx.now()
    for table in TABLES:
        async with ctx.session_factory() as session, session.begin():
            await _remove_old_phones(session, table, now, BATCH)


async def remove_old_phones(session: AsyncSession, now: dt.datetime, batch: int = BATCH) -> int:
    """One batch of each table; returns how many rows changed."""
    return sum([await _remove_old_phones(session, table, now, batch) for table in TABLES])


async def _remove_old_phones(
    session: AsyncSession, table: tuple[str, Any, Any, tuple[str, ...]], now: dt.datetime, batch: int
) -> int:
    name, model, written_at, columns = table
    cutoff = now - PHONE_RETENTION
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(JobMark).values(name=name, value=0, updated_at=now).on_conflict_do_nothing(index_elements=["name"])
    )
    mark = await session.get(JobMark, name, with_for_update=True)  # a second worker waits for this batch
    assert mark is not None
    rows = (
        await session.execute(
            select(model.id, written_at, *(getattr(model, c) for c in columns))
            .where(model.id > mark.value)
            .order_by(model.id)
            .limit(batch)
        )
    ).all()
    changed, last = 0, mark.value
    for row in rows:
        if row[1] >= cutoff:
            break  # ids grow with time: the rest is younger
        values = dict(zip(columns, row[2:], strict=True))
        cleaned = {c: remove_phones_deep(v) for c, v in values.items()}
        if cleaned != values:
            await session.execute(
                update(model).where(model.id == row[0]).values(cleaned).execution_options(synchronize_session=False)
            )
            changed += 1
        last = row[0]
    if last > mark.value:
        mark.value, mark.updated_at = last, utcnow()
    return changed
