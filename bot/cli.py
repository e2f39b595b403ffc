"""The `lawbot` command. Imports stay lazy so `lawbot ask` starts fast."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import click

from bot import __version__


def _settings(**overrides: Any) -> Any:
    from bot.settings import Settings, SettingsError

    try:
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(__version__, prog_name="lawbot")
def main() -> None:
    """乡法通 (lawbot): legal-education answers for villagers on WeChat."""


@main.command()
@click.option("--host", default=None, help="bind address (LAWBOT_HOST, default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (LAWBOT_PORT, default 8080)")
@click.option("--dev", is_flag=True, help="also run a fake WeChat API in-process and point the bot at it")
@click.option("--migrate/--no-migrate", default=False, help="run `db upgrade` first")
def serve(host: str | None, port: int | None, dev: bool, migrate: bool) -> None:
    """Run the webhook, back-office and (embedded setup) the outbox worker."""
    from aiohttp import web

    from bot.app import create_app

    settings = _settings(host=host, port=port)
    if settings.production and dev:
        raise click.ClickException("--dev is not allowed with LAWBOT_ENV=production")
    refusals, warnings = settings.startup_problems()
    for warning in warnings:  # loud: on stderr, where journald and `make run` show it
        click.echo(f"{'!' * 78}\n!! WARNING: {warning}\n{'!' * 78}", err=True)
    if refusals:
        raise click.ClickException(" ".join(refusals))
    if migrate:
        from bot.storage.migrate import upgrade

        upgrade(settings.database_url)
    if dev:
        from bot.devtools.dev_wechat import dev_settings

        settings = dev_settings(settings)
    app = create_app(settings)
    if dev:
        from bot.devtools.dev_wechat import mount_dev_wechat

        mount_dev_wechat(app, settings)
    # The knowledge index and templates live as long as the process: keep them out of the
    # collector's way (full collections over them showed up as p99 spikes under load).
    gc.collect()
    gc.freeze()
    from bot.links import printed_lines

    click.echo(f"乡法通 {__version__} listening on http://{settings.host}:{settings.port}")
    for line in printed_lines(settings, dev=dev):
        click.echo(line)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


@main.command()
def worker() -> None:
    """Deliver the outbox and run periodic jobs (reminders, escalations, campaigns, recovery)."""
    import logging

    from bot.services.jobs import run_worker_and_jobs

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker_and_jobs(settings))


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations (creates the SQLite file under var/ if needed)."""
    from bot.storage.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}: {_redact(settings.database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@click.option("--url", default=None, help="webhook URL (default: http://LAWBOT_HOST:LAWBOT_PORT/wechat)")
@click.option("--openid", default="o_terminal_villager", show_default=True, help="the villager you play")
@click.option(
    "--safe/--plain",
    default=None,
    help="encrypted (safe mode) or plaintext pushes; default: as WeChat sends them in LAWBOT_WECHAT_MODE",
)
@click.option("--scene", default=None, help="start by subscribing through a QR scene, e.g. village_3")
def chat(url: str | None, openid: str, safe: bool | None, scene: str | None) -> None:
    """Chat with a running bot from the terminal: signed WeChat XML in, replies printed.

    Type a message and press Enter. /sub, /unsub, /click KEY, /voice TEXT, /image, /quit.
    """
    settings = _settings()
    target = url or f"{settings.base_url}/wechat"
    asyncio.run(_chat(settings, target, openid, safe, scene))


async def _chat(settings: Any, url: str, openid: str, safe: bool | None, scene: str | None) -> None:
    import aiohttp

    from bot.wechat.pusher import PushSigner, post_push

    signer = PushSigner.for_settings(settings)
    if safe and signer.crypto is None:
        raise click.ClickException("--safe needs LAWBOT_WECHAT_AES_KEY")
    if safe is False and settings.mode == "safe":
        raise click.ClickException("--plain: the bot runs in safe mode (LAWBOT_WECHAT_MODE) and refuses plaintext")
    safe = signer.encrypts if safe is None else safe
    click.echo(f"乡法通 terminal chat → {url} as {openid} ({'safe' if safe else 'plaintext'} mode). /quit to leave.")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def send(fields: dict[str, Any]) -> None:
            try:
                reply = await post_push(session, url, signer, signer.sign(fields, encrypted=safe))
            except aiohttp.ClientError as exc:
                click.echo(f"[cannot reach the bot: {exc}]", err=True)
                return
            if reply.status != 200:
                click.echo(f"[HTTP {reply.status}] {reply.raw}")
            elif reply.is_success:
                click.echo("[no passive reply: success]")
            elif reply.fields.get("MsgType") == "news":
                click.echo(f"[news] {reply.fields.get('Articles')}")
            else:
                click.echo(f"乡法通> {reply.content}")

        if scene:
            await send(signer.event(openid, "subscribe", f"qrscene_{scene}"))
        loop = asyncio.get_running_loop()
        while True:
            try:
                line = await loop.run_in_executor(None, lambda: input("你> "))
            except (EOFError, KeyboardInterrupt):
                click.echo("")
                return
            line = line.strip()
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return
            if line == "/sub":
                await send(signer.event(openid, "subscribe", ""))
            elif line == "/unsub":
                await send(signer.event(openid, "unsubscribe", ""))
            elif line.startswith("/click "):
                await send(signer.event(openid, "CLICK", line[7:].strip()))
            elif line.startswith("/voice"):
                await send(signer.voice(openid, line[6:].strip() or None))
            elif line == "/image":
                await send(signer.message(openid, "image", PicUrl="http://127.0.0.1/x.png", MediaId="media_image"))
            else:
                await send(signer.text(openid, line))


@main.command("settings")
def show_settings() -> None:
    """List every LAWBOT_* setting with its default."""
    from bot.settings import settings_table

    for name, default, doc in settings_table():
        click.echo(f"{name}={default}\n    {doc}")


@main.command()
@click.option("--url", default=None, help="the running bot's base URL (default http://LAWBOT_HOST:LAWBOT_PORT)")
def reload(url: str | None) -> None:
    """Ask a running `lawbot serve` to reload knowledge/ (same as SIGHUP)."""
    import os
    import signal

    pid_hint = os.environ.get("LAWBOT_PID")
    if pid_hint:
        os.kill(int(pid_hint), signal.SIGHUP)
        click.echo(f"sent SIGHUP to {pid_hint}")
        return
    raise click.ClickException("set LAWBOT_PID (or send SIGHUP to the serve process yourself: kill -HUP PID)")


def _register_feature_commands() -> None:
    """Command groups that live with their features."""
    from bot.admin.cli import admin
    from bot.doctor import doctor
    from bot.kbcli import ask, kb
    from bot.services.disputes.cli import disputes
    from bot.services.menu_cli import menu
    from bot.services.tickets.cli import tickets

    for command in (ask, kb, admin, menu, tickets, disputes, doctor):
        main.add_command(command)


_register_feature_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
