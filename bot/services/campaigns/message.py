"""What villagers receive: a campaign's text, or the mpnews of its prepared WeChat draft, and that draft's
article (title, digest, escaped body, link).
"""

from __future__ import annotations

import html
from typing import Any

from bot.services.campaigns.rules import NotPrepared
from bot.storage.campaigns import Campaign
from bot.wechat.api import mpnews_message, text_message

#: a draft article's digest (WeChat's limit)
MAX_DIGEST = 120


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
