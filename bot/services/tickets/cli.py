"""`lawbot tickets …`: the ticket queue from the command line (operators, scripts)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

LIST_STATUSES = ("新建", "已分派", "处理中", "已答复", "已解决", "已关闭", "调解中", "已转交", "open")


async def _rows(database_url: str, status: str | None, limit: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import Village
    from bot.storage.tickets import OPEN_STATUSES, Ticket

    load_all()
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            stmt = (
                select(Ticket, Village.name)
                .outerjoin(Village, Village.id == Ticket.village_id)
                .order_by(Ticket.id.desc())
                .limit(limit)
            )
            if status == "open":
                stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
            elif status:
                stmt = stmt.where(Ticket.status == status)
            rows = (await session.execute(stmt)).all()
    finally:
        await engine.dispose()
    return [
        {
            "id": t.id,
            "number": t.number,
            "village": village,
            "topic": t.topic,
            "status": t.status,
            "urgent": t.urgent,
            "created_at": t.created_at.isoformat(),
            "first_response_at": t.first_response_at.isoformat() if t.first_response_at else None,
        }
        for t, village in rows
    ]


@click.group()
def tickets() -> None:
    """Villagers' requests for a person (转人工)."""


@tickets.command("list")
@click.option("--status", type=click.Choice(LIST_STATUSES), default=None, help="only this status (open: not done)")
@click.option("--json", "as_json", is_flag=True, help="one JSON array instead of a table")
@click.option("--limit", type=int, default=200, show_default=True)
def list_tickets(status: str | None, as_json: bool, limit: int) -> None:
    """id, number, village, topic, status, urgent, created_at, first_response_at — newest first."""
    from bot.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = asyncio.run(_rows(settings.database_url, status, limit))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no tickets")
        return
    columns = ("id", "number", "village", "topic", "status", "urgent", "created_at", "first_response_at")
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join("" if row[c] is None else str(row[c]) for c in columns))
