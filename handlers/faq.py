"""The FAQ: answers, suggestions to pick from, "更多", statute look-up; the catch-all, last.

Urgent content (violence, threats to life, suicide, harm to minors) always gets the
emergency guidance first and is recorded for the township team.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from bot.matcher import MatchResult
from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, always, text_in, text_prefix
from bot.services.privacy import remove_phones
from bot.storage.models import KnowledgeGap
from handlers.common import LAW_PREFIXES, MORE_WORDS, answer_text, numbered_list
from handlers.handoff import record_handoff

router = Router("faq")

@router.on(text_in(*MORE_WORDS))
async def more(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    rest = str((ctx.conv.context or {}).get("more") or "")
    if not rest:
        return TextReply(ctx.services.texts.get("more_none"))
    ctx.remember(more="")
    return TextReply(rest)


@router.on(text_prefix(*LAW_PREFIXES))
async def statute(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    texts = ctx.services.texts
    if not data.get("arg"):
        return TextReply(texts.get("law_usage"))
    article = ctx.services.knowledge.kb.laws.parse_query(ctx.text)
    if article is None:
        return TextReply(texts.get("law_not_found"))
    ctx.remember(menu=None)
    return TextReply(article.render())


_INSERT_GAP = insert(KnowledgeGap)


def _record_gap(ctx: Ctx, result: MatchResult) -> None:
    # a plain insert at the end of the push's transaction (no ORM flush on this busy path)
    ctx.write(
        _INSERT_GAP,
        {
            "openid": ctx.msg.openid,
            # kept for knowledge review, which never needs a phone number the villager typed
            "text": remove_phones(ctx.text)[:2000],
            "normalized": remove_phones(result.normalized)[:2000],
            "outcome": result.outcome,
            "candidates": [
                {"entry_id": c.entry.id, "topic": c.entry.topic, "score": round(c.score, 4)}
                for c in result.candidates[:5]
            ],
            "created_at": ctx.now,
        },
    )


async def reply_to_question(ctx: Ctx, text: str) -> str:
    """Match ``text`` and build the reply; used for typed and spoken questions."""
    knowledge = ctx.services.knowledge
    texts = knowledge.texts
    result = knowledge.match(text)
    parts: list[str] = []
    if result.urgent:
        parts.append(texts.get("emergency"))
        await record_handoff(ctx, text, urgent=True)
    if result.outcome == "answer" and result.entry is not None:
        parts.append(answer_text(ctx, result.entry))
        if result.alternatives:  # fairly sure: a wrong guess costs one tap ("不是这个？回复 2 或 3")
            others = [c.entry for c in result.alternatives]
            ctx.remember(menu={"kind": "entries", "ids": [result.entry.id, *(e.id for e in others)]})
            numbers = " 或 ".join(str(n) for n in range(2, len(others) + 2))
            parts.append(texts.get("alternatives", numbers=numbers, items=numbered_list(others, start=2)))
    elif result.outcome == "smalltalk":
        parts.append(texts.get(result.smalltalk if result.smalltalk in ("greeting", "thanks", "bye") else "help"))
    elif result.outcome == "clarify" and result.candidates:
        picks = [c.entry for c in result.candidates[:3]]
        ctx.remember(menu={"kind": "entries", "ids": [e.id for e in picks]}, last_query=text)
        parts.append(texts.get("clarify", items=numbered_list(picks)))
        _record_gap(ctx, result)
    else:
        ctx.remember(menu=None, last_query=text)
        if not parts:  # the emergency text already says what to do next
            parts.append(texts.get("no_match"))
        _record_gap(ctx, result)
    return "\n\n".join(parts)


@router.on(lambda ctx: ctx.msg.msg_type in ("text", "voice") and bool(ctx.text))
async def question(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return TextReply(await reply_to_question(ctx, ctx.text))


@router.on(always)
async def fallback(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    """Nothing else took it: never leave the villager in silence (events excepted)."""
    if ctx.msg.is_event:
        return None
    return TextReply(ctx.services.texts.get("help"))


__all__ = ["CONTINUE", "reply_to_question", "router"]
