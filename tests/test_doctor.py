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


def test_the_env_examples_placeholders_are_refused_in_production_and_flagged_before(tmp_path: Path) -> None:
    placeholder = "CHANGE_ME_random_3_to_32_chars"  # deploy/lawbot.env.example
    example = (Path(__file__).resolve().parent.parent / "deploy" / "lawbot.env.example").read_text(encoding="utf-8")
    assert f"LAWBOT_WECHAT_TOKEN={placeholder}" in example
    production = env_for(
        tmp_path,
        LAWBOT_ENV="production",
        LAWBOT_SECRET_KEY="k" * 40,
        LAWBOT_WECHAT_TOKEN=placeholder,
        LAWBOT_PUBLIC_URL="https://lawbot.example.gov.cn",
    )
    result = CliRunner().invoke(main, ["doctor", "--offline"], env=production)
    assert result.exit_code == 1 and "LAWBOT_WECHAT_TOKEN" in result.output
    served = CliRunner().invoke(main, ["serve", "--port", "18119"], env=production)
    assert served.exit_code != 0 and "LAWBOT_WECHAT_TOKEN" in served.output
    for key in ("CHANGE_ME", "dev-only-secret-key-change-me-0123456789abcdef"):  # the old public dev key too
        env = {**production, "LAWBOT_WECHAT_TOKEN": "a1b2c3", "LAWBOT_SECRET_KEY": key}
        served = CliRunner().invoke(main, ["serve", "--port", "18119"], env=env)
        assert served.exit_code != 0 and "LAWBOT_SECRET_KEY" in served.output
    development = env_for(tmp_path, LAWBOT_WECHAT_TOKEN=placeholder)
    result = CliRunner().invoke(main, ["doctor", "--offline"], env=development)
    assert "! 上线前要改" in result.output and "LAWBOT_WECHAT_TOKEN" in result.output
