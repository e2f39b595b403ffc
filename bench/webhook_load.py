"""Webhook load benchmark (run by hand, not a test).

Starts `lawbot serve` on a fresh SQLite database (one process, in-process worker off),
then sends signed plaintext text pushes with unique MsgIds from N concurrent connections
and reports requests/s, p50/p99 latency and errors. Afterwards it checks that every push
that got an answer is stored in inbound_messages.

    .venv/bin/python bench/webhook_load.py --seconds 20 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.wechat.pusher import PushSigner  # noqa: E402

QUESTIONS = [
    "老板欠工资不给咋办",
    "借钱不还怎么办",
    "彩礼能要回来吗",
    "宅基地怎么申请",
    "被狗咬了谁赔",
    "你好",
    "邻居盖房挡住俺家光了",
    "离婚孩子归谁",
    "今天天气怎么样",
    "俺爹不在了房子咋分",
]


async def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server did not become ready at {url}")


async def run_load(base: str, signer: PushSigner, seconds: float, concurrency: int) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    errors = 0
    sent = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(n: int) -> None:
            nonlocal errors, sent
            rnd = random.Random(n)
            while time.monotonic() < stop_at:
                push = signer.sign(signer.text(f"o_bench_{n}_{rnd.randrange(50)}", rnd.choice(QUESTIONS)))
                t0 = time.perf_counter()
                try:
                    async with session.post(f"{base}/wechat", params=push.query, data=push.body) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                sent += 1
                if not ok:
                    errors += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return latencies, sent, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--warmup", type=float, default=2)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lawbot-bench-"))
    db = tmp / "bench.sqlite3"
    env = {
        **os.environ,
        "LAWBOT_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "LAWBOT_INPROCESS_WORKER": "false",
        "LAWBOT_LOG_LEVEL": "WARNING",
        "LAWBOT_PORT": str(args.port),
        "LAWBOT_ENV": "development",
    }
    lawbot = str(REPO / ".venv" / "bin" / "lawbot")
    subprocess.run([lawbot, "db", "upgrade"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([lawbot, "serve", "--port", str(args.port)], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(wait_ready(f"{base}/healthz"))
        signer = PushSigner(
            env.get("LAWBOT_WECHAT_TOKEN", "lawbot-dev-token"), env.get("LAWBOT_WECHAT_APPID", "wxlawbotdev0000000")
        )
        if args.warmup:
            asyncio.run(run_load(base, signer, args.warmup, args.concurrency))
        started = time.monotonic()
        latencies, sent, errors = asyncio.run(run_load(base, signer, args.seconds, args.concurrency))
        elapsed = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    latencies.sort()
    stored = sqlite3.connect(db).execute("SELECT count(*) FROM inbound_messages").fetchone()[0]
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"requests {sent} in {elapsed:.1f}s from {args.concurrency} connections: {sent / elapsed:.0f} req/s")
    print(f"latency p50 {p50:.1f} ms  p99 {p99:.1f} ms  errors {errors}")
    print(f"stored pushes {stored} (warm-up included; every answered push must be stored)")


if __name__ == "__main__":
    main()
