"""Village tags in WeChat: a tag per village made on demand, followers (not staff with a bound WeChat) put in
the tag of their village (batches of ≤ 50) from the difference between ``villagers`` and
``village_tag_members``, so a rerun is a no-op.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, or_, select, update

from bot.services.campaigns.rules import CampaignError
from bot.services.campaigns.store import _insert
from bot.services.staff import bound_openids
from bot.storage.campaigns import VillageTagMember
from bot.storage.db import SessionFactory
from bot.storage.models import Village, Villager, utcnow
from bot.wechat.api import TAG_BATCH_MAX, WeChatClient
from bot.wechat.errors import PermanentError, WeChatError


def tag_name(village: Village) -> str:
    """A WeChat tag name (≤ 30 bytes), unique per village."""
    name = f"村{village.id}-"
    for ch in village.name:
        if len((name + ch).encode()) > 30:
            break
        name += ch
    return name


@dataclass
class TagSyncResult:
    created: list[int] = field(default_factory=list)  # village ids whose tag was created
    tagged: int = 0
    untagged: int = 0
    forgotten: int = 0  # records dropped for followers who left
    batches: int = 0
    pending: int = 0  # openids left for the next run (batch budget used up)
    errors: list[str] = field(default_factory=list)
    failed_villages: set[int] = field(default_factory=set)


async def ensure_village_tag(session_factory: SessionFactory, client: WeChatClient, village_id: int) -> int:
    """The village's WeChat tag id, creating the tag on first need (idempotent across workers)."""
    async with session_factory() as session:
        village = await session.get(Village, village_id)
        if village is None:
            raise CampaignError(f"没有这个村：{village_id}")
        if village.wechat_tag_id is not None:
            return village.wechat_tag_id
        name = tag_name(village)
    try:
        tag_id = (await client.create_tag(name)).id
    except PermanentError as exc:
        if exc.errcode != 45157:  # 45157: the name exists — created before, its id not saved
            raise
        found = [t.id for t in await client.get_tags() if t.name == name]
        if not found:
            raise
        tag_id = found[0]
    async with session_factory() as session, session.begin():
        village = await session.get(Village, village_id)
        assert village is not None
        if village.wechat_tag_id is None:
            village.wechat_tag_id = tag_id
        return village.wechat_tag_id


async def _record_tagged(
    session_factory: SessionFactory, tag_id: int, village_id: int, openids: Sequence[str], now: dt.datetime
) -> None:
    async with session_factory() as session, session.begin():
        insert = _insert(session)
        for openid in openids:
            stmt = insert(VillageTagMember).values(openid=openid, village_id=village_id, tag_id=tag_id, synced_at=now)
            stmt = stmt.on_conflict_do_update(
                index_elements=["openid"], set_={"village_id": village_id, "tag_id": tag_id, "synced_at": now}
            )
            await session.execute(stmt)


async def _record_untagged(session_factory: SessionFactory, tag_id: int, openids: Sequence[str]) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(
            delete(VillageTagMember).where(VillageTagMember.tag_id == tag_id, VillageTagMember.openid.in_(openids))
        )


async def _tag_gone(session_factory: SessionFactory, tag_id: int) -> None:
    """WeChat says the tag does not exist (deleted in the console): forget it, recreate on next need."""
    async with session_factory() as session, session.begin():
        await session.execute(update(Village).where(Village.wechat_tag_id == tag_id).values(wechat_tag_id=None))
        await session.execute(delete(VillageTagMember).where(VillageTagMember.tag_id == tag_id))


