"""The outbox: enqueue in the caller's transaction, claim/send/mark, retries, the 48-hour window, crash safety."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.services.outbox import (
    HELD_NOTICE_TEXT,
    OutboxPolicy,
    OutboxWorker,
    claims,
    client_msg_id,
    enqueue,
    release_held,
    run_worker,
)
from bot.settings import Settings
from bot.storage.models import OutboxMessage, Villager, utcnow
from bot.wechat.api import WeChatClient, text_message
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore
from tests import wechat_fakes

fake_server = wechat_fakes.fake_server

REPO = Path(__file__).resolve().parent.parent
CS = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
FAST = OutboxPolicy(backoff_base=0.01, backoff_max=0.02, idle_sleep=0.02)


@pytest.fixture
def settings(base_settings: Settings, database_url: str, fake_server: FakeWeChatServer) -> Settings:
    return base_settings.with_(
        database_url=database_url, wechat_api_base=fake_server.base_url, wechat_template_id="TPL-NEW-REPLY"
    )


def make_worker(settings: Settings, session_factory: Any, policy: OutboxPolicy = FAST, **kwargs: Any) -> OutboxWorker:
    client = WeChatClient.from_settings(
        settings, token_store=DbTokenStore(session_factory), rate_limiter=RateLimiter.disabled(), timeout=2.0
    )
    return OutboxWorker(settings, session_factory, client, policy=policy, **kwargs)


async def add_villager(session_factory: Any, openid: str, hours_ago: float | None = 0.1) -> None:
    async with session_factory() as s, s.begin():
        last = utcnow() - dt.timedelta(hours=hours_ago) if hours_ago is not None else None
        s.add(Villager(openid=openid, last_inbound_at=last))


async def put(
    session_factory: Any,
    key: str,
    *,
    kind: str = "cs_text",
    openid: str | None = "o1",
    source: str | None = None,
    **payload: Any,
) -> int:
    async with session_factory() as s, s.begin():
        row = await enqueue(
            s, kind=kind, openid=openid, payload=payload or {"content": key}, idempotency_key=key, source=source
        )
        return row.id


async def make_due(session_factory: Any) -> None:
    """Time passes: every waiting row is due now."""
    async with session_factory() as s, s.begin():
        await s.execute(update(OutboxMessage).where(OutboxMessage.status == "pending").values(next_attempt_at=utcnow()))


async def rows(session_factory: Any) -> dict[str, OutboxMessage]:
    async with session_factory() as s:
        return {r.idempotency_key: r for r in (await s.execute(select(OutboxMessage))).scalars()}


async def dialect_of(session_factory: Any) -> str:
    async with session_factory() as s:
        return str(s.get_bind().dialect.name)


async def drain(worker: OutboxWorker, rounds: int = 20) -> None:
    for _ in range(rounds):
        if await worker.run_once() == 0:
            return


# ---------------------------------------------------------------- enqueue
async def test_enqueue_is_idempotent_and_uses_the_callers_transaction(session_factory: Any) -> None:
    async with session_factory() as s, s.begin():
        a = await enqueue(
            s, kind="cs_text", openid="o1", payload={"content": "hi"}, idempotency_key="k1", source="inbound:1"
        )
        b = await enqueue(s, kind="cs_text", openid="o1", payload={"content": "other"}, idempotency_key="k1")
        assert a.id == b.id
        assert b.payload == {"content": "hi"}
        assert a.status == "pending"
    async with session_factory() as s:
        await enqueue(s, kind="cs_text", openid="o2", payload={"content": "x"}, idempotency_key="k2")
        await s.rollback()  # enqueue never commits: the caller's rollback removes the row
    async with session_factory() as s, s.begin():
        again = await enqueue(s, kind="cs_text", openid="o1", payload={"content": "hi"}, idempotency_key="k1")
        assert again.id == a.id
    assert set(await rows(session_factory)) == {"k1"}


@pytest.mark.parametrize(
    ("kind", "openid", "payload", "message"),
    [
        ("sms", "o1", {}, "unknown outbox kind"),
        ("cs_text", None, {"content": "x"}, "needs an openid"),
        ("cs_text", "o1", {}, "needs content"),
        ("mass_openids", None, {"message": {}}, "needs openids"),
        ("cs_news", "o1", {}, "articles"),
    ],
)
async def test_enqueue_validates(
    session_factory: Any, kind: str, openid: str | None, payload: dict[str, Any], message: str
) -> None:
    async with session_factory() as s:
        with pytest.raises(ValueError, match=message):
            await enqueue(s, kind=kind, openid=openid, payload=payload, idempotency_key="k")


# ---------------------------------------------------------------- sending
async def test_sends_and_marks_sent(settings: Settings, session_factory: Any, fake_server: FakeWeChatServer) -> None:
    await add_villager(session_factory, "o1")
    for i in range(5):
        await put(session_factory, f"m{i}")
    async with session_factory() as s, s.begin():
        await enqueue(
            s,
            kind="cs_text",
            openid="o1",
            payload={"content": "later"},
            idempotency_key="later",
            not_before=utcnow() + dt.timedelta(hours=1),
        )
    worker = make_worker(settings, session_factory)
    try:
        assert await worker.run_once() == 5
        assert await worker.run_once() == 0
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert [state[f"m{i}"].status for i in range(5)] == ["sent"] * 5
    assert state["m0"].attempts == 1
    assert state["m0"].sent_at is not None
    assert state["m0"].claimed_by is None
    assert state["later"].status == "pending"
    # messages to one villager go in order
    assert [c.body["text"]["content"] for c in fake_server.fake.calls_to(CS)] == [f"m{i}" for i in range(5)]


async def test_every_kind(settings: Settings, session_factory: Any, fake_server: FakeWeChatServer) -> None:
    await add_villager(session_factory, "o1")
    fake = fake_server.fake
    fake.tags[7] = "观音寺村"
    await put(
        session_factory,
        "news",
        kind="cs_news",
        articles=[{"title": "t", "description": "d", "url": "https://x.test", "picurl": ""}, {"title": "second"}],
    )
    await put(session_factory, "img", kind="cs_image", media_id="M1")
    await put(session_factory, "tpl", kind="template", template_id="T1", data={"first": "您好"})
    await put(session_factory, "sub", kind="subscribe", template_id="S1", data={"thing1": "x"})
    await put(
        session_factory, "campaign:1:village:7", kind="mass_tag", openid=None, message=text_message("普法"), tag_id=7
    )
    await put(
        session_factory,
        "mass-list",
        kind="mass_openids",
        openid=None,
        message=text_message("普法"),
        openids=["o1", "o2"],
    )
    await put(session_factory, "preview", kind="mass_preview", message=text_message("预览"))
    worker = make_worker(settings, session_factory)
    try:
        await drain(worker)
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert {k: r.status for k, r in state.items()} == dict.fromkeys(state, "sent")
    assert [a["title"] for a in fake.calls_to(CS)[0].body["news"]["articles"]] == ["t"]  # WeChat takes one
    assert fake.calls_to(TEMPLATE)[0].body["client_msg_id"] == "tpl"
    (sendall,) = fake.calls_to("/cgi-bin/message/mass/sendall")
    assert sendall.body["clientmsgid"] == "campaign:1:village:7"
    assert sendall.body["filter"] == {"is_to_all": False, "tag_id": 7}
    assert fake.calls_to("/cgi-bin/message/mass/send")[0].body["touser"] == ["o1", "o2"]
    assert len(client_msg_id("长" * 100)) <= 64


async def test_duplicate_clientmsgid_counts_as_sent(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    fake_server.fake.clientmsgids["mass-1"] = 4242  # WeChat already has this job (the first worker died after sending)
    await put(
        session_factory, "mass-1", kind="mass_openids", openid=None, message=text_message("x"), openids=["a", "b"]
    )
    worker = make_worker(settings, session_factory)
    try:
        await drain(worker)
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["mass-1"]
    assert row.status == "sent"
    assert "4242" in (row.last_error or "")


# ---------------------------------------------------------------- failures
async def test_retry_with_backoff_then_failed(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    await put(session_factory, "m")
    fake_server.fake.add_fault("errcode", count=10, errcode=-1, path=CS)
    policy = OutboxPolicy(max_attempts=3, backoff_base=60.0, jitter=0.5)
    worker = make_worker(settings, session_factory, policy)
    try:
        await worker.run_once()
        row = (await rows(session_factory))["m"]
        assert row.status == "pending"
        assert row.attempts == 1
        assert "系统繁忙" in (row.last_error or "")
        wait = (row.next_attempt_at - utcnow()).total_seconds()
        assert 25 < wait <= 90
        for _ in range(2):  # make it due again
            async with session_factory() as s, s.begin():
                await s.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
            await worker.run_once()
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["m"]
    assert row.status == "failed"
    assert row.attempts == 3
    assert "gave up after 3 attempts" in (row.last_error or "")
    backoffs = [policy.backoff(n) for n in (1, 2, 3) for _ in range(20)]
    assert all(30 <= b <= 360 for b in backoffs)


async def test_a_call_that_may_have_reached_wechat_is_not_repeated_before_it_could_have_completed(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """A timeout or an HTTP 5xx: WeChat may have carried the call out, so the retry waits the client
    timeout (2 s here) plus the margin from the start of that call — not the short backoff."""
    await add_villager(session_factory, "o1")
    await put(session_factory, "m", source="ticket:1")
    fake_server.fake.add_fault("http", status=502, path=CS)
    worker = make_worker(settings, session_factory, OutboxPolicy(backoff_base=0.01, timeout_margin=20))
    try:
        started = utcnow()
        await worker.run_once()
        row = (await rows(session_factory))["m"]
        assert row.status == "pending"
        assert row.next_attempt_at >= started + dt.timedelta(seconds=22)
        assert "可能已送达" in (row.last_error or "") and "502" in (row.last_error or "")

        fake_server.fake.add_fault("sleep", seconds=3, path=CS)  # longer than the client timeout
        await make_due(session_factory)
        started = utcnow()
        await worker.run_once()
        row = (await rows(session_factory))["m"]
        assert row.status == "pending"
        assert row.next_attempt_at >= started + dt.timedelta(seconds=22)
        assert "timeout" in (row.last_error or "")
        assert await worker.run_once() == 0  # not due: no second call while the first may still land
        await asyncio.sleep(1.5)
        # the 502, then the stalled call, which WeChat (the fake) carried out after all
        assert [(c.status, c.errcode) for c in fake_server.fake.calls_to(CS)] == [(502, 0), (200, 0)]
        await make_due(session_factory)
        await worker.run_once()
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["m"]
    assert row.status == "sent"
    assert row.attempts == 3


async def test_a_refused_connection_is_retried_after_the_usual_backoff(
    settings: Settings, session_factory: Any
) -> None:
    """Nothing reached WeChat (connection refused): no reason to wait for a call to complete."""
    await add_villager(session_factory, "o1")
    await put(session_factory, "m")
    closed_port = settings.with_(wechat_api_base="http://127.0.0.1:9")
    worker = make_worker(closed_port, session_factory, OutboxPolicy(backoff_base=1.0, jitter=0.0))
    try:
        started = utcnow()
        await worker.run_once()
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["m"]
    assert row.status == "pending"
    assert row.attempts == 1
    assert row.next_attempt_at <= started + dt.timedelta(seconds=3)
    assert "可能已送达" not in (row.last_error or "")


async def test_permanent_error_fails_with_reason(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    fake_server.fake.unsubscribed.add("o1")
    await put(session_factory, "m")
    worker = make_worker(settings, session_factory)
    try:
        await worker.run_once()
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["m"]
    assert row.status == "failed"
    assert row.last_error == "村民已取消关注，无法发送 / the user has unsubscribed (43004)"


# ---------------------------------------------------------------- WeChat's quotas
async def test_daily_quota_waits_for_midnight_china_time_and_is_never_a_failed_attempt(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """45009 on every customer-service send for the rest of the day: a staff reply, an answer to a
    push and a campaign follow-up all wait for the reset, however often they meet the quota."""
    from bot.services.outbox.policy import CHINA_TZ, next_china_midnight

    for openid in ("o1", "o2", "o3"):
        await add_villager(session_factory, openid)
    await put(session_factory, "staff-reply", openid="o1", source="ticket:1")
    await put(session_factory, "answer", openid="o2", source="inbound:7")
    await put(session_factory, "follow-up", openid="o3", source="campaign:2")
    fake_server.fake.add_fault("errcode", count=1000, errcode=45009, path=CS)
    policy = OutboxPolicy(max_attempts=2, backoff_base=0.01)
    worker = make_worker(settings, session_factory, policy)
    try:
        now = utcnow()
        await worker.run_once()
        assert fake_server.fake.counts[CS] == 3  # the three went out together
        midnight = next_china_midnight(now)
        assert midnight.astimezone(CHINA_TZ).time() == dt.time(0, 0)
        assert dt.timedelta(0) < midnight - now <= dt.timedelta(hours=24)
        for row in (await rows(session_factory)).values():
            assert row.status == "pending"
            assert row.attempts == 0
            assert midnight + dt.timedelta(seconds=60) <= row.next_attempt_at <= midnight + dt.timedelta(seconds=361)
            assert "45009" in (row.last_error or "") and "零点" in (row.last_error or "")
        for _ in range(10):  # however many times the rows come round during the outage
            await make_due(session_factory)
            assert await worker.run_once() == 3
        state = await rows(session_factory)
        assert {r.status for r in state.values()} == {"pending"}
        assert {r.attempts for r in state.values()} == {0}
        assert fake_server.fake.counts[CS] == 3  # the refusal closed the API for this worker until midnight
        assert all("零点" in (r.last_error or "") for r in state.values())

        fake_server.fake.faults.clear()  # midnight: the quota is back
        await make_due(session_factory)
        fresh = make_worker(settings, session_factory, policy)
        await drain(fresh)
        await fresh.client.close()
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert {k: r.status for k, r in state.items()} == dict.fromkeys(state, "sent")


@pytest.mark.parametrize("errcode", [45011, 45066])
async def test_per_minute_limits_wait_a_minute(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer, errcode: int
) -> None:
    await add_villager(session_factory, "o1")
    await put(session_factory, "m", source="ticket:1")
    fake_server.fake.add_fault("errcode", errcode=errcode, path=CS)
    worker = make_worker(settings, session_factory, OutboxPolicy(backoff_base=0.01))
    try:
        now = utcnow()
        await worker.run_once()
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["m"]
    assert row.status == "pending"
    assert row.attempts == 0
    assert now + dt.timedelta(seconds=59) <= row.next_attempt_at <= now + dt.timedelta(seconds=77)
    assert str(errcode) in (row.last_error or "")


async def test_staff_replies_keep_retrying_transient_errors_campaign_messages_give_up(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    await add_villager(session_factory, "o2")
    await put(session_factory, "staff-reply", openid="o1", source="ticket:1")
    await put(session_factory, "follow-up", openid="o2", source="campaign:2")
    fake_server.fake.add_fault("errcode", count=1000, errcode=-1, path=CS)  # WeChat busy for a long time
    worker = make_worker(settings, session_factory, OutboxPolicy(max_attempts=2, backoff_base=0.01))
    try:
        for _ in range(5):
            await make_due(session_factory)
            await worker.run_once()
        state = await rows(session_factory)
        assert (state["follow-up"].status, state["follow-up"].attempts) == ("failed", 2)
        assert (state["staff-reply"].status, state["staff-reply"].attempts) == ("pending", 5)
        async with session_factory() as s, s.begin():  # ... until 47 hours after it was written
            await s.execute(update(OutboxMessage).values(created_at=utcnow() - dt.timedelta(hours=47, minutes=1)))
        await make_due(session_factory)
        await worker.run_once()
    finally:
        await worker.client.close()
    row = (await rows(session_factory))["staff-reply"]
    assert row.status == "failed"
    assert "gave up after 6 attempts" in (row.last_error or "")


# ---------------------------------------------------------------- the 48-hour window
async def test_outside_window_held_and_notified_once(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "old", hours_ago=49)
    await put(session_factory, "r1", openid="old")
    await put(session_factory, "r2", openid="old")
    worker = make_worker(settings, session_factory)
    try:
        await drain(worker)
        state = await rows(session_factory)
        assert state["r1"].status == state["r2"].status == "held"
        assert state["r1"].attempts == 0
        assert "48" in (state["r1"].last_error or "")
        notices = [r for r in state.values() if r.kind == "template"]
        assert len(notices) == 1
        assert notices[0].status == "sent"
        assert fake_server.fake.counts[CS] == 0
        (call,) = fake_server.fake.calls_to(TEMPLATE)
        assert call.body["template_id"] == "TPL-NEW-REPLY"
        assert HELD_NOTICE_TEXT in str(call.body["data"])

        # the villager writes: the webhook updates last_inbound_at and releases held messages
        async with session_factory() as s, s.begin():
            await s.execute(update(Villager).where(Villager.openid == "old").values(last_inbound_at=utcnow()))
            assert await release_held(s, "old") == 2
        await drain(worker)
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert state["r1"].status == state["r2"].status == "sent"
    assert [c.body["text"]["content"] for c in fake_server.fake.calls_to(CS)] == ["r1", "r2"]


@pytest.mark.parametrize("errcode", [45015, 45047])
async def test_45015_from_wechat_is_held(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer, errcode: int
) -> None:
    await put(session_factory, "m", openid="unknown")  # no villager row: we try, WeChat refuses
    fake_server.fake.add_fault("errcode", errcode=errcode, path=CS)
    worker = make_worker(settings, session_factory)
    try:
        await drain(worker)
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert state["m"].status == "held"
    assert str(errcode) in (state["m"].last_error or "")
    assert "held-notice:unknown:never" in state


async def test_villager_writes_while_a_message_is_in_flight(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """WeChat refuses (45015) while the villager is writing: release_held finds nothing held yet, so the
    worker must not hold the row."""
    await add_villager(session_factory, "o1", hours_ago=47)
    await put(session_factory, "m")
    fake_server.fake.latency = 0.3
    fake_server.fake.add_fault("errcode", errcode=45015, path=CS)
    worker = make_worker(settings, session_factory)
    try:
        batch = asyncio.create_task(worker.run_once())
        await asyncio.sleep(0.1)
        async with session_factory() as s, s.begin():  # the webhook
            await s.execute(update(Villager).where(Villager.openid == "o1").values(last_inbound_at=utcnow()))
            assert await release_held(s, "o1") == 0  # still 'sending'
        await batch
        row = (await rows(session_factory))["m"]
        assert row.status == "pending"
        assert row.attempts == 0
        fake_server.fake.latency = 0
        await drain(worker)
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert state["m"].status == "sent"
    assert list(state) == ["m"]  # no notification


async def test_held_without_template_id(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "old", hours_ago=None)  # never wrote
    await put(session_factory, "m", openid="old")
    worker = make_worker(settings.with_(wechat_template_id=""), session_factory)
    try:
        await drain(worker)
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert list(state) == ["m"]
    assert state["m"].status == "held"
    assert "LAWBOT_WECHAT_TEMPLATE_ID" in (state["m"].last_error or "")


# ---------------------------------------------------------------- concurrency and crashes
LEASE = OutboxPolicy(lease=4.0, renew_every=0.5, reclaim_every=0.1, clock_margin=0.5, idle_sleep=0.05)


async def test_default_claims_of_a_dead_worker_are_taken_over_within_a_minute() -> None:
    policy = OutboxPolicy()
    assert policy.takeover_within() <= 60
    assert policy.renew_every * 3 <= policy.lease - policy.clock_margin  # a missed renewal is no takeover


async def test_a_dead_workers_claims_are_taken_over_within_the_lease(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """A worker claims a batch and dies (it never sends, never renews): another worker delivers the
    rows once the claim runs out, and not before."""
    await add_villager(session_factory, "o1")
    for i in range(5):
        await put(session_factory, f"m{i}")
    dead = await claims.claim(session_factory, dialect=await dialect_of(session_factory), worker_id="dead",
                              batch_size=100, lease=LEASE.lease)  # fmt: skip
    assert len(dead) == 5
    loop = asyncio.get_running_loop()
    claimed_at = loop.time()
    worker = make_worker(settings, session_factory, LEASE)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(LEASE.lease - 1.0)
        assert fake_server.fake.counts[CS] == 0  # the claim still holds
        while fake_server.fake.counts[CS] < 5 and loop.time() - claimed_at < 30:
            await asyncio.sleep(0.02)
        took = loop.time() - claimed_at
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await worker.client.close()
    assert LEASE.lease - 1.0 <= took <= LEASE.takeover_within() + 1.0
    assert worker.stats.reclaimed == 5
    state = await rows(session_factory)
    assert {r.status for r in state.values()} == {"sent"}
    assert [r.attempts for r in state.values()] == [2] * 5
    assert [c.body["text"]["content"] for c in fake_server.fake.calls_to(CS)] == [f"m{i}" for i in range(5)]


async def test_a_live_worker_keeps_its_claim_while_a_slow_batch_is_in_flight(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    for i in range(10):
        await put(session_factory, f"m{i}")  # one villager: sent one after the other, 4 s in all
    fake_server.fake.latency = 0.4
    slow, other = make_worker(settings, session_factory, LEASE), make_worker(settings, session_factory, LEASE)
    batch = asyncio.create_task(slow.run_once())
    stop = asyncio.Event()
    watcher = asyncio.create_task(other.run(stop))
    try:
        assert await asyncio.wait_for(batch, 20) == 10
    finally:
        stop.set()
        await asyncio.wait_for(watcher, 10)
        await slow.client.close()
        await other.client.close()
    assert other.stats.reclaimed == 0
    contents = [c.body["text"]["content"] for c in fake_server.fake.calls_to(CS)]
    assert contents == [f"m{i}" for i in range(10)]  # each once, in order
    assert {r.status for r in (await rows(session_factory)).values()} == {"sent"}


async def test_a_row_wechat_accepted_is_not_sent_again_after_its_worker_died(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """The worker dies mid-batch: the message WeChat already accepted was recorded at once, so the
    worker that takes the batch over sends only the rest."""
    await add_villager(session_factory, "o1")
    for key in ("first", "second", "third"):
        await put(session_factory, key)
    fake_server.fake.latency = 0.5
    doomed = make_worker(settings, session_factory, LEASE)
    dying = asyncio.create_task(doomed.run_once())
    try:
        for _ in range(200):
            if (await rows(session_factory))["first"].status == "sent":
                break
            await asyncio.sleep(0.02)
        assert (await rows(session_factory))["first"].status == "sent"  # recorded while "second" is in flight
        dying.cancel()  # ... and the worker dies
        with contextlib.suppress(asyncio.CancelledError):
            await dying
    finally:
        await doomed.client.close()
    state = await rows(session_factory)
    assert (state["second"].status, state["third"].status) == ("sending", "sending")
    fake_server.fake.latency = 0
    heir = make_worker(settings, session_factory, LEASE)
    stop = asyncio.Event()
    task = asyncio.create_task(heir.run(stop))
    try:
        for _ in range(500):
            if {r.status for r in (await rows(session_factory)).values()} == {"sent"}:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await heir.client.close()
    assert heir.stats.reclaimed == 2
    received = collections.Counter(c.body["text"]["content"] for c in fake_server.fake.calls_to(CS))
    assert received["first"] == 1
    assert received["third"] == 1
    # "second" was in flight when the worker died: WeChat may have it twice (the documented case)
    assert 1 <= received["second"] <= 2


async def test_a_worker_that_cannot_renew_its_claim_stops_sending_before_it_runs_out(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is unreachable for the renewal (or the process was frozen): the worker must not
    start a call that could still be running when another worker takes the row over."""
    await add_villager(session_factory, "o1")
    for key in ("a", "b", "c"):
        await put(session_factory, key)

    async def renewal_fails(*_args: Any, **_kwargs: Any) -> set[int]:
        raise OSError("database unreachable")

    monkeypatch.setattr(claims, "renew", renewal_fails)
    fake_server.fake.latency = 1.8  # 4 s of claim, 0.5 s margin, 2 s client timeout: only "a" may start
    worker = make_worker(settings, session_factory, LEASE)
    try:
        assert await worker.run_once() == 3
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert state["a"].status == "sent"
    assert [(state[k].status, state[k].attempts) for k in ("b", "c")] == [("pending", 0), ("pending", 0)]
    assert [c.body["text"]["content"] for c in fake_server.fake.calls_to(CS)] == ["a"]
    assert worker.stats.released == 2


