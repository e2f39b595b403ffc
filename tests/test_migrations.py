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


async def test_0004_backfills_when_staff_last_replied_to_each_villager(database_url: str) -> None:
    """Replies made before villagers.last_staff_reply_at existed still open the follow-up chat."""
    import datetime as dt

    from sqlalchemy import Boolean, String, column, insert, select, table

    from bot.storage.models import UTCDateTime, Villager
    from bot.storage.tickets import Ticket

    await _reset(database_url)
    await asyncio.to_thread(upgrade, database_url, "0003")
    replied = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)
    villagers_0003 = table(
        "villagers",
        column("openid", String),
        column("subscribed", Boolean),
        column("opted_out", Boolean),
        column("first_seen_at", UTCDateTime()),
    )
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        for openid in ("o_replied", "o_waiting"):
            await conn.execute(
                insert(villagers_0003).values(openid=openid, subscribed=True, opted_out=False, first_seen_at=replied)
            )
        for n, (openid, last) in enumerate(
            [("o_replied", replied - dt.timedelta(days=3)), ("o_replied", replied), ("o_waiting", None)]
        ):
            await conn.execute(
                insert(Ticket).values(
                    number=f"2026-{n:04d}",
                    openid=openid,
                    summary="",
                    source="wechat",
                    status="answered",
                    urgent=False,
                    priority=0,
                    created_at=replied,
                    updated_at=replied,
                    first_response_due_at=replied,
                    last_staff_reply_at=last,
                )
            )
    await engine.dispose()

    await asyncio.to_thread(upgrade, database_url)

    engine = create_engine(database_url)
    async with engine.connect() as conn:
        result = await conn.execute(select(Villager.openid, Villager.last_staff_reply_at))
        rows = {openid: last for openid, last in result}
    await engine.dispose()
    assert rows == {"o_replied": replied, "o_waiting": None}
