"""Forged pushes: a captured push URL must not let anyone speak as a villager (security review #1).

WeChat's URL signature covers only Token+timestamp+nonce. Whoever reads one genuine push URL (an
nginx access log records it) holds a valid signature for the timestamp window. These tests play
that attacker: they take a genuine push's query string and send their own body with it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.keys import SERVICES
from bot.services import inbound
from bot.settings import Settings
from bot.storage.models import InboundMessage, PushNonce
from bot.wechat.crypto import sha1_signature
from bot.wechat.pusher import Push, PushSigner
from tests.phone import Phone

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
VICTIM = "o_victim_wang"


async def count(client: Any, model: Any, *where: Any) -> int:
    async with client.app[SERVICES].session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


def forged(captured: Push, openid: str, text: str, *, plain_signer: PushSigner) -> tuple[dict[str, str], bytes]:
    """The attacker's push: the captured URL (without the safe-mode parameters) and a plaintext body."""
    query = {k: v for k, v in captured.query.items() if k not in ("encrypt_type", "msg_signature")}
    query["openid"] = openid
    return query, plain_signer.sign(plain_signer.text(openid, text), encrypted=False).body


async def post(client: Any, query: dict[str, str], body: bytes) -> Any:
    return await client.post("/wechat", params=query, data=body, headers={"Content-Type": "text/xml"})


async def a_victim_with_a_ticket(client: Any, settings: Settings) -> Phone:
    victim = Phone(client, settings, VICTIM)
    await victim.subscribe("village_1")
    for said in ("转人工", "邻居占了我家宅基地", "好了", "跳过", "1"):
        await victim.say(said)
    assert "宅基地" in await victim.say("我的咨询")
    return victim


async def test_safe_mode_refuses_a_plaintext_body_on_a_captured_url(make_client: Any, settings: Settings) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY)  # LAWBOT_WECHAT_MODE unset: safe, because a key is set
    assert settings.mode == "safe"
    client = await make_client(settings)
    victim = await a_victim_with_a_ticket(client, settings)
    someone = Phone(client, settings, "o_someone_else")
    captured = someone.signer.sign(someone.signer.text(someone.openid, "你好"))
    assert captured.query["encrypt_type"] == "aes"
    assert "乡法通" in (await someone.post(captured)).content  # the genuine push is answered
    rows = await count(client, InboundMessage)

    attacker = PushSigner(settings.wechat_token, settings.wechat_appid)
    for text in ("我的咨询", "删除我的信息", "确认删除"):
        resp = await post(client, *forged(captured, VICTIM, text, plain_signer=attacker))
        assert resp.status == 403, text
        assert "宅基地" not in await resp.text()
    # not even with a fresh, Token-signed query: safe mode takes no plaintext at all
    plain = attacker.sign(attacker.text(VICTIM, "我的咨询"), encrypted=False)
    assert (await post(client, plain.query, plain.body)).status == 403
    assert await count(client, InboundMessage) == rows
    assert "宅基地" in await victim.say("我的咨询")  # the victim's ticket is untouched


async def test_plain_mode_refuses_a_second_body_on_a_used_timestamp_and_nonce(client: Any, settings: Settings) -> None:
    assert settings.mode == "plain"
    victim = await a_victim_with_a_ticket(client, settings)
    someone = Phone(client, settings, "o_someone_else")
    captured = someone.signer.sign(someone.signer.text(someone.openid, "你好"))
    await someone.post(captured)
    rows = await count(client, InboundMessage)

    resp = await post(client, *forged(captured, VICTIM, "我的咨询", plain_signer=someone.signer))
    assert resp.status == 403
    assert "宅基地" not in await resp.text()
    # the same sender, another message: also refused (the body is not the one that came with the pair)
    resp = await post(client, *forged(captured, someone.openid, "删除我的信息", plain_signer=someone.signer))
    assert resp.status == 403
    assert await count(client, InboundMessage) == rows
    assert "宅基地" in await victim.say("我的咨询")


@pytest.mark.parametrize("mode", ["safe", "plain"])
async def test_wechats_own_retry_with_the_same_url_gets_the_stored_reply(
    make_client: Any, settings: Settings, mode: str
) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY if mode == "safe" else "")
    client = await make_client(settings)
    phone = Phone(client, settings)
    push = phone.signer.sign(phone.signer.text(phone.openid, "今天天气咋样"))  # unanswerable: would file a gap
    first = await phone.post(push)
    retries = await asyncio.gather(*(phone.post(push) for _ in range(3)))  # WeChat retries the same push
    assert all(r.status == 200 and r.content == first.content for r in retries), [r.raw[:80] for r in retries]
    assert "转人工" in first.content
    assert await count(client, InboundMessage) == 1
    assert await count(client, PushNonce) == 1


