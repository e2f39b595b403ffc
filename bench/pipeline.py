"""The inbound pipeline without HTTP, with time per phase (run by hand, not a test).

Builds the app on a fresh SQLite database, then feeds `Pipeline.handle` typed pushes from
C concurrent tasks (villagers' questions from 1,600 openids) and reports pushes/s and the
time each phase takes per push: store (the group-committed insert), load (villager and
conversation state), dispatch (the handlers), write + commit. `--profile` prints the
functions that take the most time instead (cProfile, which roughly doubles every figure).

    .venv/bin/python bench/pipeline.py --pushes 5000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import functools
import gc
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from webhook_load import QUESTIONS  # noqa: E402  (bench/ is on the path: the same questions as over HTTP)

spent: collections.Counter[str] = collections.Counter()


def timed_sync(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    return wrapper


def timed_async(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    return wrapper


async def run(pushes: int, concurrency: int, profile: bool) -> None:
    from bot.app import create_app
    from bot.keys import PIPELINE
    from bot.settings import Settings
    from bot.wechat.messages import to_incoming
    from bot.wechat.nonces import Seal, digest
    from bot.wechat.pusher import PushSigner
    from bot.wechat.xml import parse_xml

    app = create_app(Settings.from_env())
    contexts = []
    for ctx in app.cleanup_ctx:
        gen = ctx(app)
        await gen.__anext__()
        contexts.append(gen)
    pipeline = app[PIPELINE]
    signer = PushSigner("bench", "bench")

    async def feed(n: int, offset: int) -> float:
        pushes = [signer.sign(signer.text(f"o_{i % 1600}", QUESTIONS[i % 10])) for i in range(offset, offset + n)]
        # with the (timestamp, nonce) each push was signed with, as the webhook hands them over
        msgs = [
            (to_incoming(parse_xml(p.body)), Seal(int(p.query["timestamp"]), p.query["nonce"], digest(p.body)))
            for p in pushes
        ]
        it = iter(msgs)

        async def worker() -> None:
            for msg, seal in it:
                await pipeline.handle(msg, seal)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    await feed(2000, 0)  # warm-up: caches, the first villagers
    gc.collect()
    gc.freeze()
    spent.clear()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    elapsed = await feed(pushes, 2000)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    rate, each = pushes / elapsed, elapsed / pushes * 1e6
    print(f"{pushes} pushes from {concurrency} tasks: {rate:.0f} pushes/s, {each:.0f} µs each")
    if not profiler:
        for label in ("store", "load", "dispatch", "write + commit"):
            print(f"  {label:14s} {spent[label] / pushes * 1e6:6.0f} µs")
    for gen in reversed(contexts):
        with contextlib.suppress(StopAsyncIteration):
            await gen.__anext__()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    db = Path(tempfile.mkdtemp(prefix="lawbot-pipeline-")) / "bench.sqlite3"
    os.environ.update(
        LAWBOT_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
        LAWBOT_INPROCESS_WORKER="false",
        LAWBOT_LOG_LEVEL="WARNING",
        LAWBOT_ENV="development",
    )
    subprocess.run([str(REPO / ".venv" / "bin" / "lawbot"), "db", "upgrade"], check=True, capture_output=True)

    import bot.routing as routing
    import bot.services.inbound as inbound

    if not args.profile:
        inbound._store_all = timed_sync("store", inbound._store_all)  # type: ignore[assignment]
        inbound._load = timed_sync("load", inbound._load)  # type: ignore[assignment]
        inbound._commit = timed_sync("write + commit", inbound._commit)  # type: ignore[assignment]
        routing.Dispatcher.dispatch = timed_async("dispatch", routing.Dispatcher.dispatch)  # type: ignore[method-assign]
    asyncio.run(run(args.pushes, args.concurrency, args.profile))


if __name__ == "__main__":
    main()