async def test_a_call_waiting_for_the_rate_limit_is_not_cut_off_while_its_claim_is_renewed(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """Five villagers, one message a second: the last call waits 4 s for its turn, longer than the
    claim was sure to last when it started; the renewals move its cut-off on."""
    from bot.wechat.ratelimit import parse_rates

    for i in range(5):
        await add_villager(session_factory, f"o{i}")
        await put(session_factory, f"m{i}", openid=f"o{i}")
    limiter = RateLimiter(parse_rates("cs=1/1s burst 1"))
    client = WeChatClient.from_settings(
        settings, token_store=DbTokenStore(session_factory), rate_limiter=limiter, timeout=2.0
    )
    worker = OutboxWorker(settings, session_factory, client, policy=LEASE)
    try:
        assert await worker.run_once() == 5
    finally:
        await client.close()
    state = await rows(session_factory)
    assert [(state[f"m{i}"].status, state[f"m{i}"].attempts) for i in range(5)] == [("sent", 1)] * 5
    assert fake_server.fake.counts[CS] == 5


async def test_expired_claims_are_taken_over_and_a_poison_row_ends(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    for key in ("m", "poison", "patient", "alive"):
        await put(session_factory, key, source="ticket:1" if key == "patient" else None)
    async with session_factory() as s, s.begin():
        expired = utcnow() - dt.timedelta(seconds=1)
        await s.execute(
            update(OutboxMessage).values(
                status="sending", claimed_by="dead-worker", next_attempt_at=expired, attempts=1
            )
        )
        await s.execute(
            update(OutboxMessage).where(OutboxMessage.idempotency_key.in_(["poison", "patient"])).values(attempts=8)
        )
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.idempotency_key == "alive")
            .values(claimed_by="live-worker", next_attempt_at=utcnow() + dt.timedelta(seconds=30))
        )
    worker = make_worker(settings, session_factory, OutboxPolicy(max_attempts=8))
    try:
        await drain(worker)
    finally:
        await worker.client.close()
    state = await rows(session_factory)
    assert (state["m"].status, state["m"].attempts) == ("sent", 2)
    assert state["poison"].status == "failed"
    assert "接手" in (state["poison"].last_error or "")
    assert state["patient"].status == "sent"  # a staff reply is not given up after 8 tries
    assert (state["alive"].status, state["alive"].claimed_by) == ("sending", "live-worker")
    assert worker.stats.reclaimed == 3


