"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from bot.storage.all import load_all
from bot.storage.db import create_engine
from bot.storage.migrate import downgrade, upgrade

Base = load_all()


async def _reset(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await engine.dispose()


async def _diff(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    async with engine.connect() as conn:

        def compare(sync_conn: Any) -> list[Any]:
            ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))

        diff = await conn.run_sync(compare)
    await engine.dispose()
    return diff


async def test_upgrade_head_matches_the_models_and_downgrades_cleanly(database_url: str) -> None:
    await _reset(database_url)
    await asyncio.to_thread(upgrade, database_url)
    assert await _diff(database_url) == []
    await asyncio.to_thread(upgrade, database_url)  # idempotent
    await asyncio.to_thread(downgrade, database_url, "base")
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(__import__("sqlalchemy").inspect(c).get_table_names()))
    await engine.dispose()
    assert tables <= {"alembic_version"}
