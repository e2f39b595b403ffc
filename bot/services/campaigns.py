"""Legal-education campaigns: plan, preview, approve, broadcast through the outbox, report reach.

The life of a campaign::

    draft ──submit──▶ awaiting_approval ──approve (admin)──▶ scheduled ──tick──▶ sending ──▶ sent | failed
      ▲  ◀──return to draft / edit──┘                            │
      └────────────────────────────────return to draft (admin)───┘      cancel: draft, awaiting, scheduled

* Permissions: an admin or a mediator drafts, edits, submits and previews; only an admin approves,
  sends back a scheduled campaign or cancels one that is scheduled.
* Preview: :func:`request_preview` queues a ``mass_preview`` to the staff member's own openid;
  approval needs a delivered preview of the campaign's current version.
* Quota: a service account reaches each follower at most 4 times a calendar month (Beijing time), a
  subscription account sends once a day. :func:`quota_status` shows what is left and
  :func:`check_quota` refuses a campaign that would go over — at approval (counting what is already
  scheduled) and again just before sending (counting what has gone out).
* Sending: :func:`tick` turns due campaigns into parts, one WeChat call each — all followers
  (``filter.is_to_all``), one village tag (``filter.tag_id``) or ≤ 10,000 openids — written to the
  outbox in one transaction with idempotency keys ``campaign:{id}:{send_key}:{seq}``. The worker
  derives the ``clientmsgid`` from that key, so a retried call cannot send twice.
* Reach: MASSSENDJOBFINISH events (:func:`record_job_finish`) are matched to parts by ``msg_id`` when
  it is known, otherwise to the oldest sent part still waiting for its report.
* Village tags: :func:`sync_village_tags` creates a WeChat tag per village on demand and puts
  followers in the tag of their village (batches of ≤ 50, paced by the API client's rate limiter),
  from the difference between ``villagers`` and ``village_tag_members``, so a rerun is a no-op.
* 图文 (news) campaigns: one WITH a cover image goes out as ``mpnews``. The worker (:func:`tick`, never a
  web request) downloads the cover (:func:`fetch_cover`: http(s), ≤ 2 MB, an image), uploads it as a
  permanent image material, makes a WeChat draft of the article (:func:`prepare_news`) and keeps the
  draft's ``media_id`` for the campaign's current version; an edit that changes the content makes a new
  version, so it is prepared again. A preview requested before that waits (status ``preparing``) and is
  queued once the draft exists; a due campaign waits too (retried every tick, failed after
  ``SEND_GRACE``). A failure is kept in ``mpnews_error`` as a sentence for staff. A news campaign
  WITHOUT a cover cannot be an mpnews (WeChat needs a thumb), so it still goes out as text with its link
  (:func:`message_text`).
* Follow-ups: an optional customer-service notice after the broadcast, only to villagers in the
  48-hour window who have not sent "退订".
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import html
import logging
import math
import re
import secrets
import urllib.parse
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.jobs import JobContext
from bot.services.outbox import enqueue
from bot.settings import Settings
from bot.storage.campaigns import (
    AUDIENCES,
    KINDS,
    Campaign,
    CampaignPart,
    CampaignPreview,
    CampaignReport,
    StaffWeChat,
    VillageTagMember,
)
from bot.storage.db import SessionFactory
from bot.storage.models import OutboxMessage, Village, Villager, utcnow
from bot.wechat.api import (
    MASS_OPENIDS_MAX,
    MASS_OPENIDS_MIN,
    TAG_BATCH_MAX,
    WeChatClient,
    mpnews_message,
    text_message,
)
from bot.wechat.errors import PermanentError, WeChatError
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import token_store_for

log = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

#: broadcasts each follower may receive per calendar month (service account)
SERVICE_MONTHLY_LIMIT = 4
#: broadcasts per calendar day (subscription account)
SUBSCRIPTION_DAILY_LIMIT = 1

MAX_TITLE = 64
MAX_TEXT = 600
MAX_DESCRIPTION = 200
MAX_FOLLOW_UP = 300
MAX_URL = 1024
#: a scheduled campaign whose village tags cannot be synced is retried until it is this late
SEND_GRACE = dt.timedelta(hours=6)
#: follow-ups only to villagers who wrote within this time (WeChat's window is 48 hours)
FOLLOW_UP_WINDOW = dt.timedelta(hours=47)
#: tag batches per tick for the background sync (a campaign's own villages are synced in full)
TAG_BATCHES_PER_TICK = 40
#: how long a sent part waits for its MASSSENDJOBFINISH to be matched by order
REPORT_MATCH_WINDOW = dt.timedelta(days=3)
#: a news campaign's cover: download limits, and what WeChat takes as an image material
COVER_MAX_BYTES = 2 * 1024 * 1024
COVER_TIMEOUT = 20.0
COVER_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/gif": "gif", "image/bmp": "bmp"}
#: a draft article's digest (WeChat's limit)
MAX_DIGEST = 120

ROLES_DRAFT = frozenset({"admin", "mediator"})
ROLES_APPROVE = frozenset({"admin"})

EDITABLE = ("draft", "awaiting_approval")
#: statuses in which a news campaign's article is prepared (and previewed)
PREPARABLE = ("draft", "awaiting_approval", "scheduled")
CANCELLABLE = ("draft", "awaiting_approval", "scheduled")
#: statuses that use quota when planning (approval) and when sending
PLANNED = ("scheduled", "sending", "sent", "failed")
GONE_OUT = ("sending", "sent", "failed")

STATUS_LABELS = {
    "draft": "草稿",
    "awaiting_approval": "待审批",
    "scheduled": "已排期",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "发送失败",
    "cancelled": "已取消",
}
AUDIENCE_LABELS = {"all": "全部关注者", "villages": "按村（微信标签）", "openids": "指定 openid 名单"}
KIND_LABELS = {"text": "文字", "news": "图文链接"}

#: MASSSENDJOBFINISH Status values (WeChat's documentation)
JOB_STATUS_LABELS = {
    "send success": "发送成功",
    "sendsuccess": "发送成功",
    "send fail": "发送失败",
    "sendfail": "发送失败",
    "err(10001)": "涉嫌广告",
    "err(20001)": "涉嫌政治",
    "err(20002)": "涉嫌色情",
    "err(20004)": "涉嫌社会",
    "err(20006)": "涉嫌违法犯罪",
    "err(20008)": "涉嫌欺诈",
    "err(20013)": "涉嫌版权",
    "err(21000)": "涉嫌其他",
    "err(22000)": "涉嫌互推（互相宣传）",
    "err(30001)": "原创校验出现系统错误，且选择了被判为转载就不群发",
    "err(30002)": "原创校验被判定为不能群发",
    "err(30003)": "原创校验被判定为转载文，且选择了被判为转载就不群发",
}

_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_SPLIT = re.compile(r"[\s,，;；]+")
_MSG_ID_IN_ERROR = re.compile(r"msg_id (\d+)")


# ---------------------------------------------------------------- errors and actors
class CampaignError(ValueError):
    """Refused: ``message`` is a sentence for staff (Chinese)."""

    def __init__(self, message: str, *, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors) or [message]


class PermissionDenied(CampaignError):
    pass


class QuotaExceeded(CampaignError):
    pass


class NotFound(CampaignError):
    pass


class NotPrepared(CampaignError):
    """A news campaign with a cover whose WeChat draft (mpnews) is not ready for its current version."""


@dataclass(frozen=True)
class Actor:
    """The staff member doing something (the back-office's logged-in user)."""

    id: int | None
    name: str
    role: str  # admin | mediator | volunteer
    openid: str | None = None  # their own WeChat openid, for previews


def can_draft(role: str) -> bool:
    return role in ROLES_DRAFT


def can_approve(role: str) -> bool:
    return role in ROLES_APPROVE


def _require(actor: Actor, roles: frozenset[str], what: str) -> None:
    if actor.role not in roles:
        raise PermissionDenied(f"您没有权限{what}。")


def china_time(value: dt.datetime) -> dt.datetime:
    return value.astimezone(CHINA_TZ)


# ---------------------------------------------------------------- input
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


# ---------------------------------------------------------------- the message
def message_text(c: Campaign) -> str:
    """What villagers read as text. A news campaign with a cover goes out as an mpnews article (see
    :func:`build_message`); one without a cover goes out as this text with its link (WeChat makes the
    link clickable), since an mpnews needs a cover image."""
    if c.kind == "news":
        parts = [f"【{c.article_title}】"]
        if c.article_description:
            parts.append(c.article_description)
        parts.append(f"点这里看全文：{c.article_url}")
        return "\n".join(parts)
    return c.text


def uses_mpnews(c: Campaign) -> bool:
    """Sent as an mpnews article: a news campaign with a cover image."""
    return c.kind == "news" and bool(c.article_cover_url)


def mpnews_ready(c: Campaign) -> bool:
    """The WeChat draft for the campaign's current version exists."""
    return uses_mpnews(c) and bool(c.mpnews_media_id) and c.mpnews_version == c.version


def build_message(c: Campaign) -> dict[str, Any]:
    """The mass-send (and preview) body: mpnews of the prepared draft for a news campaign with a cover
    (:class:`NotPrepared` until the worker has made it), otherwise text."""
    if uses_mpnews(c):
        if not mpnews_ready(c) or c.mpnews_media_id is None:
            raise NotPrepared("图文素材还在准备中（上传封面、生成图文），请稍等。")
        return mpnews_message(c.mpnews_media_id)
    return text_message(message_text(c))


def article_digest(c: Campaign) -> str:
    text = " ".join(c.article_description.split())
    return text if len(text) <= MAX_DIGEST else text[: MAX_DIGEST - 1] + "…"


def article_html(c: Campaign) -> str:
    """The draft article's body: the description's paragraphs (escaped) and a link to the full article."""
    paragraphs = [line.strip() for line in c.article_description.splitlines() if line.strip()] or [c.article_title]
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return body + f'<p><a href="{html.escape(c.article_url, quote=True)}">点这里看全文</a></p>'


def draft_articles(c: Campaign, thumb_media_id: str) -> list[dict[str, Any]]:
    """``/cgi-bin/draft/add``'s ``articles`` for a news campaign."""
    return [
        {
            "title": c.article_title,
            "author": "",
            "digest": article_digest(c),
            "content": article_html(c),
            "content_source_url": c.article_url,
            "thumb_media_id": thumb_media_id,
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
        }
    ]


def excerpt(c: Campaign, length: int = 60) -> str:
    text = c.article_description if c.kind == "news" else c.text
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# ---------------------------------------------------------------- loading
async def get_campaign(session: AsyncSession, campaign_id: int, *, for_update: bool = False) -> Campaign:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    campaign = (await session.execute(stmt)).scalar_one_or_none()
    if campaign is None:
        raise NotFound("没有这个活动。")
    return campaign


async def list_campaigns(session: AsyncSession, *, status: str | None = None, limit: int = 200) -> list[Campaign]:
    stmt = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Campaign.status == status)
    return list((await session.execute(stmt)).scalars())