async def test_two_workers_never_send_a_row_twice(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    async with session_factory() as s, s.begin():
        for i in range(400):
            await enqueue(s, kind="cs_text", openid=f"o{i % 50}", payload={"content": f"m{i}"}, idempotency_key=f"m{i}")
    policy = OutboxPolicy(batch_size=50, idle_sleep=0.01)
    workers = [make_worker(settings, session_factory, policy) for _ in range(2)]
    stop = asyncio.Event()

    async def stop_when_done() -> None:
        while fake_server.fake.counts[CS] < 400:
            await asyncio.sleep(0.02)
        stop.set()

    try:
        await asyncio.wait_for(asyncio.gather(stop_when_done(), *(w.run(stop) for w in workers)), 30)
    finally:
        for w in workers:
            await w.client.close()
    contents = collections.Counter(c.body["text"]["content"] for c in fake_server.fake.calls_to(CS))
    assert len(contents) == 400
    assert max(contents.values()) == 1
    assert all(w.stats.sent > 0 for w in workers)
    async with session_factory() as s:
        assert await s.scalar(select(func.count()).where(OutboxMessage.status == "sent")) == 400


async def test_run_worker_from_settings(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    await add_villager(session_factory, "o1")
    await put(session_factory, "m")
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop, policy=FAST, rate_limiter=RateLimiter.disabled()))
    for _ in range(200):
        if fake_server.fake.counts[CS]:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert (await rows(session_factory))["m"].status == "sent"


