"""Every button of the account menu gets an answer, and `lawbot menu show` validates the file."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from bot.cli import main
from bot.services.menu import click_keys, load_menu
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from tests.phone import Phone


def shipped_keys(settings: Settings) -> list[str]:
    return click_keys(load_menu(DEFAULT_KNOWLEDGE_DIR / "menu.yaml", base_url=settings.base_url))


async def test_every_menu_click_is_answered(client: Any, settings: Settings) -> None:
    keys = shipped_keys(settings)
    assert keys
    for i, key in enumerate(keys):
        phone = Phone(client, settings, openid=f"o_menu_{i}")
        reply = await phone.click(key)
        assert reply.strip(), f"menu key {key} got no answer"


def test_menu_show_prints_wechat_json() -> None:
    result = CliRunner().invoke(main, ["menu", "show"], env={"LAWBOT_ENV": "development"})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["button"]) <= 3
