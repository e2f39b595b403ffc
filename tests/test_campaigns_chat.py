"""Campaigns seen by villagers: 退订/订阅, 往期普法, MASSSENDJOBFINISH through the webhook, the public archive."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

import handlers
from bot.keys import SERVICES
from bot.settings import Settings
from bot.storage.campaigns import Campaign, CampaignPart, CampaignReport
from bot.storage.models import InboundMessage, OutboxMessage, Villager
from handlers import campaigns as campaign_handlers
from tests.phone import Phone

SENT_AT = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
async def app_client(
    aiohttp_client: Any, knowledge_holder: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The production app with the campaigns router first (as it will be wired) and the archive
    (without the back-office: these tests are about what villagers see)."""
    import bot.app
    from bot.app import create_app
    from bot.campaigns_public import setup_public
    from bot.storage.all import load_all
    from bot.storage.db import create_engine

    if campaign_handlers.router not in handlers.ROUTERS:
        monkeypatch.setattr(handlers, "ROUTERS", (campaign_handlers.router, *handlers.ROUTERS))
    monkeypatch.setattr(bot.app, "FEATURE_SETUPS", (("bot.campaigns_public", "setup_public"),))
    base = load_all()
    engine = create_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(base.metadata.drop_all)
        await conn.run_sync(base.metadata.create_all)
    await engine.dispose()
    app = create_app(settings, knowledge=knowledge_holder)
    if "campaigns-archive" not in app.router.named_resources():
        setup_public(app)
    return await aiohttp_client(app)


def session_factory(client: Any) -> Any:
    return client.server.app[SERVICES].session_factory


async def add_campaign(client: Any, **values: Any) -> int:
    values.setdefault("title", "宪法宣传周")
    values.setdefault("text", "12月1日到7日是宪法宣传周。")
    values.setdefault("status", "sent")
    values.setdefault("send_key", "k1")
    values.setdefault("sent_at", SENT_AT)
    async with session_factory(client)() as s, s.begin():
        c = Campaign(**values)
        s.add(c)
        await s.flush()
        return c.id


async def villager(client: Any, openid: str) -> Villager:
    async with session_factory(client)() as s:
        v = (await s.execute(select(Villager).where(Villager.openid == openid))).scalar_one()
        return v


# ---------------------------------------------------------------- 退订 / 订阅
async def test_opt_out_and_back_in(app_client: Any, settings: Settings) -> None:
    phone = Phone(app_client, settings, "o_villager_opt")
    reply = await phone.say("退订")
    assert "已为您退订" in reply and "订阅" in reply
    assert (await villager(app_client, phone.openid)).opted_out is True
    assert "已经退订过了" in await phone.say("退订！")
    reply = await phone.say("订阅")
    assert "已恢复" in reply and "退订" in reply
    assert (await villager(app_client, phone.openid)).opted_out is False
    assert "已经在接收" in await phone.say("恢复订阅")


async def test_archive_link_in_chat(app_client: Any, settings: Settings) -> None:
    phone = Phone(app_client, settings, "o_villager_archive")
    reply = await phone.say("往期普法")
    assert f"{settings.base_url}/campaigns" in reply
    await add_campaign(app_client, title="国家宪法日")
    await add_campaign(app_client, title="草稿不显示", status="draft", sent_at=None)
    reply = await phone.say("普法活动")
    assert "国家宪法日（12-04）" in reply and "草稿不显示" not in reply


# ---------------------------------------------------------------- MASSSENDJOBFINISH through the webhook
async def test_job_finish_event_through_the_webhook(app_client: Any, settings: Settings) -> None:
    campaign_id = await add_campaign(app_client, status="sent")
    async with session_factory(app_client)() as s, s.begin():
        s.add(
            CampaignPart(
                campaign_id=campaign_id,
                seq=1,
                target="all",
                idempotency_key="campaign:1:k1:1",
                status="sent",
                msg_id=1001,
            )
        )
        s.add(
            OutboxMessage(
                kind="mass_tag", payload={}, idempotency_key="campaign:1:k1:1", status="sent", sent_at=SENT_AT
            )
        )
    helper = Phone(app_client, settings, "mphelper")
    fields = {"MsgID": "1001", "Status": "send success", "TotalCount": "120", "FilterCount": "118"}
    fields |= {"SentCount": "117", "ErrorCount": "1"}
    reply = await helper.event("MASSSENDJOBFINISH", **fields)
    assert reply.status == 200 and reply.is_success  # nobody is answered
    async with session_factory(app_client)() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        assert (c.total_count, c.filter_count, c.sent_count, c.error_count) == (120, 118, 117, 1)
        report = (await s.execute(select(CampaignReport))).scalar_one()
        assert report.matched_by == "msg_id"
        inbound = (await s.execute(select(InboundMessage))).scalar_one()
        assert inbound.handler == "campaigns.mass_send_job_finish"
        assert (await s.execute(select(Villager))).first() is None  # the helper account is not a villager


