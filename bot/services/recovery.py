"""Nothing lost on a crash: pushes stored but never answered are answered later.

If a serve process dies between storing a push and finishing its handler, the row stays
``received``. This periodic job claims such rows (older than a grace period, younger than
WeChat's 48-hour customer-service window), runs the handlers again and sends the reply
through the outbox as a customer-service message.

A claim marks the row ``recovering`` with the time and counts it. A worker that dies while
re-running a push leaves it ``recovering``: after ``RECLAIM_AFTER`` any worker claims it again
(a re-run is cut off well before that, so two never overlap). A push whose re-runs keep dying
(``MAX_RECOVERIES``) is answered with the apology text instead, so the villager still hears back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update

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
RUN_LIMIT = dt.timedelta(minutes=2)  # a re-run takes well under a second; one this slow is cut off
RECLAIM_AFTER = dt.timedelta(minutes=5)  # 'recovering' this long: its worker died (or was cut off)
MAX_RECOVERIES = 3  # re-runs that died; the next claim answers with the apology text


def _stuck(now: dt.datetime) -> Any:
    """Unanswered pushes the job may claim now."""
    abandoned = now - RECLAIM_AFTER
    return and_(
        InboundMessage.received_at > now - WINDOW,
        or_(
            and_(InboundMessage.status == "received", InboundMessage.received_at < now - GRACE),
            and_(
                InboundMessage.status == "recovering",
                or_(
                    InboundMessage.recovery_claimed_at < abandoned,
                    and_(InboundMessage.recovery_claimed_at.is_(None), InboundMessage.received_at < abandoned),
                ),
            ),
        ),
    )


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
                    select(InboundMessage.id).where(_stuck(now)).order_by(InboundMessage.id).limit(BATCH)
                )
            ).scalars()
        )
    if not ids:
        return 0
    services = Services(ctx.settings, ctx.session_factory, holder or _knowledge(ctx.settings.knowledge_dir))
    pipeline = Pipeline(services, Dispatcher(ROUTERS))
    recovered = 0
    for inbound_id in ids:
        now = ctx.now()
        async with ctx.session_factory() as session, session.begin():
            # claim: only one worker wins a row (a second claim finds it no longer stuck)
            claimed = await session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id, _stuck(now))
                .values(
                    status="recovering",
                    recovery_claimed_at=now,
                    recovery_attempts=InboundMessage.recovery_attempts + 1,
                )
                .returning(InboundMessage.payload, InboundMessage.recovery_attempts)
                .execution_options(synchronize_session=False)
            )
            row = claimed.one_or_none()
        if row is None:
            continue
        payload, attempts = row
        try:
            msg = to_incoming(payload)
        except ValueError:
            log.warning("inbound %s cannot be re-read; marked failed", inbound_id)
            async with ctx.session_factory() as session, session.begin():
                await session.execute(
                    update(InboundMessage).where(InboundMessage.id == inbound_id).values(status="failed")
                )
            continue
        if attempts > MAX_RECOVERIES:
            log.error("inbound %s: %d re-runs died; the villager gets the apology text", inbound_id, attempts - 1)
            await pipeline.give_up(msg, inbound_id)
            recovered += 1
            continue
        try:
            async with asyncio.timeout(RUN_LIMIT.total_seconds()):
                await pipeline.run_job(msg, inbound_id, Job(outcome="deferred"))
        except TimeoutError:
            log.error("inbound %s: re-run cut off after %s; it is tried again later", inbound_id, RUN_LIMIT)
            continue
        recovered += 1
        log.info("recovered inbound %s: its reply goes through the outbox", inbound_id)
    return recovered


async def tick(ctx: JobContext) -> None:
    await recover(ctx)
