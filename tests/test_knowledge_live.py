"""Live in seconds on every process: two real `lawbot serve` processes on one PostgreSQL database.

A villager's question that the bot hands over is proposed from the knowledge page of one process (a
signed-in admin, CSRF and all), the lawyer publishes it on the other, and within 5 seconds both answer it
through /wechat (signed XML), with no restart. (The polling path on SQLite: tests/test_knowledge_loop.py.)
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from bot.storage.all import load_all
from bot.storage.db import create_engine
from bot.wechat.pusher import PushSigner, post_push
from tests.test_cli_e2e import free_port, wait_until_healthy
from tests.test_knowledge_loop import QUESTION, RIGHT_TITLE, one_click_forms, wait_for_checks
from tests.test_tickets_support import Staffer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
LAWBOT = [sys.executable, "-m", "bot"]
PASSWORD = "pw-for-the-live-test-1"
TOKEN = "live-test-token"


class Server:
    """What Staffer needs of a test client: URLs on a running process."""

    def __init__(self, base: str) -> None:
        self.base = base

    def make_url(self, path: str) -> URL:
        return URL(self.base + path)


async def _fresh_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(load_all().metadata.drop_all)
        await conn.run_sync(load_all().metadata.create_all)
    await engine.dispose()


@pytest.fixture
def two_servers(postgres_database: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    asyncio.run(_fresh_schema(postgres_database))
    env = {
        **os.environ,
        "LAWBOT_DATABASE_URL": postgres_database,
        "LAWBOT_ENV": "development",
        "LAWBOT_INPROCESS_WORKER": "false",
        "LAWBOT_WECHAT_API_BASE": "http://127.0.0.1:9",
        "LAWBOT_WECHAT_TOKEN": TOKEN,
        "LAWBOT_SECRET_KEY": "a-secret-key-for-the-live-test-of-32-chars",
        "LAWBOT_LOG_LEVEL": "WARNING",
    }
    env.pop("LAWBOT_REDIS_URL", None)
    for args in (["chief", "--role", "admin"], ["lawyer", "--role", "admin", "--reviewer", "--name", "王律师"]):
        made = subprocess.run([*LAWBOT, "admin", "create-user", *args, "--password-stdin"], env=env,
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
    servers, bases = [], []
    try:
        for _ in range(2):
            port = free_port()
            servers.append(subprocess.Popen([*LAWBOT, "serve"], env={**env, "LAWBOT_PORT": str(port)},
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            bases.append(f"http://127.0.0.1:{port}")
        for server, base in zip(servers, bases, strict=True):
            wait_until_healthy(server, base, tries=300)
        yield bases[0], bases[1]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            out, _ = server.communicate(timeout=20)
            assert "Traceback" not in out, out


async def ask(session: aiohttp.ClientSession, base: str, openid: str, text: str) -> str:
    signer = PushSigner(TOKEN, "wxlawbotdev0000000", "")
    reply = await post_push(session, f"{base}/wechat", signer, signer.sign(signer.text(openid, text)))
    assert reply.status == 200, reply.raw
    return reply.content


def answered(reply: str) -> bool:
    return "不构成律师意见" in reply and "调委会" in reply and "回复数字" not in reply


async def test_published_on_one_process_answered_by_both_within_5_seconds(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        assert not answered(await ask(http, first, "o_live_1", QUESTION))
        assert not answered(await ask(http, second, "o_live_2", QUESTION))

        chief, lawyer = Staffer(Server(first)), Staffer(Server(second))
        try:
            await chief.sign_in("chief", PASSWORD)
            status, page = await chief.get("/admin/knowledge")
            assert status == 200 and QUESTION in page
            forms = [f for f in one_click_forms(page) if f["text"] == QUESTION]
            chosen = next(f for f in forms if f["title"] == RIGHT_TITLE)
            status, page = await chief.post(chosen["action"], {"text": chosen["text"], "entry": chosen["entry"]})
            assert status == 200 and "已提建议" in page, page[:2000]
            match = re.search(r'action="(/admin/knowledge/proposals/\d+)/', page)
            assert match, page[:3000]
            path = match.group(1)

            await lawyer.sign_in("lawyer", PASSWORD)
            page = await wait_for_checks(lawyer, path)
            assert "通过检查" in page
            status, page = await lawyer.post(path + "/approve", {"note": "现场测试"})
            assert status == 200 and "已发布第 1 版" in page, page[:3000]
            published = time.monotonic()
        finally:
            await chief.close()
            await lawyer.close()

        pending = {first: "o_live_1", second: "o_live_2"}
        seen: dict[str, float] = {}
        while pending:
            for base, openid in list(pending.items()):
                if answered(await ask(http, base, openid, QUESTION)):
                    seen[base] = time.monotonic() - published
                    del pending[base]
            assert time.monotonic() - published < 5.0, f"not answered within 5 s by {list(pending)}"
            await asyncio.sleep(0.1)
        assert max(seen.values()) < 5.0


