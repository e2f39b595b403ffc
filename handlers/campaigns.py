"""Campaigns in chat: 退订 / 订阅 follow-up notices, 往期普法, and WeChat's MASSSENDJOBFINISH reports
(staff binding their WeChat for previews: handlers/staff.py).

Place this router BEFORE ``system`` in handlers/__init__.py: system's catch-all for WeChat's own
notices would otherwise take MASSSENDJOBFINISH first.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.routing import Ctx, HandlerResult, Router, TextReply, event, text_in
from bot.services import campaigns as service

log = logging.getLogger(__name__)

router = Router("campaigns")

OPT_OUT_WORDS = ("退订", "取消订阅", "不要提醒", "别再提醒", "TD")
OPT_IN_WORDS = ("订阅", "恢复订阅", "重新订阅", "恢复提醒")
ARCHIVE_WORDS = ("往期普法", "普法活动", "往期活动", "普法文章")
ARCHIVE_ITEMS = 3


@router.on(event("masssendjobfinish"))
async def mass_send_job_finish(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    """WeChat's count of a broadcast: stored on the campaign's part; nobody is answered."""
    report = await service.record_job_finish(ctx.session, ctx.msg.raw, now=ctx.now)
    if report is not None and report.part_id is None:
        log.info("MASSSENDJOBFINISH %s not matched to a campaign (yet)", report.msg_id)
    return None


@router.on(text_in(*OPT_OUT_WORDS))
async def opt_out(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    changed = await service.set_opt_out(ctx.session, ctx.villager, True)
    return TextReply(ctx.services.texts.get("campaign_optout_done" if changed else "campaign_optout_already"))


@router.on(text_in(*OPT_IN_WORDS))
async def opt_in(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    changed = await service.set_opt_out(ctx.session, ctx.villager, False)
    return TextReply(ctx.services.texts.get("campaign_optin_done" if changed else "campaign_optin_already"))


@router.on(text_in(*ARCHIVE_WORDS))
async def archive(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    url = f"{ctx.services.settings.base_url}/campaigns"
    latest = await service.public_campaigns(ctx.session, limit=ARCHIVE_ITEMS)
    if not latest:
        return TextReply(ctx.services.texts.get("campaign_archive_empty", url=url))
    items = "\n".join(
        f"· {c.title}（{service.china_time(c.sent_at).strftime('%m-%d') if c.sent_at else ''}）" for c in latest
    )
    return TextReply(ctx.services.texts.get("campaign_archive", url=url, items=items))
