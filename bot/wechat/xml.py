"""Safe XML in, correct XML out.

Parsing refuses any DOCTYPE or ENTITY (no expansion, no external fetch) and documents nested
deeper than :data:`MAX_DEPTH` (WeChat's pushes are 2–4 levels deep). Rendering
escapes ``]]>`` inside CDATA and keeps text replies within WeChat's 2048-byte limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_TEXT_BYTES = 2048
MAX_DEPTH = 8  # <xml><SendPicsInfo><PicList><item><PicMd5Sum> is WeChat's deepest: 5
MORE_HINT = "\n……回复“更多”看全文"
EMPTY_FALLBACK = "收到。回复“帮助”看看我能做什么。"


class XMLRejected(ValueError):
    """Malformed XML, or XML with a DOCTYPE / entity declaration."""


def _looks_like_dtd(raw: bytes) -> bool:
    head = raw.lower()
    return b"<!doctype" in head or b"<!entity" in head


def parse_xml(raw: bytes | str) -> dict[str, Any]:
    """Parse a push into a flat dict (nested elements become dicts). Raises XMLRejected."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if _looks_like_dtd(data):
        raise XMLRejected("DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise XMLRejected(f"malformed XML: {exc}") from exc
    if root.tag != "xml":
        raise XMLRejected("the root element must be <xml>")
    value = _element_to_value(root, 1)
    return value if isinstance(value, dict) else {}


def _element_to_value(elem: Element, depth: int) -> dict[str, Any] | str:
    """The element as text or a dict; recursion stops at MAX_DEPTH (a 5,000-level push is a 400, not a crash)."""
    children = list(elem)
    if not children:
        return elem.text or ""
    if depth >= MAX_DEPTH:
        raise XMLRejected(f"nested deeper than {MAX_DEPTH} levels")
    result: dict[str, Any] = {}
    for child in children:
        value = _element_to_value(child, depth + 1)
        if child.tag in result:  # repeated element (e.g. <item>): collect a list
            existing = result[child.tag]
            result[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[child.tag] = value
    return result


def cdata(value: str) -> str:
    """Wrap in CDATA; a ``]]>`` inside is split across two sections so it cannot end the first."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def fit_text(text: str, limit: int = MAX_TEXT_BYTES) -> tuple[str, str]:
    """Cut ``text`` to ``limit`` UTF-8 bytes at a sentence end; return (shown, rest).

    Never returns an empty shown part: WeChat shows an error for an empty Content.
    """
    text = text.strip() or EMPTY_FALLBACK
    if len(text.encode("utf-8")) <= limit:
        return text, ""
    budget = limit - len(MORE_HINT.encode("utf-8"))
    cut = 0
    used = 0
    last_sentence_end = 0
    for i, ch in enumerate(text):
        used += len(ch.encode("utf-8"))
        if used > budget:
            break
        cut = i + 1
        if ch in "。！？；!?\n":
            last_sentence_end = i + 1
    end = last_sentence_end if last_sentence_end > cut // 2 else cut
    return text[:end].rstrip() + MORE_HINT, text[end:].lstrip()


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    description: str
    url: str
    picurl: str = ""


def render_text(to_user: str, from_user: str, content: str, *, create_time: int | None = None) -> str:
    shown, _ = fit_text(content)
    return (
        "<xml>"
        f"<ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(shown)}</Content>"
        "</xml>"
    )


def render_news(to_user: str, from_user: str, articles: Iterable[Article], *, create_time: int | None = None) -> str:
    items = list(articles)[:8]
    body = "".join(
        "<item>"
        f"<Title>{cdata(a.title)}</Title><Description>{cdata(a.description)}</Description>"
        f"<PicUrl>{cdata(a.picurl)}</PicUrl><Url>{cdata(a.url)}</Url>"
        "</item>"
        for a in items
    )
    return (
        "<xml>"
        f"<ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[news]]></MsgType>"
        f"<ArticleCount>{len(items)}</ArticleCount><Articles>{body}</Articles>"
        "</xml>"
    )


def render_fields(fields: Mapping[str, str | int]) -> str:
    """A flat <xml> document (used by the simulator and test helpers to build pushes)."""
    parts = []
    for key, value in fields.items():
        parts.append(f"<{key}>{value}</{key}>" if isinstance(value, int) else f"<{key}>{cdata(value)}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"
