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


async def _stored_push(client: Any, settings: Settings, openid: str, text: str) -> int:
    services = client.app[SERVICES]
    signer = PushSigner(settings.wechat_token, settings.wechat_appid)
    stored = await store(services, to_incoming(parse_xml(signer.sign(signer.text(openid, text)).body)))
    return stored.id


async def _left_recovering(client: Any, inbound_id: int, *, claimed_ago: dt.timedelta, attempts: int) -> None:
    """A worker claimed the push for recovery that long ago and then died (kill -9, power loss)."""
    now = dt.datetime.now(dt.UTC)
    async with client.app[SERVICES].session_factory() as session, session.begin():
        await session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(
                status="recovering",
                received_at=now - claimed_ago - dt.timedelta(minutes=2),
                recovery_claimed_at=now - claimed_ago,
                recovery_attempts=attempts,
            )
        )


async def test_a_push_left_recovering_by_a_worker_that_died_is_still_answered(
    client: Any, settings: Settings, knowledge_holder: Any
) -> None:
    services = client.app[SERVICES]
    orphan = await _stored_push(client, settings, "o_orphan", "联系方式")
    busy = await _stored_push(client, settings, "o_busy", "联系方式")
    await _left_recovering(client, orphan, claimed_ago=dt.timedelta(minutes=6), attempts=1)
    await _left_recovering(client, busy, claimed_ago=dt.timedelta(minutes=1), attempts=1)  # its worker is at it
    ctx = JobContext(settings, services.session_factory)
    assert await recover(ctx, holder=knowledge_holder) == 1
    assert await recover(ctx, holder=knowledge_holder) == 0
    async with services.session_factory() as session:
        (row,) = (await session.execute(select(OutboxMessage))).scalars()
        answered = await session.get(InboundMessage, orphan)
        waiting = await session.get(InboundMessage, busy)
    assert row.openid == "o_orphan" and "电话" in row.payload["content"]
    assert answered is not None and (answered.status, answered.recovery_attempts) == ("deferred", 2)
    assert waiting is not None and waiting.status == "recovering"


async def test_a_push_whose_reruns_keep_dying_is_answered_with_the_apology(
    client: Any, settings: Settings, knowledge_holder: Any
) -> None:
    services = client.app[SERVICES]
    poison = await _stored_push(client, settings, "o_poison", "联系方式")
    await _left_recovering(client, poison, claimed_ago=dt.timedelta(minutes=6), attempts=3)
    assert await recover(JobContext(settings, services.session_factory), holder=knowledge_holder) == 1
    async with services.session_factory() as session:
        (row,) = (await session.execute(select(OutboxMessage))).scalars()
        inbound = await session.get(InboundMessage, poison)
    assert row.openid == "o_poison" and row.payload["content"].startswith("抱歉，系统开了个小差")
    assert inbound is not None and inbound.status == "failed"
