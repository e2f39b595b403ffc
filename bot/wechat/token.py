"""The access token: one per AppID, shared by every process (``serve`` and ``worker``).

WeChat allows a limited number of token fetches a day and a new token may invalidate the old one,
so exactly one process refreshes at a time and everyone else reads the shared copy:

* :class:`DbTokenStore` (default) — the ``access_tokens`` row. On PostgreSQL the refresher holds
  ``SELECT … FOR UPDATE`` on the row; on SQLite it takes the row's ``lock_owner``/``lock_expires_at``
  with a conditional ``UPDATE`` (a crashed holder's lock expires).
* :class:`RedisTokenStore` — ``SET NX PX`` lock plus the token under a key that expires with it.
* :class:`MemoryTokenStore` — one process only (tests, tools).

:class:`AccessTokenManager` keeps a per-process copy, refreshes ``margin`` before expiry, and on a
rejected token (40001/40014/42001) re-reads the store (another process may have refreshed already)
before forcing a refresh itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.storage.models import AccessToken, utcnow

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.settings import Settings
    from bot.storage.db import SessionFactory

log = logging.getLogger(__name__)

#: Refresh this long before the token expires. WeChat's stable_token hands out a new token only in
#: the last 5 minutes of the old one's life, so stay inside that window.
DEFAULT_MARGIN = dt.timedelta(minutes=4)


@dataclass(frozen=True)
class FetchedToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class CachedToken:
    token: str
    expires_at: dt.datetime

    def fresh(self, margin: dt.timedelta = DEFAULT_MARGIN, now: dt.datetime | None = None) -> bool:
        return self.expires_at - margin > (now or utcnow())

    @classmethod
    def from_fetch(cls, fetched: FetchedToken, now: dt.datetime | None = None) -> CachedToken:
        return cls(fetched.token, (now or utcnow()) + dt.timedelta(seconds=fetched.expires_in))


Fetch = Callable[[], Awaitable[FetchedToken]]
NeedsRefresh = Callable[[CachedToken | None], bool]


class TokenStore(Protocol):
    async def load(self, appid: str) -> CachedToken | None:
        """The stored token, fresh or not (None if there is none)."""

    async def refresh(self, appid: str, fetch: Fetch, needs_refresh: NeedsRefresh) -> CachedToken:
        """Under the store's lock: re-read; if ``needs_refresh(current)``, ``fetch()`` and store the result."""

    async def close(self) -> None: ...


def _owner_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class MemoryTokenStore:
    """A token store for one process."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._lock = asyncio.Lock()

    async def load(self, appid: str) -> CachedToken | None:
        return self._tokens.get(appid)

    async def refresh(self, appid: str, fetch: Fetch, needs_refresh: NeedsRefresh) -> CachedToken:
        async with self._lock:
            current = self._tokens.get(appid)
            if current is not None and not needs_refresh(current):
                return current
            cached = CachedToken.from_fetch(await fetch())
            self._tokens[appid] = cached
            return cached

    async def close(self) -> None:
        return None


class DbTokenStore:
    """The ``access_tokens`` row as the shared store (PostgreSQL or SQLite)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        lock_timeout: float = 30.0,
        poll_interval: float = 0.05,
        wait_timeout: float = 60.0,
    ) -> None:
        self.session_factory = session_factory
        self.lock_timeout = lock_timeout
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.owner = _owner_id()
        self._dialect: str | None = None

    async def load(self, appid: str) -> CachedToken | None:
        async with self.session_factory() as session:
            row = await session.get(AccessToken, appid)
            return _cached(row)

    async def refresh(self, appid: str, fetch: Fetch, needs_refresh: NeedsRefresh) -> CachedToken:
        if self._dialect is None:
            async with self.session_factory() as session:
                self._dialect = session.get_bind().dialect.name
        if self._dialect == "postgresql":
            return await self._refresh_for_update(appid, fetch, needs_refresh)
        return await self._refresh_lock_columns(appid, fetch, needs_refresh)

    async def _refresh_for_update(self, appid: str, fetch: Fetch, needs_refresh: NeedsRefresh) -> CachedToken:
        async with self.session_factory() as session, session.begin():
            await session.execute(pg_insert(AccessToken).values(appid=appid).on_conflict_do_nothing())
            row = (
                await session.execute(select(AccessToken).where(AccessToken.appid == appid).with_for_update())
            ).scalar_one()
            current = _cached(row)
            if current is not None and not needs_refresh(current):
                return current
            now = utcnow()
            cached = CachedToken.from_fetch(await fetch(), now)
            row.token, row.expires_at, row.refreshed_at = cached.token, cached.expires_at, now
            return cached

    async def _refresh_lock_columns(self, appid: str, fetch: Fetch, needs_refresh: NeedsRefresh) -> CachedToken:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while True:
            async with self.session_factory() as session, session.begin():
                await session.execute(sqlite_insert(AccessToken).values(appid=appid).on_conflict_do_nothing())
                row = await session.get(AccessToken, appid)
                current = _cached(row)
                if current is not None and not needs_refresh(current):
                    return current
                now = utcnow()
                taken = await session.execute(
                    update(AccessToken)
                    .where(
                        AccessToken.appid == appid,
                        (AccessToken.lock_owner.is_(None)) | (AccessToken.lock_expires_at < now),
                    )
                    .values(lock_owner=self.owner, lock_expires_at=now + dt.timedelta(seconds=self.lock_timeout))
                    .execution_options(synchronize_session=False)
                )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return await self._fetch_and_release(appid, fetch)
            if loop.time() > deadline:
                raise TimeoutError(f"access token for {appid}: another process holds the refresh lock")
            await asyncio.sleep(self.poll_interval)

    async def _fetch_and_release(self, appid: str, fetch: Fetch) -> CachedToken:
        release = update(AccessToken).where(AccessToken.appid == appid, AccessToken.lock_owner == self.owner)
        try:
            fetched = await fetch()
        except BaseException:
            async with self.session_factory() as session, session.begin():
                await session.execute(release.values(lock_owner=None, lock_expires_at=None))
            raise
        now = utcnow()
        cached = CachedToken.from_fetch(fetched, now)
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(AccessToken)
                .where(AccessToken.appid == appid)
                .values(
                    token=cached.token,
                    expires_at=cached.expires_at,
                    refreshed_at=now,
                    lock_owner=None,
                    lock_expires_at=None,
                )
            )
        return cached

    async def close(self) -> None:
        return None