async def test_compatible_mode_takes_plaintext_but_checks_every_encrypted_push(
    make_client: Any, settings: Settings
) -> None:
    settings = settings.with_(wechat_aes_key=AES_KEY, wechat_mode="compatible")
    client = await make_client(settings)
    signer = PushSigner.for_settings(settings)
    plain = signer.sign(signer.text("o_plain", "你好"), encrypted=False)  # WeChat's console still in plaintext
    resp = await post(client, plain.query, plain.body)
    assert resp.status == 200 and "乡法通" in signer.open_reply(200, await resp.text(), encrypted=False).content
    # WeChat's compatible-mode body: plaintext fields beside Encrypt; without msg_signature it is refused,
    # also when the query drops encrypt_type to pass for a plaintext push
    push = signer.sign(signer.text("o_compat", "你好"), encrypted=True)
    body = push.body.replace(b"</xml>", b"<FromUserName><![CDATA[o_victim]]></FromUserName><Content>x</Content></xml>")
    stripped = {k: v for k, v in push.query.items() if k not in ("encrypt_type", "msg_signature")}
    assert (await post(client, stripped, body)).status == 403
    resp = await post(client, push.query, body)  # the genuine one: the encrypted part counts
    assert resp.status == 200
    reply = signer.open_reply(200, await resp.text(), encrypted=True)
    assert reply.fields["ToUserName"] == "o_compat"


def test_a_mode_that_needs_a_key_refuses_to_start_without_one() -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="LAWBOT_WECHAT_AES_KEY"):
        Settings.from_env({"LAWBOT_WECHAT_MODE": "safe"})
    with pytest.raises(SettingsError, match="safe, compatible or plain"):
        Settings.from_env({"LAWBOT_WECHAT_MODE": "secure"})
    assert Settings.from_env({"LAWBOT_WECHAT_AES_KEY": AES_KEY}).mode == "safe"
    assert Settings.from_env({}).mode == "plain"


async def test_a_nonce_used_at_one_serve_process_is_refused_at_another(make_client: Any, settings: Settings) -> None:
    """Two `lawbot serve` processes behind nginx share the database: a captured URL is no good at either."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app

    first = await make_client(settings)
    second = TestClient(TestServer(create_app(settings, knowledge=first.app[SERVICES].knowledge_holder)))
    await second.start_server()
    try:
        phone = Phone(first, settings, "o_someone_else")
        captured = phone.signer.sign(phone.signer.text(phone.openid, "你好"))
        assert (await phone.post(captured)).status == 200
        assert (await post(second, *forged(captured, VICTIM, "我的咨询", plain_signer=phone.signer))).status == 403
        retry = await Phone(second, settings, "o_someone_else").post(captured)  # WeChat's retry, other process
        assert retry.status == 200 and "乡法通" in retry.content
    finally:
        await second.close()


async def test_with_redis_the_nonces_live_in_redis(
    make_client: Any, settings: Settings, redis_url: str, tmp_path: Any
) -> None:
    settings = settings.with_(redis_url=redis_url)
    client = await make_client(settings)
    # another process with the same Redis and a database of its own: only Redis can know the nonce
    other = await make_client(settings.with_(database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite3'}"))
    phone = Phone(client, settings, "o_someone_else")
    captured = phone.signer.sign(phone.signer.text(phone.openid, "你好"))
    assert "乡法通" in (await phone.post(captured)).content
    assert (await post(other, *forged(captured, VICTIM, "我的咨询", plain_signer=phone.signer))).status == 403
    assert (await phone.post(captured)).content  # the same push again: answered from the store
    assert await count(client, PushNonce) == 0  # the database table is not used


async def test_nonces_are_forgotten_once_their_timestamp_is_outside_the_window(engine: Any) -> None:
    from bot.storage.models import utcnow
    from bot.wechat.messages import to_incoming
    from bot.wechat.nonces import Seal, digest
    from bot.wechat.xml import parse_xml

    signer = PushSigner("token", "appid")
    now = int(time.time())

    def push(ts: int) -> tuple[Any, Seal]:
        signed = signer.sign(signer.text("o_x", "你好"), timestamp=ts)
        return to_incoming(parse_xml(signed.body)), Seal(ts, secrets.token_hex(5), digest(signed.body))

    async with engine.connect() as conn:
        old, new = push(now - 400), push(now)
        await conn.run_sync(inbound._store_all, [old[0], new[0]], utcnow(), [old[1], new[1]])
        later = push(now)
        await conn.run_sync(inbound._store_all, [later[0]], utcnow(), [later[1]], now - 360)
        kept = await conn.run_sync(lambda c: {n for (n,) in c.execute(select(PushNonce.nonce))})
    assert kept == {new[1].nonce, later[1].nonce}


async def test_a_nonce_longer_than_wechats_is_refused(client: Any, settings: Settings) -> None:
    ts, nonce = str(int(time.time())), "n" * 65
    query = {"signature": sha1_signature(settings.wechat_token, ts, nonce), "timestamp": ts, "nonce": nonce}
    signer = PushSigner.for_settings(settings)
    assert (await post(client, query, signer.sign(signer.text("o_x", "你好")).body)).status == 403


def test_nginx_does_not_log_the_query_string_of_wechat_pushes() -> None:
    import re
    from pathlib import Path

    conf = (Path(__file__).resolve().parent.parent / "deploy" / "nginx-lawbot.conf").read_text(encoding="utf-8")
    location = conf[conf.index("location /wechat") :]
    location = location[: location.index("}")]
    log = re.search(r"access_log\s+\S+\s+(\w+);", location)
    assert log is not None, "/wechat needs its own access_log line"
    fmt = re.search(rf"log_format\s+{log.group(1)}\s+((?:'[^']*'\s*)+);", conf)
    assert fmt is not None
    assert not re.search(r"\$(request|args|query_string|request_uri|arg_\w+)\b", fmt.group(1))
