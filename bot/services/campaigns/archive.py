"""The public archive: sent campaigns marked for it, newest first (往期普法 and the public pages)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.campaigns import Campaign


async def public_campaigns(session: AsyncSession, *, limit: int = 20, offset: int = 0) -> list[Campaign]:
    stmt = (
        select(Campaign)
        .where(Campaign.status == "sent", Campaign.archive.is_(True))
        .order_by(Campaign.sent_at.desc(), Campaign.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(stmt)).scalars())


async def public_campaign(session: AsyncSession, campaign_id: int) -> Campaign | None:
    c = await session.get(Campaign, campaign_id)
    if c is None or c.status != "sent" or not c.archive:
        return None
    return c
