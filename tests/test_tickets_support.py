"""Shared helpers for the ticket and back-office tests (no tests here).

Import the fixtures you need explicitly, like tests/wechat_fakes.py::

    from tests.test_tickets_support import cheap_hashing, fake_server, settings  # noqa: F401
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from bot.admin import auth
from bot.devtools.fake_wechat import FakeWeChat, FakeWeChatServer
from bot.keys import SERVICES
from bot.services.outbox import OutboxPolicy, OutboxWorker
from bot.settings import Settings
from bot.storage.models import OutboxMessage
from bot.storage.staff import StaffUser
from bot.storage.tickets import Ticket, TicketMessage
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore

PASSWORD = "correct-horse-42"
#: for tests where the database backend is not the point (page rendering, dialogs already covered on both):
#: they run on SQLite only, which keeps the PostgreSQL run of the whole set well under a minute
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CS_SEND = "/cgi-bin/message/custom/send"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_hashing() -> Iterator[None]:
    """argon2 with tiny parameters: the tests check behaviour, not hashing cost."""
    auth.set_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield
    auth.set_hasher(PasswordHasher())


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeWeChatServer]:
    async with FakeWeChatServer(FakeWeChat(record_limit=None)) as server:
        yield server


@pytest.fixture
def settings(base_settings: Settings, database_url: str, fake_server: FakeWeChatServer) -> Settings:
    return base_settings.with_(database_url=database_url, wechat_api_base=fake_server.base_url)


def sessions(client: Any) -> Any:
    return client.app[SERVICES].session_factory


async def add_staff(
    client: Any,
    username: str,
    role: str,
    villages: tuple[int, ...] = (),
    *,
    name: str = "",
    active: bool = True,
    position: str = "",
) -> int:
    from bot.admin import accounts

    async with sessions(client)() as session, session.begin():
        staff = await accounts.create_staff(
            session,
            username=username,
            role=role,
            password_hash=auth.hash_password_sync(PASSWORD),
            village_ids=villages,
            display_name=name or username,
            position=position,
        )
        staff.active = active
        return staff.id


async def all_tickets(client: Any) -> list[Ticket]:
    async with sessions(client)() as session:
        return list((await session.execute(select(Ticket).order_by(Ticket.id))).scalars())


async def thread(client: Any, ticket_id: int) -> list[TicketMessage]:
    async with sessions(client)() as session:
        return list(
            (
                await session.execute(
                    select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)
                )
            ).scalars()
        )


async def outbox(client: Any) -> list[OutboxMessage]:
    async with sessions(client)() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def staff_row(client: Any, username: str) -> StaffUser:
    async with sessions(client)() as session:
        staff: StaffUser = (await session.execute(select(StaffUser).where(StaffUser.username == username))).scalar_one()
        return staff


async def deliver(client: Any, settings: Settings, policy: OutboxPolicy | None = None) -> None:
    """Run the outbox worker until the queue is empty (it sends to the fake WeChat API)."""
    factory = sessions(client)
    api = WeChatClient.from_settings(
        settings, token_store=DbTokenStore(factory), rate_limiter=RateLimiter.disabled(), timeout=2.0
    )
    policy = policy or OutboxPolicy(backoff_base=0.01, idle_sleep=0.01)
    worker = OutboxWorker(settings, factory, api, policy=policy)
    try:
        for _ in range(10):
            if await worker.run_once() == 0:
                break
    finally:
        await api.close()


class Staffer:
    """A staff member's browser: its own cookie jar, the CSRF token picked up from every page."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=10)
        )
        self.csrf = ""

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.session.get(self.url(path), **kwargs) as resp:
            text = await resp.text()
            self._pick(text)
            return resp.status, text

    async def get_raw(self, path: str) -> aiohttp.ClientResponse:
        resp = await self.session.get(self.url(path), allow_redirects=False)
        await resp.read()
        return resp

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> tuple[int, str]:
        if csrf and not self.csrf:
            await self.get("/admin/sign-in")
        form = aiohttp.FormData()
        for key, value in (data or {}).items():
            for v in value if isinstance(value, list | tuple) else [value]:
                form.add_field(key, str(v))
        if csrf:
            form.add_field("_csrf", self.csrf)
        async with self.session.post(self.url(path), data=form) as resp:
            text = await resp.text()
            self._pick(text)
            return resp.status, text

    async def sign_in(self, username: str, password: str = PASSWORD) -> tuple[int, str]:
        await self.get("/admin/sign-in")
        return await self.post("/admin/sign-in", {"username": username, "password": password})

    def _pick(self, text: str) -> None:
        match = _CSRF.search(text)
        if match:
            self.csrf = match.group(1)


@pytest.fixture
async def browsers(client: Any) -> AsyncIterator[Any]:
    """``staffer = await browsers("mediator1")``: a signed-in staff member's browser."""
    opened: list[Staffer] = []

    async def open_as(username: str | None = None) -> Staffer:
        staffer = Staffer(client)
        opened.append(staffer)
        if username is not None:
            status, text = await staffer.sign_in(username)
            assert status == 200 and "退出" in text, f"could not sign in as {username}: {status}\n{text[:500]}"
        return staffer

    yield open_as
    for staffer in opened:
        await staffer.close()
