"""图文 (news) campaigns as mpnews: the cover download (http(s), ≤ 2 MB, an image, never the server's own
network), the permanent image material and the WeChat draft of the article, made by the worker for the
campaign's current version; previews that waited for it are queued once it exists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import or_, select, update

from bot.services.campaigns.lifecycle import is_web_url
from bot.services.campaigns.message import draft_articles, mpnews_ready, uses_mpnews
from bot.services.campaigns.preview import _queue_preview
from bot.services.campaigns.rules import PREPARABLE
from bot.services.campaigns.store import get_campaign
from bot.storage.campaigns import Campaign, CampaignPreview
from bot.storage.db import SessionFactory
from bot.storage.models import OutboxMessage
from bot.wechat.api import WeChatClient
from bot.wechat.errors import PermanentError, WeChatError

if TYPE_CHECKING:
    from bot.services.campaigns.sending import _Api

log = logging.getLogger(__name__)


#: a news campaign's cover: download limits, and what WeChat takes as an image material
COVER_MAX_BYTES = 2 * 1024 * 1024
COVER_TIMEOUT = 20.0
COVER_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/gif": "gif", "image/bmp": "bmp"}


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
    return any(a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_unspecified for a in addresses)


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
