"""A serve process that dies after storing a push: the worker answers it later, once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update

from bot.keys import SERVICES
from bot.services.inbound import store
from bot.services.jobs import JobContext
from bot.services.recovery import recover
from bot.settings import Settings
from bot.storage.models import InboundMessage, OutboxMessage
from bot.wechat.messages import to_incoming
from bot.wechat.pusher import PushSigner
from bot.wechat.xml import parse_xml


async def test_a_push_stored_before_a_crash_is_answered_through_the_outbox(
    client: Any, settings: Settings, knowledge_holder: Any
) -> None:
    services = client.app[SERVICES]
    signer = PushSigner(settings.wechat_token, settings.wechat_appid)
    push = signer.sign(signer.text("o_crash_victim", "联系方式"))
    msg = to_incoming(parse_xml(push.body))
    stored = await store(services, msg)  # ... and then the process died
    async with services.session_factory() as session, session.begin():
        await session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == stored.id)
            .values(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        )
    ctx = JobContext(settings, services.session_factory)
    assert await recover(ctx, holder=knowledge_holder) == 1
    assert await recover(ctx, holder=knowledge_holder) == 0  # never twice
    async with services.session_factory() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
        inbound = await session.get(InboundMessage, stored.id)
    assert row.kind == "cs_text" and row.openid == "o_crash_victim"
    assert "电话" in row.payload["content"]
    assert inbound is not None and inbound.status == "deferred"


async def test_fresh_and_ancient_pushes_are_left_alone(client: Any, settings: Settings, knowledge_holder: Any) -> None:
    services = client.app[SERVICES]
    signer = PushSigner(settings.wechat_token, settings.wechat_appid)
    fresh = await store(services, to_incoming(parse_xml(signer.sign(signer.text("o_a", "你好")).body)))
    old = await store(services, to_incoming(parse_xml(signer.sign(signer.text("o_b", "你好")).body)))
    async with services.session_factory() as session, session.begin():
        await session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == old.id)
            .values(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        )
    assert fresh.new and old.new
    assert await recover(JobContext(settings, services.session_factory), holder=knowledge_holder) == 0
