"""The bot's own work in a month, from what it made of each question (``inbound_messages.outcome``, set by
the FAQ handlers): answered at once, answered after the villager picked from a short list, offered a list,
could not answer; the topics villagers asked about most; the questions it could not answer (knowledge
gaps). Scoped to villages through the villager's registered village."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.reports.period import Month, month_of
from bot.storage.models import InboundMessage, KnowledgeGap, Villager

QUESTION_OUTCOMES = ("answer", "picked", "clarify", "handoff")
TOP = 10


@dataclass
class BotWork:
    answered: int = 0  # answered at once
    picked: int = 0  # answered after the villager picked one of the offered questions
    clarified: int = 0  # offered a short list to pick from
    unanswered: int = 0  # could not answer: offered rephrasing, 转人工, the phone number
    smalltalk: int = 0
    top_topics: list[tuple[str, int]] = field(default_factory=list)
    top_questions: list[tuple[str, int]] = field(default_factory=list)
    gaps: int = 0
    top_gaps: list[tuple[str, int]] = field(default_factory=list)
    trend: dict[str, list[int]] = field(default_factory=dict)
    by_month: dict[str, dict[str, int]] = field(default_factory=dict)  # month → outcome → pushes

    @property
    def questions(self) -> int:
        """Questions asked: a pick from a list is the same question, answered, not a new one."""
        return self.answered + self.clarified + self.unanswered

    @property
    def answered_share(self) -> int:
        """Per cent of questions answered, at once or after a pick (at most 100)."""
        return min(100, round(100 * (self.answered + self.picked) / self.questions)) if self.questions else 0


def _villagers_of(village_ids: Sequence[int] | None, openid: Any) -> list[Any]:
    if village_ids is None:
        return []
    return [openid.in_(select(Villager.openid).where(Villager.village_id.in_(list(village_ids))))]


async def bot_work(
    session: AsyncSession,
    village_ids: Sequence[int] | None,
    month: Month,
    topic_name: Callable[[str], str],
    entry_title: Callable[[str], str | None],
    trend: Sequence[Month],
) -> BotWork:
    """``village_ids`` None: the whole township. Two queries over the pushes: the twelve months by
    outcome (the month's own counts are its last bucket), and the month by topic and entry."""
    out = BotWork()
    await _trend(session, village_ids, trend, out)
    counts = out.by_month.get(month.label, {})
    out.answered, out.picked = counts.get("answer", 0), counts.get("picked", 0)
    out.clarified, out.unanswered = counts.get("clarify", 0), counts.get("handoff", 0)
    out.smalltalk = counts.get("smalltalk", 0)
    rows = await session.execute(
        select(InboundMessage.topic, InboundMessage.entry_id, InboundMessage.outcome, func.count())
        .where(
            *_villagers_of(village_ids, InboundMessage.openid),
            InboundMessage.received_at >= month.start,
            InboundMessage.received_at < month.end,
            InboundMessage.outcome.in_(QUESTION_OUTCOMES),
        )
        .group_by(InboundMessage.topic, InboundMessage.entry_id, InboundMessage.outcome)
    )
    topics: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    for topic, entry_id, outcome, n in rows.all():  # one row per topic × entry × outcome: a few hundred
        if topic:
            topics[str(topic)] += int(n)
        if entry_id and outcome in ("answer", "picked"):
            entries[str(entry_id)] += int(n)
    out.top_topics = [(topic_name(t), n) for t, n in sorted(topics.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]]
    ranked = sorted(entries.items(), key=lambda kv: (-kv[1], kv[0]))
    out.top_questions = [(title, n) for e, n in ranked if (title := entry_title(e))][:TOP]
    gap_where = [
        *_villagers_of(village_ids, KnowledgeGap.openid),
        KnowledgeGap.created_at >= month.start,
        KnowledgeGap.created_at < month.end,
    ]
    times = func.count().label("times")
    gaps = await session.execute(
        select(func.max(KnowledgeGap.text), times)
        .where(*gap_where)
        .group_by(KnowledgeGap.normalized)
        .order_by(times.desc(), func.max(KnowledgeGap.text))
        .limit(TOP)
    )
    out.top_gaps = [(str(text), int(c)) for text, c in gaps.all()]
    out.gaps = int(await session.scalar(select(func.count()).select_from(KnowledgeGap).where(*gap_where)) or 0)
    return out


async def _trend(
    session: AsyncSession, village_ids: Sequence[int] | None, months: Sequence[Month], out: BotWork
) -> None:
    """Pushes per month and outcome, in one pass over the year (NULL outcomes — menu clicks, bookings,
    events — left out)."""
    bucketed = (
        select(month_of(InboundMessage.received_at, months).label("m"), InboundMessage.outcome.label("o"))
        .where(
            *_villagers_of(village_ids, InboundMessage.openid),
            InboundMessage.received_at >= months[0].start,
            InboundMessage.received_at < months[-1].end,
            InboundMessage.outcome.is_not(None),
        )
        .subquery()
    )
    rows = await session.execute(select(bucketed.c.m, bucketed.c.o, func.count()).group_by(bucketed.c.m, bucketed.c.o))
    for m, o, c in rows.all():
        out.by_month.setdefault(str(m), {})[str(o)] = int(c)
    labels = [m.label for m in months]

    def count(label: str, *outcomes: str) -> int:
        return sum(out.by_month.get(label, {}).get(o, 0) for o in outcomes)

    out.trend = {
        "已回答": [count(m, "answer", "picked") for m in labels],
        "让村民选": [count(m, "clarify") for m in labels],
        "答不上": [count(m, "handoff") for m in labels],
    }


__all__ = ["BotWork", "bot_work"]
