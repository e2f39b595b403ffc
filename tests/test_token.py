"""The shared access token: fetched once across processes, refreshed ahead of expiry, re-read on 40001."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.devtools.fake_wechat import DEV_APPID, DEV_SECRET, FakeWeChat, FakeWeChatServer
from bot.storage.models import AccessToken, utcnow
from bot.wechat.api import WeChatClient
from bot.wechat.errors import RetryableError
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore, MemoryTokenStore, RedisTokenStore, TokenStore
from tests import wechat_fakes

fake_server, fake = wechat_fakes.fake_server, wechat_fakes.fake

REPO = Path(__file__).resolve().parent.parent
CS = "/cgi-bin/message/custom/send"

PROCESS_SCRIPT = r"""
import asyncio, sys
from pathlib import Path
from bot.storage.db import create_engine, create_session_factory
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore, RedisTokenStore

async def main() -> None:
    role, kind, url, prefix, base, go, appid, secret = sys.argv[1:9]
    engine = None
    if kind == "redis":
        store = RedisTokenStore(url, prefix=prefix)
    else:
        engine = create_engine(url)
        store = DbTokenStore(create_session_factory(engine))
    async with WeChatClient(appid, secret, api_base=base, token_store=store, rate_limiter=RateLimiter.disabled()) as c:
        print("READY", flush=True)
        while not Path(go).exists():
            await asyncio.sleep(0.005)
        if role == "serve":
            await c.send_text("o-" + role, "hi")
        else:
            await c.get_user_info("o-" + role)
        print("TOKEN", await c.get_access_token(), flush=True)
    await store.close()
    if engine is not None:
        await engine.dispose()

asyncio.run(main())
"""


def _client(server: FakeWeChatServer, store: TokenStore) -> WeChatClient:
    return WeChatClient(
        DEV_APPID, DEV_SECRET, api_base=server.base_url, token_store=store, rate_limiter=RateLimiter.disabled()
    )


async def _eight_processes(server: FakeWeChatServer, tmp_path: Path, kind: str, url: str, prefix: str = "") -> None:
    """Four "serve" and four "worker" processes start together; the token is fetched exactly once."""
    server.fake.token_latency = 0.2  # a slow token endpoint widens the race
    go = tmp_path / "go"
    roles = ["serve"] * 4 + ["worker"] * 4
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROCESS_SCRIPT,
            role,
            kind,
            url,
            prefix,
            server.base_url,
            str(go),
            DEV_APPID,
            DEV_SECRET,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for role in roles
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"READY", (line, await proc.stderr.read() if proc.stderr else b"")
        go.touch()
        results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 30)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    tokens = set()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        tokens.add(out.decode().split("TOKEN", 1)[1].strip())
    assert server.fake.token_fetches == 1
    assert len(tokens) == 1
    assert len(server.fake.successful(CS)) == 4
    assert len(server.fake.successful("/cgi-bin/user/info")) == 4


@pytest.mark.slow
async def test_eight_processes_fetch_once_db(
    fake_server: FakeWeChatServer, engine: Any, database_url: str, tmp_path: Path
) -> None:
    await _eight_processes(fake_server, tmp_path, "db", database_url)


@pytest.mark.slow
async def test_eight_processes_fetch_once_redis(fake_server: FakeWeChatServer, redis_url: str, tmp_path: Path) -> None:
    prefix = f"lawbot-test:{uuid.uuid4().hex}:"
    await _eight_processes(fake_server, tmp_path, "redis", redis_url, prefix)


async def test_token_stored_in_the_row(fake_server: FakeWeChatServer, session_factory: Any) -> None:
    async with _client(fake_server, DbTokenStore(session_factory)) as c:
        token = await c.get_access_token()
        assert await c.get_access_token() == token
    async with session_factory() as s:
        row = (await s.execute(select(AccessToken))).scalar_one()
    assert row.appid == DEV_APPID
    assert row.token == token
    assert row.lock_owner is None
    assert row.expires_at is not None
    assert row.expires_at > utcnow() + dt.timedelta(seconds=7000)
    assert fake_server.fake.token_fetches == 1


async def test_refreshes_ahead_of_expiry(fake_server: FakeWeChatServer) -> None:
    fake_server.fake.token_ttl = 241  # the default margin is 4 minutes: fresh for one second
    async with _client(fake_server, MemoryTokenStore()) as c:
        first = await c.get_access_token()
        assert await c.get_access_token() == first
        assert fake_server.fake.token_fetches == 1
        await asyncio.sleep(1.1)
        second = await c.get_access_token()
    assert second != first
    assert fake_server.fake.token_fetches == 2


async def test_rejected_token_re_reads_the_shared_store(fake_server: FakeWeChatServer, session_factory: Any) -> None:
    """Process A refreshes after 40001; process B, still holding the old token, takes A's from the store."""
    fake = fake_server.fake
    async with (
        _client(fake_server, DbTokenStore(session_factory)) as a,
        _client(fake_server, DbTokenStore(session_factory)) as b,
    ):
        await a.send_text("o1", "a1")
        await b.send_text("o1", "b1")
        old = await b.get_access_token()
        fake.add_fault("invalidate_token")
        await a.send_text("o1", "a2")  # 40001, forced refresh, retry
        await b.send_text("o1", "b2")  # 40001 with the old token, re-reads the store: no fetch
        assert await b.get_access_token() != old
    forced = [c.body["force_refresh"] for c in fake.calls_to("/cgi-bin/stable_token")]
    assert forced == [False, True]
    assert [c.errcode for c in fake.calls_to(CS)] == [0, 0, 40001, 0, 40001, 0]