async def village_names(session: AsyncSession, *, active_only: bool = False) -> dict[int, str]:
    stmt = select(Village.id, Village.name).order_by(Village.id)
    if active_only:
        stmt = stmt.where(Village.active.is_(True))
    return {int(i): str(n) for i, n in (await session.execute(stmt)).all()}


async def _known_villages(session: AsyncSession) -> set[int]:
    return set((await village_names(session, active_only=True)).keys())


# ---------------------------------------------------------------- authoring
async def create_campaign(
    session: AsyncSession, actor: Actor, data: CampaignInput, *, settings: Settings, now: dt.datetime | None = None
) -> Campaign:
    _require(actor, ROLES_DRAFT, "起草普法活动")
    errors = validate(data, settings, await _known_villages(session))
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
    c = await get_campaign(session, campaign_id, for_update=True)
    if c.status not in EDITABLE:
        raise CampaignError(f"“{STATUS_LABELS[c.status]}”的活动不能修改。已排期的请管理员先退回草稿。")
    errors = validate(data, settings, await _known_villages(session))
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
    c = await get_campaign(session, campaign_id, for_update=True)
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
    c = await get_campaign(session, campaign_id, for_update=True)
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
    c = await get_campaign(session, campaign_id, for_update=True)
    if c.status not in CANCELLABLE:
        raise CampaignError(f"“{STATUS_LABELS[c.status]}”的活动不能取消。")
    if c.status == "scheduled" and not can_approve(actor.role):
        raise PermissionDenied("已排期的活动只有管理员可以取消。")
    c.status = "cancelled"
    c.cancelled_by_name = actor.name
    c.cancelled_at = now or utcnow()
    return c


