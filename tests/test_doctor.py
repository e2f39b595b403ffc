"""`lawbot doctor` tells an operator what stands between this installation and going live."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from bot.devtools.fake_wechat import FakeWeChatServer
from bot.storage.migrate import upgrade
from tests import wechat_fakes

fake_server = wechat_fakes.fake_server


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "LAWBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        "LAWBOT_ENV": "development",
        **extra,
    }


def test_an_unmigrated_database_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["doctor", "--offline"], env=env_for(tmp_path))
    assert result.exit_code == 1
    assert "lawbot db upgrade" in result.output
    assert "✓ 知识库" in result.output


async def test_a_ready_installation_passes_and_reaches_the_wechat_api(
    tmp_path: Path, fake_server: FakeWeChatServer
) -> None:
    env = env_for(tmp_path, LAWBOT_WECHAT_API_BASE=fake_server.base_url)
    await asyncio.to_thread(upgrade, env["LAWBOT_DATABASE_URL"])
    result = await asyncio.to_thread(CliRunner().invoke, main, ["doctor"], env=env)
    assert result.exit_code == 0, result.output
    assert "✓ 数据库可用" in result.output and "✓ 微信接口可用" in result.output
    assert "! LAWBOT_ENV=development" in result.output  # a warning, not an error
    assert fake_server.fake.counts  # the token was really asked for


def test_production_without_https_is_an_error(tmp_path: Path) -> None:
    env = env_for(
        tmp_path,
        LAWBOT_ENV="production",
        LAWBOT_SECRET_KEY="k" * 40,
        LAWBOT_WECHAT_TOKEN="real-token",
        LAWBOT_PUBLIC_URL="http://lawbot.example.gov.cn",
    )
    result = CliRunner().invoke(main, ["doctor", "--offline"], env=env)
    assert result.exit_code == 1
    assert "https://" in result.output
