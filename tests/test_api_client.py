"""The async WeChat API client against the fake: request shapes, error typing, token retry, rate limits."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bot.devtools.fake_wechat import DEV_APPID, DEV_SECRET, PNG_1X1, FakeWeChat, FakeWeChatServer
from bot.wechat.api import WeChatClient, mpnews_message, text_message
from bot.wechat.errors import (
    PermanentError,
    RetryableError,
    TokenInvalidError,
    WeChatError,
    error_for,
)
from bot.wechat.ratelimit import Rate, RateLimiter, parse_rates
from tests import wechat_fakes

fake_server, fake, client = wechat_fakes.fake_server, wechat_fakes.fake, wechat_fakes.client

CS = "/cgi-bin/message/custom/send"


async def test_token_fetched_once_then_reused(client: WeChatClient, fake: FakeWeChat) -> None:
    await client.send_text("o1", "你好")
    await client.send_text("o1", "再见")
    (token_call,) = fake.calls_to("/cgi-bin/stable_token")
    assert token_call.body == {
        "grant_type": "client_credential",
        "appid": DEV_APPID,
        "secret": DEV_SECRET,
        "force_refresh": False,
    }
    bodies = [c.body for c in fake.calls_to(CS)]
    assert bodies == [
        {"touser": "o1", "msgtype": "text", "text": {"content": "你好"}},
        {"touser": "o1", "msgtype": "text", "text": {"content": "再见"}},
    ]
    assert len({c.query["access_token"] for c in fake.calls_to(CS)}) == 1


async def test_falls_back_to_classic_token_endpoint(client: WeChatClient, fake: FakeWeChat) -> None:
    fake.add_fault("http", status=404, path="/cgi-bin/stable_token")
    await client.send_text("o1", "hi")
    assert fake.counts["/cgi-bin/token"] == 1
    assert fake.successful(CS)


async def test_bad_secret_is_permanent_without_fallback(fake_server: FakeWeChatServer) -> None:
    async with WeChatClient(DEV_APPID, "wrong", api_base=fake_server.base_url) as c:
        with pytest.raises(PermanentError) as info:
            await c.send_text("o1", "hi")
    assert info.value.errcode == 40125
    assert "AppSecret" in info.value.reason
    assert fake_server.fake.counts["/cgi-bin/token"] == 0


async def test_rejected_token_refreshed_once_and_call_retried(client: WeChatClient, fake: FakeWeChat) -> None:
    await client.send_text("o1", "one")
    fake.add_fault("invalidate_token")
    await client.send_text("o1", "two")
    fetches = fake.calls_to("/cgi-bin/stable_token")
    assert [c.body["force_refresh"] for c in fetches] == [False, True]
    assert [c.errcode for c in fake.calls_to(CS)] == [0, 40001, 0]


async def test_token_rejected_twice_raises(client: WeChatClient, fake: FakeWeChat) -> None:
    fake.add_fault("errcode", count=2, errcode=42001)
    with pytest.raises(TokenInvalidError):
        await client.send_text("o1", "hi")
    assert fake.counts[CS] == 2


async def test_message_shapes(client: WeChatClient, fake: FakeWeChat) -> None:
    await client.send_news("o1", [{"title": "标题", "description": "说明", "url": "https://x.test/a", "picurl": ""}])
    with pytest.raises(ValueError, match="exactly one article"):
        await client.send_news("o1", [{"title": "a"}, {"title": "b"}])
    await client.send_image("o1", "MEDIA")
    msgid = await client.send_template(
        "o1", "TPL", {"first": "您好", "k": {"value": "v", "color": "#173177"}}, url="https://x.test"
    )
    assert msgid > 0
    await client.send_subscribe("o1", "SUB", {"thing1": "预约成功"}, page="pages/index")
    cs_bodies = [c.body for c in fake.calls_to(CS)]
    assert cs_bodies[0]["news"]["articles"][0]["title"] == "标题"
    assert cs_bodies[1] == {"touser": "o1", "msgtype": "image", "image": {"media_id": "MEDIA"}}
    (tpl,) = fake.calls_to("/cgi-bin/message/template/send")
    assert tpl.body["data"] == {"first": {"value": "您好"}, "k": {"value": "v", "color": "#173177"}}
    assert tpl.body["url"] == "https://x.test"
    (sub,) = fake.calls_to("/cgi-bin/message/subscribe/bizsend")
    assert sub.body == {
        "touser": "o1",
        "template_id": "SUB",
        "data": {"thing1": {"value": "预约成功"}},
        "page": "pages/index",
    }


async def test_mass_send(client: WeChatClient, fake: FakeWeChat) -> None:
    tag = await client.create_tag("观音寺村")
    result = await client.mass_send_by_tag(text_message("普法宣传"), tag_id=tag.id, clientmsgid="campaign-1")
    assert result.msg_id > 0
    fake.drafts["MID"] = []  # mpnews needs a draft media_id (see test_add_image_material_and_draft)
    await client.mass_send_by_tag(mpnews_message("MID"), is_to_all=True)
    (first, second) = [c.body for c in fake.calls_to("/cgi-bin/message/mass/sendall")]
    assert first["filter"] == {"is_to_all": False, "tag_id": tag.id}
    assert "group_id" not in first["filter"]
    assert first["clientmsgid"] == "campaign-1"
    assert second["filter"] == {"is_to_all": True}
    with pytest.raises(PermanentError) as dup:
        await client.mass_send_by_tag(text_message("again"), tag_id=tag.id, clientmsgid="campaign-1")
    assert dup.value.errcode == 45065
    assert dup.value.response["msg_id"] == result.msg_id
    with pytest.raises(ValueError, match="either"):
        await client.mass_send_by_tag(text_message("x"))
    sent = await client.mass_send_to_openids(["o1", "o2"], text_message("hi"), clientmsgid="c2")
    assert sent.msg_id > 0
    with pytest.raises(ValueError, match="2 to 10000"):
        await client.mass_send_to_openids(["o1"], text_message("hi"))
    with pytest.raises(ValueError, match="2 to 10000"):
        await client.mass_send_to_openids([f"o{i}" for i in range(10_001)], text_message("hi"))
    with pytest.raises(ValueError, match="clientmsgid"):
        await client.mass_send_to_openids(["o1", "o2"], text_message("hi"), clientmsgid="x" * 65)
    await client.mass_preview("o1", text_message("预览"))
    assert fake.calls_to("/cgi-bin/message/mass/preview")[0].body["touser"] == "o1"


async def test_tags_menu_user_media(client: WeChatClient, fake: FakeWeChat) -> None:
    tag = await client.create_tag("西竹园村")
    openids = [f"o{i}" for i in range(120)]
    await client.tag_users(tag.id, openids)
    assert [len(c.body["openid_list"]) for c in fake.calls_to("/cgi-bin/tags/members/batchtagging")] == [50, 50, 20]
    assert (await client.get_user_info("o7"))["tagid_list"] == [tag.id]
    await client.untag_users(tag.id, openids[:10])
    counts = {t.name: t.count for t in await client.get_tags()}
    assert counts["西竹园村"] == 110
    menu = {"button": [{"type": "click", "name": "普法", "key": "FAQ_HOT"}]}
    await client.create_menu(menu)
    assert (await client.get_menu())["menu"] == menu
    assert (await client.get_current_menu())["is_menu_open"] == 1
    media = await client.get_media("m1")
    assert media.content == PNG_1X1
    assert media.content_type == "image/png"
    assert media.filename == "m1.png"
    with pytest.raises(PermanentError) as bad:
        await client.get_media("invalid-id")
    assert bad.value.errcode == 40007


@pytest.mark.parametrize(
    ("fault", "kwargs", "cls", "code"),
    [
        ("errcode", {"errcode": -1}, RetryableError, -1),
        ("errcode", {"errcode": 45009}, RetryableError, 45009),
        ("errcode", {"errcode": 45015}, PermanentError, 45015),
        ("errcode", {"errcode": 43004}, PermanentError, 43004),
        ("errcode", {"errcode": 40003}, PermanentError, 40003),
        ("errcode", {"errcode": 45047}, PermanentError, 45047),
        ("errcode", {"errcode": 40037}, PermanentError, 40037),
        ("errcode", {"errcode": 99999}, WeChatError, 99999),
        ("http", {"status": 500}, RetryableError, -1),
        ("http", {"status": 403}, PermanentError, -1),
    ],
)
async def test_errors_are_typed(
    client: WeChatClient, fake: FakeWeChat, fault: str, kwargs: dict[str, int], cls: type[WeChatError], code: int
) -> None:
    fake.add_fault(fault, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(cls) as info:
        await client.send_text("o1", "hi")
    assert type(info.value) is cls
    assert info.value.errcode == code
    assert " / " in info.value.reason


async def test_timeout_and_connection_errors_are_retryable(fake_server: FakeWeChatServer) -> None:
    fake_server.fake.add_fault("sleep", seconds=0.5)
    async with WeChatClient(DEV_APPID, DEV_SECRET, api_base=fake_server.base_url, timeout=0.2) as c:
        assert c.timeout.total == 0.2
        with pytest.raises(RetryableError, match="timeout") as timed_out:
            await c.send_text("o1", "hi")
    assert timed_out.value.may_have_reached  # WeChat may carry it out after all
    async with WeChatClient(DEV_APPID, DEV_SECRET, api_base="http://127.0.0.1:9", timeout=1.0) as c:
        with pytest.raises(RetryableError) as info:
            await c.get_access_token()
    assert "ClientConnector" in info.value.errmsg
    assert not info.value.may_have_reached  # never connected: nothing was sent


@pytest.mark.parametrize(("status", "reached"), [(500, True), (502, True), (503, True), (429, False)])
async def test_an_http_error_may_have_been_carried_out(
    client: WeChatClient, fake: FakeWeChat, status: int, reached: bool
) -> None:
    fake.add_fault("http", status=status)
    with pytest.raises(RetryableError) as info:
        await client.send_text("o1", "hi")
    assert info.value.may_have_reached is reached
    fake.add_fault("errcode", errcode=-1)  # WeChat answered: busy, and did nothing
    with pytest.raises(RetryableError) as busy:
        await client.send_text("o1", "hi")
    assert not busy.value.may_have_reached


def test_reasons_are_readable() -> None:
    assert (
        error_for(43004, "require subscribe").reason == "村民已取消关注，无法发送 / the user has unsubscribed (43004)"
    )
    assert "48" in error_for(45015).reason
    assert error_for(12345, "strange").reason.endswith("(12345): strange")
    assert error_for(40001).retryable
    assert not error_for(45028).retryable
    assert isinstance(error_for(42001), TokenInvalidError)


async def test_client_session_closed_and_reopened(fake_server: FakeWeChatServer) -> None:
    c = WeChatClient(DEV_APPID, DEV_SECRET, api_base=fake_server.base_url)
    await c.send_text("o1", "a")
    await c.close()
    await c.send_text("o1", "b")  # a new session after close()
    await c.close()
    assert fake_server.fake.counts[CS] == 2


# ---------------------------------------------------------------- rate limits
def test_parse_rates() -> None:
    rates = parse_rates("cs=600/min burst 20, mass=60/60s, template=10/1")
    assert rates["cs"] == Rate(600, 60.0, 20)
    assert rates["mass"] == Rate(60, 60.0)
    assert rates["template"] == Rate(10, 1.0)
    with pytest.raises(ValueError, match="expected"):
        parse_rates("cs=fast")


async def test_rate_limiter_paces_and_never_drops() -> None:
    limiter = RateLimiter({"cs": Rate(20, 1.0, burst=2)})
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire("cs") for _ in range(8)))
    elapsed = time.monotonic() - start
    # 2 at once, then one every 50 ms: the 8th at 300 ms
    assert 0.28 <= elapsed < 0.6
    assert await limiter.acquire("other") == 0.0
    assert await RateLimiter.disabled().acquire("cs") == 0.0


async def test_client_uses_rate_limits(fake_server: FakeWeChatServer) -> None:
    limiter = RateLimiter({"cs": Rate(50, 1.0)})
    async with WeChatClient(DEV_APPID, DEV_SECRET, api_base=fake_server.base_url, rate_limiter=limiter) as c:
        start = time.monotonic()
        await asyncio.gather(*(c.send_text("o1", str(i)) for i in range(6)))
        assert time.monotonic() - start >= 0.09
    assert fake_server.fake.counts[CS] == 6


async def test_rate_limiter_shared_through_redis(redis_url: str) -> None:
    prefix = f"lawbot-test:{uuid.uuid4().hex}:"
    a = RateLimiter({"mass": Rate(20, 1.0)}, redis_url=redis_url, prefix=prefix)
    b = RateLimiter({"mass": Rate(20, 1.0)}, redis_url=redis_url, prefix=prefix)
    try:
        start = time.monotonic()
        await asyncio.gather(*(lim.acquire("mass") for lim in (a, b) * 4))
        assert time.monotonic() - start >= 0.3  # 8 calls at 20/s across both limiters
    finally:
        await a.close()
        await b.close()


async def test_rate_limiter_falls_back_when_redis_is_down() -> None:
    limiter = RateLimiter({"cs": Rate(100, 1.0)}, redis_url="redis://127.0.0.1:9/0")
    try:
        assert await limiter.acquire("cs") == 0.0
    finally:
        await limiter.close()
