"""Campaigns (issue 7): audience selection, quota, preview, approval, sending through the outbox with
stable clientmsgids, village tags, MASSSENDJOBFINISH reach, follow-ups and the calendar.

The WeChat API is the fake (bot.devtools.fake_wechat) on a loopback port; the outbox worker sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.devtools.fake_wechat import DEV_APPID, DEV_SECRET, FakeWeChat, FakeWeChatServer
from bot.services import campaigns as svc
from bot.services.campaigns import Actor, CampaignError, CampaignInput, PermissionDenied, QuotaExceeded
from bot.services.campaigns.lifecycle import validate
from bot.services.campaigns.message import build_message
from bot.services.campaigns.sending import part_key, split_openids
from bot.services.jobs import JobContext
from bot.services.outbox import OutboxPolicy, OutboxWorker, client_msg_id
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from bot.storage.campaigns import Campaign, CampaignPart, CampaignReport, VillageTagMember
from bot.storage.models import OutboxMessage, Village, Villager, utcnow
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore
from tests import wechat_fakes

fake_server = wechat_fakes.fake_server

SENDALL = "/cgi-bin/message/mass/sendall"
SEND = "/cgi-bin/message/mass/send"
PREVIEW = "/cgi-bin/message/mass/preview"
TAGGING = "/cgi-bin/tags/members/batchtagging"
UNTAGGING = "/cgi-bin/tags/members/batchuntagging"
TAG_CREATE = "/cgi-bin/tags/create"
CS = "/cgi-bin/message/custom/send"

ADMIN = Actor(1, "司法所王所长", "admin", openid="o_staff_admin")
MEDIATOR = Actor(2, "调解员李", "mediator", openid="o_staff_mediator", village_ids=(1, 2, 3))
VOLUNTEER = Actor(3, "明白人赵", "volunteer", openid="o_staff_volunteer")
FAST = OutboxPolicy(backoff_base=0.01, backoff_max=0.02, idle_sleep=0.02)
# 2026-11-10 10:00 Beijing time
NOW = dt.datetime(2026, 11, 10, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings(base_settings: Settings, database_url: str, fake_server: FakeWeChatServer) -> Settings:
    return base_settings.with_(database_url=database_url, wechat_api_base=fake_server.base_url)


@pytest.fixture
def fake(fake_server: FakeWeChatServer) -> FakeWeChat:
    return fake_server.fake


@pytest.fixture
async def api(fake_server: FakeWeChatServer, session_factory: Any) -> AsyncIterator[WeChatClient]:
    async with WeChatClient(
        DEV_APPID,
        DEV_SECRET,
        api_base=fake_server.base_url,
        token_store=DbTokenStore(session_factory),
        rate_limiter=RateLimiter.disabled(),
        timeout=5.0,
    ) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, session_factory: Any, api: WeChatClient) -> OutboxWorker:
    return OutboxWorker(settings, session_factory, api, policy=FAST)


@pytest.fixture
async def villages(session_factory: Any) -> dict[int, str]:
    names = {1: "观音寺村", 2: "西竹园村", 3: "东竹园村"}
    async with session_factory() as s, s.begin():
        for vid, name in names.items():
            s.add(Village(id=vid, name=name))
    return names


async def add_villagers(
    session_factory: Any, village_id: int | None, count: int, *, prefix: str = "o_v", start: int = 0, **kw: Any
) -> list[str]:
    openids = [f"{prefix}{village_id or 0}_{i:05d}" for i in range(start, start + count)]
    async with session_factory() as s, s.begin():
        for openid in openids:
            s.add(Villager(openid=openid, village_id=village_id, **kw))
    return openids


async def drain(worker: OutboxWorker, rounds: int = 20) -> None:
    for _ in range(rounds):
        if await worker.run_once() == 0:
            return


def text_input(title: str = "宪法宣传周", **kw: Any) -> CampaignInput:
    kw.setdefault("text", "12月1日到7日是宪法宣传周。有法律问题，直接在这里问我。")
    return CampaignInput(title=title, **kw)


async def create(session_factory: Any, settings: Settings, data: CampaignInput, actor: Actor = MEDIATOR) -> int:
    async with session_factory() as s, s.begin():
        return (await svc.create_campaign(s, actor, data, settings=settings, now=NOW)).id


async def preview(session_factory: Any, campaign_id: int, worker: OutboxWorker, actor: Actor = MEDIATOR) -> None:
    async with session_factory() as s, s.begin():
        await svc.request_preview(s, actor, campaign_id, now=NOW)
    await drain(worker)


async def approve(session_factory: Any, settings: Settings, campaign_id: int, now: dt.datetime = NOW) -> Campaign:
    async with session_factory() as s, s.begin():
        return await svc.approve(s, ADMIN, campaign_id, settings=settings, now=now)


async def ready(
    session_factory: Any,
    settings: Settings,
    worker: OutboxWorker,
    data: CampaignInput,
    *,
    now: dt.datetime = NOW,
    actor: Actor = MEDIATOR,
) -> int:
    """Create, preview and approve a campaign."""
    campaign_id = await create(session_factory, settings, data, actor)
    await preview(session_factory, campaign_id, worker, actor)
    await approve(session_factory, settings, campaign_id, now)
    return campaign_id


async def tick(settings: Settings, session_factory: Any, api: WeChatClient, now: dt.datetime = NOW) -> None:
    await svc.tick(JobContext(settings, session_factory, now=lambda: now), client=api)


async def load(session_factory: Any, campaign_id: int) -> Campaign:
    async with session_factory() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        return c


async def send(
    settings: Settings, session_factory: Any, api: WeChatClient, worker: OutboxWorker, now: dt.datetime = NOW
) -> None:
    """One tick (→ outbox), the worker, and a tick to see the outcome."""
    await tick(settings, session_factory, api, now)
    await drain(worker)
    await tick(settings, session_factory, api, now)


def bodies(fake: FakeWeChat, path: str) -> list[dict[str, Any]]:
    return [c.body for c in fake.successful(path)]


# ---------------------------------------------------------------- input and audience selection
def test_validate_refuses_bad_input(settings: Settings) -> None:
    known = {1, 2}
    assert validate(text_input(), settings, known) == []
    assert "请填写标题。" in validate(text_input(title=" "), settings, known)
    assert validate(text_input(text="长" * 601), settings, known)
    news = CampaignInput(title="t", kind="news", article_title="a", article_url="javascript:alert(1)")
    assert any("http" in e for e in validate(news, settings, known))
    news.article_url, news.article_cover_url = "https://example.org/a", "data:image/png;base64,xx"
    assert any("封面" in e for e in validate(news, settings, known))
    assert any("至少选择一个村" in e for e in validate(text_input(audience="villages"), settings, known))
    assert any(
        "没有这些村" in e for e in validate(text_input(audience="villages", village_ids=[9]), settings, known)
    )
    one = text_input(audience="openids", openids=["o_only_one"])
    assert any("至少要 2 个" in e for e in validate(one, settings, known))
    bad = text_input(audience="openids", openids=["o_good_one", "bad id!"])
    assert any("格式不对" in e for e in validate(bad, settings, known))
    sub = settings.with_(wechat_account_type="subscription")
    two = text_input(audience="openids", openids=["o_good_one", "o_good_two"])
    assert any("订阅号" in e for e in validate(two, sub, known))


def test_parse_and_split_openids() -> None:
    assert svc.parse_openids("o_aaaaaa1, o_aaaaaa2\no_aaaaaa1；o_aaaaaa3") == ["o_aaaaaa1", "o_aaaaaa2", "o_aaaaaa3"]
    assert split_openids(["o1"]) == []
    ids = [f"o_{i}" for i in range(25_001)]
    chunks = split_openids(ids)
    assert len(chunks) == 3 and all(2 <= len(c) <= 10_000 for c in chunks)
    assert [o for c in chunks for o in c] == ids
    assert [len(c) for c in split_openids(ids[:10_001])] == [5001, 5000]


async def test_audience_all_followers(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await send(settings, session_factory, api, worker)
    [body] = bodies(fake, SENDALL)
    assert body["filter"] == {"is_to_all": True}
    assert body["msgtype"] == "text" and "宪法宣传周" in body["text"]["content"]
    c = await load(session_factory, campaign_id)
    assert c.status == "sent" and c.sent_at is not None
    assert body["clientmsgid"] == client_msg_id(part_key(c, 1))


async def test_audience_villages_by_tag(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    villages: dict[int, str],
) -> None:
    v1 = await add_villagers(session_factory, 1, 120)
    v2 = await add_villagers(session_factory, 2, 3)
    await add_villagers(session_factory, 3, 4)
    gone = await add_villagers(session_factory, 1, 2, prefix="o_left", subscribed=False)
    campaign_id = await ready(session_factory, settings, worker, text_input(audience="villages", village_ids=[1, 2]))
    await send(settings, session_factory, api, worker)
    c = await load(session_factory, campaign_id)
    assert c.status == "sent"
    # tags created on demand for the chosen villages, members tagged in batches of ≤ 50
    async with session_factory() as s:
        tags = {v.id: v.wechat_tag_id for v in (await s.execute(select(Village))).scalars()}
    assert tags[1] and tags[2] and tags[3]  # village 3 by the background sync of the same tick
    assert set(fake.tags.values()) >= {"村1-观音寺村", "村2-西竹园村"}
    tagging = bodies(fake, TAGGING)
    assert all(len(b["openid_list"]) <= 50 for b in tagging)
    assert sorted(o for b in tagging if b["tagid"] == tags[1] for o in b["openid_list"]) == sorted(v1)
    assert {o for o, t in fake.user_tags.items() if tags[2] in t} == set(v2)
    assert not any(o in fake.user_tags for o in gone)
    sent = bodies(fake, SENDALL)
    assert sorted(b["filter"]["tag_id"] for b in sent) == sorted([tags[1], tags[2]])
    assert all(b["filter"]["is_to_all"] is False for b in sent)
    assert len({b["clientmsgid"] for b in sent}) == 2


async def test_audience_openid_list_split(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    openids = [f"o_list_{i:06d}" for i in range(10_005)]
    campaign_id = await ready(  # openid lists are for admins only
        session_factory, settings, worker, text_input(audience="openids", openids=openids), actor=ADMIN
    )
    await send(settings, session_factory, api, worker)
    sent = bodies(fake, SEND)
    assert [len(b["touser"]) for b in sent] == [5003, 5002]
    assert [o for b in sent for o in b["touser"]] == openids
    assert len({b["clientmsgid"] for b in sent}) == 2
    assert (await load(session_factory, campaign_id)).status == "sent"


async def test_village_without_followers_is_skipped_or_fails(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    villages: dict[int, str],
) -> None:
    await add_villagers(session_factory, 1, 2)
    both = await ready(session_factory, settings, worker, text_input(audience="villages", village_ids=[1, 3]))
    empty = await ready(
        session_factory, settings, worker, text_input("只发东竹园", audience="villages", village_ids=[3])
    )
    await send(settings, session_factory, api, worker)
    c = await load(session_factory, both)
    assert c.status == "sent" and "东竹园村还没有关注公众号的村民" in c.last_error
    c = await load(session_factory, empty)
    assert c.status == "failed" and "东竹园村" in c.last_error
    assert len(bodies(fake, SENDALL)) == 1


# ---------------------------------------------------------------- permissions and the status machine
async def test_permissions(settings: Settings, session_factory: Any, worker: OutboxWorker) -> None:
    async with session_factory() as s, s.begin():
        with pytest.raises(PermissionDenied):
            await svc.create_campaign(s, VOLUNTEER, text_input(), settings=settings)
    campaign_id = await create(session_factory, settings, text_input())
    async with session_factory() as s, s.begin():
        await svc.submit(s, MEDIATOR, campaign_id)
    await preview(session_factory, campaign_id, worker)
    async with session_factory() as s, s.begin():
        with pytest.raises(PermissionDenied, match="管理员"):
            await svc.approve(s, MEDIATOR, campaign_id, settings=settings)
        with pytest.raises(PermissionDenied):
            await svc.return_to_draft(s, MEDIATOR, campaign_id)
        with pytest.raises(PermissionDenied):
            await svc.request_preview(s, VOLUNTEER, campaign_id)
    c = await approve(session_factory, settings, campaign_id)
    assert c.status == "scheduled" and c.approved_by_name == ADMIN.name
    async with session_factory() as s, s.begin():
        with pytest.raises(PermissionDenied, match="管理员"):
            await svc.cancel(s, MEDIATOR, campaign_id)
        with pytest.raises(CampaignError, match="不能修改"):
            await svc.update_campaign(s, MEDIATOR, campaign_id, text_input("改"), settings=settings)
    async with session_factory() as s, s.begin():
        assert (await svc.cancel(s, ADMIN, campaign_id)).status == "cancelled"
    async with session_factory() as s, s.begin():
        with pytest.raises(CampaignError):
            await svc.approve(s, ADMIN, campaign_id, settings=settings)


async def test_edit_returns_to_draft_and_admin_can_send_back(
    settings: Settings, session_factory: Any, worker: OutboxWorker
) -> None:
    campaign_id = await create(session_factory, settings, text_input())
    async with session_factory() as s, s.begin():
        await svc.submit(s, MEDIATOR, campaign_id)
        c = await svc.update_campaign(s, MEDIATOR, campaign_id, text_input(text="新内容"), settings=settings)
        assert (c.status, c.version) == ("draft", 2)
        c = await svc.update_campaign(s, MEDIATOR, campaign_id, text_input(text="新内容"), settings=settings)
        assert c.version == 2  # nothing villagers see changed
    await preview(session_factory, campaign_id, worker)
    await approve(session_factory, settings, campaign_id)
    async with session_factory() as s, s.begin():
        c = await svc.return_to_draft(s, ADMIN, campaign_id, "时间改到周六")
        assert (c.status, c.return_note, c.approved_at) == ("draft", "时间改到周六", None)


# ---------------------------------------------------------------- preview
async def test_preview_goes_to_own_wechat_and_is_needed_for_approval(
    settings: Settings, session_factory: Any, worker: OutboxWorker, fake: FakeWeChat
) -> None:
    campaign_id = await create(session_factory, settings, text_input())
    async with session_factory() as s, s.begin():
        with pytest.raises(CampaignError, match="预览"):
            await svc.approve(s, ADMIN, campaign_id, settings=settings)
        with pytest.raises(CampaignError, match="openid"):
            await svc.request_preview(s, Actor(MEDIATOR.id, "无微信", "mediator"), campaign_id)  # its drafter
    await preview(session_factory, campaign_id, worker)
    [body] = bodies(fake, PREVIEW)
    assert body["touser"] == MEDIATOR.openid and "宪法宣传周" in body["text"]["content"]
    async with session_factory() as s:
        [state] = await svc.previews(s, campaign_id)
        assert (state.status, state.preview.version) == ("sent", 1)
    # a changed text needs a new preview
    async with session_factory() as s, s.begin():
        await svc.update_campaign(s, MEDIATOR, campaign_id, text_input(text="改过的内容"), settings=settings)
    async with session_factory() as s, s.begin():
        with pytest.raises(CampaignError, match="预览"):
            await svc.approve(s, ADMIN, campaign_id, settings=settings)
    # a preview WeChat refuses does not count
    fake.unsubscribed.add(ADMIN.openid or "")
    await preview(session_factory, campaign_id, worker, ADMIN)
    async with session_factory() as s:
        states = await svc.previews(s, campaign_id)
        assert states[0].status == "failed" and "取消关注" in states[0].error
    async with session_factory() as s, s.begin():
        with pytest.raises(CampaignError, match="预览"):
            await svc.approve(s, ADMIN, campaign_id, settings=settings)
    await preview(session_factory, campaign_id, worker)
    assert (await approve(session_factory, settings, campaign_id)).status == "scheduled"
    assert fake.counts[SENDALL] == 0  # a preview is not a broadcast


# ---------------------------------------------------------------- quota
async def test_quota_service_account_four_per_follower_per_month(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    villages: dict[int, str],
) -> None:
    await add_villagers(session_factory, 1, 3)
    await add_villagers(session_factory, 2, 3)
    async with session_factory() as s:
        status = await svc.quota_status(s, settings, now=NOW)
    assert (status.left, status.limit, status.period_label) == (4, 4, "2026年11月")
    for i in range(3):
        await ready(session_factory, settings, worker, text_input(f"全体{i}"))
    await ready(session_factory, settings, worker, text_input("观音寺村", audience="villages", village_ids=[1]))
    async with session_factory() as s:
        status = await svc.quota_status(s, settings, now=NOW)
    assert status.left == 0 and status.by_village[1] == 0 and status.by_village[2] == 1
    # village 1 is full this month: all followers and village 1 are refused, village 2 is not
    for data in (text_input("第五次"), text_input("再发观音寺", audience="villages", village_ids=[1, 2])):
        campaign_id = await create(session_factory, settings, data)
        await preview(session_factory, campaign_id, worker)
        with pytest.raises(QuotaExceeded, match="每月最多收到 4 次"):
            await approve(session_factory, settings, campaign_id)
        assert (await load(session_factory, campaign_id)).status == "draft"
    ok = await ready(session_factory, settings, worker, text_input("西竹园", audience="villages", village_ids=[2]))
    assert (await load(session_factory, ok)).status == "scheduled"
    # next month is a new month
    later = await create(
        session_factory, settings, text_input("下月", scheduled_at=dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC))
    )
    await preview(session_factory, later, worker)
    assert (await approve(session_factory, settings, later)).status == "scheduled"
    # the openids of an openid-list campaign count for those followers
    async with session_factory() as s:
        v1 = list((await s.execute(select(Villager.openid).where(Villager.village_id == 1))).scalars())
    listed = await create(session_factory, settings, text_input("名单", audience="openids", openids=v1[:2]), ADMIN)
    await preview(session_factory, listed, worker, ADMIN)
    with pytest.raises(QuotaExceeded):
        await approve(session_factory, settings, listed)


async def test_quota_subscription_account_one_per_day(
    base_settings: Settings,
    database_url: str,
    fake_server: FakeWeChatServer,
    session_factory: Any,
    worker: OutboxWorker,
    villages: dict[int, str],
) -> None:
    settings = base_settings.with_(
        database_url=database_url, wechat_api_base=fake_server.base_url, wechat_account_type="subscription"
    )
    await ready(session_factory, settings, worker, text_input("今天"))
    async with session_factory() as s:
        status = await svc.quota_status(s, settings, now=NOW)
    assert (status.left, status.period_label) == (0, "11月10日")
    again = await create(session_factory, settings, text_input("今天第二次"))
    await preview(session_factory, again, worker)
    with pytest.raises(QuotaExceeded, match="每天只能群发 1 次"):
        await approve(session_factory, settings, again)
    # two villages are two broadcasts: too many for one day
    two = await create(
        session_factory,
        settings,
        text_input("明天两个村", audience="villages", village_ids=[1, 2], scheduled_at=NOW + dt.timedelta(days=1)),
    )
    await preview(session_factory, two, worker)
    with pytest.raises(QuotaExceeded, match="2 个村"):
        await approve(session_factory, settings, two)
    tomorrow = await create(session_factory, settings, text_input("明天", scheduled_at=NOW + dt.timedelta(days=1)))
    await preview(session_factory, tomorrow, worker)
    assert (await approve(session_factory, settings, tomorrow)).status == "scheduled"


async def test_quota_checked_again_before_sending(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    ids = [await ready(session_factory, settings, worker, text_input(f"第{i}次")) for i in range(4)]
    extra = await create(session_factory, settings, text_input("第五次"))
    await preview(session_factory, extra, worker)
    # approved behind the check's back (e.g. two admins at once)
    async with session_factory() as s, s.begin():
        await s.execute(update(Campaign).where(Campaign.id == extra).values(status="scheduled", approved_at=NOW))
    await send(settings, session_factory, api, worker)
    assert [(await load(session_factory, i)).status for i in ids] == ["sent"] * 4
    c = await load(session_factory, extra)
    assert c.status == "failed" and "超出群发次数" in c.last_error
    assert len(bodies(fake, SENDALL)) == 4


# ---------------------------------------------------------------- sending is idempotent
async def test_tick_twice_and_concurrently_sends_once(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await asyncio.gather(*(tick(settings, session_factory, api) for _ in range(3)))
    await tick(settings, session_factory, api)
    async with session_factory() as s:
        rows = (
            await s.execute(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "mass_tag"))
        ).scalar()
    assert rows == 1
    await drain(worker)
    await tick(settings, session_factory, api)
    await tick(settings, session_factory, api)
    assert fake.counts[SENDALL] == 1
    assert (await load(session_factory, campaign_id)).status == "sent"


async def test_retry_after_accepted_call_does_not_send_twice(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    """The worker's call reached WeChat but the worker died before marking the row: the retry carries the
    same clientmsgid, WeChat answers 45065, and the row (and campaign) count as sent, once."""
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await tick(settings, session_factory, api)
    async with session_factory() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "mass_tag"))).scalar_one()
    first = await api.mass_send_by_tag(
        row.payload["message"], is_to_all=True, clientmsgid=client_msg_id(row.idempotency_key)
    )
    await drain(worker)
    await tick(settings, session_factory, api)
    assert len(fake.successful(SENDALL)) == 1 and fake.counts[SENDALL] == 2
    assert fake.clientmsgids == {client_msg_id(row.idempotency_key): first.msg_id}
    async with session_factory() as s:
        part = (await s.execute(select(CampaignPart))).scalar_one()
    assert part.status == "sent" and part.msg_id == first.msg_id  # learned from WeChat's 45065 answer
    assert (await load(session_factory, campaign_id)).status == "sent"


async def test_temporary_error_is_retried_with_the_same_clientmsgid(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    campaign_id = await ready(session_factory, settings, worker, text_input())
    fake.add_fault("errcode", errcode=-1, path=SENDALL)
    await tick(settings, session_factory, api)
    for _ in range(50):
        await drain(worker)
        async with session_factory() as s:
            status = (await s.execute(select(OutboxMessage.status).where(OutboxMessage.kind == "mass_tag"))).scalar()
        if status == "sent":
            break
        await asyncio.sleep(0.02)
    await tick(settings, session_factory, api)
    calls = fake.calls_to(SENDALL)
    assert len(calls) == 2 and calls[0].body["clientmsgid"] == calls[1].body["clientmsgid"]
    assert len(fake.successful(SENDALL)) == 1
    assert (await load(session_factory, campaign_id)).status == "sent"


async def test_permanent_error_fails_the_campaign(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    campaign_id = await ready(session_factory, settings, worker, text_input())
    fake.mass_quota = 0
    await send(settings, session_factory, api, worker)
    c = await load(session_factory, campaign_id)
    assert c.status == "failed" and "群发次数已用完" in c.last_error


# ---------------------------------------------------------------- MASSSENDJOBFINISH
def job_finish(
    msg_id: int, total: int, filtered: int, sent: int, errors: int, status: str = "send success"
) -> dict[str, Any]:
    return {
        "ToUserName": "gh_account",
        "FromUserName": "mphelper",
        "MsgType": "event",
        "Event": "MASSSENDJOBFINISH",
        "MsgID": str(msg_id),
        "Status": status,
        "TotalCount": str(total),
        "FilterCount": str(filtered),
        "SentCount": str(sent),
        "ErrorCount": str(errors),
    }


async def test_job_finish_reports_fill_reach(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    villages: dict[int, str],
) -> None:
    await add_villagers(session_factory, 1, 5)
    await add_villagers(session_factory, 2, 3)
    campaign_id = await ready(session_factory, settings, worker, text_input(audience="villages", village_ids=[1, 2]))
    await send(settings, session_factory, api, worker)
    first, second = sorted(fake.clientmsgids.values())
    async with session_factory() as s, s.begin():  # the second finishes first
        report = await svc.record_job_finish(s, job_finish(second, 5, 5, 4, 1))
        assert report is not None and report.matched_by == "msg_id"
    async with session_factory() as s, s.begin():
        await svc.record_job_finish(s, job_finish(first, 3, 3, 3, 0))
    c = await load(session_factory, campaign_id)
    assert (c.total_count, c.filter_count, c.sent_count, c.error_count, c.reports) == (8, 8, 7, 1, 2)
    # the same report again (a second push with the same MsgID) does not count twice
    async with session_factory() as s, s.begin():
        await svc.record_job_finish(s, job_finish(first, 3, 3, 3, 0))
    c = await load(session_factory, campaign_id)
    assert (c.sent_count, c.reports) == (7, 2)
    async with session_factory() as s:
        views = await svc.campaign_parts(s, campaign_id)
    assert [v.report is not None for v in views] == [True, True]


async def test_job_finish_matched_by_msg_id_and_failure_status(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    """A part whose msg_id is known takes its own report; a failed job marks the campaign failed."""
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await tick(settings, session_factory, api)
    async with session_factory() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "mass_tag"))).scalar_one()
    result = await api.mass_send_by_tag(
        row.payload["message"], is_to_all=True, clientmsgid=client_msg_id(row.idempotency_key)
    )
    await drain(worker)
    await tick(settings, session_factory, api)
    async with session_factory() as s, s.begin():
        unrelated = await svc.record_job_finish(s, job_finish(999_999, 10, 10, 10, 0))  # sent from the console
        assert unrelated is not None and unrelated.part_id is None
        report = await svc.record_job_finish(s, job_finish(result.msg_id, 100, 90, 0, 90, status="err(20013)"))
        assert report is not None and report.matched_by == "msg_id"
    c = await load(session_factory, campaign_id)
    assert c.status == "failed" and "涉嫌版权" in c.last_error and c.error_count == 90


async def test_report_before_the_part_is_marked_sent(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    """WeChat's report can arrive before the worker has marked the part sent; it is matched later."""
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await tick(settings, session_factory, api)
    async with session_factory() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "mass_tag"))).scalar_one()
    accepted = await api.mass_send_by_tag(
        row.payload["message"], is_to_all=True, clientmsgid=client_msg_id(row.idempotency_key)
    )
    async with session_factory() as s, s.begin():
        report = await svc.record_job_finish(s, job_finish(accepted.msg_id, 7, 7, 7, 0))
        assert report is not None and report.part_id is None
    await drain(worker)
    await tick(settings, session_factory, api)
    c = await load(session_factory, campaign_id)
    assert (c.status, c.sent_count, c.reports) == ("sent", 7, 1)
    async with session_factory() as s:
        assert (await s.execute(select(CampaignReport.matched_by))).scalar() == "msg_id"


