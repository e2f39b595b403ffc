"""The fake WeChat API itself: shapes, token validation, faults, the JSON views, mounting as a sub-app."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.devtools.fake_wechat import (
    DEV_APPID,
    DEV_SECRET,
    FAKE_WECHAT,
    PNG_1X1,
    FakeWeChat,
    FakeWeChatServer,
    create_fake_wechat_app,
)


@pytest.fixture
async def http() -> Any:
    app = create_fake_wechat_app(DEV_APPID, DEV_SECRET, state=FakeWeChat(record_limit=None))
    async with TestClient(TestServer(app)) as c:
        yield c


async def _token(http: TestClient[Any, Any], force: bool = False) -> str:
    body = {"grant_type": "client_credential", "appid": DEV_APPID, "secret": DEV_SECRET, "force_refresh": force}
    resp = await http.post("/cgi-bin/stable_token", json=body)
    data = await resp.json()
    assert data["expires_in"] > 7000
    return str(data["access_token"])


def _fake(http: TestClient[Any, Any]) -> FakeWeChat:
    assert isinstance(http.server, TestServer)
    return http.server.app[FAKE_WECHAT]


async def test_stable_token_is_stable_until_forced(http: TestClient[Any, Any]) -> None:
    first = await _token(http)
    assert await _token(http) == first
    forced = await _token(http, force=True)
    assert forced != first
    resp = await http.post("/cgi-bin/message/custom/send", params={"access_token": first}, json={})
    assert (await resp.json())["errcode"] == 40001  # forcing invalidates the old token


async def test_token_errors_and_classic_endpoint(http: TestClient[Any, Any]) -> None:
    bad = {"grant_type": "client_credential", "appid": DEV_APPID, "secret": "nope"}
    assert (await (await http.post("/cgi-bin/stable_token", json=bad)).json())["errcode"] == 40125
    q = {"grant_type": "client_credential", "appid": "wxother", "secret": DEV_SECRET}
    assert (await (await http.get("/cgi-bin/token", params=q)).json())["errcode"] == 40013
    q["appid"] = DEV_APPID
    data = await (await http.get("/cgi-bin/token", params=q)).json()
    assert data["access_token"].startswith("FAKE_")


async def test_token_validation_missing_unknown_expired(http: TestClient[Any, Any]) -> None:
    body = {"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}
    assert (await (await http.post("/cgi-bin/message/custom/send", json=body)).json())["errcode"] == 41001
    resp = await http.post("/cgi-bin/message/custom/send", params={"access_token": "x"}, json=body)
    assert (await resp.json())["errcode"] == 40001
    token = await _token(http)
    resp = await http.post("/cgi-bin/message/custom/send", params={"access_token": token}, json=body)
    assert await resp.json() == {"errcode": 0, "errmsg": "ok"}
    _fake(http).advance(7201)
    resp = await http.post("/cgi-bin/message/custom/send", params={"access_token": token}, json=body)
    assert (await resp.json())["errcode"] == 42001


async def test_endpoint_shapes(http: TestClient[Any, Any]) -> None:
    t = {"access_token": await _token(http)}

    async def post(path: str, body: Any) -> dict[str, Any]:
        data: dict[str, Any] = await (await http.post(path, params=t, json=body)).json()
        return data

    assert (
        await post(
            "/cgi-bin/message/template/send", {"touser": "o1", "template_id": "T", "data": {"a": {"value": "b"}}}
        )
    )["msgid"] > 0
    assert (await post("/cgi-bin/message/template/send", {"touser": "o1", "template_id": "", "data": {}}))[
        "errcode"
    ] == 40037
    tag = (await post("/cgi-bin/tags/create", {"tag": {"name": "观音寺村"}}))["tag"]
    assert (await post("/cgi-bin/tags/create", {"tag": {"name": "观音寺村"}}))["errcode"] == 45157
    assert (await post("/cgi-bin/tags/members/batchtagging", {"openid_list": ["o1", "o2"], "tagid": tag["id"]}))[
        "errcode"
    ] == 0
    assert (await post("/cgi-bin/tags/members/batchtagging", {"openid_list": ["o"] * 51, "tagid": tag["id"]}))[
        "errcode"
    ] == 40032
    tags = (await (await http.get("/cgi-bin/tags/get", params=t)).json())["tags"]
    assert {"id": tag["id"], "name": "观音寺村", "count": 2} in tags
    msg = {"msgtype": "text", "text": {"content": "普法"}}
    sent = await post(
        "/cgi-bin/message/mass/sendall",
        {"filter": {"is_to_all": False, "tag_id": tag["id"]}, **msg, "clientmsgid": "c1"},
    )
    assert sent["errcode"] == 0
    assert sent["msg_id"] > 0
    assert sent["msg_data_id"]
    again = await post("/cgi-bin/message/mass/sendall", {"filter": {"is_to_all": True}, **msg, "clientmsgid": "c1"})
    assert again["errcode"] == 45065
    assert again["msg_id"] == sent["msg_id"]
    assert (await post("/cgi-bin/message/mass/sendall", {"filter": {"group_id": 1}, **msg}))["errcode"] == 40050
    assert (await post("/cgi-bin/message/mass/send", {"touser": ["o1"], **msg}))["errcode"] == 40130
    assert (await post("/cgi-bin/message/mass/send", {"touser": ["o1", "o2"], **msg}))["msg_id"] > 0
    assert (await post("/cgi-bin/message/mass/preview", {"touser": "o1", **msg}))["errmsg"] == "preview success"
    info = await (await http.get("/cgi-bin/user/info", params={**t, "openid": "o1"})).json()
    assert info["subscribe"] == 1
    assert info["tagid_list"] == [tag["id"]]
    media = await http.get("/cgi-bin/media/get", params={**t, "media_id": "m1"})
    assert media.content_type == "image/png"
    assert await media.read() == PNG_1X1
    bad_media = await http.get("/cgi-bin/media/get", params={**t, "media_id": "invalid"})
    assert (await bad_media.json())["errcode"] == 40007


async def test_menu_validation_and_both_get_shapes(http: TestClient[Any, Any]) -> None:
    t = {"access_token": await _token(http)}
    assert (await (await http.get("/cgi-bin/menu/get", params=t)).json())["errcode"] == 46003
    too_long = {"button": [{"type": "click", "name": "这是一个非常长的菜单名字", "key": "K"}]}
    assert (await (await http.post("/cgi-bin/menu/create", params=t, json=too_long)).json())["errcode"] == 40018
    menu = {"button": [{"name": "普法", "sub_button": [{"type": "view", "name": "往期", "url": "https://x.test/c"}]}]}
    assert (await (await http.post("/cgi-bin/menu/create", params=t, json=menu)).json())["errcode"] == 0
    assert (await (await http.get("/cgi-bin/menu/get", params=t)).json())["menu"] == menu
    info = await (await http.get("/cgi-bin/get_current_selfmenu_info", params=t)).json()
    assert info["is_menu_open"] == 1
    assert info["selfmenu_info"]["button"][0]["sub_button"]["list"][0]["url"] == "https://x.test/c"


async def test_faults_and_views(http: TestClient[Any, Any]) -> None:
    t = {"access_token": await _token(http)}
    body = {"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}
    resp = await http.post(
        "/_fake/faults", json=[{"kind": "errcode", "errcode": 45015}, {"kind": "http", "status": 502}]
    )
    assert len((await resp.json())["faults"]) == 2
    assert (await (await http.post("/cgi-bin/message/custom/send", params=t, json=body)).json())["errcode"] == 45015
    assert (await http.post("/cgi-bin/message/custom/send", params=t, json=body)).status == 502
    assert (await (await http.post("/cgi-bin/message/custom/send", params=t, json=body)).json())["errcode"] == 0
    _fake(http).add_fault("invalidate_token")
    assert (await (await http.post("/cgi-bin/message/custom/send", params=t, json=body)).json())["errcode"] == 40001
    t = {"access_token": await _token(http)}
    _fake(http).unsubscribed.add("o1")
    assert (await (await http.post("/cgi-bin/message/custom/send", params=t, json=body)).json())["errcode"] == 43004
    assert (await (await http.post("/_fake/faults", json={"kind": "bogus"})).json())["ok"] is False

    view = await (await http.get("/_fake/calls", params={"path": "/cgi-bin/message/custom/send"})).json()
    assert [c["errcode"] for c in view["calls"]] == [45015, 0, 0, 40001, 43004]
    assert view["calls"][0]["body"]["text"]["content"] == "hi"
    assert view["counts"]["/cgi-bin/stable_token"] == 2
    await http.post("/_fake/reset")
    assert (await (await http.get("/_fake/calls")).json())["calls"] == []


async def test_sleep_fault_makes_a_client_time_out() -> None:
    async with FakeWeChatServer() as server:
        server.fake.add_fault("sleep", seconds=0.5, path="/cgi-bin/user/info")
        timeout = aiohttp.ClientTimeout(total=0.1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(TimeoutError):
                await session.get(f"{server.base_url}/cgi-bin/user/info")


async def test_mounted_as_sub_app() -> None:
    root = web.Application()
    root.add_subapp("/fake-wechat", create_fake_wechat_app())
    async with TestClient(TestServer(root)) as c:
        body = {"grant_type": "client_credential", "appid": DEV_APPID, "secret": DEV_SECRET}
        data = await (await c.post("/fake-wechat/cgi-bin/stable_token", json=body)).json()
        assert data["access_token"]
        calls = await (await c.get("/fake-wechat/_fake/calls")).json()
        assert calls["calls"][0]["path"] == "/cgi-bin/stable_token"


# ---------------------------------------------------------------- whom a message reaches, mass-send jobs
async def test_messages_reach_their_people_and_listeners_hear_of_it(http: TestClient[Any, Any]) -> None:
    fake = _fake(http)
    heard: list[tuple[str, list[str]]] = []
    fake.listeners.append(lambda call: heard.append((call.path, call.delivered_to)))
    token = {"access_token": await _token(http)}
    text = {"msgtype": "text", "text": {"content": "您好"}}
    await http.post("/cgi-bin/message/custom/send", params=token, json={"touser": "o_a", **text})
    fake.unfollow("o_gone")
    refused = await http.post("/cgi-bin/message/custom/send", params=token, json={"touser": "o_gone", **text})
    assert (await refused.json())["errcode"] == 43004
    await http.post("/cgi-bin/message/mass/preview", params=token, json={"touser": "o_staff", **text})
    assert heard == [("/cgi-bin/message/custom/send", ["o_a"]), ("/cgi-bin/message/mass/preview", ["o_staff"])]


async def test_a_mass_send_reaches_its_audience_less_those_filtered_and_reports_counts(
    http: TestClient[Any, Any],
) -> None:
    fake = _fake(http)
    jobs: list[dict[str, str]] = []
    fake.on_mass_job = lambda job: jobs.append(job.report())
    token = {"access_token": await _token(http)}
    text = {"msgtype": "text", "text": {"content": "宪法宣传周"}}
    for openid in ("o_a", "o_b", "o_c"):
        fake.follow(openid)
    fake.user_tags["o_a"].add(2)
    fake.user_tags["o_b"].add(2)
    fake.unfollow("o_b")  # left; WeChat filters them out
    everyone = await http.post(
        "/cgi-bin/message/mass/sendall", params=token, json={"filter": {"is_to_all": True}, **text}
    )
    tagged = await http.post(
        "/cgi-bin/message/mass/sendall", params=token, json={"filter": {"is_to_all": False, "tag_id": 2}, **text}
    )
    listed = await http.post(
        "/cgi-bin/message/mass/send", params=token, json={"touser": ["o_a", "o_b", "o_x"], "clientmsgid": "k1", **text}
    )
    again = await http.post(
        "/cgi-bin/message/mass/send", params=token, json={"touser": ["o_a", "o_b", "o_x"], "clientmsgid": "k1", **text}
    )
    assert (await again.json())["errcode"] == 45065  # the same clientmsgid is not sent (nor reported) twice
    counts = [(j["TotalCount"], j["FilterCount"], j["SentCount"], j["ErrorCount"]) for j in jobs]
    assert counts == [("2", "2", "2", "0"), ("2", "1", "1", "0"), ("3", "2", "2", "0")]
    msg_ids = [(await r.json())["msg_id"] for r in (everyone, tagged, listed)]
    assert [j["MsgID"] for j in jobs] == [str(m) for m in msg_ids]
    assert [c.delivered_to for c in fake.successful("/cgi-bin/message/mass/sendall")] == [["o_a", "o_c"], ["o_a"]]
    # WeChat's monthly limit: a follower gets at most 4 mass messages a month (o_a has had 3)
    for _ in range(2):
        await http.post("/cgi-bin/message/mass/sendall", params=token, json={"filter": {"is_to_all": True}, **text})
    assert [(j["TotalCount"], j["SentCount"]) for j in jobs[3:]] == [("2", "2"), ("2", "1")]
    fake.reset()
    assert fake.followers == {"o_a", "o_c"} and fake.calls_to("/cgi-bin/message/mass/send") == []  # who follows stays
