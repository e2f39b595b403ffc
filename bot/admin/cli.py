"""`lawbot admin …`: staff accounts from the command line (the first admin, password resets)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click


def _settings() -> Any:
    from bot.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _read_password(password_stdin: bool, *, role: str, username: str, display_name: str = "") -> str:
    """The new password, checked like the back-office's forms (bot/admin/passwords.py)."""
    from bot.admin.passwords import password_problem

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, role=role, username=username, display_name=display_name)
    if problem:
        raise click.ClickException(problem)
    return password


async def _ensure_villages(session: Any, knowledge_dir: str, ids: tuple[int, ...]) -> None:
    """Villages of site.yaml exist before the first `lawbot serve` too."""
    import yaml

    from bot.storage.models import Village

    path = Path(knowledge_dir) / "site.yaml"
    configured: dict[Any, Any] = {}
    if path.exists():
        configured = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("villages") or {}
    for vid in ids:
        if await session.get(Village, vid) is None and vid in {int(k) for k in configured}:
            name = next(str(v) for k, v in configured.items() if int(k) == vid)
            session.add(Village(id=vid, name=name))
    await session.flush()


async def _create(
    settings: Any,
    username: str,
    role: str,
    villages: tuple[int, ...],
    name: str,
    password: str,
    position: str = "",
    reviewer: bool = False,
) -> int:
    from bot.admin import accounts
    from bot.admin.auth import hash_password
    from bot.services.tickets import audit_row
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import utcnow

    load_all()
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await _ensure_villages(session, settings.knowledge_dir, villages)
            staff = await accounts.create_staff(
                session,
                username=username,
                role=role,
                password_hash=await hash_password(password),
                village_ids=villages,
                display_name=name,
                position=position,
                reviewer=reviewer,
            )
            session.add(
                audit_row(
                    "staff.create",
                    utcnow(),
                    object_type="staff",
                    object_id=staff.id,
                    details={
                        "via": "cli",
                        "username": username,
                        "role": role,
                        "villages": list(villages),
                        "position": position,
                        "reviewer": reviewer,
                    },
                )
            )
            return staff.id
    finally:
        await engine.dispose()


async def _role_of(settings: Any, username: str) -> tuple[str, str]:
    from bot.admin import accounts
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory

    load_all()
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            staff = await accounts.by_username(session, username)
            if staff is None:
                raise click.ClickException(f"no such user: {username}")
            return staff.role, staff.display_name
    finally:
        await engine.dispose()


async def _set_password(settings: Any, username: str, password: str) -> None:
    from bot.admin import accounts
    from bot.admin.auth import hash_password
    from bot.services.tickets import audit_row
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import utcnow

    load_all()
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            staff = await accounts.by_username(session, username)
            if staff is None:
                raise click.ClickException(f"no such user: {username}")
            staff.password_hash = await hash_password(password)
            staff.session_epoch += 1
            staff.active = True
            session.add(audit_row("staff.password_reset", utcnow(), object_type="staff", object_id=staff.id))
    finally:
        await engine.dispose()


async def _list(settings: Any) -> list[tuple[str, str, str, bool, list[int]]]:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.staff import StaffUser

    load_all()
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            rows = (
                await session.execute(
                    select(StaffUser).options(selectinload(StaffUser.villages)).order_by(StaffUser.username)
                )
            ).scalars()
            return [(s.username, s.display_name, s.role, s.active, [v.id for v in s.villages]) for s in rows]
    finally:
        await engine.dispose()


@click.group()
def admin() -> None:
    """Back-office staff accounts."""


@admin.command("create-user")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["admin", "mediator", "volunteer", "leader"]),
    required=True,
    help="admin sees the township; leader (三长联动) sees the 三长联动 queue",
)
@click.option("--village", "villages", type=int, multiple=True, help="village id (repeat for several)")
@click.option("--name", "display_name", default="", help="display name, e.g. 张调解员")
@click.option(
    "--position",
    type=click.Choice(["centre_head", "police_head", "judicial_head", "court"]),
    default=None,
    help="三长联动 position: centre_head 乡矛调中心组长, police_head 派出所负责人, "
    "judicial_head 司法所所长, court 人民法庭",
)
@click.option(
    "--reviewer", is_flag=True, help="may publish the township's FAQ answers (法律审核: the judicial office's lawyer)"
)
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def create_user(
    username: str,
    role: str,
    villages: tuple[int, ...],
    display_name: str,
    position: str | None,
    reviewer: bool,
    password_stdin: bool,
) -> None:
    """Create a staff account (asks for the password unless --password-stdin)."""
    from bot.admin.accounts import AccountError, check_reviewer

    position = position or ""
    settings = _settings()
    try:
        check_reviewer(role, reviewer)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    password = _read_password(password_stdin, role=role, username=username, display_name=display_name)
    try:
        staff_id = asyncio.run(_create(settings, username, role, villages, display_name, password, position, reviewer))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    where = f" villages {', '.join(map(str, villages))}" if villages else ""
    where += f" position {position}" if position else ""
    where += " reviewer" if reviewer else ""
    from bot.links import sign_in_note

    click.echo(f"created {role} {username} (id {staff_id}){where}; sign in at {settings.base_url}/admin")
    click.echo(f"  {sign_in_note(settings)}")


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def set_password(username: str, password_stdin: bool) -> None:
    """Reset a password (signs the user out everywhere and re-activates the account)."""
    settings = _settings()
    role, display_name = asyncio.run(_role_of(settings, username))
    password = _read_password(password_stdin, role=role, username=username, display_name=display_name)
    asyncio.run(_set_password(settings, username, password))
    click.echo(f"password of {username} changed")


@admin.command("list-users")
def list_users() -> None:
    """Staff accounts: username, name, role, active, villages."""
    for username, name, role, active, villages in asyncio.run(_list(_settings())):
        state = "active" if active else "inactive"
        click.echo(f"{username}\t{name}\t{role}\t{state}\t{','.join(map(str, villages))}")
