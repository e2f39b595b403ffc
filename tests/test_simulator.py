"""The simulator: what someone without a WeChat account uses to try the bot, under ``make run``.

It plays a villager's phone: what they send is signed and posted to ``/wechat``; what the bot sends them —
its reply, and later whatever goes out through the (fake) WeChat API: staff replies, reminders,
campaigns — shows up in their chat without them typing anything.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import unused_port

from bot.settings import Settings
from tests.sim_support import SimPage, dev_client, dev_settings, fake, make_dev_client, run_worker
from tests.test_tickets_support import PASSWORD, Staffer, add_staff, all_tickets, cheap_hashing

__all__ = ["cheap_hashing", "dev_client", "dev_settings", "fake", "make_dev_client"]

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ZHANG = "o_sim_zhang_dama"


async def test_the_page_offers_senders_villages_and_the_account_menu(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    html = await page.open()
    assert "village_3" in html and "东竹园村" in html
    assert "普法问答" in html  # the account menu from knowledge/menu.yaml
    # 往期普法 opens the archive on this server, the placeholder filled in as `lawbot menu push` fills it
    assert f'data-url="http://127.0.0.1:{dev_settings.port}/campaigns"' in html and "{base_url}" not in html
    assert ">关注</button>" in html
    roster = await (await dev_client.get("/simulator/api/villagers")).json()
    assert [v["name"] for v in roster["villagers"]] == ["张大娘", "李叔", "王小妹"]


async def test_subscribe_through_a_village_code_then_ask_in_plaintext(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    welcome = await page.send(ZHANG, "subscribe", key="village_3", label="东竹园村")
    assert welcome["status"] == 200 and "东竹园村" in welcome["reply"]["Content"]
    assert "<MsgType><![CDATA[event]]></MsgType>" in welcome["request_xml"]
    answer = await page.send(ZHANG, "text", "宅基地怎么申请")
    assert "宅基地" in answer["reply"]["Content"]
    # the chat shows both sides, in order
    chat = await page.chat(ZHANG)
    assert [(e["side"], e["text"][:6]) for e in chat[:2]] == [
        ("sys", "关注了公众号"),
        ("bot", welcome["reply"]["Content"][:6]),
    ]
    assert ("me", "宅基地怎么申请") in [(e["side"], e["text"]) for e in chat]


async def test_safe_mode_round_trip_through_the_simulator(make_dev_client: Any, dev_settings: Settings) -> None:
    client = await make_dev_client(dev_settings.with_(wechat_aes_key=AES_KEY))
    page = SimPage(client, dev_settings)
    html = await page.open()
    assert "本机是安全模式，总是加密" in html
    for asked in (True, False):  # safe mode refuses plaintext: the simulator encrypts as WeChat does
        data = await page.send("o_sim_s", "text", "你好", safe=asked)
        assert "<Encrypt>" in data["request_xml"] and "<Encrypt>" in data["reply_raw"]
        assert "乡法通" in data["reply"]["Content"]


async def test_compatible_mode_sends_either_way(make_dev_client: Any, dev_settings: Settings) -> None:
    client = await make_dev_client(dev_settings.with_(wechat_aes_key=AES_KEY, wechat_mode="compatible"))
    page = SimPage(client, dev_settings)
    await page.open()
    plain = await page.send("o_sim_s", "text", "你好", safe=False)
    assert "<Encrypt>" not in plain["request_xml"] and "乡法通" in plain["reply"]["Content"]
    encrypted = await page.send("o_sim_s", "text", "你好", safe=True)
    assert "<Encrypt>" in encrypted["request_xml"] and "乡法通" in encrypted["reply"]["Content"]


async def test_voice_without_recognition_and_menu_clicks(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    voice = await page.send("o_sim_v", "voice", "")
    assert "没听清" in voice["reply"]["Content"]
    click = await page.send("o_sim_v", "CLICK", key="CONTACT", label="联系司法所")
    assert "司法所" in click["reply"]["Content"]
    assert [e["text"] for e in click["entries"] if e["side"] == "me"] == ["[菜单] 联系司法所"]


async def test_the_sample_picture_exists_and_is_what_the_push_names(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    picture = await dev_client.get("/simulator/sample.png")
    assert picture.status == 200 and picture.content_type == "image/png"
    assert (await picture.read()).startswith(b"\x89PNG")
    sent = await page.send("o_sim_p", "image")
    assert f"http://127.0.0.1:{dev_settings.port}/simulator/sample.png" in sent["request_xml"]
    assert sent["entries"][0]["picurl"] == "/simulator/sample.png"


async def test_bad_requests_are_refused_with_a_reason(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    headers = {"X-CSRF-Token": page.token}
    # not JSON at all: 415 (the simulator accepts only application/json; this used to be a 400)
    resp = await dev_client.post("/simulator/api/send", data=b"not json", headers=headers)
    assert resp.status == 415
    resp = await dev_client.post(
        "/simulator/api/send", data=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    resp = await page.post("/simulator/api/send", {"openid": ZHANG, "kind": "teleport"})
    assert resp.status == 400 and "不认识" in (await resp.json())["error"]
    resp = await page.post("/simulator/api/send", {"kind": "text", "text": "你好"})
    assert resp.status == 400 and "o_sim_" in (await resp.json())["error"]


async def test_no_simulator_and_no_start_page_in_production(make_client: Any, settings: Settings) -> None:
    prod = settings.with_(env="production", secret_key="x" * 40, wechat_token="a-real-token")
    client = await make_client(prod)
    for path in ("/simulator", "/", "/simulator/api/chat", "/simulator/sample.png"):
        assert (await client.get(path)).status == 404, path
    assert (await client.post("/simulator/api/send", json={"openid": ZHANG})).status == 404


async def test_the_start_page_links_what_make_run_prints(dev_client: Any) -> None:
    resp = await dev_client.get("/")
    html = await resp.text()
    assert resp.status == 200
    for href in ("/simulator", "/admin", "/healthz", "/_fake/calls", "/campaigns"):
        assert f'href="{href}"' in html, href
    calls = await dev_client.get("/_fake/calls")  # the fake's own view: no doubled prefix any more
    assert calls.status == 200 and "calls" in await calls.json()


# ---------------------------------------------------------------- the villager's whole side
async def test_a_staff_reply_arrives_in_the_chat_without_the_villager_typing(
    dev_client: Any, dev_settings: Settings
) -> None:
    await add_staff(dev_client, "zhang", "mediator", (1,), name="张调解员")
    page = SimPage(dev_client, dev_settings)
    await page.open()
    assert "观音寺村" in await page.subscribe(ZHANG, "village_1")
    assert "发生了什么事" in await page.say(ZHANG, "转人工")
    assert "好了" in await page.say(ZHANG, "邻居把排水沟堵了，雨水全流进我家院子")
    assert "手机号" in await page.say(ZHANG, "好了")
    await page.say(ZHANG, "跳过")
    assert "已提交" in await page.say(ZHANG, "1")
    [ticket] = await all_tickets(dev_client)
    await page.arrived(ZHANG)  # the page has everything so far

    staffer = Staffer(dev_client)
    try:
        status, _ = await staffer.sign_in("zhang", PASSWORD)
        assert status == 200
        status, text = await staffer.post(f"/admin/tickets/{ticket.id}/reply", {"body": "您好，我明天上午去现场看看。"})
        assert status == 200 and "已发出" in text
    finally:
        await staffer.close()
    assert await page.arrived(ZHANG) == []  # queued, not sent yet
    await run_worker(dev_client, dev_settings)  # make run's in-process worker
    [reply] = await page.arrived(ZHANG)
    assert reply["side"] == "bot" and reply["label"] == "客服消息"
    assert "我明天上午去现场看看" in reply["text"] and ticket.number in reply["text"]
    # a reload starts from the beginning: the whole chat is still there, in order
    again = SimPage(dev_client, dev_settings)
    await again.open()
    history = await again.chat(ZHANG)
    texts = [e["text"] for e in history]
    assert texts.index("转人工") < texts.index(reply["text"]) and history[-1] == reply


async def test_any_number_of_villagers_each_with_their_own_chat(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    made = await page.post("/simulator/api/villagers", {"name": "赵四"})
    assert made.status == 201
    zhao = await made.json()
    assert zhao["name"] == "赵四" and zhao["openid"].startswith("o_sim_zhao_si_")
    other = await (await page.post("/simulator/api/villagers", {"name": "赵四"})).json()
    assert other["openid"] != zhao["openid"]  # two people may share a name
    roster = await (await dev_client.get("/simulator/api/villagers")).json()
    assert [v["name"] for v in roster["villagers"]] == ["张大娘", "李叔", "王小妹", "赵四", "赵四"]
    assert "欢迎" in await page.subscribe(zhao["openid"], "village_2")
    assert await page.chat(other["openid"]) == []
    assert await page.chat("o_sim_nobody") == []  # looking does not make a villager
    roster = await (await dev_client.get("/simulator/api/villagers")).json()
    assert "o_sim_nobody" not in [v["openid"] for v in roster["villagers"]]
    assert (await page.post("/simulator/api/villagers", {"name": " "})).status == 400
    assert (await page.post("/simulator/api/villagers", {"name": "名" * 21})).status == 400


# ---------------------------------------------------------------- hardening (security review #8)
async def test_the_target_comes_from_the_settings_never_the_host_header(
    dev_client: Any, dev_settings: Settings
) -> None:
    hits: list[str] = []

    async def sink(request: web.Request) -> web.Response:
        hits.append(str(request.rel_url))
        return web.Response(text="success")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        page = SimPage(dev_client, dev_settings)
        await page.open()
        resp = await dev_client.post(
            "/simulator/api/send",
            json={"openid": ZHANG, "kind": "image"},
            headers={"X-CSRF-Token": page.token, "Host": f"127.0.0.1:{port}"},
        )
        data = await resp.json()
    finally:
        await runner.cleanup()
    assert resp.status == 200 and hits == []  # nothing went to the Host header's address
    assert "收到" in data["reply"]["Content"]  # the bot itself answered
    assert f"127.0.0.1:{dev_settings.port}/simulator/sample.png" in data["request_xml"]


async def test_a_cross_site_post_cannot_drive_it(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    body = '{"openid": "o_sim_zhang_dama", "text": "我的咨询"}'
    # what any web page can send without asking: a text/plain (or form) POST
    resp = await dev_client.post("/simulator/api/send", data=body, headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    # JSON without the page's token, with a made-up one, or from another site
    assert (await dev_client.post("/simulator/api/send", json={"openid": ZHANG, "text": "x"})).status == 403
    forged = {"X-CSRF-Token": "0" * 64}
    assert (await dev_client.post("/simulator/api/send", json={"openid": ZHANG}, headers=forged)).status == 403
    for header in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await dev_client.post(
            "/simulator/api/send", json={"openid": ZHANG}, headers={"X-CSRF-Token": page.token, **header}
        )
        assert resp.status == 403, header
    # another browser (no cookie) with this page's token
    dev_client.session.cookie_jar.clear()
    resp = await dev_client.post("/simulator/api/send", json={"openid": ZHANG}, headers={"X-CSRF-Token": page.token})
    assert resp.status == 403
    assert await page.chat(ZHANG) == []  # nothing was sent


async def test_it_signs_only_for_simulator_villagers(dev_client: Any, dev_settings: Settings) -> None:
    page = SimPage(dev_client, dev_settings)
    await page.open()
    for openid in ("o_villagerB_0002", "oV5CrjpxgaGXNHIQigzNlgLTnwic", "o_sim_", "o_sim_../x", "O_SIM_ABC"):
        resp = await page.post("/simulator/api/send", {"openid": openid, "kind": "text", "text": "我的咨询"})
        assert resp.status == 400, openid
        assert "o_sim_" in (await resp.json())["error"]
        assert (await dev_client.get("/simulator/api/chat", params={"openid": openid})).status == 400


def test_what_each_kind_of_api_message_looks_like_in_the_chat() -> None:
    from bot.simulator.phones import Media, api_message

    cs = api_message(
        "/cgi-bin/message/custom/send", {"touser": ZHANG, "msgtype": "text", "text": {"content": "您好"}}, Media()
    )
    assert cs == {"via": "cs", "text": "您好"}
    article = {"title": "宪法宣传周", "description": "12月4日", "url": "https://x.example/a", "picurl": "javascript:1"}
    news = api_message("/cgi-bin/message/custom/send", {"msgtype": "news", "news": {"articles": [article]}}, Media())
    assert news == {"via": "cs", "title": "宪法宣传周", "text": "12月4日", "url": "https://x.example/a", "picurl": ""}
    media = Media(
        drafts={
            "D1": [
                {
                    "title": "民法典",
                    "digest": "借钱写借条",
                    "content_source_url": "https://x.example/b",
                    "thumb_media_id": "I1",
                }
            ]
        },
        materials={"I1": b"\x89PNG\r\n"},
    )
    mass = api_message("/cgi-bin/message/mass/sendall", {"msgtype": "mpnews", "mpnews": {"media_id": "D1"}}, media)
    assert (mass["via"], mass["title"], mass["text"]) == ("mass", "民法典", "借钱写借条")
    assert mass["picurl"].startswith("data:image/png;base64,")
    data = {"first": {"value": "您的咨询有了新回复"}, "keyword1": {"value": "法律咨询回复"}}
    template = api_message("/cgi-bin/message/template/send", {"data": data, "url": "http://x.example/t"}, Media())
    assert template == {"via": "template", "text": "您的咨询有了新回复\n法律咨询回复", "url": "http://x.example/t"}
