"""The broadcast quota: a service account reaches each follower at most 4 times a calendar month (Beijing
time), a subscription account sends once a day. :func:`quota_status` shows what is left,
:func:`check_quota` refuses a campaign that would go over.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.rules import china_time
from bot.services.campaigns.store import village_names
from bot.settings import Settings
from bot.storage.campaigns import Campaign, CampaignPart
from bot.storage.models import Villager, utcnow
from bot.wechat.api import MASS_OPENIDS_MAX

#: broadcasts each follower may receive per calendar month (service account)
SERVICE_MONTHLY_LIMIT = 4
#: broadcasts per calendar day (subscription account)
SUBSCRIPTION_DAILY_LIMIT = 1
#: statuses that use quota when planning (approval) and when sending
PLANNED = ("scheduled", "sending", "sent", "failed")
GONE_OUT = ("sending", "sent", "failed")


@dataclass(frozen=True)
class QuotaStatus:
    account_type: str  # service | subscription
    period_label: str  # "2026年11月" | "11月29日"
    limit: int
    left: int  # broadcasts to all followers still possible in the period
    by_village: dict[int, int]  # service: left per village

    @property
    def summary(self) -> str:
        if self.account_type == "subscription":
            return f"订阅号每天可群发 {self.limit} 次；{self.period_label}还可群发 {self.left} 次。"
        return f"服务号每位关注者每月最多收到 {self.limit} 次群发；{self.period_label}还可群发 {self.left} 次（全体）。"


@dataclass(frozen=True)
class QuotaCheck:
    ok: bool
    needed: int
    left: int
    message: str


def _period(settings: Settings, when: dt.datetime) -> tuple[dt.datetime, dt.datetime, str]:
    local = china_time(when)
    if settings.wechat_account_type == "subscription":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + dt.timedelta(days=1), f"{local.month}月{local.day}日"
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end, f"{local.year}年{local.month}月"


def send_moment(c: Campaign, now: dt.datetime) -> dt.datetime:
    """When a campaign goes (or went) out: for quota periods."""
    if c.sending_at is not None:
        return c.sending_at
    if c.scheduled_at is not None:
        return max(c.scheduled_at, now) if c.status in ("draft", "awaiting_approval", "scheduled") else c.scheduled_at
    return now


async def _counted(
    session: AsyncSession,
    settings: Settings,
    when: dt.datetime,
    now: dt.datetime,
    *,
    planned: bool,
    exclude: int | None,
) -> tuple[list[Campaign], dict[int, int]]:
    """Campaigns using quota in the period of ``when``, and how many of their parts went out."""
    start, end, _label = _period(settings, when)
    statuses = PLANNED if planned else GONE_OUT
    since = start - dt.timedelta(days=1)
    stmt = select(Campaign).where(
        Campaign.status.in_(statuses),
        or_(
            Campaign.sending_at >= since,
            Campaign.scheduled_at >= since,
            Campaign.scheduled_at.is_(None),
            Campaign.approved_at >= since,
        ),
    )
    if exclude is not None:
        stmt = stmt.where(Campaign.id != exclude)
    campaigns = [c for c in (await session.execute(stmt)).scalars() if start <= send_moment(c, now) < end]
    parts: dict[int, int] = {}
    if campaigns:
        rows = await session.execute(
            select(CampaignPart.campaign_id, func.count())
            .where(CampaignPart.campaign_id.in_([c.id for c in campaigns]), CampaignPart.status != "failed")
            .group_by(CampaignPart.campaign_id)
        )
        parts = {int(cid): int(n) for cid, n in rows.all()}
    # a failed campaign uses quota only if some of it went out
    kept = [c for c in campaigns if c.status != "failed" or parts.get(c.id, 0) > 0]
    return kept, parts


def planned_parts(c: Campaign) -> int:
    if c.audience == "villages":
        return max(1, len(c.village_ids))
    if c.audience == "openids":
        return max(1, math.ceil(len(c.openids) / MASS_OPENIDS_MAX))
    return 1


@dataclass
class _Usage:
    """Service account: broadcasts per follower = all + their village's + their own openid lists."""

    n_all: int = 0
    by_village: collections.Counter[int] = field(default_factory=collections.Counter)
    by_openid: collections.Counter[str] = field(default_factory=collections.Counter)
    villagers: dict[str, int | None] = field(default_factory=dict)  # subscribed openid → village

    def of(self, openid: str, village_id: int | None) -> int:
        return self.n_all + (self.by_village[village_id] if village_id is not None else 0) + self.by_openid[openid]

    def worst(self, c: Campaign | None) -> int:
        """The most broadcasts any member of the audience has already (None: all followers)."""
        audience = c.audience if c is not None else "all"
        if audience == "all":
            values = [self.n_all]
            values += [self.of(o, v) for o, v in self.villagers.items()]
            values += [self.n_all + n for n in self.by_village.values()]
            values += [self.n_all + n for n in self.by_openid.values()]
            return max(values)
        if audience == "villages" and c is not None:
            chosen = {int(v) for v in c.village_ids}
            values = [self.n_all + self.by_village[v] for v in chosen]
            values += [self.of(o, v) for o, v in self.villagers.items() if v in chosen]
            return max(values, default=self.n_all)
        assert c is not None
        return max((self.of(str(o), self.villagers.get(str(o))) for o in c.openids), default=self.n_all)

    def village_worst(self, village_id: int) -> int:
        values = [self.n_all + self.by_village[village_id]]
        values += [self.of(o, v) for o, v in self.villagers.items() if v == village_id]
        return max(values)


