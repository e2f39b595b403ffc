"""The periodic job (every 30 s): news articles → WeChat drafts, due campaigns → outbox, follow the outbox,
follow-ups, and the background village-tag sync.
"""

from __future__ import annotations

import logging

from bot.services.campaigns.followups import send_follow_ups
from bot.services.campaigns.news import prepare_news_campaigns
from bot.services.campaigns.privacy import forget_done_untags
from bot.services.campaigns.sending import _Api, dispatch_due, refresh_sending
from bot.services.campaigns.tags import _tag_sync_needed, sync_village_tags
from bot.services.jobs import JobContext
from bot.wechat.api import WeChatClient

log = logging.getLogger(__name__)


#: tag batches per tick for the background sync (a campaign's own villages are synced in full)
TAG_BATCHES_PER_TICK = 40


async def tick(ctx: JobContext, *, client: WeChatClient | None = None) -> None:
    """Every 30 s: news articles → WeChat drafts (and waiting previews → outbox); due campaigns → outbox;
    follow the outbox; match reports; follow-ups; village tags; erased followers' untag instructions cleared."""
    now = ctx.now()
    async with ctx.session_factory() as session, session.begin():
        await forget_done_untags(session)
    api = _Api(ctx.settings, ctx.session_factory, client)
    try:
        await prepare_news_campaigns(ctx.session_factory, api, now)
        await dispatch_due(ctx.session_factory, ctx.settings, api, now)
        await refresh_sending(ctx.session_factory, now)
        await send_follow_ups(ctx.session_factory, ctx.settings, now)
        if await _tag_sync_needed(ctx.session_factory):
            result = await sync_village_tags(
                ctx.session_factory, await api.get(), max_batches=TAG_BATCHES_PER_TICK, now=now
            )
            if result.errors:
                log.warning("village tag sync: %s", "; ".join(result.errors[:5]))
    finally:
        await api.close()
