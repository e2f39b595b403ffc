"""The FAQ: answers, suggestions to pick from, "更多", statute look-up; the catch-all, last.

Urgent content (violence, threats to life, suicide, harm to minors) always gets the emergency
guidance first and becomes an urgent ticket whose alert goes to a person at once
(bot.services.tickets.alerts); words about ending one's life get only that — never an FAQ answer.
The question asked is remembered with its time and whether it was about a legal matter, for 转人工.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from bot.knowledge import Entry
from bot.matcher import MatchResult
from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, always, text_in, text_prefix
from bot.services.privacy import remove_phones
from bot.storage.models import KnowledgeGap
from handlers.common import LAW_PREFIXES, MORE_WORDS, answer_text, numbered_list, urgent_text
from handlers.handoff import record_urgent

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


#: a clarify choice from another topic than the best one is shown only if it scores at least this share of it
RELATED_SHARE = 0.6


def clarify_choices(result: MatchResult) -> list[Entry]:
    """Up to three choices to pick from, without padding: an entry of another topic than the best one is
    offered only when it is nearly as close (彩礼 must not offer 作保替人还钱)."""
    top = result.candidates[0]
    return [
        c.entry
        for c in result.candidates[:3]
        if c.entry.topic == top.entry.topic or c.score >= RELATED_SHARE * top.score
    ]


async def reply_to_question(ctx: Ctx, text: str) -> str:
    """Match ``text`` and build the reply; used for typed and spoken questions."""
    knowledge = ctx.services.knowledge
    texts = knowledge.texts
    result = knowledge.match(text)
    if result.urgent:
        alert = await record_urgent(ctx, text, result.urgent_kind)
        ctx.remember(menu=None, last_query=None)
        reply = urgent_text(ctx, result.urgent_kind, alert.reached)
        if result.urgent_kind != "suicide" and result.outcome == "answer" and result.entry is not None:
            ctx.record_outcome("answer", result.entry.topic, result.entry.id)
            reply += "\n\n" + answer_text(ctx, result.entry)  # e.g. what to do about domestic violence
        return reply
    if result.outcome == "smalltalk":
        ctx.record_outcome("smalltalk")
        return texts.get(result.smalltalk if result.smalltalk in ("greeting", "thanks", "bye") else "help")
    # for 转人工: the question, when it was asked and whether the bot saw a legal matter in it
    ctx.remember(last_query=text, last_query_at=ctx.now.isoformat(), last_query_legal=result.outcome != "handoff")
    if result.outcome == "answer" and result.entry is not None:
        ctx.record_outcome("answer", result.entry.topic, result.entry.id)
        reply = answer_text(ctx, result.entry)
        if result.alternatives:  # fairly sure: a wrong guess costs one tap ("不是这个？回复 2 或 3")
            others = [c.entry for c in result.alternatives]
            ctx.remember(menu={"kind": "entries", "ids": [result.entry.id, *(e.id for e in others)]})
            numbers = " 或 ".join(str(n) for n in range(2, len(others) + 2))
            reply += "\n\n" + texts.get("alternatives", numbers=numbers, items=numbered_list(others, start=2))
        return reply
    _record_gap(ctx, result)
    nearest = result.candidates[0].entry if result.candidates else None
    if result.outcome == "clarify" and result.candidates:
        ctx.record_outcome("clarify", nearest.topic if nearest else None, nearest.id if nearest else None)
        picks = clarify_choices(result)
        ctx.remember(menu={"kind": "entries", "ids": [e.id for e in picks]})
        return texts.get("clarify", items=numbered_list(picks))
    ctx.record_outcome("handoff", nearest.topic if nearest else None, nearest.id if nearest else None)
    ctx.remember(menu={"kind": "no_match"})
    referral = texts.referral(text)  # 医保, 户口 …: say who handles it, then the usual ways forward
    return f"{referral}\n\n{texts.get('no_match')}" if referral else texts.get("no_match")


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