async def _usage(session: AsyncSession, counted: Iterable[Campaign]) -> _Usage:
    usage = _Usage()
    for c in counted:
        if c.audience == "all":
            usage.n_all += 1
        elif c.audience == "villages":
            usage.by_village.update({int(v) for v in c.village_ids})
        else:
            usage.by_openid.update({str(o) for o in c.openids})
    rows = await session.execute(select(Villager.openid, Villager.village_id).where(Villager.subscribed.is_(True)))
    usage.villagers = {str(o): (int(v) if v is not None else None) for o, v in rows.all()}
    return usage


async def quota_status(
    session: AsyncSession, settings: Settings, *, when: dt.datetime | None = None, now: dt.datetime | None = None
) -> QuotaStatus:
    """What is left in the period (month or day, Beijing time) of ``when`` (default: now)."""
    now = now or utcnow()
    when = when or now
    _start, _end, label = _period(settings, when)
    counted, parts = await _counted(session, settings, when, now, planned=True, exclude=None)
    if settings.wechat_account_type == "subscription":
        used = sum(parts.get(c.id) or planned_parts(c) for c in counted)
        return QuotaStatus("subscription", label, SUBSCRIPTION_DAILY_LIMIT, max(0, SUBSCRIPTION_DAILY_LIMIT - used), {})
    usage = await _usage(session, counted)
    villages = await village_names(session, active_only=True)
    by_village = {v: max(0, SERVICE_MONTHLY_LIMIT - usage.village_worst(v)) for v in villages}
    left = max(0, SERVICE_MONTHLY_LIMIT - usage.worst(None))
    return QuotaStatus("service", label, SERVICE_MONTHLY_LIMIT, left, by_village)


async def check_quota(
    session: AsyncSession,
    settings: Settings,
    c: Campaign,
    *,
    now: dt.datetime | None = None,
    planned: bool = True,
) -> QuotaCheck:
    """Would sending ``c`` go over the quota? ``planned``: count scheduled campaigns too (approval);
    otherwise only what has gone out (the last check before sending)."""
    now = now or utcnow()
    when = send_moment(c, now)
    _start, _end, label = _period(settings, when)
    counted, parts = await _counted(session, settings, when, now, planned=planned, exclude=c.id)
    if settings.wechat_account_type == "subscription":
        used = sum(parts.get(x.id) or planned_parts(x) for x in counted)
        needed = planned_parts(c)
        left = max(0, SUBSCRIPTION_DAILY_LIMIT - used)
        if needed > left:
            extra = f"（按 {needed} 个村群发要用 {needed} 次）" if needed > 1 else ""
            return QuotaCheck(
                False,
                needed,
                left,
                f"超出群发次数：订阅号每天只能群发 {SUBSCRIPTION_DAILY_LIMIT} 次，{label}还剩 {left} 次{extra}。"
                "请改到别的日期。",
            )
        return QuotaCheck(True, needed, left, f"{label}还可群发 {left} 次。")
    usage = await _usage(session, counted)
    worst = usage.worst(c)
    left = max(0, SERVICE_MONTHLY_LIMIT - worst)
    if left < 1:
        return QuotaCheck(
            False,
            1,
            left,
            f"超出群发次数：服务号每位关注者每月最多收到 {SERVICE_MONTHLY_LIMIT} 次群发，"
            f"{label}这些村民已经排满了。请改到下个月，或换群发对象。",
        )
    return QuotaCheck(True, 1, left, f"{label}这些村民还可收到 {left} 次群发。")
