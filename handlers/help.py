"""帮助 / 菜单 / 你好: a numbered menu, the account menu's buttons, and numbered picks: every numbered list the
bot shows (the menu, 常见问题, clarify choices, the can't-answer list) takes its own numbers here."""

from __future__ import annotations

from typing import Any

from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, any_of, click, numbered, text_in
from handlers.booking import start_booking
from handlers.common import HELP_WORDS, answer_text, numbered_list
from handlers.handoff import handoff, my_requests

router = Router("help")

GREETING_WORDS = ("你好", "您好", "在吗", "在不在", "有人吗", "hi", "hello", "哈喽", "喂")
# Topics whose first entry is offered under "常见问题".
HOT_TOPICS = (
    "labor.wage_arrears",
    "debt.private_loan",
    "marriage.divorce_procedure",
    "marriage.bride_price",
    "land.homestead",
    "family.elder_support",
    "neighbor.building_light",
    "fraud.telecom_scam",
)


def _help(ctx: Ctx) -> TextReply:
    ctx.remember(menu={"kind": "help"})
    return TextReply(ctx.services.texts.get("help"))


@router.on(any_of(text_in(*HELP_WORDS), click("FAQ_HOWTO")))
async def help_menu(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return _help(ctx)


@router.on(text_in(*GREETING_WORDS))
async def greeting(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    ctx.remember(menu={"kind": "help"})
    texts = ctx.services.texts
    return TextReply(texts.get("greeting") + "\n\n" + texts.get("help"))


def hot_topics(ctx: Ctx) -> TextReply:
    kb = ctx.services.knowledge.kb
    picks = [entries[0] for t in HOT_TOPICS if (entries := kb.entries_for(t))]
    ctx.remember(menu={"kind": "entries", "ids": [e.id for e in picks]})
    return TextReply(ctx.services.texts.get("hot_topics", items=numbered_list(picks)))


@router.on(click("FAQ_HOT"))
async def hot(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return hot_topics(ctx)


@router.on(any_of(text_in("联系司法所", "联系方式", "电话", "司法所电话", "地址"), click("CONTACT")))
async def contact(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return TextReply(ctx.services.texts.get("contact"))


@router.on(any_of(text_in("隐私", "隐私说明", "隐私政策"), click("PRIVACY")))
async def privacy(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return TextReply(ctx.services.texts.get("privacy"))


def number_range(n: int) -> str:
    """How to ask for a number from a list of ``n``: never "1 到 1 之间"."""
    if n <= 1:
        return "请回复 1"
    if n == 2:
        return "请回复 1 或 2"
    return f"请回复 1 到 {n} 之间的数字"


def _pick(ctx: Ctx) -> dict[str, Any] | None:
    if ctx.msg.msg_type not in ("text", "voice"):
        return None
    number = numbered(ctx.text)
    if number is None:
        return None
    menu = (ctx.conv.context or {}).get("menu")
    return {"number": number, "menu": menu if isinstance(menu, dict) else None}


@router.on(_pick)
async def pick(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    number: int = data["number"]
    menu: dict[str, Any] | None = data["menu"]
    if menu is None:
        # a number with no list on screen (an old list, or a habit): say so and show the menu,
        # rather than treat "1" as a question nobody can answer
        reply = _help(ctx)
        return TextReply(ctx.services.texts.get("number_without_list", number=number) + "\n\n" + reply.content)
    if menu.get("kind") == "entries":
        ids = [str(i) for i in menu.get("ids", [])]
        kb = ctx.services.knowledge.kb
        if 1 <= number <= len(ids) and ids[number - 1] in kb.by_id:
            entry = kb.by_id[ids[number - 1]]
            ctx.record_outcome("picked", entry.topic, entry.id)
            return TextReply(answer_text(ctx, entry))
        return TextReply(f"{number_range(len(ids))}，或者直接说您的问题。")
    if menu.get("kind") == "no_match":  # "这个问题我还答不好" and its three ways forward
        if number == 1:
            ctx.remember(menu=None)
            return TextReply(ctx.services.texts.get("no_match_rephrase"))
        if number == 2:
            return await handoff(ctx, {})
        if number == 3:
            return TextReply(ctx.services.texts.get("contact"))
        return TextReply(f"{number_range(3)}，或者直接说您的问题。")
    if menu.get("kind") == "help":
        actions = {
            1: lambda: hot_topics(ctx),
            5: lambda: TextReply(ctx.services.texts.get("contact")),
            6: lambda: TextReply(ctx.services.texts.get("privacy")),
        }
        if number == 2:
            return await handoff(ctx, {})
        if number == 3:
            return await my_requests(ctx, {})
        if number == 4:
            return await start_booking(ctx)
        action = actions.get(number)
        return action() if action else _help(ctx)
    return CONTINUE
