"""knowledge/menu.yaml: the shipped menu, WeChat's limits with readable errors, and `menu push`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.services.menu import MenuError, build_menu, click_keys, load_menu, menu_path, push_menu
from bot.settings import Settings
from bot.wechat.api import WeChatClient
from tests import wechat_fakes

fake_server, fake, client = wechat_fakes.fake_server, wechat_fakes.fake, wechat_fakes.client

SHIPPED = Path(__file__).resolve().parent.parent / "knowledge" / "menu.yaml"


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(MenuError) as info:
        build_menu(text, base_url="https://fa.example.cn", **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def test_shipped_menu() -> None:
    menu = load_menu(SHIPPED, base_url="https://fa.example.cn/")
    assert [b["name"] for b in menu["button"]] == ["普法问答", "找人帮忙", "普法活动"]
    assert click_keys(menu) == [
        "FAQ_HOT",
        "FAQ_HOWTO",
        "HANDOFF",
        "MY_TICKETS",
        "BOOKING",
        "MY_BOOKINGS",
        "CONTACT",
        "PRIVACY",
    ]
    names = {s["name"]: s for b in menu["button"] for s in b["sub_button"]}
    assert names["往期普法"] == {"type": "view", "name": "往期普法", "url": "https://fa.example.cn/campaigns"}
    assert names["预约法律服务"]["key"] == "BOOKING"
    assert names["隐私说明"]["key"] == "PRIVACY"


def test_limits_with_line_numbers() -> None:
    text = """button:
  - name: 这是一个太长的一级菜单
    sub_button:
      - {type: click, name: 好, key: A}
  - name: 二
    sub_button:
      - {type: click, name: 一, key: A}
      - {type: view, name: 二, url: "ftp://x"}
      - {type: click, name: 三}
      - {type: clik, name: 四, key: D}
      - {type: click, name: 五, key: E, url: "https://x"}
      - {type: click, name: 六, key: F}
  - {type: click, name: 三, key: G}
  - {type: click, name: 四, key: H}
"""
    found = problems(text)
    joined = "\n".join(found)
    assert "menu.yaml:2: button[1].name: 一级菜单名称「这是一个太长的一级菜单」有 33 字节，最多 16 字节" in joined
    assert "top-level name is 33 bytes; WeChat allows 16" in joined
    assert "menu.yaml:1: button: 一级菜单要 1 到 3 个，现在 4 个" in joined
    assert "menu.yaml:6: button[2].sub_button: 子菜单要 1 到 5 个，现在 6 个" in joined
    assert "menu.yaml:7: button[2].sub_button[1].key: key「A」重复" in joined
    assert "不是 http(s) 网址" in joined
    assert "menu.yaml:9: button[2].sub_button[3].key: 缺少 key / key is missing" in joined
    assert "菜单类型「clik」不支持" in joined
    assert "不认识字段「url」" in joined


def test_byte_limits_exactly() -> None:
    sub = f"{{type: click, name: {'子' * 20}, key: {'K' * 128}}}"
    ok = build_menu(f"button:\n  - name: 一二三四五\n    sub_button:\n      - {sub}\n", base_url="https://x.cn")
    assert ok["button"][0]["sub_button"][0]["key"] == "K" * 128
    assert any("61 字节" in p for p in problems(f"button:\n  - {{type: click, name: {'子' * 20}a, key: K}}\n"))
    found = problems(
        f"button:\n  - name: 菜单\n    sub_button:\n      - {{type: click, name: {'子' * 21}, key: {'K' * 129}}}\n"
    )
    assert any("63 字节，最多 60 字节" in p for p in found)
    assert any("key 超过 128 字节" in p for p in found)


def test_placeholders_and_production_urls() -> None:
    assert any("未知占位符 {site}" in p for p in problems('button:\n  - {type: view, name: 网, url: "{site}/x"}\n'))
    local = 'button:\n  - {type: view, name: 网, url: "{base_url}/x"}\n'
    assert build_menu(local, base_url="http://127.0.0.1:8080")["button"][0]["url"] == "http://127.0.0.1:8080/x"
    with pytest.raises(MenuError, match="LAWBOT_PUBLIC_URL"):
        build_menu(local, base_url="http://127.0.0.1:8080", production=True)


def test_bad_files() -> None:
    assert "invalid YAML" in problems("button: [\n")[0]
    assert "button:" in problems("menu: []\n")[0]
    assert (
        "只能有 name"
        in problems("button:\n  - name: a\n    type: click\n    sub_button:\n      - {type: click, name: b, key: B}\n")[
            0
        ]
    )
    with pytest.raises(MenuError, match="cannot read"):
        load_menu(Path("/nonexistent/menu.yaml"), base_url="https://x.cn")


async def test_push_with_a_client(client: WeChatClient, fake_server: FakeWeChatServer, base_settings: Settings) -> None:
    settings = base_settings.with_(public_url="https://fa.example.cn")
    menu = await push_menu(settings, client)
    assert fake_server.fake.menu == menu
    (call,) = fake_server.fake.calls_to("/cgi-bin/menu/create")
    assert call.body["button"][2]["sub_button"][0]["url"] == "https://fa.example.cn/campaigns"
    assert call.errcode == 0


async def test_push_builds_its_own_client(
    fake_server: FakeWeChatServer, base_settings: Settings, tmp_path: Path
) -> None:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "menu.yaml").write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    settings = base_settings.with_(wechat_api_base=fake_server.base_url, knowledge_dir=str(knowledge))
    from bot.storage.all import load_all
    from bot.storage.db import create_engine

    engine = create_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(load_all().metadata.create_all)
    await engine.dispose()
    assert menu_path(settings) == knowledge / "menu.yaml"
    menu = await push_menu(settings)
    assert fake_server.fake.menu == menu
    assert fake_server.fake.token_fetches == 1
