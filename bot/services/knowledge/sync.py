"""Live in seconds on every process: each `lawbot serve` / `lawbot worker` follows the published version.

Publishing inserts a row in ``knowledge_versions`` (versions.py). Every process runs a
:class:`Follower` that notices the new highest id and swaps its index (runtime.py builds it
off the event loop; messages in flight keep the knowledge they started with):

* on PostgreSQL it LISTENs on :data:`CHANNEL` (the publishing transaction NOTIFYs at commit);
* with ``LAWBOT_REDIS_URL`` on SQLite, it subscribes to the Redis channel of the same name;
* otherwise — and, more slowly, as a safety net behind a push channel — it polls
  ``max(id)`` (one tiny query a second). On SQLite that query runs on a read-only connection of
  its own in a thread: it takes no write lock and never holds the process's one pooled connection.

A layer that cannot be used is not retried until a newer version appears; the old index keeps
serving and the errors are shown on the knowledge page and /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.knowledge.runtime import KnowledgeHolder
from bot.services.knowledge.versions import latest_id, version_layer
from bot.settings import Settings
from bot.storage.db import SessionFactory, sqlite_file

log = logging.getLogger(__name__)

CHANNEL = "lawbot_knowledge"
POLL_SECONDS = 1.0  # no push channel: a version is picked up within about a second (+ the index build)
SAFETY_POLL_SECONDS = 15.0  # behind LISTEN/NOTIFY or Redis, in case a notification was missed
RECONNECT_SECONDS = 5.0
LISTENER_CLOSE_SECONDS = 5.0


def _is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


async def notify_in_transaction(session: AsyncSession, version: int) -> None:
    """PostgreSQL delivers the NOTIFY when the publishing transaction commits (never for a rollback)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(CHANNEL, str(version))))


async def announce(settings: Settings | None, version: int) -> None:
    """After the commit: tell the processes that listen on Redis (SQLite installations with Redis)."""
    if settings is None or not settings.redis_url:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url)
    try:
        await client.publish(CHANNEL, str(version))
    except Exception as exc:  # the followers' polling still picks it up
        log.warning("could not announce knowledge version %d on Redis: %s", version, exc)
    finally:
        await client.aclose()


def _sqlite_latest(path: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT max(id) FROM knowledge_versions").fetchone()
    finally:
        conn.close()
    return int(row[0] or 0)


async def published_version(factory: SessionFactory) -> int:
    """The highest published version (cheap: this runs every second in every process)."""
    path = sqlite_file(str(factory.kw["bind"].url))
    if path is not None:
        return await asyncio.to_thread(_sqlite_latest, path)
    async with factory() as session:
        return await latest_id(session)


async def catch_up(holder: KnowledgeHolder, factory: SessionFactory) -> bool:
    """Use the published version if it is not the one in use; True when the index was swapped."""
    latest = await published_version(factory)
    if latest == holder.version or latest == holder.failed_version:
        return False
    async with factory() as session:
        layer = await version_layer(session, latest)
    return not await holder.apply(layer, latest)


class Follower:
    """Keeps one process's holder on the published version until ``stop`` is set."""

    def __init__(self, holder: KnowledgeHolder, factory: SessionFactory, settings: Settings, *,
                 poll: float | None = None, safety_poll: float | None = None) -> None:
        self.holder = holder
        self.factory = factory
        self.settings = settings
        self.poll = POLL_SECONDS if poll is None else poll
        self.safety_poll = SAFETY_POLL_SECONDS if safety_poll is None else safety_poll
        self.push_live = False  # a LISTEN/Redis subscription is up
        self._check_once_more = False  # a subscription just came up: one regular poll covers the gap before it
        self._wake = asyncio.Event()

    @property
    def channel(self) -> str:
        if _is_postgres(self.settings.database_url):
            return "postgres"
        return "redis" if self.settings.redis_url else "poll"

    async def run(self, stop: asyncio.Event, *, check_first: bool = True) -> None:
        """Follow until ``stop``. ``check_first=False`` when the caller has just caught up itself."""
        listener: asyncio.Task[None] | None = None
        if self.channel == "postgres":
            listener = asyncio.create_task(self._listen_postgres(stop), name="kb-listen")
        elif self.channel == "redis":
            listener = asyncio.create_task(self._listen_redis(stop), name="kb-listen")
        try:
            check = check_first
            while not stop.is_set():
                if check:
                    try:
                        await catch_up(self.holder, self.factory)
                    except Exception as exc:  # database down or not migrated yet: keep serving, try again
                        log.warning("could not check the published knowledge version: %s", exc)
                    if self.push_live:
                        self._check_once_more = False
                check = True
                self._wake.clear()
                timeout = self.safety_poll if self.push_live and not self._check_once_more else self.poll
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
        finally:
            if listener is not None:
                # the listener sees ``stop`` and closes its connection itself; cancel only if it hangs
                if not stop.is_set():
                    listener.cancel()
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(listener, LISTENER_CLOSE_SECONDS)

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def _listen_postgres(self, stop: asyncio.Event) -> None:
        import asyncpg

        dsn = make_url(self.settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            closed = asyncio.Event()
            try:
                conn = await asyncpg.connect(dsn, timeout=RECONNECT_SECONDS)
            except Exception as exc:
                log.warning("knowledge: cannot LISTEN on PostgreSQL (%s); polling meanwhile", exc)
                await self._pause(stop)
                continue
            try:
                conn.add_termination_listener(_closer(closed))
                await conn.add_listener(CHANNEL, self._notified)
                self.push_live = True
                self._check_once_more = True  # something may have been published before we listened
                await _first(stop.wait(), closed.wait())
            except Exception as exc:
                log.warning("knowledge: LISTEN failed (%s); polling meanwhile", exc)
            finally:
                self.push_live = False
                with contextlib.suppress(Exception):
                    await conn.close()
            if not stop.is_set():
                await self._pause(stop)

    async def _listen_redis(self, stop: asyncio.Event) -> None:
        from redis.asyncio import Redis

        while not stop.is_set():
            client = Redis.from_url(self.settings.redis_url)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self.push_live = True
                self._check_once_more = True
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._wake.set()
            except Exception as exc:
                log.warning("knowledge: Redis subscription failed (%s); polling meanwhile", exc)
            finally:
                self.push_live = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            if not stop.is_set():
                await self._pause(stop)

    async def _pause(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RECONNECT_SECONDS)


def _closer(event: asyncio.Event) -> Any:
    def closed(_connection: Any) -> None:
        event.set()

    return closed


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
