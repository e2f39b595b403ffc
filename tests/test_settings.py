"""Settings: LAWBOT_* and an optional .env, read when built, validated with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError


def test_environment_wins_over_dotenv_and_types_are_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("LAWBOT_PORT=9000\nLAWBOT_WECHAT_TOKEN=from-dotenv\nLAWBOT_INPROCESS_WORKER=no\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAWBOT_WECHAT_TOKEN", "from-environment")
    monkeypatch.setenv("LAWBOT_REPLY_DEADLINE", "3.5")
    settings = Settings.from_env()
    assert settings.port == 9000
    assert settings.wechat_token == "from-environment"
    assert settings.inprocess_worker is False
    assert settings.reply_deadline == 3.5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAWBOT_PORT": "eighty"}, "LAWBOT_PORT"),
        ({"LAWBOT_WECHAT_AES_KEY": "short"}, "43"),
        ({"LAWBOT_REPLY_DEADLINE": "6"}, "5 seconds"),
        ({"LAWBOT_ENV": "production"}, "LAWBOT_SECRET_KEY"),
        ({"LAWBOT_ENV": "production", "LAWBOT_SECRET_KEY": "k" * 40}, "LAWBOT_WECHAT_TOKEN"),
        ({"LAWBOT_WECHAT_RATE_LIMITS": "mass=sixty"}, "LAWBOT_WECHAT_RATE_LIMITS"),
        ({"LAWBOT_FIRST_RESPONSE_HOURS": "0"}, "LAWBOT_FIRST_RESPONSE_HOURS"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_nothing_is_read_at_import_time() -> None:
    """Importing the application with nonsense settings is fine: they are read when the app is built."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAWBOT_PORT": "not-a-number", "LAWBOT_ENV": "nonsense"}
    code = "import bot.app, bot.cli, handlers, bot.services.outbox, bot.admin; print('imported')"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout
