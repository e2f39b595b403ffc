"""Reading campaigns and villages from the database (a staff member's campaigns only when an ``actor`` is
given: see :func:`bot.services.campaigns.rules.can_see`), and the dialect's upsert."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.rules import Actor, NotFound, can_see, require_access
from bot.storage.campaigns import Campaign
from bot.storage.models import Village


async def get_campaign(
    session: AsyncSession, campaign_id: int, *, for_update: bool = False, actor: Actor | None = None
) -> Campaign:
    """The campaign, or NotFound; PermissionDenied when ``actor`` may not see it."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    campaign = (await session.execute(stmt)).scalar_one_or_none()
    if campaign is None:
        raise NotFound("没有这个活动。")
    if actor is not None:
        require_access(actor, campaign)
    return campaign


async def list_campaigns(
    session: AsyncSession, *, status: str | None = None, limit: int = 200, actor: Actor | None = None
) -> list[Campaign]:
    """Newest first; only what ``actor`` may see when given (campaigns are few: a handful a month)."""
    stmt = select(Campaign).order_by(Campaign.id.desc())
    if status:
        stmt = stmt.where(Campaign.status == status)
    if actor is None or actor.is_admin:
        return list((await session.execute(stmt.limit(limit))).scalars())
    return [c for c in (await session.execute(stmt)).scalars() if can_see(actor, c)][:limit]


async def village_names(session: AsyncSession, *, active_only: bool = False) -> dict[int, str]:
    stmt = select(Village.id, Village.name).order_by(Village.id)
    if active_only:
        stmt = stmt.where(Village.active.is_(True))
    return {int(i): str(n) for i, n in (await session.execute(stmt)).all()}


async def _known_villages(session: AsyncSession) -> set[int]:
    return set((await village_names(session, active_only=True)).keys())


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
