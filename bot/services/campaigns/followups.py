"""Follow-ups and opt-out: an optional customer-service notice after the broadcast, only to villagers in
the 48-hour window who have not sent "退订" (staff with a bound WeChat are not villagers: none for them);
the campaign texts the worker needs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.store import get_campaign
from bot.services.outbox import enqueue
from bot.services.staff import bound_openids
from bot.settings import Settings
from bot.storage.campaigns import Campaign
from bot.storage.db import SessionFactory
from bot.storage.models import Villager

#: follow-ups only to villagers who wrote within this time (WeChat's window is 48 hours)
FOLLOW_UP_WINDOW = dt.timedelta(hours=47)


async def set_opt_out(session: AsyncSession, villager: Villager, opted_out: bool) -> bool:
    """退订 / 订阅 follow-up notices. Returns False if it was already so."""
    if bool(villager.opted_out) == opted_out:
        return False
    villager.opted_out = opted_out
    return True


async def audience_villagers(session: AsyncSession, c: Campaign) -> list[Villager]:
    stmt = select(Villager).where(Villager.subscribed.is_(True))
    if c.audience == "villages":
        stmt = stmt.where(Villager.village_id.in_([int(v) for v in c.village_ids]))
    elif c.audience == "openids":
        stmt = stmt.where(Villager.openid.in_([str(o) for o in c.openids]))
    return list((await session.execute(stmt.order_by(Villager.id))).scalars())


def follow_up_key(c: Campaign, openid: str) -> str:
    return f"campaign-followup:{c.id}:{c.send_key}:{openid}"


async def send_follow_ups(session_factory: SessionFactory, settings: Settings, now: dt.datetime) -> int:
    """After a campaign is sent (or at its follow-up time): a customer-service notice to each villager in
    its audience who wrote within the 48-hour window and has not sent "退订". Returns messages queued."""
    footer = campaign_text(settings, "campaign_followup_footer")
    queued = 0
    async with session_factory() as session:
        ids = list(
            (
                await session.execute(
                    select(Campaign.id).where(
                        Campaign.status == "sent",
                        Campaign.follow_up_text != "",
                        Campaign.follow_up_done_at.is_(None),
                        or_(Campaign.follow_up_at.is_(None), Campaign.follow_up_at <= now),
                    )
                )
            ).scalars()
        )
    for campaign_id in ids:
        async with session_factory() as session, session.begin():
            claimed = await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.follow_up_done_at.is_(None))
                .values(follow_up_done_at=now)
                .execution_options(synchronize_session=False)
            )
            if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
                continue
            c = await get_campaign(session, campaign_id)
            content = "\n".join(t for t in (c.follow_up_text, footer) if t)
            count = 0
            staff_openids = await bound_openids(session)  # staff are not villagers: no follow-ups
            for v in await audience_villagers(session, c):
                if v.opted_out or v.last_inbound_at is None or now - v.last_inbound_at > FOLLOW_UP_WINDOW:
                    continue
                if v.openid in staff_openids:
                    continue
                await enqueue(
                    session,
                    kind="cs_text",
                    openid=v.openid,
                    payload={"content": content},
                    idempotency_key=follow_up_key(c, v.openid),
                    source=f"campaign:{c.id}",
                )
                count += 1
            c.follow_up_count = count
            queued += count
    return queued


_texts_cache: dict[Path, tuple[float, dict[str, str]]] = {}


def campaign_text(settings: Settings, name: str) -> str:
    """A text from knowledge/texts/campaigns.yaml, for the worker (which has no chat Services)."""
    path = Path(settings.knowledge_dir) / "texts" / "campaigns.yaml"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return ""
    cached = _texts_cache.get(path)
    if cached is None or cached[0] != mtime:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        cached = (mtime, {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {})
        _texts_cache[path] = cached
    return cached[1].get(name, "").strip()
