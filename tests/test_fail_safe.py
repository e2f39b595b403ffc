"""Fail safe, in time (security review #5, #13, #14).

- a database that accepts the connection and never answers still gets the villager "系统正忙"
  within WeChat's 5 seconds;
- with the database down, the back-office and the public campaign archive show a plain Chinese
  page (503), never aiohttp's bare 500;
- every route of the app, walked with ids past 2^63, dates at the ends of the calendar, month
  9999-12 and page 10^20, answers 4xx (or a page), never a 5xx.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.app import create_app
from bot.settings import Settings
from bot.wechat.pusher import PushSigner
from bot.wechat.webhook import BUSY_TEXT
from tests import test_tickets_support as support
from tests.test_tickets_support import Staffer, add_staff

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
browsers = support.browsers


@pytest.fixture
async def silent_database() -> AsyncIterator[int]:
    """A 'PostgreSQL server' that accepts connections and never says a word (a hung server, a partition)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


async def start(aiohttp_client: Any, settings: Settings, knowledge_holder: Any) -> Any:
    """The app on a database it cannot use: no schema set-up, it must still start and answer."""
    return await aiohttp_client(create_app(settings, knowledge=knowledge_holder))


async def test_a_hung_database_still_gets_the_villager_an_answer_within_five_seconds(
    aiohttp_client: Any, base_settings: Settings, knowledge_holder: Any, silent_database: int
) -> None:
    settings = base_settings.with_(database_url=f"postgresql+asyncpg://lawbot@127.0.0.1:{silent_database}/lawbot")
    client = await start(aiohttp_client, settings, knowledge_holder)
    signer = PushSigner.for_settings(settings)
    for text in ("欠钱不还怎么办", "我想离婚"):  # the second waits behind the first's hung connection
        push = signer.sign(signer.text("o_dbhang_1", text))
        started = time.monotonic()
        resp = await client.post("/wechat", params=push.query, data=push.body)
        took = time.monotonic() - started
        assert resp.status == 200
        assert signer.open_reply(200, await resp.text(), encrypted=False).content == BUSY_TEXT
        assert took < 4.5, f"answered after {took:.1f}s: WeChat gives up at 5 s"
    started = time.monotonic()
    resp = await client.get("/healthz")
    assert resp.status == 503 and time.monotonic() - started < 4.5


@pytest.mark.parametrize("path", ["/campaigns", "/campaigns/1"])
async def test_the_public_archive_says_so_in_chinese_when_the_database_is_down(
    aiohttp_client: Any, base_settings: Settings, knowledge_holder: Any, closed_port: int, path: str
) -> None:
    settings = base_settings.with_(database_url=f"postgresql+asyncpg://lawbot@127.0.0.1:{closed_port}/lawbot")
    client = await start(aiohttp_client, settings, knowledge_holder)
    resp = await client.get(path)
    text = await resp.text()
    assert resp.status == 503
    assert "暂时" in text and "Server got itself in trouble" not in text
    assert resp.content_type == "text/html"


async def test_the_back_office_says_so_in_chinese_when_the_database_is_down(
    aiohttp_client: Any, base_settings: Settings, knowledge_holder: Any, closed_port: int
) -> None:
    settings = base_settings.with_(database_url=f"postgresql+asyncpg://lawbot@127.0.0.1:{closed_port}/lawbot")
    client = await start(aiohttp_client, settings, knowledge_holder)
    browser = Staffer(client)
    try:
        status, page = await browser.get("/admin/sign-in")
        assert status == 200  # the form needs no database
        status, page = await browser.post("/admin/sign-in", {"username": "adm1", "password": "x" * 12})
        assert status == 503
        assert "数据库" in page and "Server got itself in trouble" not in page
    finally:
        await browser.close()


# ---------------------------------------------------------------- every route, out-of-range values
HUGE_ID = str(2**64 + 7)  # past PostgreSQL's bigint and SQLite's integer
QUERIES = [
    {"page": str(10**20), "day": "9999-12-31", "start": "9999-12-31", "month": "9999-12", "days": str(10**20)},
    {"page": "-1", "day": "0001-01-01", "start": "0001-01-01", "month": "0001-01", "place": HUGE_ID}
    | {"signed_on": "0001-01-01", "scheduled_at": "0001-01-01T00:00", "follow_up_at": "0001-01-01T00:00"},
    {"day": "2026-02-30", "month": "2026-13", "village": HUGE_ID, "assignee": HUGE_ID, "status": "x" * 300},
    {"place": HUGE_ID, "service": HUGE_ID, "day": "9999-12-31", "calendar": "9999-12"},
]
FORM = {
    "signed_on": "9999-12-31",
    "day": "9999-12-31",
    "start": "9999-12-31T23:59",
    "scheduled_at": "9999-12-31T23:59",
    "follow_up_at": "9999-12-31T23:59",
    "starts_at": "9999-12-31T23:59",
    "place_id": HUGE_ID,
    "service_id": HUGE_ID,
    "village": HUGE_ID,
    "village_id": HUGE_ID,
    "assignee": HUGE_ID,
    "staff_id": HUGE_ID,
    "capacity": HUGE_ID,
    "slot_minutes": HUGE_ID,
    "sort_order": HUGE_ID,
    "extra_capacity": HUGE_ID,
    "month": "9999-12",
    "page": str(10**20),
    "id": HUGE_ID,
}
SKIP = {"wechat-receive", "wechat-verify", "admin-logout", "simulator-send"}


def _paths(route: web.AbstractRoute) -> list[str]:
    info = route.resource.get_info() if route.resource is not None else {}
    if "path" in info:
        return [str(info["path"])]
    pattern = str(info.get("formatter", ""))
    if not pattern:
        return []
    names = re.findall(r"\{(\w+)\}", pattern)
    variants = []
    for value_of in (lambda n: HUGE_ID if n.endswith("id") or n == "id" else "o_nobody", lambda n: "0"):
        variants.append(pattern.format(**{n: value_of(n) for n in names}))
    return variants


async def test_no_route_answers_5xx_to_out_of_range_ids_dates_months_and_pages(
    client: Any, browsers: Any, settings: Settings
) -> None:
    await add_staff(client, "chief", "admin")
    chief: Staffer = await browsers("chief")
    failures = []
    checked = 0
    for route in client.app.router.routes():
        if route.name in SKIP or route.method not in ("GET", "POST"):
            continue
        if route.resource is not None and "prefix" in route.resource.get_info():  # static files, sub-apps
            continue
        for path in _paths(route):
            for query in QUERIES:
                if route.method == "GET":
                    url = path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
                    async with chief.session.get(chief.url(url), allow_redirects=False) as resp:
                        status = resp.status
                        await resp.read()
                else:
                    url = path
                    status, _ = await chief.post(path, {**FORM, **query})
                checked += 1
                if status >= 500:
                    failures.append(f"{route.method} {url} -> {status}")
    assert checked > 200
    assert not failures, "\n".join(failures)
    status, _ = await chief.get("/admin/tickets")
    assert status == 200  # still signed in: nothing above broke the session
