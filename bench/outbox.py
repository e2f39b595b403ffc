"""Outbox throughput and memory benchmark (run by hand; not a test).

    .venv/bin/python bench/outbox.py                      # 100,000 messages on PostgreSQL
    .venv/bin/python bench/outbox.py --messages 20000 --database-url sqlite+aiosqlite:///var/bench.sqlite3

Starts the fake WeChat API in a child process, fills the outbox, runs one OutboxWorker (rate limits
off) in this process and prints progress, throughput and this process' RSS every --report-every
messages, and at the end the worker's CPU time per message (a figure that holds on a busy machine).
See bench/outbox_README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from bot.services.outbox import OutboxPolicy, OutboxWorker
from bot.settings import Settings
from bot.storage.all import load_all
from bot.storage.db import create_engine, create_session_factory
from bot.storage.models import OutboxMessage, Villager, utcnow
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/lawbot_bench"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ensure_database(url: str) -> None:
    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        return
    import asyncpg

    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", u.database):
            await conn.execute(f'CREATE DATABASE "{u.database}"')
    finally:
        await conn.close()


def start_fake(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.devtools.fake_wechat", "--port", str(port), "--record-limit", "100"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake WeChat API did not start")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("LAWBOT_BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--villagers", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--report-every", type=int, default=10_000)
    parser.add_argument("--fake-port", type=int, default=0, help="port of the fake WeChat API (default: a free one)")
    args = parser.parse_args()

    await ensure_database(args.database_url)
    engine = create_engine(args.database_url)
    base = load_all()
    async with engine.begin() as conn:
        await conn.run_sync(base.metadata.drop_all)
        await conn.run_sync(base.metadata.create_all)
    factory = create_session_factory(engine)

    t0 = time.perf_counter()
    now = utcnow()
    async with factory() as s, s.begin():
        await s.execute(insert(Villager), [{"openid": f"o{i}", "last_inbound_at": now} for i in range(args.villagers)])
    chunk = 5_000
    for start in range(0, args.messages, chunk):
        rows = [
            {
                "kind": "cs_text",
                "openid": f"o{i % args.villagers}",
                "payload": {"content": f"第{i}条回复：请到司法所咨询。"},
                "idempotency_key": f"bench:{i}",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for i in range(start, min(args.messages, start + chunk))
        ]
        async with factory() as s, s.begin():
            await s.execute(insert(OutboxMessage), rows)
    print(f"enqueued {args.messages} rows in {time.perf_counter() - t0:.1f}s (bulk insert)", flush=True)

    port = args.fake_port or free_port()
    fake = start_fake(port)
    settings = Settings.from_env(
        {}, env="test", database_url=args.database_url, wechat_api_base=f"http://127.0.0.1:{port}"
    )
    client = WeChatClient.from_settings(
        settings,
        token_store=DbTokenStore(factory),
        rate_limiter=RateLimiter.disabled(),
        max_connections=args.concurrency,
    )
    policy = OutboxPolicy(batch_size=args.batch_size, concurrency=args.concurrency, lanes=args.lanes, idle_sleep=0.05)
    worker = OutboxWorker(settings, factory, client, policy=policy)
    stop = asyncio.Event()
    print(
        f"worker: batch {args.batch_size}, {args.concurrency} in flight, {args.lanes} lanes; RSS {rss_mb():.0f} MB",
        flush=True,
    )
    print(f"{'sent':>8} {'elapsed s':>10} {'msg/s (last)':>13} {'msg/s (avg)':>12} {'RSS MB':>7}", flush=True)

    async def monitor() -> None:
        start = last_t = time.perf_counter()
        last_n = 0
        mark = args.report_every
        while True:
            await asyncio.sleep(0.05)
            n = worker.stats.sent
            if n >= mark or n >= args.messages:
                t = time.perf_counter()
                rate_last, rate_avg = (n - last_n) / (t - last_t), n / (t - start)
                print(f"{n:>8} {t - start:>10.1f} {rate_last:>13.0f} {rate_avg:>12.0f} {rss_mb():>7.1f}", flush=True)
                last_t, last_n = t, n
                mark = (n // args.report_every + 1) * args.report_every
            if n >= args.messages:
                stop.set()
                return

    t1, cpu1 = time.perf_counter(), time.process_time()
    try:
        await asyncio.gather(worker.run(stop), monitor())
    finally:
        elapsed, cpu = time.perf_counter() - t1, time.process_time() - cpu1
        await client.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/calls?path=none") as resp:
            counts = json.load(resp)["counts"]
        fake.terminate()
        fake.wait()
    async with factory() as s:
        sent = int(await s.scalar(select(func.count()).where(OutboxMessage.status == "sent")) or 0)
    await engine.dispose()
    received = counts.get("/cgi-bin/message/custom/send", 0)
    print(
        f"done: {sent} rows sent, fake received {received} messages in {elapsed:.1f}s = {sent / elapsed:.0f} msg/s; "
        f"token fetches {counts.get('/cgi-bin/stable_token', 0)}; final RSS {rss_mb():.1f} MB; "
        f"worker CPU {cpu:.1f}s = {cpu / max(sent, 1) * 1e6:.0f} µs/message",
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
