"""The README and the CLI keep their promises to a newcomer."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bot import __version__
from bot.cli import main
from bot.settings import settings_table

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_the_two_commands_and_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:1200]
    assert "make run" in head and "make test" in head
    for name, _default, _doc in settings_table():
        assert f"`{name}`" in readme, f"{name} is missing from README's settings table"


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_cli_version_and_commands() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    help_text = runner.invoke(main, ["--help"]).output
    for command in ("serve", "worker", "db", "chat", "ask", "kb"):
        assert command in help_text


def test_bad_settings_are_a_clear_error_not_a_traceback(monkeypatch: object) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["db", "upgrade"], env={"LAWBOT_ENV": "staging"})
    assert result.exit_code != 0
    assert "LAWBOT_ENV" in result.output
