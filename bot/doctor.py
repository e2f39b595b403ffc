"""`lawbot doctor`: is this installation ready to go live? One line per check, in Chinese and English.

Checks settings, the database (reachable, migrations at head), the knowledge, the account
menu and — unless ``--offline`` — that the WeChat API gives this AppID an access token.
Exit status 1 when anything is an error; warnings alone exit 0.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

from bot.settings import Settings

Level = Literal["ok", "warn", "error"]
MARK = {"ok": "✓", "warn": "!", "error": "✗"}


@dataclass(frozen=True)
class Finding:
    level: Level
    what: str


def _settings_findings(settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    if not settings.production:
        # production refuses these outright (Settings.validate); say so before going live
        found += [Finding("warn", f"上线前要改 / before going live: {p}") for p in settings.production_problems()]
    if settings.mode == "compatible":
        found.append(Finding("warn", "LAWBOT_WECHAT_MODE=compatible：明文推送也收；切换完成后请改为安全模式 (safe)"))
    if settings.production:
        if settings.mode == "plain":
            found.append(
                Finding("warn", "明文模式：推送没有加密和消息签名，建议在公众号后台用安全模式 (LAWBOT_WECHAT_AES_KEY)")
            )
        if not settings.public_url.startswith("https://"):
            found.append(Finding("error", "LAWBOT_PUBLIC_URL 必须是 https:// 地址（微信只推送到 HTTPS）"))
        if not settings.wechat_template_id:
            found.append(
                Finding(
                    "warn", "没有配置回复通知模板 (LAWBOT_WECHAT_TEMPLATE_ID)：48 小时外的回复要等村民再发消息才送达"
                )
            )
    else:
        unset = "" if settings.env else "（未设置，按 development 运行，只听 127.0.0.1）"
        found.append(Finding("warn", f"LAWBOT_ENV={settings.env_name}{unset}：模拟器开着；上线请设为 production"))
    if not found:
        found.append(Finding("ok", "设置完整"))
    return found


async def _database_findings(settings: Settings) -> list[Finding]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from bot.storage.db import create_engine
    from bot.storage.migrate import alembic_config

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    except Exception as exc:
        return [Finding("error", f"数据库连不上：{exc.__class__.__name__}: {exc}")]
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    if current != head:
        return [Finding("error", f"数据库版本 {current or '空'} ≠ {head}：请运行 lawbot db upgrade")]
    return [Finding("ok", f"数据库可用，版本 {head}")]


def _knowledge_findings(settings: Settings) -> list[Finding]:
    from bot.knowledge.loader import check_knowledge

    report = check_knowledge(Path(settings.knowledge_dir))
    found = [Finding("error", f"知识库：{p}") for p in report.problems[:10]]
    found += [Finding("warn", f"知识库：{w}") for w in report.warnings]
    if report.ok and report.kb is not None:
        found.append(Finding("ok", f"知识库 {len(report.kb.entries)} 条，法条引用全部可查"))
    return found


def _menu_findings(settings: Settings) -> list[Finding]:
    from bot.services.menu import MenuError, load_menu

    try:
        load_menu(
            Path(settings.knowledge_dir) / "menu.yaml", base_url=settings.base_url, production=settings.production
        )
    except MenuError as exc:
        return [Finding("error", f"菜单：{p}") for p in exc.problems]
    return [Finding("ok", "菜单 knowledge/menu.yaml 有效（推送：lawbot menu push）")]


async def _wechat_findings(settings: Settings) -> list[Finding]:
    from bot.wechat.api import WeChatClient
    from bot.wechat.errors import WeChatError

    client = WeChatClient.from_settings(settings)
    try:
        await client.fetch_access_token()
    except WeChatError as exc:
        return [Finding("error", f"微信接口拒绝了 AppID/AppSecret 或本机 IP：{exc.reason}")]
    except Exception as exc:
        return [Finding("error", f"连不上微信接口 {settings.wechat_api_base}：{exc.__class__.__name__}")]
    finally:
        await client.close()
    return [Finding("ok", "微信接口可用（取得了 access token）")]


async def diagnose(settings: Settings, *, offline: bool) -> list[Finding]:
    found = _settings_findings(settings)
    found += await _database_findings(settings)
    found += _knowledge_findings(settings)
    found += _menu_findings(settings)
    if not offline:
        found += await _wechat_findings(settings)
    return found


@click.command()
@click.option("--offline", is_flag=True, help="skip the call to the WeChat API")
def doctor(offline: bool) -> None:
    """Check that this installation is ready to go live (settings, database, knowledge, menu, WeChat)."""
    from bot.settings import SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        click.echo(f"{MARK['error']} 设置有误：{exc}")
        raise SystemExit(1) from exc
    found = asyncio.run(diagnose(settings, offline=offline))
    for f in found:
        click.echo(f"{MARK[f.level]} {f.what}")
    errors = sum(f.level == "error" for f in found)
    warnings = sum(f.level == "warn" for f in found)
    click.echo(f"{errors} errors, {warnings} warnings")
    if errors:
        raise SystemExit(1)