async def test_concurrent_calls_in_one_process_fetch_once(fake_server: FakeWeChatServer, session_factory: Any) -> None:
    fake_server.fake.token_latency = 0.1
    async with _client(fake_server, DbTokenStore(session_factory)) as c:
        await asyncio.gather(*(c.send_text("o1", str(i)) for i in range(30)))
    assert fake_server.fake.token_fetches == 1


async def test_sqlite_lock_columns(fake_server: FakeWeChatServer, sqlite_url: str) -> None:
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import Base

    engine = create_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    factory = create_session_factory(engine)
    try:
        # a live lock held by someone else: we wait, then give up
        async with factory() as s, s.begin():
            s.add(AccessToken(appid=DEV_APPID, lock_owner="other", lock_expires_at=utcnow() + dt.timedelta(minutes=1)))
        store = DbTokenStore(factory, wait_timeout=0.3)
        async with _client(fake_server, store) as c:
            with pytest.raises(TimeoutError):
                await c.get_access_token()
        # the holder died: its lock expires and we take over
        async with factory() as s, s.begin():
            row = await s.get(AccessToken, DEV_APPID)
            assert row is not None
            row.lock_expires_at = utcnow() - dt.timedelta(seconds=1)
        async with _client(fake_server, DbTokenStore(factory)) as c:
            # a failed fetch releases the lock
            fake_server.fake.add_fault("errcode", errcode=-1, path="/cgi-bin/stable_token")
            with pytest.raises(RetryableError):
                await c.get_access_token()
            async with factory() as s:
                row = await s.get(AccessToken, DEV_APPID)
                assert row is not None
                assert row.lock_owner is None
            assert await c.get_access_token()
        assert fake_server.fake.token_fetches == 2
    finally:
        await engine.dispose()


async def test_redis_store(fake_server: FakeWeChatServer, redis_url: str) -> None:
    prefix = f"lawbot-test:{uuid.uuid4().hex}:"
    store = RedisTokenStore(redis_url, prefix=prefix)
    try:
        async with _client(fake_server, store) as c:
            token = await c.get_access_token()
        cached = await store.load(DEV_APPID)
        assert cached is not None
        assert cached.token == token
        ttl = await store.redis.pttl(f"{prefix}{DEV_APPID}")
        assert 7_000_000 < ttl <= 7_200_000
        # a second process finds it
        other = RedisTokenStore(redis_url, prefix=prefix)
        async with _client(fake_server, other) as c2:
            assert await c2.get_access_token() == token
        await other.close()
        assert fake_server.fake.token_fetches == 1
    finally:
        await store.redis.delete(f"{prefix}{DEV_APPID}")
        await store.close()


def test_fake_state_default_is_bounded() -> None:
    assert FakeWeChat().calls.maxlen == 10_000
