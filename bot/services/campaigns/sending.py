"""Sending: a due scheduled campaign becomes parts, one WeChat mass-send call each (all followers, one
village tag or ≤ 10,000 openids), written to the outbox in one transaction under idempotency keys
``campaign:{id}:{send_key}:{seq}``; then the outbox is followed until the campaign is sent or failed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.message import build_message, mpnews_ready, uses_mpnews
from bot.services.campaigns.news import prepare_news
from bot.services.campaigns.quota import check_quota
from bot.services.campaigns.reach import _link_reports, _outbox_msg_id
from bot.services.campaigns.store import get_campaign, village_names
from bot.services.campaigns.tags import sync_village_tags
from bot.services.outbox import enqueue
from bot.settings import Settings
from bot.storage.campaigns import Campaign, CampaignPart, VillageTagMember
from bot.storage.db import SessionFactory
from bot.storage.models import OutboxMessage, Village
from bot.wechat.api import MASS_OPENIDS_MAX, MASS_OPENIDS_MIN, WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import token_store_for

#: a scheduled campaign whose village tags cannot be synced is retried until it is this late
SEND_GRACE = dt.timedelta(hours=6)


def part_key(c: Campaign, seq: int) -> str:
    return f"campaign:{c.id}:{c.send_key}:{seq}"


def split_openids(openids: Sequence[str]) -> list[list[str]]:
    """≤ 10,000 per call and ≥ 2 in each (sizes as even as possible)."""
    items = list(dict.fromkeys(openids))
    if len(items) < MASS_OPENIDS_MIN:
        return []
    n = math.ceil(len(items) / MASS_OPENIDS_MAX)
    size, rest = divmod(len(items), n)
    chunks, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < rest else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


async def _plan_parts(session: AsyncSession, c: Campaign) -> tuple[list[CampaignPart], list[str]]:
    """The mass-send calls of a campaign (village tags must be synced already)."""
    notes: list[str] = []
    parts: list[CampaignPart] = []
    if c.audience == "all":
        parts.append(CampaignPart(target="all", size=0))
    elif c.audience == "villages":
        names = await village_names(session)
        for vid in sorted({int(v) for v in c.village_ids}):
            village = await session.get(Village, vid)
            tag_id = village.wechat_tag_id if village is not None else None
            size = 0
            if tag_id is not None:
                size = int(
                    await session.scalar(
                        select(func.count()).select_from(VillageTagMember).where(VillageTagMember.tag_id == tag_id)
                    )
                    or 0
                )
            if tag_id is None or size == 0:
                notes.append(f"{names.get(vid, vid)}还没有关注公众号的村民，跳过。")
                continue
            parts.append(CampaignPart(target="tag", village_id=vid, tag_id=tag_id, size=size))
    else:
        for chunk in split_openids([str(o) for o in c.openids]):
            parts.append(CampaignPart(target="openids", openids=chunk, size=len(chunk)))
    for seq, part in enumerate(parts, start=1):
        part.campaign_id = c.id
        part.seq = seq
        part.idempotency_key = part_key(c, seq)
    return parts, notes


async def _fail(session_factory: SessionFactory, campaign_id: int, reason: str, *, only_if: str) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == only_if)
            .values(status="failed", last_error=reason)
        )


async def _note(session_factory: SessionFactory, campaign_id: int, reason: str) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(last_error=reason))


async def start_sending(session: AsyncSession, settings: Settings, campaign_id: int, now: dt.datetime) -> bool:
    """Claim a due scheduled campaign and write its parts to the outbox (one transaction, the caller's).

    Returns False if another worker had it, or it was refused (then it is ``failed``)."""
    claimed = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == "scheduled")
        .values(status="sending", sending_at=now, last_error="")
        .execution_options(synchronize_session=False)
    )
    if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
        return False
    c = await get_campaign(session, campaign_id)
    await session.refresh(c)
    if uses_mpnews(c) and not mpnews_ready(c):  # dispatch_due prepares first; this is a safety net
        c.status, c.sending_at = "scheduled", None
        c.last_error = "图文素材还没准备好，稍后重试。" + (c.mpnews_error or "")
        return False
    check = await check_quota(session, settings, c, now=now, planned=False)
    if not check.ok:
        c.status = "failed"
        c.last_error = check.message
        return False
    parts, notes = await _plan_parts(session, c)
    if not parts:
        c.status = "failed"
        c.last_error = " ".join(notes) or "没有可以群发的对象。"
        return False
    message = build_message(c)
    for part in parts:
        session.add(part)
        payload: dict[str, Any] = {"message": message}
        if part.target == "all":
            payload["is_to_all"] = True
            kind = "mass_tag"
        elif part.target == "tag":
            payload["tag_id"] = part.tag_id
            kind = "mass_tag"
        else:
            payload["openids"] = part.openids
            kind = "mass_openids"
        await enqueue(
            session,
            kind=kind,
            openid=None,
            payload=payload,
            idempotency_key=part.idempotency_key,
            source=f"campaign:{c.id}",
        )
    c.last_error = " ".join(notes)
    return True


async def _not_yet(
    session_factory: SessionFactory,
    campaign_id: int,
    reason: str,
    due_since: dt.datetime,
    now: dt.datetime,
) -> None:
    """A due campaign cannot go yet: retried next tick, failed once it is ``SEND_GRACE`` late."""
    if now - due_since > SEND_GRACE:
        await _fail(session_factory, campaign_id, reason, only_if="scheduled")
    else:
        await _note(session_factory, campaign_id, reason)


async def dispatch_due(session_factory: SessionFactory, settings: Settings, api: _Api, now: dt.datetime) -> list[int]:
    """Scheduled campaigns whose time has come → outbox. Returns the ids handed over."""
    async with session_factory() as session:
        due = (
            await session.execute(
                select(
                    Campaign.id,
                    Campaign.audience,
                    Campaign.village_ids,
                    Campaign.scheduled_at,
                    Campaign.approved_at,
                    Campaign.kind,
                    Campaign.article_cover_url,
                )
                .where(
                    Campaign.status == "scheduled",
                    or_(Campaign.scheduled_at.is_(None), Campaign.scheduled_at <= now),
                )
                .order_by(Campaign.scheduled_at, Campaign.id)
            )
        ).all()
    started: list[int] = []
    for campaign_id, audience, village_ids, scheduled_at, approved_at, kind, cover_url in due:
        due_since = scheduled_at or approved_at or now
        if kind == "news" and cover_url:
            media_id, error = await prepare_news(session_factory, await api.get(), campaign_id)
            if media_id is None:
                await _not_yet(session_factory, campaign_id, "图文素材还没准备好，稍后重试：" + error, due_since, now)
                continue
        if audience == "villages":
            client = await api.get()
            result = await sync_village_tags(session_factory, client, village_ids=village_ids, now=now)
            failed = result.failed_villages & {int(v) for v in village_ids}
            if failed:
                reason = "同步村标签失败，稍后重试：" + "；".join(result.errors[:3])
                await _not_yet(session_factory, campaign_id, reason, due_since, now)
                continue
        async with session_factory() as session, session.begin():
            if await start_sending(session, settings, campaign_id, now):
                started.append(campaign_id)
    return started


async def refresh_sending(session_factory: SessionFactory, now: dt.datetime) -> list[int]:
    """Follow the outbox: parts sent/failed, campaigns sending → sent/failed. Returns campaigns finished."""
    finished: list[int] = []
    async with session_factory() as session, session.begin():
        campaigns = list((await session.execute(select(Campaign).where(Campaign.status == "sending"))).scalars())
        for c in campaigns:
            parts = list(
                (await session.execute(select(CampaignPart).where(CampaignPart.campaign_id == c.id))).scalars()
            )
            rows = {
                r.idempotency_key: r
                for r in (
                    await session.execute(
                        select(OutboxMessage).where(
                            OutboxMessage.idempotency_key.in_([p.idempotency_key for p in parts])
                        )
                    )
                ).scalars()
            }
            for part in parts:
                row = rows.get(part.idempotency_key)
                if part.status == "sent" and part.msg_id is None and row is not None:
                    part.msg_id = _outbox_msg_id(row)
                if part.status != "pending":
                    continue
                if row is None:
                    part.status, part.error = "failed", "发件箱里找不到这条群发"
                elif row.status == "sent":
                    part.status, part.sent_at = "sent", row.sent_at or now
                    msg_id = _outbox_msg_id(row)
                    if msg_id is not None and part.msg_id is None:
                        part.msg_id = msg_id
                elif row.status == "failed":
                    part.status, part.error = "failed", row.last_error or "发送失败"
            if parts and all(p.status != "pending" for p in parts):
                failed = [p for p in parts if p.status == "failed"]
                if not failed:
                    c.status = "sent"
                    c.sent_at = max((p.sent_at for p in parts if p.sent_at), default=now)
                else:
                    c.status = "failed"
                    done = len(parts) - len(failed)
                    c.last_error = (f"{len(parts)} 次群发中 {done} 次成功。" if done else "") + failed[0].error
                    if done:
                        c.sent_at = max((p.sent_at for p in parts if p.sent_at), default=now)
                finished.append(c.id)
            elif not parts:
                c.status, c.last_error = "failed", c.last_error or "没有群发内容"
                finished.append(c.id)
        await _link_reports(session, now)
    return finished


class _Api:
    """A WeChat client made on first need (most ticks need none) and closed after the tick."""

    def __init__(self, settings: Settings, session_factory: SessionFactory, client: WeChatClient | None = None) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self._client = client
        self._owned: tuple[WeChatClient, RateLimiter, Any] | None = None

    async def get(self) -> WeChatClient:
        if self._client is None:
            store = token_store_for(self.settings, self.session_factory)
            limiter = RateLimiter(redis_url=self.settings.redis_url or None)
            self._client = WeChatClient.from_settings(self.settings, token_store=store, rate_limiter=limiter)
            self._owned = (self._client, limiter, store)
        return self._client

    async def close(self) -> None:
        if self._owned is not None:
            client, limiter, store = self._owned
            await client.close()
            await limiter.close()
            await store.close()
            self._owned = None
            self._client = None
