"""`lawbot menu push|show`: the account menu from knowledge/menu.yaml."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click


@click.group()
def menu() -> None:
    """The account's custom menu (knowledge/menu.yaml)."""


@menu.command("show")
def show() -> None:
    """Validate knowledge/menu.yaml and print what would be sent."""
    from bot.services.menu import MenuError, load_menu
    from bot.settings import Settings

    settings = Settings.from_env()
    path = Path(settings.knowledge_dir) / "menu.yaml"
    try:
        built = load_menu(path, base_url=settings.base_url, production=settings.production)
    except MenuError as exc:
        raise click.ClickException("menu.yaml is not valid:\n" + "\n".join(exc.problems)) from exc
    click.echo(json.dumps(built, ensure_ascii=False, indent=2))


@menu.command("push")
def push() -> None:
    """Validate knowledge/menu.yaml, then send it to WeChat (/cgi-bin/menu/create)."""
    from bot.services.menu import MenuError, click_keys, push_menu
    from bot.settings import Settings

    settings = Settings.from_env()
    try:
        built = asyncio.run(push_menu(settings))
    except MenuError as exc:
        raise click.ClickException("menu.yaml is not valid:\n" + "\n".join(exc.problems)) from exc
    click.echo("menu pushed; click keys: " + ", ".join(click_keys(built)))
