"""The monthly report on a busy year (run by hand):

    .venv/bin/python bench/report.py [--tickets 30000] [--questions 300000] [--postgres URL]

Writes a year (tests/test_report_support.py's generator: tickets, questions to the bot with their
outcomes, knowledge gaps, bookings, campaigns) into a fresh SQLite file (or the PostgreSQL database
given), then times ``bot.services.reports.build`` for the township and for a mediator of two villages,
the ten charts, and the XLSX — the median of 5 runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.admin.report_views import report_charts
from bot.knowledge import load_knowledge
from bot.services import reports
from bot.services.tickets import visible_to
from bot.settings import DEFAULT_KNOWLEDGE_DIR
from bot.storage.all import load_all
from bot.storage.db import create_engine, create_session_factory
from tests.test_report_support import fill_year

RUNS = 5


async def timed(what: str, make: Callable[[], Awaitable[Any]]) -> Any:
    times, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = await make()
        times.append(time.perf_counter() - started)
    print(f"{what:<36} median {statistics.median(times) * 1000:8.1f} ms   (min {min(times) * 1000:.1f})")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=30_000)
    parser.add_argument("--questions", type=int, default=300_000)
    parser.add_argument("--bookings", type=int, default=6_000)
    parser.add_argument("--postgres", default="", help="postgresql+asyncpg://… (its tables are dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite+aiosqlite:///{tmp}/report.sqlite3"
        engine = create_engine(url)
        async with engine.begin() as conn:
            base = load_all()
            await conn.run_sync(base.metadata.drop_all)
            await conn.run_sync(base.metadata.create_all)
        factory = create_session_factory(engine)
        kb = load_knowledge(DEFAULT_KNOWLEDGE_DIR)
        last = reports.month_bounds("2026-11", dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
        started = time.perf_counter()
        await fill_year(
            factory, kb, last, tickets=args.tickets, questions=args.questions, bookings=args.bookings,
            villagers_per_village=300,
        )  # fmt: skip
        print(f"{url.split(':')[0]}: wrote {args.tickets:,} tickets, {args.questions:,} questions, "
              f"{args.bookings:,} bookings in {time.perf_counter() - started:.1f} s")  # fmt: skip
        now = dt.datetime(2026, 12, 6, 4, tzinfo=dt.UTC)

        async def build(village_ids: tuple[int, ...] | None) -> reports.MonthlyReport:
            role = "admin" if village_ids is None else "mediator"
            scope = reports.Scope(visible_to(role, 0, village_ids or ()), village_ids)
            async with factory() as session:
                return await reports.build(session, scope, last.label, kb, now)

        township = await timed("build, the whole township", lambda: build(None))
        await timed("build, a mediator of two villages", lambda: build((1, 2)))

        async def draw() -> Any:
            return report_charts(township)

        async def xlsx() -> bytes:
            return reports.to_xlsx(township, "月报告")

        await timed("the ten charts", draw)
        await timed("the XLSX", xlsx)
        print(f"month: {township.tickets.total.total} tickets, {township.bot.questions} questions")
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