# ---------------------------------------------------------------- preview
def preview_key(c: Campaign, preview_id: int) -> str:
    return f"campaign-preview:{c.id}:{c.send_key}:{preview_id}"


async def request_preview(
    session: AsyncSession, actor: Actor, campaign_id: int, *, now: dt.datetime | None = None
) -> CampaignPreview:
    """Queue a mass preview of the campaign's current version to the actor's own WeChat."""
    _require(actor, ROLES_DRAFT, "预览活动")
    if not actor.openid:
        raise CampaignError("您的账号还没有绑定微信 openid，无法发送预览。请在个人资料里绑定（需先关注公众号）。")
    c = await get_campaign(session, campaign_id)
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


# ---------------------------------------------------------------- quota
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


# ---------------------------------------------------------------- approval
async def approve(
    session: AsyncSession, actor: Actor, campaign_id: int, *, settings: Settings, now: dt.datetime | None = None
) -> Campaign:
    """Admin only: checks content, a delivered preview of this version and the quota; → scheduled."""
    _require(actor, ROLES_APPROVE, "审批群发（只有管理员可以）")
    now = now or utcnow()
    c = await get_campaign(session, campaign_id, for_update=True)
    if c.status not in ("draft", "awaiting_approval"):
        raise CampaignError(f"“{STATUS_LABELS[c.status]}”的活动不能审批。")
    errors = validate(CampaignInput.from_campaign(c), settings, await _known_villages(session))
    if errors:
        raise CampaignError(errors[0], errors=errors)
    if not await preview_ok(session, c):
        raise CampaignError("请先把当前内容预览到自己的微信，确认无误后再审批。")
    check = await check_quota(session, settings, c, now=now, planned=True)
    if not check.ok:
        raise QuotaExceeded(check.message)
    c.status = "scheduled"
    c.approved_by = actor.id
    c.approved_by_name = actor.name
    c.approved_at = now
    c.last_error = ""
    return c


