"""Nothing lost on a crash: pushes stored but never answered are answered later.

If a serve process dies between storing a push and finishing its handler, the row stays
``received``. This periodic job claims such rows (older than a grace period, younger than
WeChat's 48-hour customer-service window), runs the handlers again and sends the reply
through the outbox as a customer-service message.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import select, update

from bot.routing import Dispatcher
from bot.services.context import Services
from bot.services.jobs import JobContext
from bot.services.knowledge import KnowledgeHolder
from bot.storage.models import InboundMessage
from bot.wechat.messages import to_incoming

log = logging.getLogger(__name__)

GRACE = dt.timedelta(minutes=2)  # far beyond the 4-second deadline: the first attempt is over
WINDOW = dt.timedelta(hours=47)  # a customer-service message can still reach the villager
BATCH = 50

_holder: KnowledgeHolder | None = None


def _knowledge(directory: str) -> KnowledgeHolder:
    global _holder  # one index per worker process, built on first need
    if _holder is None:
        _holder = KnowledgeHolder.load(Path(directory))
    return _holder


async def recover(ctx: JobContext, *, holder: KnowledgeHolder | None = None) -> int:
    """Answer stuck pushes; returns how many were recovered."""
    from bot.services.inbound import Job, Pipeline
    from handlers import ROUTERS

    now = ctx.now()
    async with ctx.session_factory() as session:
        ids = list(
            (
                await session.execute(
                    select(InboundMessage.id)
                    .where(
                        InboundMessage.status == "received",
                        InboundMessage.received_at < now - GRACE,
                        InboundMessage.received_at > now - WINDOW,
                    )
                    .order_by(InboundMessage.id)
                    .limit(BATCH)
                )
            ).scalars()
        )
    if not ids:
        return 0
    services = Services(ctx.settings, ctx.session_factory, holder or _knowledge(ctx.settings.knowledge_dir))
    pipeline = Pipeline(services, Dispatcher(ROUTERS))
    recovered = 0
    for inbound_id in ids:
        async with ctx.session_factory() as session, session.begin():
            # claim: only one worker wins a row
            claimed = await session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id, InboundMessage.status == "received")
                .values(status="recovering")
                .returning(InboundMessage.payload)
            )
            payload = claimed.scalar_one_or_none()
        if payload is None:
            continue
        try:
            msg = to_incoming(payload)
        except ValueError:
            log.warning("inbound %s cannot be re-read; marked failed", inbound_id)
            async with ctx.session_factory() as session, session.begin():
                await session.execute(
                    update(InboundMessage).where(InboundMessage.id == inbound_id).values(status="failed")
                )
            continue
        await pipeline.run_job(msg, inbound_id, Job(outcome="deferred"))
        recovered += 1
        log.info("recovered inbound %s: its reply goes through the outbox", inbound_id)
    return recovered


async def tick(ctx: JobContext) -> None:
    await recover(ctx)
