"""删除我的信息 in campaigns, and the matching export.

* The village tag we put on the follower in WeChat is taken off through the outbox (an ``untag`` row) and our
  record of it (``village_tag_members``) is deleted. The outbox row has to name the openid until WeChat has
  done it; it is addressed to :data:`UNTAG_ADDRESSEE` (not the villager), and :func:`forget_done_untags` (the
  periodic job) clears its payload as soon as it is sent or has failed.
* An openid-list campaign and its mass-send parts lose the openid (the counts stay), and so do the outbox
  rows of those parts.
* A staff member's own WeChat binding (预览绑定) to this openid is undone.
What the sweep of :mod:`bot.services.erasure` does afterwards covers the rest (previews sent to this
openid, follow-up messages through the outbox rows addressed to it).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Text, cast, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.outbox import enqueue
from bot.storage.campaigns import Campaign, CampaignPart, CampaignPreview, StaffWeChat, VillageTagMember
from bot.storage.models import OutboxMessage

#: the outbox ``openid`` of the instructions that take an erased villager out of their village tag: not an
#: addressee (nobody is messaged), a marker the periodic job finds them by once they are done
UNTAG_ADDRESSEE = "(erasure)"


async def erase_personal_data(session: AsyncSession, openid: str, now: dt.datetime | None = None) -> int:
    """Untag, forget the membership, take the openid out of openid lists and out of a staff binding.
    Returns how many campaigns named the openid in their list."""
    member = await session.get(VillageTagMember, openid)
    if member is not None:
        await enqueue(
            session,
            kind="untag",
            openid=UNTAG_ADDRESSEE,
            payload={"tag_id": member.tag_id, "openids": [openid]},
            idempotency_key=f"erasure-untag:{secrets.token_hex(12)}",  # never made from the openid
            source="erasure",
        )
        await session.delete(member)
    named = 0
    for c in (await session.execute(select(Campaign).where(Campaign.audience == "openids"))).scalars():
        if openid in (c.openids or []):
            c.openids = [o for o in c.openids if o != openid]
            named += 1
    parts = await session.execute(
        select(CampaignPart).where(cast(CampaignPart.openids, Text).contains(openid, autoescape=True))
    )
    for part in parts.scalars():
        if openid not in (part.openids or []):
            continue
        part.openids = [o for o in part.openids if o != openid]
        row = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == part.idempotency_key))
        ).scalar_one_or_none()
        if row is not None and openid in (row.payload or {}).get("openids", []):
            row.payload = {**row.payload, "openids": [o for o in row.payload["openids"] if o != openid]}
    await session.execute(
        update(StaffWeChat)
        .where(StaffWeChat.openid == openid)
        .values(openid=None, bound_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return named


async def forget_done_untags(session: AsyncSession) -> int:
    """The untag instructions WeChat has carried out (or refused for good) no longer name the villager."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.openid == UNTAG_ADDRESSEE, OutboxMessage.status.in_(("sent", "failed")))
        .values(openid=None, payload={})
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def export_personal_data(session: AsyncSession, openid: str) -> dict[str, Any]:
    """What campaigns keep about a follower: their village tag, the openid-list campaigns and parts naming
    them, previews sent to them (a staff member's own WeChat) and such a binding."""
    member = await session.get(VillageTagMember, openid)
    listed = [
        {"title": c.title, "status": c.status, "sent_at": c.sent_at.isoformat() if c.sent_at else None}
        for c in (await session.execute(select(Campaign).where(Campaign.audience == "openids"))).scalars()
        if openid in (c.openids or [])
    ]
    parts = (
        await session.execute(
            select(CampaignPart).where(cast(CampaignPart.openids, Text).contains(openid, autoescape=True))
        )
    ).scalars()
    previews = (await session.execute(select(CampaignPreview).where(CampaignPreview.openid == openid))).scalars()
    binding = (await session.execute(select(StaffWeChat).where(StaffWeChat.openid == openid))).scalar_one_or_none()
    return {
        "village_tag": {
            "village_id": member.village_id,
            "tag_id": member.tag_id,
            "synced_at": member.synced_at.isoformat(),
        }
        if member
        else None,
        "openid_list_campaigns": listed,
        "mass_send_parts": [
            {"campaign_id": p.campaign_id, "seq": p.seq, "status": p.status, "size": p.size}
            for p in parts
            if openid in (p.openids or [])
        ],
        "previews_received": [
            {
                "campaign_id": p.campaign_id,
                "version": p.version,
                "staff_name": p.staff_name,
                "at": p.created_at.isoformat(),
            }
            for p in previews
        ],
        "staff_binding": {
            "staff_id": binding.staff_id,
            "bound_at": binding.bound_at.isoformat() if binding.bound_at else None,
        }
        if binding
        else None,
    }
