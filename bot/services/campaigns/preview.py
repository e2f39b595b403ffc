"""Previews: a ``mass_preview`` of the campaign's current version to the staff member's own WeChat, and
their delivery status; approval needs one that reached WeChat.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.message import build_message, mpnews_ready, uses_mpnews
from bot.services.campaigns.rules import EDITABLE, PREPARABLE, ROLES_DRAFT, Actor, CampaignError, _require
from bot.services.campaigns.store import get_campaign
from bot.services.outbox import enqueue
from bot.storage.campaigns import Campaign, CampaignPreview
from bot.storage.models import OutboxMessage, utcnow


def preview_key(c: Campaign, preview_id: int) -> str:
    return f"campaign-preview:{c.id}:{c.send_key}:{preview_id}"


async def request_preview(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: dt.datetime | None = None
) -> CampaignPreview:
    """Queue a mass preview of the campaign's current version to the actor's own WeChat."""
    _require(actor, ROLES_DRAFT, "预览活动")
    c = await get_campaign(session, campaign_id, actor=actor)
    if not actor.openid:
        raise CampaignError("您的账号还没有绑定微信 openid，无法发送预览。请在个人资料里绑定（需先关注公众号）。")
    if c.status not in (*EDITABLE, "scheduled"):
        raise CampaignError("这个活动已经发出或取消，不能再预览。")
    preview = CampaignPreview(
        campaign_id=c.id,
        version=c.version,
        openid=actor.openid,
        staff_id=actor.id,
        staff_name=actor.name,
        idempotency_key=f"pending-{secrets.token_hex(8)}",
        created_at=now or utcnow(),
    )
    session.add(preview)
    await session.flush()
    preview.idempotency_key = preview_key(c, preview.id)
    if uses_mpnews(c) and not mpnews_ready(c):
        return preview  # the worker prepares the article, then queues this preview (_queue_previews)
    await _queue_preview(session, c, preview)
    return preview


async def _queue_preview(session: AsyncSession, c: Campaign, preview: CampaignPreview) -> None:
    await enqueue(
        session,
        kind="mass_preview",
        openid=preview.openid,
        payload={"message": build_message(c)},
        idempotency_key=preview.idempotency_key,
        source=f"campaign:{c.id}",
    )


@dataclass(frozen=True)
class PreviewState:
    preview: CampaignPreview
    status: str  # preparing | pending | sending | sent | failed | held | missing
    error: str


async def previews(session: AsyncSession, campaign_id: int) -> list[PreviewState]:
    """Previews of a campaign, newest first, with their delivery status from the outbox
    (``preparing``: waiting for the worker to make the article; ``error`` says why it is late)."""
    c = await session.get(Campaign, campaign_id)
    rows = (
        await session.execute(
            select(CampaignPreview, OutboxMessage.status, OutboxMessage.last_error)
            .outerjoin(OutboxMessage, OutboxMessage.idempotency_key == CampaignPreview.idempotency_key)
            .where(CampaignPreview.campaign_id == campaign_id)
            .order_by(CampaignPreview.id.desc())
        )
    ).all()
    states: list[PreviewState] = []
    for p, status, error in rows:
        if status is None and c is not None and _preview_waits(c, p):
            states.append(PreviewState(p, "preparing", c.mpnews_error))
        else:
            states.append(PreviewState(p, status or "missing", error or ""))
    return states


def _preview_waits(c: Campaign, p: CampaignPreview) -> bool:
    return uses_mpnews(c) and p.version == c.version and c.status in PREPARABLE


async def preview_ok(session: AsyncSession, c: Campaign) -> bool:
    """A preview of the current version has reached someone's WeChat."""
    return any(p.preview.version == c.version and p.status == "sent" for p in await previews(session, c.id))
