"""Safe defaults (security review #8): without LAWBOT_ENV the bot listens on 127.0.0.1 only and says
so loudly; the back-office's session key is never a value published in the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bot.settings
from bot.cli import main
from bot.settings import Settings


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`lawbot serve` up to the point where it would listen: what it would have listened on."""
    from aiohttp import web

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(web, "run_app", lambda app, **kw: calls.append(kw))
    return calls


def serve(tmp_path: Path, *args: str, **env: str) -> Any:
    base = {"LAWBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", "LAWBOT_INPROCESS_WORKER": "no"}
    return CliRunner().invoke(main, ["serve", *args], env={**base, **env})


def test_without_lawbot_env_it_listens_on_loopback_and_warns(tmp_path: Path, no_server: list[dict[str, Any]]) -> None:
    result = serve(tmp_path)
    assert result.exit_code == 0, result.output
    assert no_server[0]["host"] == "127.0.0.1"
    assert "WARNING" in result.output and "LAWBOT_ENV is not set" in result.output
    assert "LAWBOT_SECRET_KEY is not set" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_without_lawbot_env_or_a_real_key_it_refuses_to_listen_elsewhere(
    tmp_path: Path, no_server: list[dict[str, Any]], host: str
) -> None:
    for extra in ({}, {"LAWBOT_SECRET_KEY": "CHANGE_ME" * 5}):
        result = serve(tmp_path, "--host", host, **extra)
        assert result.exit_code != 0 and "refusing to listen" in result.output
    assert not no_server
    keyed = serve(tmp_path, "--host", host, LAWBOT_SECRET_KEY="k" * 48)  # a real key: allowed, still warned
    assert keyed.exit_code == 0 and no_server[0]["host"] == host and "LAWBOT_ENV is not set" in keyed.output
    explicit = serve(tmp_path, "--host", host, LAWBOT_ENV="development")
    assert explicit.exit_code == 0  # someone who says development means it


def test_no_session_key_is_published_in_the_source() -> None:
    assert not hasattr(bot.settings, "DEV_SECRET_KEY")
    one, two = Settings.from_env({}), Settings.from_env({})
    assert one.effective_secret_key == two.effective_secret_key  # one per process…
    assert len(one.effective_secret_key) >= 48
    source = Path(bot.settings.__file__).read_text(encoding="utf-8")
    assert one.effective_secret_key not in source  # …made at random, never a constant
    assert Settings.from_env({"LAWBOT_SECRET_KEY": "s" * 40}).effective_secret_key == "s" * 40
