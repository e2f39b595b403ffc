"""Engine and session factory: SQLite (WAL, busy timeout) by default, PostgreSQL via asyncpg.

Nothing waits for the database for ever: ``timeout`` (LAWBOT_DB_TIMEOUT for `lawbot serve`) bounds
connecting (asyncpg), waiting for a pooled connection, and SQLite's busy lock; a statement on
PostgreSQL gives up after :data:`STATEMENT_TIMEOUT` seconds. The webhook itself waits at most
``timeout`` for its push to be stored (services/inbound.py), so a hung database still lets it
answer the villager inside WeChat's 5 seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.storage.sqlite_checkpoint import WRITER_CHECKPOINT_PAGES

SessionFactory = async_sessionmaker[AsyncSession]

DEFAULT_TIMEOUT = 10.0  # seconds: commands and workers (`lawbot serve` uses LAWBOT_DB_TIMEOUT)
STATEMENT_TIMEOUT = 30.0  # seconds a PostgreSQL statement may run (asyncpg command_timeout)
DEFAULT_PG_POOL_SIZE = 10


def sqlite_file(database_url: str) -> str | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def create_engine(
    database_url: str,
    *,
    background_checkpoint: bool = False,
    pool_size: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> AsyncEngine:
    """``background_checkpoint``: a :class:`~bot.storage.sqlite_checkpoint.WalCheckpointer`
    copies this SQLite database's log, so its connections checkpoint only rarely themselves.
    ``pool_size``: connections per process on PostgreSQL (SQLite always uses one).
    ``timeout``: seconds to connect, to wait for a pooled connection, and for SQLite's lock."""
    url = make_url(database_url)
    kwargs.setdefault("pool_timeout", timeout)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # One connection, shared in FIFO order through the pool: SQLite has a single writer
        # anyway, and queueing on an asyncio pool is fair and instant where SQLite's own busy
        # handler sleeps and retries (seconds of p99 under load). Other processes (a separate
        # `lawbot worker`) still wait on the busy timeout.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        if url.database and url.database != ":memory:" and os.environ.get("LAWBOT_SQLITE_THREADED") != "1":
            from bot.storage.sqlite_inloop import creator

            kwargs.setdefault("async_creator", creator(url.database, timeout))
        engine = create_async_engine(url, connect_args={"timeout": timeout}, **kwargs)
        busy_ms = int(timeout * 1000)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # autocommit off at the driver level; SQLAlchemy emits BEGIN itself (see below)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            if background_checkpoint:
                cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
            cursor.close()
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the busy
            # timeout instead of failing with "database is locked" on lock upgrade.
            # (straight to the driver: this runs for every transaction)
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            finally:
                cursor.close()

        return engine
    # A fixed pool and no overflow: a transaction waits (cheaply, on the loop) for a free
    # connection instead of opening and closing one — under load the churn of overflow
    # connections cost two thirds of the webhook's throughput (bench/webhook_load.py --postgres).
    kwargs.setdefault("pool_size", pool_size or DEFAULT_PG_POOL_SIZE)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = {"timeout": timeout, "command_timeout": max(timeout, STATEMENT_TIMEOUT)}
    return create_async_engine(url, connect_args={**connect_args, **kwargs.pop("connect_args", {})}, **kwargs)


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