async def sync_village_tags(
    session_factory: SessionFactory,
    client: WeChatClient,
    *,
    village_ids: Collection[int] | None = None,
    max_batches: int | None = None,
    now: dt.datetime | None = None,
) -> TagSyncResult:
    """Make WeChat's village tags match the villagers' villages (all villages, or ``village_ids``).

    Followers are untagged from a village they left and tagged into their village, ≤ 50 per call.
    What has been done is recorded after each call, so a rerun (or a second worker) only does what is left.
    """
    now = now or utcnow()
    result = TagSyncResult()
    only = {int(v) for v in village_ids} if village_ids is not None else None
    async with session_factory() as session:
        villages = {
            int(v.id): v for v in (await session.execute(select(Village).where(Village.active.is_(True)))).scalars()
        }
        vstmt = select(Villager.openid, Villager.village_id, Villager.subscribed, Villager.subscribed_at).where(
            Villager.village_id.is_not(None)
        )
        mstmt = select(VillageTagMember)
        if only is not None:
            vstmt = vstmt.where(Villager.village_id.in_(only))
            mstmt = mstmt.where(VillageTagMember.village_id.in_(only))
        staff_openids = await bound_openids(session)  # staff are not villagers: out of village broadcasts
        wanted: dict[str, tuple[int, dt.datetime | None]] = {
            str(o): (v, subscribed_at)
            for o, v, subscribed, subscribed_at in (await session.execute(vstmt)).all()
            if subscribed and v is not None and v in villages and str(o) not in staff_openids
        }
        members = {m.openid: m for m in (await session.execute(mstmt)).scalars()}
        extra = set(wanted) - set(members)
        if extra:  # followers moving into these villages may carry another village's tag
            rows = await session.execute(select(VillageTagMember).where(VillageTagMember.openid.in_(extra)))
            members.update({m.openid: m for m in rows.scalars()})
        still = {
            str(o): (int(v) if v is not None else None, bool(s))
            for o, v, s in (
                await session.execute(
                    select(Villager.openid, Villager.village_id, Villager.subscribed).where(
                        Villager.openid.in_(list(members))
                    )
                )
            ).all()
        }
    # tags of the villages followers should be in
    tag_of: dict[int, int] = {}
    for vid in sorted({v for v, _at in wanted.values()}):
        existing = villages[vid].wechat_tag_id
        if existing is not None:
            tag_of[vid] = existing
            continue
        try:
            tag_of[vid] = await ensure_village_tag(session_factory, client, vid)
            result.created.append(vid)
        except WeChatError as exc:
            result.errors.append(f"{villages[vid].name}：创建微信标签失败：{exc.reason}")
            result.failed_villages.add(vid)
    for vid, village in villages.items():
        if village.wechat_tag_id is not None:
            tag_of.setdefault(vid, village.wechat_tag_id)

    forget: list[str] = []
    untag: dict[int, list[str]] = collections.defaultdict(list)
    tag: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
    for openid, member in members.items():
        village_id, subscribed = still.get(openid, (None, False))
        if not subscribed:
            forget.append(openid)  # WeChat drops a leaver from tags; no call needed
            continue
        desired = tag_of.get(village_id) if village_id is not None and village_id in villages else None
        if openid in staff_openids:
            desired = None  # a staff member's WeChat leaves the village tag
        if desired != member.tag_id:
            untag[member.tag_id].append(openid)
    for openid, (vid, subscribed_at) in wanted.items():
        if vid not in tag_of:
            continue
        m = members.get(openid)
        resubscribed = m is not None and subscribed_at is not None and subscribed_at > m.synced_at
        if m is None or m.tag_id != tag_of[vid] or resubscribed:
            tag[(tag_of[vid], vid)].append(openid)
    if forget:
        async with session_factory() as session, session.begin():
            await session.execute(delete(VillageTagMember).where(VillageTagMember.openid.in_(forget)))
        result.forgotten = len(forget)

    budget: float = max_batches if max_batches is not None else math.inf
    vid_of_tag = {t: v for v, t in tag_of.items()}

    async def run(kind: str, tag_id: int, village_id: int | None, openids: list[str]) -> None:
        nonlocal budget
        for start in range(0, len(openids), TAG_BATCH_MAX):
            batch = openids[start : start + TAG_BATCH_MAX]
            if budget <= 0:
                result.pending += len(batch)
                continue
            budget -= 1
            result.batches += 1
            done = await _tag_call(client, kind, tag_id, batch, result, village_id)
            if kind == "untag":
                if done:
                    await _record_untagged(session_factory, tag_id, done)
                    result.untagged += len(done)
            elif done and village_id is not None:
                await _record_tagged(session_factory, tag_id, village_id, done, now)
                result.tagged += len(done)
            if done is None:  # the tag is gone
                await _tag_gone(session_factory, tag_id)
                if village_id is not None:
                    result.failed_villages.add(village_id)
                return

    for tag_id, openids in sorted(untag.items()):
        await run("untag", tag_id, vid_of_tag.get(tag_id), sorted(openids))
    for (tag_id, vid), openids in sorted(tag.items()):
        await run("tag", tag_id, vid, sorted(openids))
    return result


async def _tag_call(
    client: WeChatClient,
    kind: str,
    tag_id: int,
    batch: list[str],
    result: TagSyncResult,
    village_id: int | None,
) -> list[str] | None:
    """One batch call; on a permanent error, each openid alone so one bad openid cannot block 49 others.
    Returns the openids done, or None when WeChat says the tag does not exist."""
    call = client.tag_users if kind == "tag" else client.untag_users
    try:
        await call(tag_id, batch)
        return batch
    except PermanentError as exc:
        if exc.errcode == 45159:
            if kind == "untag":
                return batch  # nothing to take off
            result.errors.append(f"微信标签 {tag_id} 不存在了，下次会重新创建。")
            return None
        if len(batch) == 1:
            if kind == "untag":
                return batch
            result.errors.append(f"{batch[0]}：{exc.reason}")
            return []
    except WeChatError as exc:
        result.errors.append(f"标签 {tag_id}：{exc.reason}")
        if village_id is not None:
            result.failed_villages.add(village_id)
        return []
    done: list[str] = []
    for openid in batch:
        try:
            await call(tag_id, [openid])
            done.append(openid)
        except PermanentError as exc:
            if kind == "untag":
                done.append(openid)
            else:
                result.errors.append(f"{openid}：{exc.reason}")
        except WeChatError as exc:
            result.errors.append(f"{openid}：{exc.reason}")
            if village_id is not None:
                result.failed_villages.add(village_id)
    return done


async def _tag_sync_needed(session_factory: SessionFactory) -> bool:
    """Cheap check: is any follower's village tag out of date?"""
    async with session_factory() as session:
        mismatch = await session.scalar(
            select(func.count())
            .select_from(Villager)
            .outerjoin(VillageTagMember, VillageTagMember.openid == Villager.openid)
            .join(Village, Village.id == Villager.village_id)
            .where(
                Villager.subscribed.is_(True),
                Village.active.is_(True),
                or_(
                    VillageTagMember.openid.is_(None),
                    Village.wechat_tag_id.is_(None),
                    VillageTagMember.tag_id != Village.wechat_tag_id,
                    Villager.subscribed_at > VillageTagMember.synced_at,
                ),
            )
        )
        if mismatch:
            return True
        stale = await session.scalar(
            select(func.count())
            .select_from(VillageTagMember)
            .outerjoin(Villager, Villager.openid == VillageTagMember.openid)
            .outerjoin(Village, Village.id == VillageTagMember.village_id)
            .where(
                or_(
                    Villager.id.is_(None),
                    Village.active.is_not(True),
                    Villager.subscribed.is_(False),
                    Villager.village_id.is_(None),
                    Villager.village_id != VillageTagMember.village_id,
                )
            )
        )
        return bool(stale)
