"""A campaign's life in the back-office: the form (:class:`CampaignInput`) and its checks, create, edit,
submit, approve (content, a delivered preview, the quota), return to draft and cancel.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.preview import preview_ok
from bot.services.campaigns.quota import check_quota
from bot.services.campaigns.rules import (
    EDITABLE,
    ROLES_APPROVE,
    ROLES_DRAFT,
    STATUS_LABELS,
    Actor,
    CampaignError,
    PermissionDenied,
    QuotaExceeded,
    _require,
    audience_errors,
    can_approve,
)
from bot.services.campaigns.store import _known_villages, get_campaign
from bot.settings import Settings
from bot.storage.campaigns import AUDIENCES, KINDS, Campaign
from bot.storage.models import utcnow
from bot.wechat.api import MASS_OPENIDS_MIN

MAX_TITLE = 64
MAX_TEXT = 600
MAX_DESCRIPTION = 200
MAX_FOLLOW_UP = 300
MAX_URL = 1024
CANCELLABLE = ("draft", "awaiting_approval", "scheduled")
_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_SPLIT = re.compile(r"[\s,，;；]+")


@dataclass
class CampaignInput:
    """What the back-office form submits (already parsed; times tz-aware)."""

    title: str
    kind: str = "text"
    text: str = ""
    article_title: str = ""
    article_description: str = ""
    article_url: str = ""
    article_cover_url: str = ""
    audience: str = "all"
    village_ids: list[int] = field(default_factory=list)
    openids: list[str] = field(default_factory=list)
    scheduled_at: dt.datetime | None = None
    follow_up_text: str = ""
    follow_up_at: dt.datetime | None = None
    archive: bool = True
    calendar_id: str | None = None

    @classmethod
    def from_campaign(cls, c: Campaign) -> CampaignInput:
        return cls(
            title=c.title,
            kind=c.kind,
            text=c.text,
            article_title=c.article_title,
            article_description=c.article_description,
            article_url=c.article_url,
            article_cover_url=c.article_cover_url,
            audience=c.audience,
            village_ids=[int(v) for v in c.village_ids],
            openids=[str(o) for o in c.openids],
            scheduled_at=c.scheduled_at,
            follow_up_text=c.follow_up_text,
            follow_up_at=c.follow_up_at,
            archive=c.archive,
            calendar_id=c.calendar_id,
        )


def parse_openids(raw: str) -> list[str]:
    """An openid list pasted one per line (or separated by commas/spaces), de-duplicated in order."""
    seen: dict[str, None] = {}
    for item in _SPLIT.split(raw or ""):
        item = item.strip()
        if item:
            seen.setdefault(item, None)
    return list(seen)


def is_web_url(url: str) -> bool:
    """Only plain http(s) links are stored or rendered (never ``javascript:`` or ``data:``)."""
    return (
        url.startswith(("https://", "http://"))
        and len(url) <= MAX_URL
        and not any(ch.isspace() or ch in "<>\"'`" for ch in url)
        and len(url.split("://", 1)[1]) > 0
    )


def validate(data: CampaignInput, settings: Settings, known_villages: Collection[int]) -> list[str]:
    """Every problem with the form, as sentences for staff. Empty: fine."""
    errors: list[str] = []
    if not data.title.strip():
        errors.append("请填写标题。")
    elif len(data.title.strip()) > MAX_TITLE:
        errors.append(f"标题最多 {MAX_TITLE} 个字。")
    if data.kind not in KINDS:
        errors.append("内容类型只能是文字或图文链接。")
    elif data.kind == "text":
        if not data.text.strip():
            errors.append("请填写群发的文字内容。")
        elif len(data.text.strip()) > MAX_TEXT:
            errors.append(f"文字内容最多 {MAX_TEXT} 个字（村民在手机上看，越短越好）。")
    else:
        if not data.article_title.strip():
            errors.append("请填写文章标题。")
        elif len(data.article_title.strip()) > MAX_TITLE:
            errors.append(f"文章标题最多 {MAX_TITLE} 个字。")
        if len(data.article_description.strip()) > MAX_DESCRIPTION:
            errors.append(f"文章摘要最多 {MAX_DESCRIPTION} 个字。")
        if not is_web_url(data.article_url.strip()):
            errors.append("文章链接必须是 http:// 或 https:// 开头的网址。")
        if data.article_cover_url.strip() and not is_web_url(data.article_cover_url.strip()):
            errors.append("封面图片必须是 http:// 或 https:// 开头的网址。")
    if data.audience not in AUDIENCES:
        errors.append("请选择群发对象。")
    elif data.audience == "villages":
        if not data.village_ids:
            errors.append("请至少选择一个村。")
        unknown = [v for v in data.village_ids if v not in known_villages]
        if unknown:
            errors.append(f"没有这些村：{', '.join(map(str, unknown))}。")
    elif data.audience == "openids":
        if settings.wechat_account_type == "subscription":
            errors.append("订阅号不能按 openid 名单群发，请选择全部关注者或按村群发。")
        bad = [o for o in data.openids if not _OPENID.match(o)]
        if bad:
            errors.append(f"这些 openid 格式不对：{', '.join(bad[:5])}{' 等' if len(bad) > 5 else ''}。")
        if len(data.openids) < MASS_OPENIDS_MIN:
            errors.append(f"按 openid 名单群发至少要 {MASS_OPENIDS_MIN} 个 openid（微信的规定）。")
    if len(data.follow_up_text.strip()) > MAX_FOLLOW_UP:
        errors.append(f"后续提醒最多 {MAX_FOLLOW_UP} 个字。")
    if data.follow_up_at is not None and not data.follow_up_text.strip():
        errors.append("填了提醒时间，请也填写提醒内容。")
    for label, value in (("发送时间", data.scheduled_at), ("提醒时间", data.follow_up_at)):
        if value is not None and value.tzinfo is None:
            errors.append(f"{label}缺少时区。")
    if (
        data.scheduled_at is not None
        and data.follow_up_at is not None
        and data.scheduled_at.tzinfo is not None
        and data.follow_up_at.tzinfo is not None
        and data.follow_up_at < data.scheduled_at
    ):
        errors.append("后续提醒不能早于群发时间。")
    return errors


def _apply(c: Campaign, data: CampaignInput) -> bool:
    """Copy the form onto the campaign; True when what villagers receive changed."""
    before = _content_fingerprint(c)
    c.title = data.title.strip()
    c.kind = data.kind
    c.text = data.text.strip() if data.kind == "text" else ""
    c.article_title = data.article_title.strip() if data.kind == "news" else ""
    c.article_description = data.article_description.strip() if data.kind == "news" else ""
    c.article_url = data.article_url.strip() if data.kind == "news" else ""
    c.article_cover_url = data.article_cover_url.strip() if data.kind == "news" else ""
    c.audience = data.audience
    c.village_ids = sorted({int(v) for v in data.village_ids}) if data.audience == "villages" else []
    c.openids = list(dict.fromkeys(data.openids)) if data.audience == "openids" else []
    c.scheduled_at = data.scheduled_at
    c.follow_up_text = data.follow_up_text.strip()
    c.follow_up_at = data.follow_up_at if c.follow_up_text else None
    c.archive = data.archive
    c.calendar_id = data.calendar_id or None
    return _content_fingerprint(c) != before


def _content_fingerprint(c: Campaign) -> tuple[Any, ...]:
    return (
        c.kind,
        c.text,
        c.article_title,
        c.article_description,
        c.article_url,
        c.article_cover_url,
        c.audience,
        tuple(c.village_ids or ()),
        tuple(c.openids or ()),
    )


async def create_campaign(
    session: AsyncSession, actor: Actor, data: CampaignInput, *, settings: Settings, now: dt.datetime | None = None
) -> Campaign:
    _require(actor, ROLES_DRAFT, "起草普法活动")
    errors = validate(data, settings, await _known_villages(session)) + audience_errors(
        actor, data.audience, data.village_ids
    )
    if errors:
        raise CampaignError(errors[0], errors=errors)
    now = now or utcnow()
    c = Campaign(
        status="draft",
        version=1,
        send_key=secrets.token_hex(4),
        created_by=actor.id,
        created_by_name=actor.name,
        created_at=now,
        updated_by_name=actor.name,
        updated_at=now,
    )
    _apply(c, data)
    session.add(c)
    await session.flush()
    return c


async def update_campaign(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    data: CampaignInput,
    *,
    settings: Settings,
    now: dt.datetime | None = None,
) -> Campaign:
    """Edit a draft (or one awaiting approval, which goes back to draft)."""
    _require(actor, ROLES_DRAFT, "修改普法活动")
    c = await get_campaign(session, campaign_id, for_update=True, actor=actor)
    if c.status not in EDITABLE:
        raise CampaignError(f"“{STATUS_LABELS[c.status]}”的活动不能修改。已排期的请管理员先退回草稿。")
    if c.audience == "openids" and not actor.is_admin:
        raise PermissionDenied("按 openid 名单群发的活动只有乡管理员可以修改。")
    errors = validate(data, settings, await _known_villages(session)) + audience_errors(
        actor, data.audience, data.village_ids
    )
    if errors:
        raise CampaignError(errors[0], errors=errors)
    if _apply(c, data):
        c.version += 1
        c.mpnews_error = ""  # about the previous version
    c.status = "draft"
    c.submitted_at = None
    c.updated_by_name = actor.name
    c.updated_at = now or utcnow()
    return c


async def submit(session: AsyncSession, actor: Actor, campaign_id: int, *, now: dt.datetime | None = None) -> Campaign:
    """Draft → awaiting approval."""
    _require(actor, ROLES_DRAFT, "提交审批")
    c = await get_campaign(session, campaign_id, for_update=True, actor=actor)
    if c.status != "draft":
        raise CampaignError("只有草稿可以提交审批。")
    c.status = "awaiting_approval"
    c.submitted_at = now or utcnow()
    c.return_note = ""
    return c


async def return_to_draft(
    session: AsyncSession, actor: Actor, campaign_id: int, note: str = "", *, now: dt.datetime | None = None
) -> Campaign:
    """An admin sends an awaiting or scheduled campaign back to draft (with a note for the author)."""
    _require(actor, ROLES_APPROVE, "退回活动")
    c = await get_campaign(session, campaign_id, for_update=True, actor=actor)
    if c.status not in ("awaiting_approval", "scheduled"):
        raise CampaignError("只有待审批或已排期的活动可以退回草稿。")
    c.status = "draft"
    c.return_note = note.strip()[:500]
    c.approved_by = None
    c.approved_by_name = ""
    c.approved_at = None
    c.submitted_at = None
    c.updated_by_name = actor.name
    c.updated_at = now or utcnow()
    return c


async def cancel(session: AsyncSession, actor: Actor, campaign_id: int, *, now: dt.datetime | None = None) -> Campaign:
    """Cancel: an admin any time before sending; a mediator only before approval."""
    _require(actor, ROLES_DRAFT, "取消活动")
    c = await get_campaign(session, campaign_id, for_update=True, actor=actor)
    if c.status not in CANCELLABLE:
        raise CampaignError(f"“{STATUS_LABELS[c.status]}”的活动不能取消。")
    if c.status == "scheduled" and not can_approve(actor.role):
        raise PermissionDenied("已排期的活动只有管理员可以取消。")
    c.status = "cancelled"
    c.cancelled_by_name = actor.name
    c.cancelled_at = now or utcnow()
    return c


MIN_REASON = 4


async def approve(
    session: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    settings: Settings,
    now: dt.datetime | None = None,
    without_preview_reason: str = "",
) -> Campaign:
    """Admin only: checks content, a delivered preview of this version (or the admin's stated reason for
    approving without one, which the caller records in the audit) and the quota; → scheduled."""
    _require(actor, ROLES_APPROVE, "审批群发（只有管理员可以）")
    now = now or utcnow()
    c = await get_campaign(session, campaign_id, for_update=True, actor=actor)
    if c.status not in ("draft", "awaiting_approval"):
        raise CampaignError(f"“{STATUS_LABELS[c.status]}”的活动不能审批。")
    errors = validate(CampaignInput.from_campaign(c), settings, await _known_villages(session))
    if errors:
        raise CampaignError(errors[0], errors=errors)
    if not await preview_ok(session, c) and len("".join(without_preview_reason.split())) < MIN_REASON:
        raise CampaignError(
            "请先把当前内容预览到自己的微信，确认无误后再审批；"
            f"不预览就审批，要写明原因（至少 {MIN_REASON} 个字，记入操作记录）。"
        )
    check = await check_quota(session, settings, c, now=now, planned=True)
    if not check.ok:
        raise QuotaExceeded(check.message)
    c.status = "scheduled"
    c.approved_by = actor.id
    c.approved_by_name = actor.name
    c.approved_at = now
    c.last_error = ""
    return c