CRASH_WORKER = r"""
import asyncio, sys
from bot.services.outbox import OutboxPolicy, run_worker
from bot.settings import Settings
from bot.wechat.ratelimit import RateLimiter

db, base, worker_id = sys.argv[1:4]
settings = Settings.from_env({}, env="test", database_url=db, wechat_api_base=base)
# the client's timeout is 10 s: a claim must outlast one call, so the lease is 13 s here
policy = OutboxPolicy(batch_size=40, concurrency=8, lease=13.0, renew_every=1.0, clock_margin=1.0,
                      reclaim_every=0.2, idle_sleep=0.05)
asyncio.run(run_worker(settings, policy=policy, rate_limiter=RateLimiter.disabled(), worker_id=worker_id))
"""


@pytest.mark.postgres
@pytest.mark.slow
async def test_kill_9_mid_batch_delivers_at_least_once(
    base_settings: Settings, postgres_database: str, fake_server: FakeWeChatServer
) -> None:
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory

    Base = load_all()
    engine = create_engine(postgres_database)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    factory = create_session_factory(engine)
    fake = fake_server.fake
    fake.latency = 0.01  # slow enough to kill the worker mid-batch
    total = 300
    try:
        async with factory() as s, s.begin():
            for i in range(50):
                s.add(Villager(openid=f"o{i}", last_inbound_at=utcnow()))
            for i in range(total):
                await enqueue(
                    s, kind="cs_text", openid=f"o{i % 50}", payload={"content": f"m{i}"}, idempotency_key=f"m{i}"
                )

        async def start(worker_id: str) -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CRASH_WORKER,
                postgres_database,
                fake_server.base_url,
                worker_id,
                cwd=REPO,
                stderr=asyncio.subprocess.PIPE,
            )

        first = await start("first")
        for _ in range(1000):
            if fake.counts[CS] >= 100:
                break
            await asyncio.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
        assert first.returncode == -signal.SIGKILL
        sent_before = fake.counts[CS]
        assert 100 <= sent_before < total
        async with factory() as s:
            in_flight = set(
                (
                    await s.execute(select(OutboxMessage.idempotency_key).where(OutboxMessage.status == "sending"))
                ).scalars()
            )
            claimed_by = set(
                (await s.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.status == "sending"))).scalars()
            )
            recorded = set(
                (await s.execute(select(OutboxMessage.idempotency_key).where(OutboxMessage.status == "sent"))).scalars()
            )
        assert in_flight
        assert claimed_by == {"first"}
        # every message WeChat accepted was recorded at once: not recorded are only the calls in flight
        # at the kill (8 at most) and those answered while the last commits were under way
        unrecorded = sent_before - len(recorded)
        print(f"kill -9: {sent_before} calls, {len(recorded)} recorded sent, {len(in_flight)} rows claimed")
        assert unrecorded <= 3 * 8

        second = await start("second")
        try:
            for _ in range(2000):
                async with factory() as s:
                    done = await s.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
                if done == total:
                    break
                await asyncio.sleep(0.02)
        finally:
            second.send_signal(signal.SIGTERM)  # a clean stop
            _, err = await asyncio.wait_for(second.communicate(), 15)
        assert second.returncode == 0, err.decode()
        assert done == total

        received = collections.Counter(c.body["text"]["content"] for c in fake.calls_to(CS) if c.errcode == 0)
        assert set(received) == {f"m{i}" for i in range(total)}  # every message delivered
        duplicates = {key for key, n in received.items() if n > 1}
        assert max(received.values()) <= 2
        assert duplicates <= in_flight  # only messages in flight when the first worker died ...
        print(f"kill -9: {len(duplicates)} messages delivered twice")
        assert len(duplicates) <= unrecorded  # ... and only calls not yet recorded
        assert not duplicates & recorded
    finally:
        await engine.dispose()


