"""Fixtures for the WeChat API tests: the fake API on a loopback port and a client pointed at it.

Import them explicitly in a test module::

    from tests import wechat_fakes

    fake_server, fake, client = wechat_fakes.fake_server, wechat_fakes.fake, wechat_fakes.client
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.devtools.fake_wechat import DEV_APPID, DEV_SECRET, FakeWeChat, FakeWeChatServer
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeWeChatServer]:
    async with FakeWeChatServer(FakeWeChat(record_limit=None)) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeWeChatServer) -> FakeWeChat:
    return fake_server.fake


@pytest.fixture
async def client(fake_server: FakeWeChatServer) -> AsyncIterator[WeChatClient]:
    async with WeChatClient(
        DEV_APPID, DEV_SECRET, api_base=fake_server.base_url, rate_limiter=RateLimiter.disabled(), timeout=2.0
    ) as c:
        yield c


def recent(minutes: int = 1) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
