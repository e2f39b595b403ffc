"""The simulator: what someone without a WeChat account uses to try the bot."""

from __future__ import annotations

from typing import Any

from bot.settings import Settings

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


async def test_the_page_offers_senders_villages_and_the_account_menu(client: Any) -> None:
    resp = await client.get("/simulator")
    page = await resp.text()
    assert resp.status == 200
    assert "village_3" in page and "东竹园村" in page
    assert "普法问答" in page  # the account menu from knowledge/menu.yaml


async def test_subscribe_through_a_village_code_then_ask_in_plaintext(client: Any) -> None:
    welcome = await (
        await client.post("/simulator/api/send", json={"openid": "o_sim_t", "kind": "subscribe", "key": "village_3"})
    ).json()
    assert welcome["status"] == 200 and "东竹园村" in welcome["reply"]["Content"]
    assert "<MsgType><![CDATA[event]]></MsgType>" in welcome["request_xml"]
    answer = await (
        await client.post("/simulator/api/send", json={"openid": "o_sim_t", "kind": "text", "text": "宅基地怎么申请"})
    ).json()
    assert "宅基地" in answer["reply"]["Content"]


async def test_safe_mode_round_trip_through_the_simulator(make_client: Any, settings: Settings) -> None:
    client = await make_client(settings.with_(wechat_aes_key=AES_KEY))
    data = await (
        await client.post(
            "/simulator/api/send", json={"openid": "o_sim_s", "kind": "text", "text": "你好", "safe": True}
        )
    ).json()
    assert "<Encrypt>" in data["request_xml"] and "<Encrypt>" in data["reply_raw"]
    assert "乡法通" in data["reply"]["Content"]


async def test_voice_without_recognition_and_menu_clicks(client: Any) -> None:
    voice = await (
        await client.post("/simulator/api/send", json={"openid": "o_sim_v", "kind": "voice", "text": ""})
    ).json()
    assert "没听清" in voice["reply"]["Content"]
    click = await (
        await client.post("/simulator/api/send", json={"openid": "o_sim_v", "kind": "CLICK", "key": "CONTACT"})
    ).json()
    assert "司法所" in click["reply"]["Content"]


async def test_bad_requests_are_400(client: Any) -> None:
    assert (await client.post("/simulator/api/send", data=b"not json")).status == 400
    assert (await client.post("/simulator/api/send", json={"kind": "teleport"})).status == 400


async def test_no_simulator_in_production(make_client: Any, settings: Settings) -> None:
    prod = settings.with_(env="production", secret_key="x" * 40, wechat_token="a-real-token")
    client = await make_client(prod)
    assert (await client.get("/simulator")).status == 404