async def test_order_fallback_when_msg_id_is_unknown(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    """A sent part whose msg_id the outbox did not keep takes the next report by order; once its real
    msg_id is known, a wrong match is undone."""
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await send(settings, session_factory, api, worker)
    async with session_factory() as s, s.begin():
        real = (await s.execute(select(CampaignPart.msg_id))).scalar()
        await s.execute(update(OutboxMessage).values(result=None, last_error=None))
        await s.execute(update(CampaignPart).values(msg_id=None))
    async with session_factory() as s, s.begin():
        report = await svc.record_job_finish(s, job_finish(4242, 9, 9, 9, 0))
        assert report is not None and report.matched_by == "order"
    assert (await load(session_factory, campaign_id)).sent_count == 9
    async with session_factory() as s, s.begin():  # the real msg_id turns up after all
        await s.execute(update(CampaignPart).values(msg_id=real))
    async with session_factory() as s, s.begin():
        await svc.record_job_finish(s, job_finish(int(real or 0), 5, 5, 5, 0))
    c = await load(session_factory, campaign_id)
    assert (c.sent_count, c.reports) == (5, 1)


async def test_job_finish_without_msg_id_is_ignored(session_factory: Any) -> None:
    async with session_factory() as s, s.begin():
        assert await svc.record_job_finish(s, {"Status": "send success"}) is None


# ---------------------------------------------------------------- village tags
async def test_tag_sync_is_idempotent_and_follows_village_changes(
    session_factory: Any, api: WeChatClient, fake: FakeWeChat, villages: dict[int, str]
) -> None:
    v1 = await add_villagers(session_factory, 1, 60)
    await add_villagers(session_factory, None, 2)
    result = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert (result.tagged, result.batches, result.created, result.errors) == (60, 2, [1], [])
    assert fake.counts[TAG_CREATE] == 1
    calls = fake.counts[TAGGING] + fake.counts[UNTAGGING]
    again = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert (again.tagged, again.untagged, again.batches) == (0, 0, 0)
    assert fake.counts[TAGGING] + fake.counts[UNTAGGING] == calls
    # three villagers move to village 2, one unsubscribes
    async with session_factory() as s, s.begin():
        await s.execute(update(Villager).where(Villager.openid.in_(v1[:3])).values(village_id=2))
        await s.execute(update(Villager).where(Villager.openid == v1[3]).values(subscribed=False))
    result = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert (result.untagged, result.tagged, result.forgotten) == (3, 3, 1)
    async with session_factory() as s:
        tag1, tag2 = (await s.get(Village, 1)).wechat_tag_id, (await s.get(Village, 2)).wechat_tag_id  # type: ignore[union-attr]
        members = {m.openid: m.tag_id for m in (await s.execute(select(VillageTagMember))).scalars()}
    assert all(fake.user_tags[o] == {tag2} for o in v1[:3])
    assert all(members[o] == tag2 for o in v1[:3]) and v1[3] not in members and len(members) == 59
    assert all(fake.user_tags[o] == {tag1} for o in v1[4:])
    assert not (await svc.sync_village_tags(session_factory, api, now=NOW)).batches


async def test_tag_sync_batch_budget_and_lost_tag(
    session_factory: Any, api: WeChatClient, fake: FakeWeChat, villages: dict[int, str]
) -> None:
    await add_villagers(session_factory, 1, 130)
    part = await svc.sync_village_tags(session_factory, api, max_batches=2, now=NOW)
    assert (part.tagged, part.pending) == (100, 30)
    rest = await svc.sync_village_tags(session_factory, api, max_batches=2, now=NOW)
    assert (rest.tagged, rest.pending) == (30, 0)
    # the tag was deleted in the WeChat console: it is recreated and everyone is tagged again
    fake.tags.clear()
    async with session_factory() as s, s.begin():
        await s.execute(update(Villager).where(Villager.openid == "o_v1_00000").values(village_id=None))
    await add_villagers(session_factory, 1, 1, start=500)
    lost = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert lost.errors and 1 in lost.failed_villages
    again = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert again.created == [1] and again.tagged == 130 and not again.errors


async def test_tag_sync_bad_openid_does_not_block_the_batch(
    session_factory: Any, api: WeChatClient, fake: FakeWeChat, villages: dict[int, str]
) -> None:
    good = await add_villagers(session_factory, 1, 4)
    async with session_factory() as s, s.begin():
        s.add(Villager(openid="o_bad_openid", village_id=1))
    fake.add_fault("errcode", errcode=40003, path=TAGGING)  # the batch is refused
    fake.add_fault("errcode", errcode=40003, path=TAGGING)  # and then the bad openid alone (sorted first)
    result = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert result.tagged == 4 and len(result.errors) == 1 and "o_bad_openid" in result.errors[0]
    assert all(fake.user_tags[o] for o in good) and not fake.user_tags["o_bad_openid"]


async def test_tick_syncs_tags_in_the_background(
    settings: Settings, session_factory: Any, api: WeChatClient, fake: FakeWeChat, villages: dict[int, str]
) -> None:
    await add_villagers(session_factory, 2, 3)
    await tick(settings, session_factory, api)
    assert fake.counts[TAGGING] == 1
    await tick(settings, session_factory, api)
    assert fake.counts[TAGGING] == 1


async def test_tick_makes_its_own_client(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    campaign_id = await ready(session_factory, settings, worker, text_input())
    await svc.tick(JobContext(settings, session_factory, now=lambda: NOW))
    await drain(worker)
    await svc.tick(JobContext(settings, session_factory, now=lambda: NOW))
    assert (await load(session_factory, campaign_id)).status == "sent"


async def test_scheduled_time_is_respected(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    at = NOW + dt.timedelta(hours=2)
    campaign_id = await ready(session_factory, settings, worker, text_input(scheduled_at=at))
    await send(settings, session_factory, api, worker, NOW + dt.timedelta(hours=1))
    assert fake.counts[SENDALL] == 0 and (await load(session_factory, campaign_id)).status == "scheduled"
    await send(settings, session_factory, api, worker, at)
    assert fake.counts[SENDALL] == 1


# ---------------------------------------------------------------- follow-ups and opt-out
async def send_with_follow_up(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient
) -> tuple[int, dt.datetime]:
    """A campaign to village 1 with a follow-up notice, sent now and delivered; its id and the time."""
    now = utcnow()
    campaign_id = await ready(
        session_factory,
        settings,
        worker,
        text_input(audience="villages", village_ids=[1], follow_up_text="周六上午村委会有法律咨询，欢迎来。"),
        now=now,
    )
    await send(settings, session_factory, api, worker, now)
    await drain(worker)
    return campaign_id, now


async def test_follow_ups_respect_opt_out_and_the_window(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    villages: dict[int, str],
) -> None:
    recent = utcnow() - dt.timedelta(hours=1)
    active = await add_villagers(session_factory, 1, 2, prefix="o_active", last_inbound_at=recent)
    quiet = await add_villagers(session_factory, 1, 1, prefix="o_quiet", last_inbound_at=recent - dt.timedelta(days=3))
    out = await add_villagers(session_factory, 1, 1, prefix="o_out", last_inbound_at=recent, opted_out=True)
    other = await add_villagers(session_factory, 2, 1, prefix="o_other", last_inbound_at=recent)
    campaign_id, now = await send_with_follow_up(settings, session_factory, worker, api)
    to = sorted(b["touser"] for b in bodies(fake, CS))
    assert to == sorted(active)
    assert not set(to) & set(quiet + out + other)
    [content] = {b["text"]["content"] for b in bodies(fake, CS)}
    assert "法律咨询" in content and "退订" in content
    c = await load(session_factory, campaign_id)
    assert c.follow_up_count == 2 and c.follow_up_done_at is not None
    await tick(settings, session_factory, api, now)
    await drain(worker)
    assert len(bodies(fake, CS)) == 2


# ---------------------------------------------------------------- calendar and archive queries
def test_calendar_file_is_valid_and_suggests_upcoming_dates() -> None:
    items = svc.load_calendar(Path(DEFAULT_KNOWLEDGE_DIR) / "campaign_calendar.yaml")
    ids = {i.id for i in items}
    assert {"consumer_day", "national_security_day", "civil_code_month", "constitution_day", "constitution_week"} <= ids
    by_id = {i.id: i for i in items}
    assert by_id["constitution_day"].start == (12, 4) and by_id["national_security_day"].start == (4, 15)
    assert by_id["civil_code_month"].when_label == "5月（全月）"
    assert all(i.title and i.text and len(i.text) <= svc.MAX_TEXT for i in items)
    soon = svc.upcoming(items, dt.date(2026, 11, 29), days=10)
    assert [s.item.id for s in soon][:1] == ["constitution_week"]
    on_now = svc.upcoming(items, dt.date(2026, 5, 20), days=0)
    assert "civil_code_month" in {s.item.id for s in on_now}
    wrap = svc.upcoming(items, dt.date(2026, 12, 20), days=80)
    assert wrap[0].start == dt.date(2027, 3, 8)


def test_calendar_rejects_bad_entries(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text('dates:\n  - {id: x, name: X, date: "02-30"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="day is out of range"):
        svc.load_calendar(bad)
    bad.write_text(
        'dates:\n  - {id: x, name: X, date: "03-01"}\n  - {id: x, name: Y, date: "03-02"}\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match="twice"):
        svc.load_calendar(bad)


def test_news_message_text() -> None:
    c = Campaign(
        title="t",
        kind="news",
        article_title="民法典里的借条",
        article_description="借钱要写借条。",
        article_url="https://example.org/a",
    )
    assert svc.message_text(c) == "【民法典里的借条】\n借钱要写借条。\n点这里看全文：https://example.org/a"
    assert build_message(c)["msgtype"] == "text"


def test_tag_name_fits_thirty_bytes() -> None:
    name = svc.tag_name(Village(id=11, name="非常非常非常非常长的村名字"))
    assert len(name.encode()) <= 30 and name.startswith("村11-")


# ---------------------------------------------------------------- staff with a bound WeChat are not villagers
async def _bind_staff(session_factory: Any, openid: str) -> None:
    from bot.storage.campaigns import StaffWeChat
    from bot.storage.staff import StaffUser

    async with session_factory() as s, s.begin():
        staff = StaffUser(username=openid, display_name="调解员", password_hash="x", role="mediator")
        s.add(staff)
        await s.flush()
        s.add(StaffWeChat(staff_id=staff.id, openid=openid, bound_at=utcnow()))


async def test_staff_with_a_bound_wechat_get_no_follow_up_and_leave_their_village_tag(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    villages: dict[int, str],
) -> None:
    recent = utcnow() - dt.timedelta(hours=1)
    people = await add_villagers(session_factory, 1, 2, prefix="o_folk", last_inbound_at=recent)
    [mediator] = await add_villagers(session_factory, 1, 1, prefix="o_staff", last_inbound_at=recent)
    await svc.sync_village_tags(session_factory, api, now=NOW)
    tag1 = next(iter(fake.user_tags[people[0]]))
    assert fake.user_tags[mediator] == {tag1}  # tagged while still a villager
    await _bind_staff(session_factory, mediator)
    result = await svc.sync_village_tags(session_factory, api, now=NOW)
    assert result.untagged == 1 and not fake.user_tags[mediator]  # out of the village broadcasts
    await send_with_follow_up(settings, session_factory, worker, api)
    assert sorted(b["touser"] for b in bodies(fake, CS)) == sorted(people)
