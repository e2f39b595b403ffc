"""Shared fixtures: databases (SQLite always, PostgreSQL/Redis when configured) and a network guard.

Any test that tries to reach a host other than this machine fails loudly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings

POSTGRES_URL = os.environ.get("LAWBOT_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("LAWBOT_TEST_REDIS_URL", "")


# ---------------------------------------------------------------- network guard
class RealNetworkCall(AssertionError):
    pass


_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host)
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host):
        raise RealNetworkCall(f"a test tried to resolve a real host: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise RealNetworkCall(f"a test tried to connect to a real host: {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_real_network() -> Iterator[None]:
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.getaddrinfo = _real_getaddrinfo
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# ---------------------------------------------------------------- databases
def _pg_admin_url() -> str:
    return POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A private database for this pytest run (parallel runs never share tables)."""
    if not POSTGRES_URL:
        pytest.skip("LAWBOT_TEST_POSTGRES_URL is not set")
    import asyncpg

    name = f"lawbot_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_pg_admin_url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    if not url.startswith("postgresql+asyncpg://"):
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _backends() -> list[Any]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that takes a database runs on SQLite, and on PostgreSQL when configured."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Any]:
    """A fresh schema (drop + create from the models) on the chosen backend."""
    from bot.storage.all import load_all
    from bot.storage.db import create_engine

    Base = load_all()
    eng = create_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def session_factory(engine: Any) -> Any:
    from bot.storage.db import create_session_factory

    return create_session_factory(engine)


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("LAWBOT_TEST_REDIS_URL is not set")
    return REDIS_URL


@pytest.fixture
def base_settings(tmp_path: Path) -> Settings:
    """Settings for an app under test: no .env, no real WeChat API (tests point it at the fake)."""
    return Settings.from_env(
        {},
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}",
        wechat_api_base="http://127.0.0.1:9",  # closed port: an unexpected API call fails
        inprocess_worker=False,
    )


# ---------------------------------------------------------------- the app
@pytest.fixture(scope="session")
def knowledge_holder() -> Any:
    """The shipped knowledge, loaded once: building the index is the slow part."""
    from bot.services.knowledge import KnowledgeHolder
    from bot.settings import DEFAULT_KNOWLEDGE_DIR

    return KnowledgeHolder.load(DEFAULT_KNOWLEDGE_DIR)


@pytest.fixture
def settings(base_settings: Settings, database_url: str) -> Settings:
    return base_settings.with_(database_url=database_url)


@pytest.fixture
async def make_client(aiohttp_client: Any, knowledge_holder: Any) -> Any:
    """Build the production app for given settings on a fresh schema; returns a test client."""
    from bot.app import create_app
    from bot.storage.all import load_all
    from bot.storage.db import create_engine

    Base = load_all()

    async def make(settings: Settings, *, mount: Any = None, port: int | None = None, **kwargs: Any) -> Any:
        """``mount(app)`` adds to the app before it starts; ``port`` serves it on that port."""
        eng = create_engine(settings.database_url)
        async with eng.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        await eng.dispose()
        kwargs.setdefault("knowledge", knowledge_holder)
        app = create_app(settings, **kwargs)
        if mount is not None:
            mount(app)
        return await aiohttp_client(app, server_kwargs={"port": port} if port else None)

    return make


@pytest.fixture
async def client(make_client: Any, settings: Settings) -> Any:
    return await make_client(settings)


@pytest.fixture
def phone(client: Any, settings: Settings) -> Any:
    from tests.phone import Phone

    return Phone(client, settings)