def _cached(row: AccessToken | None) -> CachedToken | None:
    if row is None or not row.token or row.expires_at is None:
        return None
    return CachedToken(row.token, row.expires_at)


_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """The token in Redis (``{prefix}{appid}``, expiring with the token) and a ``SET NX PX`` refresh lock."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "lawbot:wechat:access_token:",
        lock_timeout: float = 30.0,
        poll_interval: float = 0.05,
        wait_timeout: float = 60.0,
    ) -> None:
        from redis.asyncio import Redis

        self.redis: Redis = Redis.from_url(redis_url)
        self.prefix = prefix
        self.lock_timeout = lock_timeout
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.owner = _owner_id()
        self._release = self.redis.register_script(_RELEASE_LUA)

    def _key(self, appid: str) -> str:
        return f"{self.prefix}{appid}"

    async def load(self, appid: str) -> CachedToken | None:
        raw = await self.redis.get(self._key(appid))
        if not raw:
            return None
        data = json.loads(raw)
        return CachedToken(str(data["token"]), dt.datetime.fromtimestamp(float(data["expires_at"]), dt.UTC))

    async def refresh(self, appid: str, fetch: Fetch, needs_refresh: NeedsRefresh) -> CachedToken:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        lock_key = f"{self._key(appid)}:lock"
        while True:
            current = await self.load(appid)
            if current is not None and not needs_refresh(current):
                return current
            if await self.redis.set(lock_key, self.owner, nx=True, px=int(self.lock_timeout * 1000)):
                try:
                    current = await self.load(appid)
                    if current is not None and not needs_refresh(current):
                        return current
                    fetched = await fetch()
                    cached = CachedToken.from_fetch(fetched)
                    value = json.dumps({"token": cached.token, "expires_at": cached.expires_at.timestamp()})
                    await self.redis.set(self._key(appid), value, px=max(1, fetched.expires_in) * 1000)
                    return cached
                finally:
                    await self._release(keys=[lock_key], args=[self.owner])
            if loop.time() > deadline:
                raise TimeoutError(f"access token for {appid}: another process holds the refresh lock")
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        await self.redis.aclose()


class AccessTokenManager:
    """Hands out the current token for one AppID; refreshes through ``store`` with ``fetch(force)``."""

    def __init__(
        self,
        appid: str,
        store: TokenStore,
        fetch: Callable[[bool], Awaitable[FetchedToken]],
        *,
        margin: dt.timedelta = DEFAULT_MARGIN,
    ) -> None:
        self.appid = appid
        self.store = store
        self._fetch = fetch
        self.margin = margin
        self._local: CachedToken | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        local = self._local
        if local is not None and local.fresh(self.margin):
            return local.token
        async with self._lock:  # one refresh per process; the store serialises processes
            local = self._local
            if local is not None and local.fresh(self.margin):
                return local.token
            current = await self.store.load(self.appid)
            if current is None or not current.fresh(self.margin):
                current = await self.store.refresh(self.appid, self._fetcher(False), self._stale)
            self._local = current
            return current.token

    async def invalidate(self, rejected: str) -> str:
        """``rejected`` was refused by WeChat: return a different token, refreshing (forced) if needed."""
        async with self._lock:
            local = self._local
            if local is not None and local.token != rejected and local.fresh(dt.timedelta(0)):
                return local.token
            self._local = None
            current = await self.store.load(self.appid)
            if current is None or current.token == rejected or not current.fresh(dt.timedelta(0)):

                def stale(c: CachedToken | None) -> bool:
                    return c is None or c.token == rejected or not c.fresh(dt.timedelta(0))

                log.info("access token for %s rejected; refreshing", self.appid)
                current = await self.store.refresh(self.appid, self._fetcher(True), stale)
            self._local = current
            return current.token

    def _stale(self, cached: CachedToken | None) -> bool:
        return cached is None or not cached.fresh(self.margin)

    def _fetcher(self, force: bool) -> Fetch:
        async def fetch() -> FetchedToken:
            return await self._fetch(force)

        return fetch

    def forget(self) -> None:
        """Drop the per-process copy (the next call re-reads the store)."""
        self._local = None


def token_store_for(settings: Settings, session_factory: SessionFactory) -> TokenStore:
    """Redis when ``LAWBOT_REDIS_URL`` is set, else the database row."""
    if settings.redis_url:
        return RedisTokenStore(settings.redis_url)
    return DbTokenStore(session_factory)
