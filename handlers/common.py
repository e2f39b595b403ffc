"""What the FAQ, help and handoff handlers share: the help and "更多" words, the statute prefixes, a
numbered list of entries and an entry's answer text. They all import it; it imports none of them."""

from __future__ import annotations

from bot.knowledge import Entry
from bot.routing import Ctx

HELP_WORDS = ("帮助", "菜单", "help", "功能", "你能干啥", "你能做什么", "怎么用", "说明", "?", "？", "0")
MORE_WORDS = ("更多", "详细", "详情", "看全文", "全文", "多说点", "展开")
LAW_PREFIXES = ("查法条", "法条", "查法律", "法律条文")


def answer_text(ctx: Ctx, entry: Entry) -> str:
    """An entry's first message; its details wait for "更多"."""
    kb = ctx.services.knowledge.kb
    ctx.remember(last_entry=entry.id, more=kb.render_details(entry) or "", menu=None)
    return kb.render_answer(entry)


def numbered_list(entries: list[Entry], start: int = 1) -> str:
    return "\n".join(f"{i}. {e.question}" for i, e in enumerate(entries, start))
