"""The campaign pages of the back-office: drafting, preview binding, approval, quota refusal, permissions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select

import handlers
from bot.devtools.fake_wechat import FakeWeChat, FakeWeChatServer
from bot.keys import SERVICES
from bot.services import campaigns as svc
from bot.services import staff as staff_svc
from bot.services.jobs import JobContext
from bot.services.outbox import OutboxPolicy, OutboxWorker
from bot.settings import Settings
from bot.storage.campaigns import Campaign, StaffWeChat
from bot.storage.models import Village, Villager
from bot.storage.staff import staff_villages
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore
from handlers import campaigns as campaign_handlers
from tests import wechat_fakes
from tests.phone import Phone

fake_server = wechat_fakes.fake_server

ADMIN_ID, MEDIATOR_ID, VOLUNTEER_ID = 1, 2, 3
FAST = OutboxPolicy(backoff_base=0.01, backoff_max=0.02, idle_sleep=0.02)


@pytest.fixture
def settings(base_settings: Settings, database_url: str, fake_server: FakeWeChatServer) -> Settings:
    return base_settings.with_(database_url=database_url, wechat_api_base=fake_server.base_url)


@pytest.fixture
def fake(fake_server: FakeWeChatServer) -> FakeWeChat:
    return fake_server.fake


@pytest.fixture
async def client(
    aiohttp_client: Any, knowledge_holder: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Any:
    from bot.admin.auth import hash_password_sync
    from bot.app import create_app
    from bot.storage.all import load_all
    from bot.storage.db import create_engine
    from bot.storage.staff import StaffUser

    if campaign_handlers.router not in handlers.ROUTERS:
        monkeypatch.setattr(handlers, "ROUTERS", (campaign_handlers.router, *handlers.ROUTERS))
    base = load_all()
    engine = create_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(base.metadata.drop_all)
        await conn.run_sync(base.metadata.create_all)
    await engine.dispose()
    app = create_app(settings, knowledge=knowledge_holder)
    test_client = await aiohttp_client(app)
    async with app[SERVICES].session_factory() as s, s.begin():
        for staff_id, name, role in (
            (ADMIN_ID, "wang", "admin"),
            (MEDIATOR_ID, "li", "mediator"),
            (VOLUNTEER_ID, "zhao", "volunteer"),
        ):
            s.add(
                StaffUser(
                    id=staff_id,
                    username=name,
                    display_name=name.upper(),
                    password_hash=hash_password_sync(PASSWORD),
                    role=role,
                )
            )
    async with app[SERVICES].session_factory() as s, s.begin():  # mediator li serves village 1
        await s.execute(staff_villages.insert().values(staff_id=MEDIATOR_ID, village_id=1))
    return test_client


def sf(client: Any) -> Any:
    return client.server.app[SERVICES].session_factory


@pytest.fixture
async def worker(settings: Settings, client: Any) -> AsyncIterator[OutboxWorker]:
    async with WeChatClient.from_settings(
        settings, token_store=DbTokenStore(sf(client)), rate_limiter=RateLimiter.disabled(), timeout=5.0
    ) as api:
        yield OutboxWorker(settings, sf(client), api, policy=FAST)


async def drain(worker: OutboxWorker) -> None:
    for _ in range(20):
        if await worker.run_once() == 0:
            return


PASSWORD = "pw-for-campaign-tests"
USERNAMES = {ADMIN_ID: "wang", MEDIATOR_ID: "li", VOLUNTEER_ID: "zhao"}
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_hashing() -> Iterator[None]:
    from argon2 import PasswordHasher

    from bot.admin import auth

    auth.set_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield
    auth.set_hasher(PasswordHasher())


async def sign_in(client: Any, settings: Settings, staff_id: int) -> str:
    """Sign in through the back-office's own form (a fresh cookie jar); returns the session's CSRF token."""
    client.session.cookie_jar.clear()
    page = await (await client.get("/admin/sign-in")).text()
    token = _CSRF.search(page)
    assert token, page
    data = {"_csrf": token.group(1), "username": USERNAMES[staff_id], "password": PASSWORD, "next": "/admin/campaigns"}
    resp = await client.post("/admin/sign-in", data=data, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await (await client.get("/admin/campaigns")).text()
    token = _CSRF.search(page)
    return token.group(1) if token else ""


async def post(client: Any, path: str, csrf: str, data: dict[str, Any] | list[tuple[str, str]] | None = None) -> Any:
    items = list(data.items()) if isinstance(data, dict) else list(data or [])
    return await client.post(path, data=[("_csrf", csrf), *items], allow_redirects=False)


FORM = {
    "title": "宪法宣传周",
    "kind": "text",
    "text": "12月1日到7日是宪法宣传周。",
    "audience": "all",
    "scheduled_at": "",
    "archive": "1",
}


async def new_campaign(client: Any, csrf: str, **changes: Any) -> int:
    resp = await post(client, "/admin/campaigns/new", csrf, {**FORM, **changes})
    assert resp.status == 303, await resp.text()
    match = re.search(r"/admin/campaigns/(\d+)$", resp.headers["Location"])
    assert match
    return int(match.group(1))


async def bind(client: Any, settings: Settings, staff_id: int, openid: str) -> None:
    async with sf(client)() as s, s.begin():
        s.add(StaffWeChat(staff_id=staff_id, openid=openid, bound_at=dt.datetime.now(dt.UTC)))


# ---------------------------------------------------------------- permissions
async def test_volunteers_and_strangers_are_kept_out(client: Any, settings: Settings) -> None:
    resp = await client.get("/admin/campaigns", allow_redirects=False)
    assert resp.status == 303 and "/admin/sign-in" in resp.headers["Location"]
    await sign_in(client, settings, VOLUNTEER_ID)
    assert (await client.get("/admin/campaigns")).status == 403
    assert (await client.get("/admin/campaigns/new")).status == 403


async def test_mediator_drafts_but_cannot_approve(client: Any, settings: Settings, worker: OutboxWorker) -> None:
    csrf = await sign_in(client, settings, MEDIATOR_ID)
    assert (await client.post("/admin/campaigns/new", data=FORM, allow_redirects=False)).status == 403  # no CSRF
    campaign_id = await new_campaign(client, csrf)
    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    assert "宪法宣传周" in page and "审批并排期" not in page and "提交审批" in page
    assert (await post(client, f"/admin/campaigns/{campaign_id}/submit", csrf)).status == 303
    assert (await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf)).status == 403
    assert (await client.get("/admin/campaigns/tags")).status == 403
    async with sf(client)() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None and c.status == "awaiting_approval" and c.created_by == MEDIATOR_ID
        from bot.storage.staff import AuditLog

        actions = [a.action for a in (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()]
    assert "campaign.create" in actions and "campaign.submit" in actions


async def test_form_errors_are_shown(client: Any, settings: Settings) -> None:
    csrf = await sign_in(client, settings, MEDIATOR_ID)
    resp = await post(
        client,
        "/admin/campaigns/new",
        csrf,
        {**FORM, "kind": "news", "article_title": "x", "article_url": "javascript:alert(1)", "scheduled_at": "昨天"},
    )
    assert resp.status == 400
    html = await resp.text()
    assert "发送时间格式不对" in html
    resp = await post(client, "/admin/campaigns/new", csrf, {**FORM, "kind": "news", "article_title": "x"})
    assert resp.status == 400 and "文章链接必须是" in await resp.text()
    resp = await post(client, "/admin/campaigns/new", csrf, {**FORM, "audience": "villages"})
    assert resp.status == 400 and "至少选择一个村" in await resp.text()


# ---------------------------------------------------------------- the whole way through the back-office
async def test_draft_bind_preview_approve_send_and_reach(
    client: Any, settings: Settings, worker: OutboxWorker, fake: FakeWeChat
) -> None:
    async with sf(client)() as s, s.begin():
        s.add(Villager(openid="o_villager_1", village_id=1))
        s.add(Villager(openid="o_villager_2", village_id=2))
    csrf = await sign_in(client, settings, MEDIATOR_ID)
    campaign_id = await new_campaign(
        client,
        csrf,
        audience="villages",
        village_ids="1",
        scheduled_at="2026-12-04T09:00",
        title="<script>alert(1)</script>",
    )
    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "获取绑定码" in page
    # bind the mediator's own WeChat: the code from the back-office, sent from WeChat
    resp = await post(client, "/admin/campaigns/wechat", csrf, {"back": str(campaign_id)})
    assert resp.status == 303
    page = await (await client.get(resp.headers["Location"])).text()
    code = re.search(staff_svc.BIND_WORD + r" (\d{6})", page)
    assert code, page
    phone = Phone(client, settings, "o_staff_li")
    assert "绑定好了" in await phone.say(f"{staff_svc.BIND_WORD} {code.group(1)}")
    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    # bound, named in words: no openid on the page (issue 13)
    assert "预览发到您绑定的微信" in page and "预览到我的微信" in page and "o_staff_li" not in page
    assert (await post(client, f"/admin/campaigns/{campaign_id}/preview", csrf)).status == 303
    await drain(worker)
    [preview] = [c.body for c in fake.successful("/cgi-bin/message/mass/preview")]
    assert preview["touser"] == "o_staff_li"
    assert "已送达" in await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    await post(client, f"/admin/campaigns/{campaign_id}/submit", csrf)
    # the admin approves; it is scheduled for 12-04 09:00 Beijing time
    csrf = await sign_in(client, settings, ADMIN_ID)
    listing = await (await client.get("/admin/campaigns?status=awaiting_approval")).text()
    assert f"/admin/campaigns/{campaign_id}" in listing
    resp = await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf)
    assert resp.status == 303
    assert "已审批，12-04 09:00群发" in await (await client.get(resp.headers["Location"])).text()
    due = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)
    ctx = JobContext(settings, sf(client), now=lambda: due)
    await svc.tick(ctx)
    await drain(worker)
    await svc.tick(ctx)
    async with sf(client)() as s:
        c = await s.get(Campaign, campaign_id)
        tag_id = (await s.get(Village, 1)).wechat_tag_id  # type: ignore[union-attr]
    assert c is not None and c.status == "sent"
    [sent] = [x.body for x in fake.successful("/cgi-bin/message/mass/sendall")]
    assert sent["filter"] == {"is_to_all": False, "tag_id": tag_id}
    # WeChat's report arrives through the webhook
    helper = Phone(client, settings, "mphelper")
    msg_id = next(iter(fake.clientmsgids.values()))
    await helper.event(
        "MASSSENDJOBFINISH",
        MsgID=str(msg_id),
        Status="send success",
        TotalCount="1",
        FilterCount="1",
        SentCount="1",
        ErrorCount="0",
    )
    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    assert "发送成功：1/1 人" in page
    public = await (await client.get(f"/campaigns/{campaign_id}")).text()
    assert "&lt;script&gt;" in public


async def test_quota_refusal_is_shown(client: Any, settings: Settings, worker: OutboxWorker) -> None:
    await bind(client, settings, ADMIN_ID, "o_staff_wang")
    csrf = await sign_in(client, settings, ADMIN_ID)
    ids = [await new_campaign(client, csrf, title=f"第{i}次") for i in range(5)]
    for campaign_id in ids:
        await post(client, f"/admin/campaigns/{campaign_id}/preview", csrf)
    await drain(worker)
    for campaign_id in ids[:4]:
        assert (await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf)).status == 303
    resp = await post(client, f"/admin/campaigns/{ids[4]}/approve", csrf)
    assert resp.status == 303
    page = await (await client.get(resp.headers["Location"])).text()
    assert "超出群发次数" in page
    listing = await (await client.get("/admin/campaigns")).text()
    assert "还可群发 0 次" in listing
    async with sf(client)() as s:
        c = await s.get(Campaign, ids[4])
        assert c is not None and c.status == "draft"


async def test_admin_sends_back_and_cancels(client: Any, settings: Settings, worker: OutboxWorker) -> None:
    await bind(client, settings, ADMIN_ID, "o_staff_wang")
    csrf = await sign_in(client, settings, ADMIN_ID)
    campaign_id = await new_campaign(client, csrf)
    resp = await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf)
    page = await (await client.get(resp.headers["Location"])).text()
    assert "请先把当前内容预览到自己的微信" in page
    await post(client, f"/admin/campaigns/{campaign_id}/preview", csrf)
    await drain(worker)
    await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf)
    await post(client, f"/admin/campaigns/{campaign_id}/send-back", csrf, {"note": "改到周六"})
    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    assert "管理员退回：改到周六" in page
    resp = await client.get(f"/admin/campaigns/{campaign_id}/edit")
    assert resp.status == 200 and "保存草稿" in await resp.text()
    resp = await post(client, f"/admin/campaigns/{campaign_id}/edit", csrf, {**FORM, "text": "改到周六了。"})
    assert resp.status == 303
    await post(client, f"/admin/campaigns/{campaign_id}/cancel", csrf)
    async with sf(client)() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None and (c.status, c.version, c.text) == ("cancelled", 2, "改到周六了。")
    assert (await client.get("/admin/campaigns/999999")).status == 404


async def test_no_dead_end_without_a_preview_the_admin_approves_with_a_reason(
    client: Any, settings: Settings, worker: OutboxWorker
) -> None:
    """A mediator submitted without previewing: the admin previews, sends it back, or approves with a stated
    reason that goes into the audit log (before, 审批并排期 was simply disabled)."""
    csrf = await sign_in(client, settings, MEDIATOR_ID)
    campaign_id = await new_campaign(client, csrf)
    assert (await post(client, f"/admin/campaigns/{campaign_id}/submit", csrf)).status == 303
    csrf = await sign_in(client, settings, ADMIN_ID)
    page = await (await client.get(f"/admin/campaigns/{campaign_id}")).text()
    assert "不预览，直接审批并排期" in page and 'name="reason"' in page and "disabled" not in page
    resp = await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf, {"reason": "好"})
    page = await (await client.get(resp.headers["Location"])).text()
    assert "写明原因" in page
    resp = await post(client, f"/admin/campaigns/{campaign_id}/approve", csrf, {"reason": "内容已在所务会上逐字核对"})
    assert "已审批" in await (await client.get(resp.headers["Location"])).text()
    async with sf(client)() as s:
        from bot.storage.staff import AuditLog

        c = await s.get(Campaign, campaign_id)
        audit = [(a.action, a.details) for a in (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()]
    assert c is not None and c.status == "scheduled" and c.approved_by == ADMIN_ID
    [approved] = [d for action, d in audit if action == "campaign.approve"]
    assert approved["without_preview"] == "内容已在所务会上逐字核对"
    assert any(action == "campaign.approve_refused" for action, _ in audit)


async def test_calendar_suggestion_prefills_the_form(client: Any, settings: Settings) -> None:
    await sign_in(client, settings, MEDIATOR_ID)
    listing = await (await client.get("/admin/campaigns")).text()
    assert "群发次数" in listing
    page = await (await client.get("/admin/campaigns/new?calendar=constitution_day")).text()
    assert "12·4 国家宪法日" in page and 'value="constitution_day"' in page


async def test_tags_page_and_sync(client: Any, settings: Settings, fake: FakeWeChat) -> None:
    async with sf(client)() as s, s.begin():
        for i in range(3):
            s.add(Villager(openid=f"o_tagme_{i}", village_id=3))
    csrf = await sign_in(client, settings, ADMIN_ID)
    page = await (await client.get("/admin/campaigns/tags")).text()
    assert "还没建" in page
    resp = await post(client, "/admin/campaigns/tags", csrf)
    assert resp.status == 303
    page = await (await client.get(resp.headers["Location"])).text()
    assert "新打标签 3 人" in page
    assert fake.counts["/cgi-bin/tags/members/batchtagging"] == 1
