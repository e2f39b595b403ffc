"""Group commit: pushes that arrive while one batch is being written are stored together.

Every test holds the first batch back until the other pushes are waiting, so the batches
are the same on every run and on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.keys import PIPELINE, SERVICES
from bot.services import inbound
from bot.settings import Settings
from bot.storage.models import InboundMessage, KnowledgeGap, Villager
from bot.wechat.pusher import PushReply
from bot.wechat.webhook import BUSY_TEXT
from tests.phone import Phone


class Gate:
    """Holds the store queue's batches until opened; records what each batch held."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.queue = client.app[PIPELINE].queue
        self.opened = asyncio.Event()
        self.batches: list[list[str]] = []
        write_batch = self.queue._write_batch

        async def gated(batch: list[tuple[Any, ...]]) -> None:
            self.batches.append([m.openid + ":" + m.content for m, *_ in batch])
            await self.opened.wait()
            await write_batch(batch)

        monkeypatch.setattr(self.queue, "_write_batch", gated)

    async def open_when(self, ready: Callable[[], bool]) -> None:
        for _ in range(500):
            if ready():
                break
            await asyncio.sleep(0.01)
        assert ready(), "the pushes never reached the store queue"
        self.opened.set()

    def waiting(self) -> int:
        return sum(len(b) for b in self.batches) + len(self.queue._pending)


async def count(client: Any, model: Any, *where: Any) -> int:
    async with client.app[SERVICES].session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_forty_villagers_writing_at_once_are_stored_in_at_most_two_transactions_and_all_answered(
    client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(client, monkeypatch)
    phones = [Phone(client, settings, f"o_villager_{n}") for n in range(40)]
    asking = [asyncio.create_task(p.post(p.signer.sign(p.signer.text(p.openid, "借钱不还怎么办")))) for p in phones]
    await gate.open_when(lambda: gate.waiting() == 40)
    replies: list[PushReply] = await asyncio.gather(*asking)

    assert len(gate.batches) <= 2 and sum(map(len, gate.batches)) == 40
    assert all("借" in r.content for r in replies), [r.content for r in replies if "借" not in r.content]
    assert await count(client, InboundMessage, InboundMessage.status == "replied") == 40
    assert await count(client, Villager, Villager.last_inbound_at.is_not(None)) == 40


async def test_copies_of_a_push_in_one_batch_make_one_row_and_one_answer(
    client: Any, settings: Settings, phone: Phone, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(client, monkeypatch)
    first = asyncio.create_task(phone.say("你好"))  # holds the queue while the copies arrive
    await gate.open_when(lambda: gate.waiting() == 1)
    gate.opened.clear()
    await first
    push = phone.signer.sign(phone.signer.text(phone.openid, "今天天气咋样"))  # unanswerable: leaves a gap
    blocker = Phone(client, settings, "o_other")
    held = asyncio.create_task(blocker.say("你好"))
    await asyncio.sleep(0)
    copies = [asyncio.create_task(phone.post(push)) for _ in range(6)]
    await gate.open_when(lambda: gate.waiting() == 1 + 1 + 6)
    replies = await asyncio.gather(*copies)
    await held

    assert [len(b) for b in gate.batches] == [1, 1, 6]
    assert all(r.status == 200 for r in replies)
    assert sum("转人工" in r.content for r in replies) >= 1
    assert all(r.is_success or "转人工" in r.content for r in replies)
    assert await count(client, InboundMessage, InboundMessage.openid == phone.openid) == 2
    assert await count(client, KnowledgeGap) == 1


async def test_one_push_the_database_refuses_does_not_cost_the_others_their_answer(
    client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(client, monkeypatch)
    store_all = inbound._store_all

    def refuses_the_bad_one(conn: Any, msgs: Any, now: Any, *rest: Any) -> Any:
        if any(m.content == "坏消息" for m in msgs):
            raise RuntimeError("the database refused this push")
        return store_all(conn, msgs, now, *rest)

    monkeypatch.setattr(inbound, "_store_all", refuses_the_bad_one)
    good = [Phone(client, settings, f"o_good_{n}") for n in range(6)]
    bad = Phone(client, settings, "o_bad")
    asking = [asyncio.create_task(p.say("借钱不还怎么办")) for p in good[:3]]
    asking.append(asyncio.create_task(bad.say("坏消息")))
    asking += [asyncio.create_task(p.say("借钱不还怎么办")) for p in good[3:]]
    await gate.open_when(lambda: gate.waiting() == 7)
    answers = await asyncio.gather(*asking)

    together = next(b for b in gate.batches if "o_bad:坏消息" in b)
    assert len(together) > 1
    retried = [b[0] for b in gate.batches if len(b) == 1]
    assert sorted(retried) == sorted(together)  # that batch failed, so each push was stored on its own
    assert answers[3] == BUSY_TEXT  # the villager is asked to send it again
    assert all("借" in a for a in answers[:3] + answers[4:])
    assert await count(client, InboundMessage, InboundMessage.openid == "o_bad") == 0
    assert await count(client, InboundMessage, InboundMessage.openid.like("o_good_%")) == 6


async def test_two_processes_storing_the_same_pushes_in_opposite_order_both_succeed(
    engine: Any, database_url: str
) -> None:
    """Two `lawbot serve` processes on one database get WeChat's copies of the same pushes."""
    from bot.storage.db import create_engine
    from bot.storage.models import utcnow
    from bot.wechat.messages import to_incoming
    from bot.wechat.pusher import PushSigner
    from bot.wechat.xml import parse_xml

    other_process = create_engine(database_url)
    signer = PushSigner("token", "appid")

    async def store(eng: Any, batch: list[Any]) -> list[inbound.Stored]:
        async with eng.connect() as conn:
            stored: list[inbound.Stored] = await conn.run_sync(inbound._store_all, batch, utcnow())
            return stored

    try:
        for _ in range(5):
            pushes = [to_incoming(parse_xml(signer.sign(signer.text(f"o_{n}", "你好")).body)) for n in range(30)]
            a, b = await asyncio.gather(store(engine, pushes), store(other_process, pushes[::-1]))
            assert [s.id for s in a] == [s.id for s in b[::-1]]
            assert sum(s.new for s in a + b) == 30  # each push is new in exactly one process
    finally:
        await other_process.dispose()