async def test_ten_thousand_customer_service_messages_are_paced_not_dropped(
    settings: Settings, session_factory: Any, fake_server: FakeWeChatServer
) -> None:
    """A backlog larger than the rate limit allows at once: every message goes out, at the limit's pace."""
    from bot.wechat.ratelimit import parse_rates

    total, per_second = 10_000, 2_000
    now = utcnow()
    async with session_factory() as s, s.begin():
        s.add(Villager(openid="o_backlog", last_inbound_at=now))
        await s.execute(
            OutboxMessage.__table__.insert(),
            [
                {
                    "kind": "cs_text",
                    "openid": "o_backlog",
                    "payload": {"content": f"m{i}"},
                    "idempotency_key": f"backlog:{i}",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for i in range(total)
            ],
        )
    limiter = RateLimiter(parse_rates(f"cs={per_second}/1s burst 20"))
    client = WeChatClient.from_settings(settings, token_store=DbTokenStore(session_factory), rate_limiter=limiter)
    worker = OutboxWorker(settings, session_factory, client, policy=OutboxPolicy(batch_size=500, idle_sleep=0.01))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def stop_when_done() -> None:
        while fake_server.fake.counts[CS] < total:
            await asyncio.sleep(0.05)
        stop.set()

    try:
        await asyncio.wait_for(asyncio.gather(stop_when_done(), worker.run(stop)), 60)
    finally:
        await client.close()
    elapsed = loop.time() - started
    assert elapsed >= (total - 20) / per_second * 0.95  # paced by the limit...
    times = sorted(c.at for c in fake_server.fake.calls_to(CS))
    busiest = max(sum(1 for t in times[i : i + per_second * 2] if t - times[i] < 1.0) for i in range(0, total, 250))
    assert busiest <= (per_second + 20) * 1.02  # no second ever saw more than the limit (plus the burst)
    async with session_factory() as s:
        by_status = dict(
            (await s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))).all()
        )
    assert by_status == {"sent": total}  # ...and none dropped or failed
    assert fake_server.fake.counts[CS] == total
