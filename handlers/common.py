"""What the FAQ, help and handoff handlers share: the help and "更多" words, the statute prefixes, a
numbered list of entries, an entry's answer text and the words an urgent message gets. They all import it;
it imports none of them."""

from __future__ import annotations

from bot.knowledge import Entry
from bot.routing import Ctx

HELP_WORDS = ("帮助", "菜单", "help", "功能", "你能干啥", "你能做什么", "怎么用", "说明", "?", "？", "0")
MORE_WORDS = ("更多", "详细", "详情", "看全文", "全文", "多说点", "展开")
LAW_PREFIXES = ("查法条", "法条", "查法律", "法律条文")
#: citations an answer shows on the phone; the rest come with "更多"
MAX_CITATIONS = 3


def answer_text(ctx: Ctx, entry: Entry) -> str:
    """An entry's first message (at most three citations); its details and the other citations wait for "更多"."""
    kb = ctx.services.knowledge.kb
    more = kb.render_details(entry) or ""
    if len(entry.basis) > MAX_CITATIONS:
        cited = "、".join(entry.basis)
        example = next((b for b in entry.basis if "第" in b), entry.basis[0])
        more = (more + "\n\n" if more else "") + f"全部依据：{cited}\n看某一条的原文，回复“法条 {example}”这样的话。"
    ctx.remember(last_entry=entry.id, more=more, menu=None)
    return kb.render_answer(entry, max_basis=MAX_CITATIONS)


def numbered_list(entries: list[Entry], start: int = 1) -> str:
    return "\n".join(f"{i}. {e.question}" for i, e in enumerate(entries, start))


def urgent_text(ctx: Ctx, kind: str | None, reached: bool, *, number: str = "") -> str:
    """What an urgent message gets: the emergency numbers first (12356 for words about ending one's life),
    the ticket number when one was filed in the intake, then "已通知…" only if a person was reached —
    otherwise plainly who to call."""
    texts = ctx.services.texts
    lines = [texts.get("emergency_suicide" if kind == "suicide" else "emergency")]
    if number:
        lines.append(texts.get("ticket_urgent_created", number=number))
    lines.append(texts.get("urgent_notified" if reached else "urgent_not_notified"))
    return "\n".join(lines)
