"""Subscribe, unsubscribe, QR scans and WeChat's own notices."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, event
from bot.storage.models import Village

router = Router("system")

_VILLAGE_SCENE = re.compile(r"^village_(\d{1,4})$")


async def _village_from_scene(ctx: Ctx) -> Village | None:
    match = _VILLAGE_SCENE.match(ctx.msg.scene)
    if not match:
        return None
    village = await ctx.session.get(Village, int(match.group(1)))
    return village if village is not None and village.active else None


async def _assign_village(ctx: Ctx) -> str:
    """Set the villager's village from a village QR code; return the welcome line for it."""
    village = await _village_from_scene(ctx)
    if village is None:
        return ""
    ctx.villager.village_id = village.id
    ctx.villager.village_source = "qrscene"
    return ctx.services.texts.get("welcome_village", village=village.name)


@router.on(event("subscribe"))
async def subscribe(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    ctx.villager.subscribed = True
    ctx.villager.subscribed_at = ctx.now
    ctx.villager.unsubscribed_at = None
    texts = ctx.services.texts
    village_line = await _assign_village(ctx)
    return TextReply("\n".join(t for t in (texts.get("welcome"), village_line) if t))


@router.on(event("unsubscribe"))
async def unsubscribe(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    ctx.villager.subscribed = False
    ctx.villager.unsubscribed_at = ctx.now
    ctx.clear_state()
    return None  # WeChat delivers nothing to someone who just left


@router.on(event("scan"))
async def scan(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    line = await _assign_village(ctx)
    return TextReply(line or ctx.services.texts.get("greeting"))


@router.on(event("view", "location", "templatesendjobfinish", "masssendjobfinish"))
async def stored_only(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    """Kept in inbound_messages for the features that read them (campaign reach, delivery)."""
    return None


@router.on(lambda ctx: ctx.msg.is_event and not ctx.msg.known)
async def unknown_event(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return None


async def villages(ctx: Ctx) -> list[Village]:
    rows = await ctx.session.execute(select(Village).where(Village.active.is_(True)).order_by(Village.id))
    return list(rows.scalars())


__all__ = ["CONTINUE", "router", "villages"]
