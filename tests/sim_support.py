"""A ``make run`` server for tests: the app with the fake WeChat API mounted in-process (``serve --dev``), on
the port its settings name — the simulator and the fake's MASSSENDJOBFINISH reports post to that address.

:class:`SimPage` plays the simulator's page: it opens ``/simulator`` (cookie + CSRF token), then uses the JSON
API the page's script uses. Import the fixtures explicitly::

    from tests.sim_support import dev_client, dev_settings, fake, make_dev_client  # noqa: F401
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, unused_port

from bot.devtools.dev_wechat import DEV_WECHAT, mount_dev_wechat
from bot.devtools.dev_wechat import dev_settings as make_dev_settings
from bot.devtools.fake_wechat import FakeWeChat
from bot.keys import SERVICES
from bot.settings import Settings
from tests.test_tickets_support import deliver

_TOKEN = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


@pytest.fixture
def dev_settings(base_settings: Settings, database_url: str) -> Settings:
    return make_dev_settings(base_settings.with_(database_url=database_url, port=unused_port()))


@pytest.fixture
def make_dev_client(make_client: Any) -> Callable[[Settings], Awaitable[Any]]:
    """``await make_dev_client(settings)``: the app as ``lawbot serve --dev`` builds it, on a fresh schema,
    served on ``settings.port`` (the outbox worker is run by the test: :func:`run_worker`)."""

    async def make(settings: Settings) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await make_client(
            settings, mount=lambda app: mount_dev_wechat(app, settings, report_delay=0.05), port=settings.port
        )
        return client

    return make


@pytest.fixture
async def dev_client(make_dev_client: Any, dev_settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await make_dev_client(dev_settings)
    return client


@pytest.fixture
def fake(dev_client: TestClient[Any, Any]) -> FakeWeChat:
    return dev_client.app[DEV_WECHAT]


def sessions(client: TestClient[Any, Any]) -> Any:
    return client.app[SERVICES].session_factory


async def until(check: Callable[[], Awaitable[Any]], seconds: float = 5.0) -> Any:
    """Wait until ``check()`` returns something truthy (a report arrives by itself, a little later)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


class SimPage:
    """The simulator's page, as its script drives the JSON API."""

    def __init__(self, client: TestClient[Any, Any], settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.token = ""
        self.seen: dict[str, int] = {}

    async def open(self) -> str:
        resp = await self.client.get("/simulator")
        html = await resp.text()
        assert resp.status == 200, html
        found = _TOKEN.search(html)
        assert found, "the page carries its CSRF token"
        self.token = found.group(1)
        return html

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self.client.post(path, json=body, headers={"X-CSRF-Token": self.token})

    async def send(self, openid: str, kind: str = "text", text: str = "", **extra: Any) -> dict[str, Any]:
        resp = await self.post("/simulator/api/send", {"openid": openid, "kind": kind, "text": text, **extra})
        data: dict[str, Any] = await resp.json()
        assert resp.status == 200, data
        return data

    async def say(self, openid: str, text: str) -> str:
        """What the bot answered at once (its passive reply), as the chat shows it."""
        data = await self.send(openid, "text", text)
        return "\n".join(e["text"] for e in data["entries"] if e["side"] == "bot")

    async def subscribe(self, openid: str, scene: str = "") -> str:
        data = await self.send(openid, "subscribe", key=scene)
        return "\n".join(e["text"] for e in data["entries"] if e["side"] == "bot")

    async def chat(self, openid: str, after: int = 0) -> list[dict[str, Any]]:
        resp = await self.client.get("/simulator/api/chat", params={"openid": openid, "after": str(after)})
        data = await resp.json()
        assert resp.status == 200, data
        entries: list[dict[str, Any]] = data["entries"]
        return entries

    async def arrived(self, openid: str) -> list[dict[str, Any]]:
        """The entries that arrived since this was last asked (what the polling page adds)."""
        entries = await self.chat(openid, self.seen.get(openid, 0))
        if entries:
            self.seen[openid] = entries[-1]["seq"]
        return entries


async def run_worker(client: TestClient[Any, Any], settings: Settings) -> None:
    """What the in-process worker of ``make run`` does: send the outbox to the (fake) WeChat API."""
    await deliver(client, settings)
