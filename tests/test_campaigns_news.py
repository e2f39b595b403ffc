"""News campaigns with a cover go out as mpnews (issue 7): the worker downloads the cover, uploads it as
an image material, makes a WeChat draft and previews/sends ``{"msgtype": "mpnews"}`` with its media_id.

The WeChat API (and the cover image, ``/_fake/cover.png``) is the fake on a loopback port.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
import pytest

from bot.devtools.fake_wechat import FakeWeChat, FakeWeChatServer
from bot.services import campaigns as svc
from bot.services.campaigns import CampaignInput
from bot.services.campaigns.message import build_message
from bot.services.campaigns.news import CoverError, fetch_cover
from bot.services.campaigns.preview import PreviewState
from bot.services.campaigns.sending import SEND_GRACE, part_key
from bot.services.outbox import OutboxWorker, client_msg_id
from bot.settings import Settings
from bot.storage.campaigns import Campaign
from bot.wechat.api import WeChatClient
from bot.wechat.errors import PermanentError
from tests import test_campaigns as base
from tests import wechat_fakes

fake_server, client = wechat_fakes.fake_server, wechat_fakes.client
settings, fake, api, worker = base.settings, base.fake, base.api, base.worker
ADMIN, MEDIATOR, NOW = base.ADMIN, base.MEDIATOR, base.NOW
create, approve, tick, drain, load, bodies = base.create, base.approve, base.tick, base.drain, base.load, base.bodies

ADD_MATERIAL = "/cgi-bin/material/add_material"
DRAFT_ADD = "/cgi-bin/draft/add"
SENDALL, SEND, PREVIEW = base.SENDALL, base.SEND, base.PREVIEW


def news_input(cover_url: str, **kw: Any) -> CampaignInput:
    kw.setdefault("article_description", "借钱要写借条。\n借条上写清<金额>和还款日期。")
    return CampaignInput(
        title="民法典里的借条",
        kind="news",
        article_title="借条怎么写",
        article_url="https://example.org/a?x=1&y=2",
        article_cover_url=cover_url,
        **kw,
    )


def cover(server: FakeWeChatServer, name: str = "cover.png") -> str:
    return f"{server.base_url}/_fake/{name}"


async def request_preview(session_factory: Any, campaign_id: int, actor: svc.Actor = MEDIATOR) -> None:
    async with session_factory() as s, s.begin():
        await svc.request_preview(s, actor, campaign_id, now=NOW)


async def preview_states(session_factory: Any, campaign_id: int) -> list[PreviewState]:
    async with session_factory() as s:
        return await svc.previews(s, campaign_id)


async def test_client_uploads_an_image_and_makes_a_draft(client: WeChatClient, fake: FakeWeChat) -> None:
    with pytest.raises(PermanentError) as refused:
        await client.mass_preview("o_someone", {"msgtype": "mpnews", "mpnews": {"media_id": "NOT_A_DRAFT"}})
    assert refused.value.errcode == 40007
    with pytest.raises(PermanentError) as bad_thumb:
        await client.add_draft([{"title": "t", "content": "<p>x</p>", "thumb_media_id": "nope"}])
    assert bad_thumb.value.errcode == 40007
    thumb = await client.add_image_material(b"\x89PNG fake", "cover.png", "image/png")
    [call] = fake.successful(ADD_MATERIAL)
    assert call.query["type"] == "image"
    assert call.body == {"media": {"filename": "cover.png", "content_type": "image/png", "size": 9}}
    draft = await client.add_draft([{"title": "t", "content": "<p>x</p>", "thumb_media_id": thumb}])
    assert fake.drafts[draft][0]["thumb_media_id"] == thumb
    await client.mass_preview("o_someone", {"msgtype": "mpnews", "mpnews": {"media_id": draft}})
    with pytest.raises(ValueError):
        await client.add_image_material(b"", "cover.png", "image/png")


async def test_fake_refuses_a_missing_media_file(fake_server: FakeWeChatServer, client: WeChatClient) -> None:
    token = await client.get_access_token()
    without = aiohttp.FormData(default_to_multipart=True)
    without.add_field("other", "x")
    empty = aiohttp.FormData()
    empty.add_field("media", b"", filename="cover.png", content_type="image/png")
    async with aiohttp.ClientSession() as http:
        for form in (without, empty):
            url = f"{fake_server.base_url}{ADD_MATERIAL}?access_token={token}&type=image"
            async with http.post(url, data=form) as resp:
                assert (await resp.json())["errcode"] == 41005


async def test_news_with_cover_is_previewed_and_sent_as_mpnews(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    fake_server: FakeWeChatServer,
) -> None:
    campaign_id = await create(session_factory, settings, news_input(cover(fake_server)))
    await request_preview(session_factory, campaign_id)
    # the web request queues nothing: the worker prepares the article first
    assert [s.status for s in await preview_states(session_factory, campaign_id)] == ["preparing"]
    await drain(worker)
    assert fake.counts[PREVIEW] == 0 and fake.counts[ADD_MATERIAL] == 0
    await tick(settings, session_factory, api)
    assert [c.path for c in fake.calls if c.path in (ADD_MATERIAL, DRAFT_ADD)] == [ADD_MATERIAL, DRAFT_ADD]
    [upload] = fake.successful(ADD_MATERIAL)
    assert upload.body["media"]["content_type"] == "image/png" and upload.body["media"]["size"] > 0
    [draft_call] = bodies(fake, DRAFT_ADD)
    [article] = draft_call["articles"]
    assert article["thumb_media_id"] in fake.materials
    assert article["title"] == "借条怎么写" and article["content_source_url"] == "https://example.org/a?x=1&y=2"
    assert "<p>借条上写清&lt;金额&gt;和还款日期。</p>" in article["content"]
    assert 'href="https://example.org/a?x=1&amp;y=2"' in article["content"]
    assert article["digest"] == "借钱要写借条。 借条上写清<金额>和还款日期。"
    assert (article["need_open_comment"], article["only_fans_can_comment"]) == (0, 0)
    c = await load(session_factory, campaign_id)
    assert c.mpnews_media_id in fake.drafts and (c.mpnews_version, c.mpnews_error) == (1, "")
    media_id = c.mpnews_media_id
    await drain(worker)
    [preview] = bodies(fake, PREVIEW)
    assert preview == {"touser": MEDIATOR.openid, "msgtype": "mpnews", "mpnews": {"media_id": media_id}}
    assert [s.status for s in await preview_states(session_factory, campaign_id)] == ["sent"]
    # a second preview of the same version goes straight to the outbox
    await request_preview(session_factory, campaign_id)
    await drain(worker)
    assert fake.counts[PREVIEW] == 2
    await approve(session_factory, settings, campaign_id)
    await tick(settings, session_factory, api)
    await drain(worker)
    await tick(settings, session_factory, api)
    [sent] = bodies(fake, SENDALL)
    assert sent["msgtype"] == "mpnews" and sent["mpnews"] == {"media_id": media_id}
    assert sent["send_ignore_reprint"] == 0 and sent["filter"] == {"is_to_all": True}
    assert sent["clientmsgid"] == client_msg_id(part_key(c, 1))
    assert (await load(session_factory, campaign_id)).status == "sent"
    # nothing was uploaded or drafted twice
    assert (fake.counts[ADD_MATERIAL], fake.counts[DRAFT_ADD]) == (1, 1)


async def test_openid_list_is_sent_as_mpnews_and_a_failed_draft_keeps_the_cover(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    fake_server: FakeWeChatServer,
) -> None:
    data = news_input(cover(fake_server), audience="openids", openids=["o_news_0001", "o_news_0002"])
    campaign_id = await create(session_factory, settings, data, ADMIN)  # openid lists are for admins only
    await request_preview(session_factory, campaign_id, ADMIN)
    fake.add_fault("errcode", errcode=-1, errmsg="system error", path=DRAFT_ADD)
    await tick(settings, session_factory, api)
    c = await load(session_factory, campaign_id)
    assert c.mpnews_media_id is None and "稍后重试" in c.mpnews_error
    [state] = await preview_states(session_factory, campaign_id)
    assert state.status == "preparing" and state.error == c.mpnews_error
    await tick(settings, session_factory, api)  # retried: the cover is not uploaded again
    assert (fake.counts[ADD_MATERIAL], len(fake.successful(DRAFT_ADD))) == (1, 1)
    await drain(worker)
    await approve(session_factory, settings, campaign_id)
    await tick(settings, session_factory, api)
    await drain(worker)
    c = await load(session_factory, campaign_id)
    [sent] = bodies(fake, SEND)
    assert sent["msgtype"] == "mpnews" and sent["mpnews"]["media_id"] == c.mpnews_media_id
    assert sent["touser"] == ["o_news_0001", "o_news_0002"]


async def test_broken_cover_is_a_readable_error_and_retried(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    fake_server: FakeWeChatServer,
) -> None:
    campaign_id = await create(session_factory, settings, news_input(cover(fake_server, "missing.png")))
    await request_preview(session_factory, campaign_id)
    await tick(settings, session_factory, api)
    await drain(worker)
    c = await load(session_factory, campaign_id)
    assert "HTTP 404" in c.mpnews_error and "封面" in c.mpnews_error
    assert c.mpnews_media_id is None
    assert fake.counts[ADD_MATERIAL] == fake.counts[DRAFT_ADD] == fake.counts[PREVIEW] == 0
    [state] = await preview_states(session_factory, campaign_id)
    assert state.status == "preparing" and "HTTP 404" in state.error
    async with session_factory() as s:
        with pytest.raises(svc.CampaignError, match="预览"):
            await svc.approve(s, base.ADMIN, campaign_id, settings=settings)
    # retried on the next tick (still broken: nothing sent)
    await tick(settings, session_factory, api)
    assert fake.counts[ADD_MATERIAL] == 0 and fake.counts[PREVIEW] == 0
    # not an image → a readable error too
    async with session_factory() as s, s.begin():
        await svc.update_campaign(
            s, MEDIATOR, campaign_id, news_input(f"{fake_server.base_url}/_fake/calls"), settings=settings
        )
    await request_preview(session_factory, campaign_id)
    await tick(settings, session_factory, api)
    assert "不是图片" in (await load(session_factory, campaign_id)).mpnews_error


async def test_cover_download_limits(fake_server: FakeWeChatServer) -> None:
    got = await fetch_cover(cover(fake_server), allow_internal=True)
    assert got.content.startswith(b"\x89PNG") and (got.content_type, got.filename) == ("image/png", "cover.png")
    with pytest.raises(CoverError, match="太大"):
        await fetch_cover(cover(fake_server), max_bytes=10, allow_internal=True)
    with pytest.raises(CoverError, match="http"):
        await fetch_cover("file:///etc/passwd")
    with pytest.raises(CoverError, match="下载封面图片失败"):
        await fetch_cover("http://127.0.0.1:1/cover.png", allow_internal=True)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379/x.png", "http://10.0.0.5/cover.png", "http://169.254.169.254/latest"]
)
async def test_a_cover_inside_the_servers_network_is_refused(url: str) -> None:
    with pytest.raises(CoverError, match="内部网络"):
        await fetch_cover(url)


async def test_news_without_cover_keeps_the_text_fallback(
    settings: Settings, session_factory: Any, worker: OutboxWorker, api: WeChatClient, fake: FakeWeChat
) -> None:
    campaign_id = await create(session_factory, settings, news_input(""))
    await base.preview(session_factory, campaign_id, worker)
    [preview] = bodies(fake, PREVIEW)
    assert preview["msgtype"] == "text" and "点这里看全文：https://example.org/a?x=1&y=2" in preview["text"]["content"]
    await approve(session_factory, settings, campaign_id)
    await base.send(settings, session_factory, api, worker)
    [sent] = bodies(fake, SENDALL)
    assert sent["msgtype"] == "text"
    assert fake.counts[ADD_MATERIAL] == fake.counts[DRAFT_ADD] == 0


async def test_editing_after_preparation_prepares_again(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    fake_server: FakeWeChatServer,
) -> None:
    campaign_id = await create(session_factory, settings, news_input(cover(fake_server)))
    await request_preview(session_factory, campaign_id)
    await tick(settings, session_factory, api)
    await drain(worker)
    first = (await load(session_factory, campaign_id)).mpnews_media_id
    async with session_factory() as s, s.begin():
        c = await svc.update_campaign(
            s,
            MEDIATOR,
            campaign_id,
            news_input(cover(fake_server), article_description="改过的摘要"),
            settings=settings,
        )
        assert c.version == 2 and not svc.mpnews_ready(c)
        with pytest.raises(svc.NotPrepared):
            build_message(c)
    await request_preview(session_factory, campaign_id)
    await tick(settings, session_factory, api)
    await drain(worker)
    c = await load(session_factory, campaign_id)
    assert c.mpnews_version == 2 and c.mpnews_media_id not in (None, first)
    assert fake.counts[DRAFT_ADD] == 2 and fake.counts[ADD_MATERIAL] == 1  # same cover: not uploaded again
    assert "改过的摘要" in bodies(fake, DRAFT_ADD)[1]["articles"][0]["content"]
    assert [b["mpnews"]["media_id"] for b in bodies(fake, PREVIEW)] == [first, c.mpnews_media_id]
    # a new cover is uploaded
    async with session_factory() as s, s.begin():
        await svc.update_campaign(s, MEDIATOR, campaign_id, news_input(cover(fake_server) + "?v=2"), settings=settings)
    await request_preview(session_factory, campaign_id)
    await tick(settings, session_factory, api)
    assert (fake.counts[ADD_MATERIAL], fake.counts[DRAFT_ADD]) == (2, 3)


async def test_due_campaign_waits_for_its_article(
    settings: Settings,
    session_factory: Any,
    worker: OutboxWorker,
    api: WeChatClient,
    fake: FakeWeChat,
    fake_server: FakeWeChatServer,
) -> None:
    """Scheduled before its article was ready (e.g. approved before this feature): it is prepared when due;
    while the cover is broken it waits, and it fails once it is SEND_GRACE late."""
    campaign_id = await create(session_factory, settings, news_input(""))
    await base.preview(session_factory, campaign_id, worker)
    await approve(session_factory, settings, campaign_id)
    async with session_factory() as s, s.begin():
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        c.article_cover_url = cover(fake_server, "missing.png")
    await tick(settings, session_factory, api)
    c = await load(session_factory, campaign_id)
    assert c.status == "scheduled" and "图文素材还没准备好" in c.last_error and "HTTP 404" in c.last_error
    assert fake.counts[SENDALL] == 0
    async with session_factory() as s, s.begin():
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        c.article_cover_url = cover(fake_server)
    await base.send(settings, session_factory, api, worker)
    [sent] = bodies(fake, SENDALL)
    assert sent["msgtype"] == "mpnews" and (await load(session_factory, campaign_id)).status == "sent"
    # a broken one long past its time fails
    other = await create(session_factory, settings, news_input(""))
    await base.preview(session_factory, other, worker)
    await approve(session_factory, settings, other)
    async with session_factory() as s, s.begin():
        c = await s.get(Campaign, other)
        assert c is not None
        c.article_cover_url = cover(fake_server, "missing.png")
    await tick(settings, session_factory, api, NOW + SEND_GRACE + dt.timedelta(minutes=1))
    c = await load(session_factory, other)
    assert c.status == "failed" and "HTTP 404" in c.last_error