# ---------------------------------------------------------------- the public archive
async def test_archive_lists_only_sent_public_campaigns(app_client: Any) -> None:
    shown = await add_campaign(app_client, title="民法典宣传月", text="借钱要写借条。")
    await add_campaign(app_client, title="还在草稿", status="draft", sent_at=None)
    await add_campaign(app_client, title="排期中", status="scheduled", sent_at=None)
    await add_campaign(app_client, title="名单通知", archive=False)
    resp = await app_client.get("/campaigns")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert "民法典宣传月" in html and f'href="/campaigns/{shown}"' in html
    assert "还在草稿" not in html and "排期中" not in html and "名单通知" not in html
    assert 'name="viewport"' in html
    detail = await app_client.get(f"/campaigns/{shown}")
    assert detail.status == 200 and "借钱要写借条。" in await detail.text()


async def test_archive_hides_unsent_and_unknown(app_client: Any) -> None:
    draft = await add_campaign(app_client, status="draft", sent_at=None)
    hidden = await add_campaign(app_client, archive=False)
    for path in (f"/campaigns/{draft}", f"/campaigns/{hidden}", "/campaigns/999999"):
        resp = await app_client.get(path)
        assert resp.status == 404 and "没有找到" in await resp.text()
    assert (await app_client.get("/campaigns/abc")).status == 404
    assert (await app_client.get("/campaigns?page=x")).status == 200


async def test_archive_escapes_and_refuses_unsafe_links(app_client: Any) -> None:
    campaign_id = await add_campaign(
        app_client,
        title="<script>alert(1)</script>",
        kind="news",
        text="",
        article_title='"><img src=x onerror=alert(1)>',
        article_description="<b>粗</b>",
        article_url="javascript:alert(1)",
        article_cover_url="https://example.org/c.png",
    )
    html = await (await app_client.get(f"/campaigns/{campaign_id}")).text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "<b>粗</b>" not in html
    assert "javascript:" not in html and "阅读全文" not in html
    assert 'src="https://example.org/c.png"' in html
    listing = await (await app_client.get("/campaigns")).text()
    assert "<script>alert(1)</script>" not in listing


async def test_a_new_campaign_shows_up_at_once_and_an_unchanged_archive_costs_a_304(app_client: Any) -> None:
    await add_campaign(app_client, title="民法典宣传月")
    first = await app_client.get("/campaigns")
    assert first.headers["Cache-Control"] == "no-cache"  # the phone asks again every time (it was max-age=300)
    etag = first.headers["ETag"]
    unchanged = await app_client.get("/campaigns", headers={"If-None-Match": etag})
    assert unchanged.status == 304 and await unchanged.read() == b""
    await add_campaign(app_client, title="宪法宣传周", sent_at=SENT_AT + dt.timedelta(hours=1))
    changed = await app_client.get("/campaigns", headers={"If-None-Match": etag})
    assert changed.status == 200 and "宪法宣传周" in await changed.text()
    assert changed.headers["ETag"] != etag


async def test_archive_pages(app_client: Any) -> None:
    for i in range(21):
        await add_campaign(app_client, title=f"第{i:02d}期", sent_at=SENT_AT + dt.timedelta(days=i))
    first = await (await app_client.get("/campaigns")).text()
    assert "第20期" in first and "第00期" not in first and "page=2" in first
    second = await (await app_client.get("/campaigns?page=2")).text()
    assert "第00期" in second and "page=1" in second


# ---------------------------------------------------------------- binding a staff member's WeChat for previews
async def test_staff_binds_own_wechat_for_previews(app_client: Any, settings: Settings) -> None:
    from bot.services import staff as svc
    from bot.storage.staff import StaffUser

    async with session_factory(app_client)() as s, s.begin():
        s.add(StaffUser(id=7, username="li", display_name="调解员李", password_hash="x", role="mediator"))
    async with session_factory(app_client)() as s, s.begin():
        code = await svc.binding_code(s, 7)
    phone = Phone(app_client, settings, "o_staff_li")
    assert "不对或已过期" in await phone.say("预览绑定 000000" if code != "000000" else "预览绑定 111111")
    assert "绑定好了" in await phone.say(f"预览绑定 {code}")
    async with session_factory(app_client)() as s:
        assert await svc.staff_openid(s, 7) == "o_staff_li"
    other = Phone(app_client, settings, "o_someone_else")
    assert "不对或已过期" in await other.say(f"预览绑定 {code}")  # a code binds once
    async with session_factory(app_client)() as s, s.begin():
        code = await svc.binding_code(s, 7, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))  # expired
    assert "不对或已过期" in await other.say(f"预览绑定{code}")
    async with session_factory(app_client)() as s:
        assert await svc.staff_openid(s, 7) == "o_staff_li"
