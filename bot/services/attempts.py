"""Attempt counters in fixed windows, shared by every process: how many tries a key had lately.

Used to limit guessing: back-office sign-ins (per account, per address, per both) and the
campaign-preview binding code (per openid). The count goes up *before* the attempt is
evaluated, in one atomic step, so forty parallel guesses are counted as forty and the limit
holds (a count-then-act check let them all through: security review #3). Kept in the
``attempt_counters`` table (one upsert; keys are kept as their SHA-256), or in Redis (INCR + EXPIRE)
when LAWBOT_REDIS_URL is set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import case, delete, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.db import SessionFactory
from bot.storage.models import AttemptCounter, UTCDateTime, utcnow

if TYPE_CHECKING:
    from redis.asyncio import Redis



def _stored(key: str) -> str:
    """What is kept of a key: its SHA-256, so no user name, address or openid is at rest in the counters
    (erasure never has to look for a villager in them; the counts still add up per key)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Attempts:
    """``await attempts.hit(["signin:acct:zhang", …], window)`` → each key's count in this window."""

    def __init__(self, session_factory: SessionFactory, redis_url: str = "", *, timeout: float = 3.0) -> None:
        self.session_factory = session_factory
        self.redis: Redis | None = None
        if redis_url:
            from redis.asyncio import Redis

            self.redis = Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._last_sweep = utcnow()

    async def hit(self, keys: Sequence[str], window: dt.timedelta, *, session: AsyncSession | None = None) -> list[int]:
        """Count one attempt under every key; the counts including this one, in order.

        ``session``: count inside this transaction (a handler's; SQLite has one connection)."""
        keys = [_stored(k) for k in keys]
        if self.redis is not None:
            seconds = max(1, int(window.total_seconds()))
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incr(f"lawbot:attempts:{key}")
                    pipe.expire(f"lawbot:attempts:{key}", seconds, nx=True)
                replies = await pipe.execute()
            return [int(n) for n in replies[::2]]
        if session is not None:
            return await self._hit_db(session, keys, window)
        async with self.session_factory() as own, own.begin():
            return await self._hit_db(own, keys, window)

    async def refund(self, keys: Sequence[str], *, session: AsyncSession | None = None) -> None:
        """Take one attempt back (a successful sign-in does not count against its address)."""
        keys = [_stored(k) for k in keys]
        if self.redis is not None:
            for key in keys:
                await self.redis.decr(f"lawbot:attempts:{key}")
            return
        stmt = (
            update(AttemptCounter)
            .where(AttemptCounter.key.in_(keys), AttemptCounter.count > 0)
            .values(count=AttemptCounter.count - 1)
        )
        await self._run(stmt, session)

    async def clear(self, keys: Sequence[str], *, session: AsyncSession | None = None) -> None:
        """Forget the keys' attempts (the right password ends an account's run of mistakes)."""
        keys = [_stored(k) for k in keys]
        if self.redis is not None:
            await self.redis.delete(*(f"lawbot:attempts:{k}" for k in keys))
            return
        await self._run(delete(AttemptCounter).where(AttemptCounter.key.in_(keys)), session)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def _run(self, stmt: object, session: AsyncSession | None) -> None:
        if session is not None:
            await session.execute(stmt)  # type: ignore[call-overload]
            return
        async with self.session_factory() as own, own.begin():
            await own.execute(stmt)  # type: ignore[call-overload]

    async def _hit_db(self, session: AsyncSession, keys: Sequence[str], window: dt.timedelta) -> list[int]:
        now = utcnow()
        cutoff = now - window
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        counts = []
        for key in sorted(set(keys)):  # one order for every process: no deadlock between two upserts
            expired = AttemptCounter.window_start < cutoff
            upsert = (
                insert(AttemptCounter)
                .values(key=key, count=1, window_start=now)
                .on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "count": case((expired, 1), else_=AttemptCounter.count + 1),
                        "window_start": case((expired, literal(now, UTCDateTime())), else_=AttemptCounter.window_start),
                    },
                )
                .returning(AttemptCounter.count)
            )
            counts.append((key, int((await session.execute(upsert)).scalar_one())))
        if now - self._last_sweep > dt.timedelta(hours=1):  # old windows are of no use to anybody
            self._last_sweep = now
            stale = now - dt.timedelta(days=1)
            await session.execute(delete(AttemptCounter).where(AttemptCounter.window_start < stale))
        by_key = dict(counts)
        return [by_key[k] for k in keys]