# ---------------------------------------------------------------- village tags
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


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


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
        wanted: dict[str, tuple[int, dt.datetime | None]] = {
            str(o): (v, subscribed_at)
            for o, v, subscribed, subscribed_at in (await session.execute(vstmt)).all()
            if subscribed and v is not None and v in villages
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


# ---------------------------------------------------------------- sending
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


# ---------------------------------------------------------------- news campaigns as mpnews
class CoverError(Exception):
    """The cover image could not be fetched: ``message`` is a sentence for staff (Chinese)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Cover:
    content: bytes
    content_type: str
    filename: str


def _is_internal_host(host: str) -> bool:
    import ipaddress
    import socket

    try:
        addresses = [ipaddress.ip_address(host)]  # an address literal needs no lookup
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, None)]
        except OSError:
            return False  # unresolvable: the download itself will fail with a clear message
    return any(
        a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_unspecified for a in addresses
    )


async def fetch_cover(
    url: str,
    *,
    seconds: float = COVER_TIMEOUT,
    max_bytes: int = COVER_MAX_BYTES,
    allow_internal: bool = False,
) -> Cover:
    """Download a campaign's cover image: http(s) only, within ``seconds``, ≤ ``max_bytes``, and an
    image type WeChat takes (JPG, PNG, GIF, BMP). Raises :class:`CoverError`.

    Addresses inside the server's own network (loopback, private, link-local) are refused unless
    ``allow_internal``: a staff-entered URL must not make the server fetch from its neighbours."""
    if not is_web_url(url):
        raise CoverError("封面图片网址必须是 http:// 或 https:// 开头。")
    host = urllib.parse.urlsplit(url).hostname or ""
    if not allow_internal and await asyncio.to_thread(_is_internal_host, host):
        raise CoverError("封面图片网址指向内部网络地址，不能使用；请用公开网站上的图片网址。")
    client_timeout = aiohttp.ClientTimeout(total=seconds, connect=min(seconds, 10.0))
    too_big = f"封面图片太大（超过 {max_bytes // (1024 * 1024)} MB），请换一张小一些的图片。"
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout, headers={"User-Agent": "lawbot"}) as http,
            http.get(url, max_redirects=5) as resp,
        ):
            if resp.status != 200:
                raise CoverError(f"下载封面图片失败：网址返回 HTTP {resp.status}，请检查封面图片网址。")
            content_type = resp.content_type.lower()
            if not content_type.startswith("image/"):
                raise CoverError(f"封面网址打开的不是图片（{content_type or '未知类型'}），请换成图片的网址。")
            if content_type not in COVER_TYPES:
                raise CoverError(f"封面图片格式（{content_type}）微信不支持，请用 JPG、PNG、GIF 或 BMP 图片。")
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise CoverError(too_big)
            data = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise CoverError(too_big)
    except TimeoutError as exc:
        raise CoverError(f"下载封面图片超时（{seconds:g} 秒），请检查封面图片网址。") from exc
    except aiohttp.ClientError as exc:
        raise CoverError(f"下载封面图片失败（{type(exc).__name__}），请检查封面图片网址。") from exc
    if not data:
        raise CoverError("封面图片是空的，请换一张图片。")
    return Cover(bytes(data), content_type, f"cover.{COVER_TYPES[content_type]}")


async def _set_campaign(session_factory: SessionFactory, campaign_id: int, **values: Any) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))


async def prepare_news(
    session_factory: SessionFactory, client: WeChatClient, campaign_id: int
) -> tuple[str | None, str]:
    """Make the WeChat draft (mpnews) of a news campaign's current version, once.

    Uploads the cover (kept by URL, so a retry or a new version with the same cover does not upload it
    again), then ``/cgi-bin/draft/add``. Returns ``(media_id, "")``, or ``(None, error)`` with the error
    kept in ``mpnews_error`` for staff (the next tick tries again)."""
    async with session_factory() as session:
        c = await get_campaign(session, campaign_id)
        if not uses_mpnews(c):
            return None, ""
        if mpnews_ready(c):
            return c.mpnews_media_id, ""
        version, cover_url = c.version, c.article_cover_url
        thumb = c.mpnews_thumb_media_id if c.mpnews_thumb_url == cover_url else None
        [article] = draft_articles(c, thumb_media_id="")  # read now: the session closes before the calls
    try:
        if thumb is None:
            # internal addresses only where the WeChat API itself is local (tests, `serve --dev`)
            local_api = urllib.parse.urlsplit(client.api_base).hostname in ("127.0.0.1", "localhost", "::1")
            cover = await fetch_cover(cover_url, allow_internal=local_api)
            thumb = await client.add_image_material(cover.content, cover.filename, cover.content_type)
            await _set_campaign(session_factory, campaign_id, mpnews_thumb_media_id=thumb, mpnews_thumb_url=cover_url)
        media_id = await client.add_draft([{**article, "thumb_media_id": thumb}])
    except CoverError as exc:
        error = exc.message
    except PermanentError as exc:
        if exc.errcode == 40007:  # the uploaded cover is gone (deleted in the console): upload it again
            await _set_campaign(session_factory, campaign_id, mpnews_thumb_media_id=None, mpnews_thumb_url="")
        error = f"上传图文到微信失败：{exc.reason}"
    except WeChatError as exc:
        error = f"上传图文到微信失败，稍后重试：{exc.reason}"
    else:
        async with session_factory() as session, session.begin():
            await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.version == version)  # not edited meanwhile
                .values(mpnews_media_id=media_id, mpnews_version=version, mpnews_error="")
            )
        return media_id, ""
    log.warning("campaign %s: preparing the article failed: %s", campaign_id, error)
    await _set_campaign(session_factory, campaign_id, mpnews_error=error)
    return None, error


async def _queue_previews(session_factory: SessionFactory, campaign_id: int) -> int:
    """Queue the previews that waited for the article (once it is ready). Returns how many."""
    async with session_factory() as session, session.begin():
        c = await get_campaign(session, campaign_id)
        if not mpnews_ready(c) or c.status not in PREPARABLE:
            return 0
        waiting = list(
            (
                await session.execute(
                    select(CampaignPreview)
                    .outerjoin(OutboxMessage, OutboxMessage.idempotency_key == CampaignPreview.idempotency_key)
                    .where(
                        CampaignPreview.campaign_id == campaign_id,
                        CampaignPreview.version == c.version,
                        OutboxMessage.idempotency_key.is_(None),
                    )
                    .order_by(CampaignPreview.id)
                )
            ).scalars()
        )
        for preview in waiting:
            await _queue_preview(session, c, preview)
        return len(waiting)


async def prepare_news_campaigns(session_factory: SessionFactory, api: _Api, now: dt.datetime) -> list[int]:
    """Every tick: news campaigns with a cover whose current version has a preview waiting, or that are
    scheduled for later, get their article prepared (due ones: :func:`dispatch_due`); waiting previews
    are then queued. Returns the ids prepared."""
    news = (Campaign.kind == "news", Campaign.article_cover_url != "")
    async with session_factory() as session:
        previewing = set(
            (
                await session.execute(
                    select(Campaign.id)
                    .join(
                        CampaignPreview,
                        (CampaignPreview.campaign_id == Campaign.id) & (CampaignPreview.version == Campaign.version),
                    )
                    .outerjoin(OutboxMessage, OutboxMessage.idempotency_key == CampaignPreview.idempotency_key)
                    .where(*news, Campaign.status.in_(PREPARABLE), OutboxMessage.idempotency_key.is_(None))
                )
            ).scalars()
        )
        scheduled = set(
            (
                await session.execute(
                    select(Campaign.id).where(
                        *news,
                        Campaign.status == "scheduled",
                        Campaign.scheduled_at > now,
                        or_(Campaign.mpnews_version.is_(None), Campaign.mpnews_version != Campaign.version),
                    )
                )
            ).scalars()
        )
    prepared: list[int] = []
    for campaign_id in sorted(previewing | scheduled):
        media_id, _error = await prepare_news(session_factory, await api.get(), campaign_id)
        if media_id is not None:
            prepared.append(campaign_id)
            await _queue_previews(session_factory, campaign_id)
    return prepared


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


def _outbox_msg_id(row: OutboxMessage) -> int | None:
    """WeChat's msg_id of a sent mass message, from the outbox row's kept answer."""
    result = row.result
    if isinstance(result, Mapping) and result.get("msg_id"):
        return int(result["msg_id"])
    match = _MSG_ID_IN_ERROR.search(row.last_error or "")  # "already sent … (msg_id 123)"
    return int(match.group(1)) if match else None


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


# ---------------------------------------------------------------- reach (MASSSENDJOBFINISH)
def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def job_status_label(status: str) -> str:
    return JOB_STATUS_LABELS.get(status.strip().lower(), status or "未知")


def job_succeeded(status: str) -> bool:
    return status.strip().lower() in ("send success", "sendsuccess")


async def record_job_finish(
    session: AsyncSession, payload: Mapping[str, Any], *, now: dt.datetime | None = None
) -> CampaignReport | None:
    """Store a MASSSENDJOBFINISH push (MsgID, Status, TotalCount, FilterCount, SentCount, ErrorCount)
    and add its counts to the campaign it belongs to. The same MsgID again only updates the report."""
    now = now or utcnow()
    msg_id = _int(payload.get("MsgID") or payload.get("MsgId"))
    if not msg_id:
        log.warning("MASSSENDJOBFINISH without MsgID: %s", dict(payload))
        return None
    values = {
        "status": str(payload.get("Status") or "")[:64],
        "total_count": _int(payload.get("TotalCount")),
        "filter_count": _int(payload.get("FilterCount")),
        "sent_count": _int(payload.get("SentCount")),
        "error_count": _int(payload.get("ErrorCount")),
        "payload": {str(k): v for k, v in payload.items() if isinstance(v, str | int | float)},
    }
    insert = _insert(session)
    stmt = insert(CampaignReport).values(msg_id=msg_id, received_at=now, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["msg_id"], set_=values))
    await _link_reports(session, now)
    report = (await session.execute(select(CampaignReport).where(CampaignReport.msg_id == msg_id))).scalar_one()
    await session.refresh(report)
    return report


async def _link_reports(session: AsyncSession, now: dt.datetime) -> None:
    """Match reports to parts (by msg_id, else oldest sent part waiting), then recount the campaigns."""
    touched: set[int] = set()
    # parts whose call went out: take WeChat's msg_id from the outbox row
    learned = (
        await session.execute(
            select(CampaignPart, OutboxMessage)
            .join(OutboxMessage, OutboxMessage.idempotency_key == CampaignPart.idempotency_key)
            .where(
                CampaignPart.msg_id.is_(None),
                OutboxMessage.status == "sent",
                CampaignPart.created_at >= now - REPORT_MATCH_WINDOW,
            )
        )
    ).all()
    for learner, row in learned:
        learner.msg_id = _outbox_msg_id(row)
    # a part that learned its msg_id: undo a match by order that was wrong
    wrong = list(
        (
            await session.execute(
                select(CampaignReport)
                .join(CampaignPart, CampaignPart.id == CampaignReport.part_id)
                .where(CampaignPart.msg_id.is_not(None), CampaignPart.msg_id != CampaignReport.msg_id)
            )
        ).scalars()
    )
    for report in wrong:
        previous = await session.get(CampaignPart, report.part_id)
        if previous is not None:
            touched.add(previous.campaign_id)
        report.part_id, report.matched_by = None, None
    await session.flush()
    unmatched = list(
        (
            await session.execute(
                select(CampaignReport)
                .where(CampaignReport.part_id.is_(None), CampaignReport.received_at >= now - REPORT_MATCH_WINDOW)
                .order_by(CampaignReport.id)
            )
        ).scalars()
    )
    for report in unmatched:
        part = (
            await session.execute(
                select(CampaignPart).where(CampaignPart.msg_id == report.msg_id).order_by(CampaignPart.id).limit(1)
            )
        ).scalar_one_or_none()
        how = "msg_id"
        if part is None:
            how = "order"
            taken = select(CampaignReport.part_id).where(CampaignReport.part_id.is_not(None))
            part = (
                await session.execute(
                    select(CampaignPart)
                    .join(OutboxMessage, OutboxMessage.idempotency_key == CampaignPart.idempotency_key)
                    .where(
                        CampaignPart.msg_id.is_(None),
                        CampaignPart.id.not_in(taken),
                        OutboxMessage.status == "sent",
                        OutboxMessage.sent_at >= now - REPORT_MATCH_WINDOW,
                        CampaignPart.created_at <= report.received_at,
                    )
                    .order_by(OutboxMessage.sent_at, CampaignPart.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
        if part is None:
            continue
        existing = (
            await session.execute(select(CampaignReport).where(CampaignReport.part_id == part.id))
        ).scalar_one_or_none()
        if existing is not None:
            continue
        report.part_id, report.matched_by = part.id, how
        touched.add(part.campaign_id)
        await session.flush()
    for campaign_id in touched:
        await _recount(session, campaign_id)


async def _recount(session: AsyncSession, campaign_id: int) -> None:
    c = await session.get(Campaign, campaign_id)
    if c is None:
        return
    rows = list(
        (
            await session.execute(
                select(CampaignReport)
                .join(CampaignPart, CampaignPart.id == CampaignReport.part_id)
                .where(CampaignPart.campaign_id == campaign_id)
            )
        ).scalars()
    )
    c.total_count = sum(r.total_count for r in rows)
    c.filter_count = sum(r.filter_count for r in rows)
    c.sent_count = sum(r.sent_count for r in rows)
    c.error_count = sum(r.error_count for r in rows)
    c.reports = len(rows)
    bad = [r for r in rows if not job_succeeded(r.status)]
    if bad:
        c.last_error = f"微信群发结果：{job_status_label(bad[0].status)}（{bad[0].status}）"
        parts = int(
            await session.scalar(
                select(func.count()).select_from(CampaignPart).where(CampaignPart.campaign_id == campaign_id)
            )
            or 0
        )
        if c.status == "sent" and len(bad) == len(rows) == parts:
            c.status = "failed"


@dataclass(frozen=True)
class PartView:
    part: CampaignPart
    report: CampaignReport | None
    outbox_status: str
    outbox_error: str


async def campaign_parts(session: AsyncSession, campaign_id: int) -> list[PartView]:
    rows = (
        await session.execute(
            select(CampaignPart, CampaignReport, OutboxMessage.status, OutboxMessage.last_error)
            .outerjoin(CampaignReport, CampaignReport.part_id == CampaignPart.id)
            .outerjoin(OutboxMessage, OutboxMessage.idempotency_key == CampaignPart.idempotency_key)
            .where(CampaignPart.campaign_id == campaign_id)
            .order_by(CampaignPart.seq)
        )
    ).all()
    return [PartView(p, r, s or "missing", e or "") for p, r, s, e in rows]


# ---------------------------------------------------------------- follow-ups and opt-out
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
            for v in await audience_villagers(session, c):
                if v.opted_out or v.last_inbound_at is None or now - v.last_inbound_at > FOLLOW_UP_WINDOW:
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


# ---------------------------------------------------------------- staff WeChat binding (for previews)
BIND_CODE_TTL = dt.timedelta(minutes=10)
BIND_WORD = "预览绑定"


async def staff_openid(session: AsyncSession, staff_id: int) -> str | None:
    row = await session.get(StaffWeChat, staff_id)
    return row.openid if row is not None else None


async def binding_code(session: AsyncSession, staff_id: int, *, now: dt.datetime | None = None) -> str:
    """A fresh 6-digit code the staff member sends as "预览绑定 <code>" from their own WeChat."""
    now = now or utcnow()
    row = await session.get(StaffWeChat, staff_id)
    if row is None:
        row = StaffWeChat(staff_id=staff_id)
        session.add(row)
    for _ in range(20):
        code = f"{secrets.randbelow(1_000_000):06d}"
        clash = await session.scalar(
            select(func.count())
            .select_from(StaffWeChat)
            .where(StaffWeChat.code == code, StaffWeChat.code_expires_at > now, StaffWeChat.staff_id != staff_id)
        )
        if not clash:
            break
    row.code, row.code_expires_at = code, now + BIND_CODE_TTL
    await session.flush()
    return code


async def bind_openid(session: AsyncSession, code: str, openid: str, *, now: dt.datetime | None = None) -> bool:
    """The chat side of binding: a valid, unexpired code binds the sender's openid (once)."""
    now = now or utcnow()
    code = code.strip()
    if not re.fullmatch(r"\d{6}", code):
        return False
    row = (
        await session.execute(
            select(StaffWeChat).where(StaffWeChat.code == code, StaffWeChat.code_expires_at > now).limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    row.openid, row.bound_at, row.code, row.code_expires_at = openid, now, None, None
    return True


async def unbind(session: AsyncSession, staff_id: int) -> None:
    await session.execute(delete(StaffWeChat).where(StaffWeChat.staff_id == staff_id))


# ---------------------------------------------------------------- the public archive
async def public_campaigns(session: AsyncSession, *, limit: int = 20, offset: int = 0) -> list[Campaign]:
    stmt = (
        select(Campaign)
        .where(Campaign.status == "sent", Campaign.archive.is_(True))
        .order_by(Campaign.sent_at.desc(), Campaign.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(stmt)).scalars())


async def public_campaign(session: AsyncSession, campaign_id: int) -> Campaign | None:
    c = await session.get(Campaign, campaign_id)
    if c is None or c.status != "sent" or not c.archive:
        return None
    return c


# ---------------------------------------------------------------- the legal-education calendar
@dataclass(frozen=True)
class CalendarItem:
    id: str
    name: str
    start: tuple[int, int]  # (month, day)
    end: tuple[int, int]
    theme: str = ""
    laws: tuple[str, ...] = ()
    title: str = ""
    text: str = ""

    def dates(self, year: int) -> tuple[dt.date, dt.date]:
        return dt.date(year, *self.start), dt.date(year, *self.end)

    @property
    def when_label(self) -> str:
        (m1, d1), (m2, d2) = self.start, self.end
        if (m1, d1) == (m2, d2):
            return f"{m1}月{d1}日"
        if d1 == 1 and m1 == m2 and d2 >= 28:
            return f"{m1}月（全月）"
        return f"{m1}月{d1}日—{m2}月{d2}日"


def _month_day(raw: Any, where: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2})-(\d{1,2})", str(raw).strip())
    if not match:
        raise ValueError(f"{where}: expected MM-DD, got {raw!r}")
    month, day = int(match.group(1)), int(match.group(2))
    dt.date(2024, month, day)  # a leap year: validates the day
    return month, day


def load_calendar(path: Path) -> list[CalendarItem]:
    """knowledge/campaign_calendar.yaml → items (ValueError with the entry named on a bad one)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw_items = data.get("dates", []) if isinstance(data, dict) else []
    items: list[CalendarItem] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_items):
        where = f"{path.name} entry {i + 1}"
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("name"):
            raise ValueError(f"{where}: needs id and name")
        item_id = str(raw["id"])
        if item_id in seen:
            raise ValueError(f"{where}: id {item_id!r} twice")
        seen.add(item_id)
        if "date" in raw:
            start = end = _month_day(raw["date"], where)
        elif "month" in raw:
            month = int(raw["month"])
            last = (dt.date(2023, month % 12 + 1, 1) - dt.timedelta(days=1)).day if month < 12 else 31
            start, end = (month, 1), (month, last)
        else:
            start, end = _month_day(raw.get("start"), where), _month_day(raw.get("end"), where)
        if end < start:
            raise ValueError(f"{where}: ends before it starts")
        items.append(
            CalendarItem(
                id=item_id,
                name=str(raw["name"]),
                start=start,
                end=end,
                theme=str(raw.get("theme", "")).strip(),
                laws=tuple(str(x) for x in raw.get("laws", []) or []),
                title=str(raw.get("title", raw["name"])).strip(),
                text=str(raw.get("text", "")).strip(),
            )
        )
    return items


def calendar_path(settings: Settings) -> Path:
    return Path(settings.knowledge_dir) / "campaign_calendar.yaml"


@dataclass(frozen=True)
class Suggestion:
    item: CalendarItem
    start: dt.date
    end: dt.date
    days_until: int  # 0 while it is on


def upcoming(items: Iterable[CalendarItem], today: dt.date, days: int = 60) -> list[Suggestion]:
    """Calendar dates that are on now or start within ``days``, soonest first."""
    found: list[Suggestion] = []
    for item in items:
        for year in (today.year, today.year + 1):
            start, end = item.dates(year)
            if end < today:
                continue
            until = max(0, (start - today).days)
            if until <= days:
                found.append(Suggestion(item, start, end, until))
            break
    return sorted(found, key=lambda s: (s.start, s.item.id))


# ---------------------------------------------------------------- the periodic job
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


async def tick(ctx: JobContext, *, client: WeChatClient | None = None) -> None:
    """Every 30 s: news articles → WeChat drafts (and waiting previews → outbox); due campaigns → outbox;
    follow the outbox; match reports; follow-ups; village tags."""
    now = ctx.now()
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
