"""Periodic jobs run by `lawbot worker` (and the in-process worker of `lawbot serve`).

A feature module exposes ``async def tick(ctx: JobContext) -> None``; it is called every
``interval`` seconds. Ticks must be idempotent: several workers may run them at once
(PostgreSQL), so they claim rows with ``FOR UPDATE SKIP LOCKED`` or write outbox rows
under idempotency keys, which makes a second run a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import importlib.util
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.settings import Settings
from bot.storage.db import SessionFactory

if TYPE_CHECKING:
    from bot.services.knowledge import KnowledgeHolder

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    settings: Settings
    session_factory: SessionFactory
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    knowledge: KnowledgeHolder | None = None  # the process's knowledge (recovery answers with it)


Tick = Callable[[JobContext], Awaitable[None]]

# (module, seconds between ticks). A module that does not exist yet is skipped.
JOB_MODULES: tuple[tuple[str, float], ...] = (
    ("bot.services.tickets", 60.0),  # overdue first responses → escalation
    ("bot.services.booking", 60.0),  # reminders the day before 18:00 and 2 hours before
    ("bot.services.campaigns", 30.0),  # scheduled campaigns due → outbox
    ("bot.services.recovery", 60.0),  # pushes stored but never answered (a crash) → outbox
    ("bot.services.disputes", 60.0),  # 司法确认 (day 20/27), 回访 and 月报告 reminders
    ("bot.services.retention", 60.0),  # phone numbers in old pushes and outbox payloads, after 180 days
)


def discover() -> list[tuple[str, float, Tick]]:
    jobs = []
    for module_name, interval in JOB_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        tick = getattr(module, "tick", None)
        if tick is not None:
            jobs.append((module_name, interval, tick))
    return jobs


async def run_jobs(ctx: JobContext, stop: asyncio.Event) -> None:
    """Run every discovered tick on its interval until ``stop`` is set; a failing tick is logged, not fatal."""
    jobs = discover()
    next_run = {name: 0.0 for name, _i, _t in jobs}
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        for name, interval, tick in jobs:
            if loop.time() < next_run[name]:
                continue
            next_run[name] = loop.time() + interval
            try:
                await tick(ctx)
            except Exception:
                log.exception("periodic job %s failed; it will run again in %.0fs", name, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def run_jobs_forever(
    settings: Settings,
    stop: asyncio.Event,
    session_factory: SessionFactory | None = None,
    knowledge: KnowledgeHolder | None = None,
) -> None:
    """The periodic jobs, on the given sessions or with an engine of their own."""
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory

    load_all()
    if session_factory is not None:
        await run_jobs(JobContext(settings, session_factory, knowledge=knowledge), stop)
        return
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    try:
        await run_jobs(JobContext(settings, create_session_factory(engine), knowledge=knowledge), stop)
    finally:
        await engine.dispose()


async def run_worker_and_jobs(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    session_factory: SessionFactory | None = None,
    knowledge: KnowledgeHolder | None = None,
) -> None:
    """Outbox delivery and periodic jobs side by side until ``stop`` (or SIGTERM/SIGINT).

    Both share one engine: on SQLite there is one connection per process (it runs on the loop
    thread, and a second connection waiting for the write lock would stall the loop).
    ``knowledge``: the serve process's own (it follows the published version already); a
    standalone worker loads the knowledge and follows the township's published version itself."""
    from bot.services.knowledge import Follower, process_holder
    from bot.services.outbox import run_worker, stop_on_signals
    from bot.storage.db import create_engine, create_session_factory

    engine = None
    if session_factory is None:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        session_factory = create_session_factory(engine)
    sessions = session_factory
    try:
        with stop_on_signals(stop) as until:
            follow = []
            if knowledge is None:
                knowledge = await asyncio.to_thread(process_holder, settings.knowledge_dir)
                follow.append(Follower(knowledge, sessions, settings).run(until))
            await asyncio.gather(
                run_worker(settings, until, session_factory=sessions),
                run_jobs_forever(settings, until, sessions, knowledge),
                *follow,
            )
    finally:
        if engine is not None:
            await engine.dispose()
