"""The bot's own work in a month, from what it made of each question (``inbound_messages.outcome``, set by
the FAQ handlers): answered at once, answered after the villager picked from a short list, offered a list,
could not answer; the topics villagers asked about most; the questions it could not answer (knowledge
gaps). Scoped to villages through the villager's registered village."""

from __future__ import annotations

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
    """``village_ids`` None: the whole township."""
    scope = _villagers_of(village_ids, InboundMessage.openid)
    where = [*scope, InboundMessage.received_at >= month.start, InboundMessage.received_at < month.end]
    asked = [*where, InboundMessage.outcome.in_(QUESTION_OUTCOMES)]
    out = BotWork()
    outcomes = dict(
        (
            await session.execute(
                select(InboundMessage.outcome, func.count())
                .where(*where, InboundMessage.outcome.is_not(None))
                .group_by(InboundMessage.outcome)
            )
        ).all()
    )
    out.answered, out.picked = int(outcomes.get("answer", 0)), int(outcomes.get("picked", 0))
    out.clarified, out.unanswered = int(outcomes.get("clarify", 0)), int(outcomes.get("handoff", 0))
    out.smalltalk = int(outcomes.get("smalltalk", 0))
    n = func.count().label("n")
    topics = await session.execute(
        select(InboundMessage.topic, n)
        .where(*asked, InboundMessage.topic.is_not(None))
        .group_by(InboundMessage.topic)
        .order_by(n.desc(), InboundMessage.topic)
        .limit(TOP)
    )
    out.top_topics = [(topic_name(str(t)), int(c)) for t, c in topics.all()]
    entries = await session.execute(
        select(InboundMessage.entry_id, n)
        .where(*where, InboundMessage.outcome.in_(("answer", "picked")), InboundMessage.entry_id.is_not(None))
        .group_by(InboundMessage.entry_id)
        .order_by(n.desc(), InboundMessage.entry_id)
        .limit(TOP)
    )
    out.top_questions = [(title, int(c)) for e, c in entries.all() if (title := entry_title(str(e)))]
    gap_where = [
        *_villagers_of(village_ids, KnowledgeGap.openid),
        KnowledgeGap.created_at >= month.start,
        KnowledgeGap.created_at < month.end,
    ]
    out.gaps = int(await session.scalar(select(func.count()).select_from(KnowledgeGap).where(*gap_where)) or 0)
    gaps = await session.execute(
        select(func.max(KnowledgeGap.text), n)
        .where(*gap_where)
        .group_by(KnowledgeGap.normalized)
        .order_by(n.desc(), func.max(KnowledgeGap.text))
        .limit(TOP)
    )
    out.top_gaps = [(str(text), int(c)) for text, c in gaps.all()]
    await _trend(session, village_ids, trend, out)
    return out


async def _trend(
    session: AsyncSession, village_ids: Sequence[int] | None, months: Sequence[Month], out: BotWork
) -> None:
    bucketed = (
        select(month_of(InboundMessage.received_at, months).label("m"), InboundMessage.outcome.label("o"))
        .where(
            *_villagers_of(village_ids, InboundMessage.openid),
            InboundMessage.received_at >= months[0].start,
            InboundMessage.received_at < months[-1].end,
            InboundMessage.outcome.in_(QUESTION_OUTCOMES),
        )
        .subquery()
    )
    counts: dict[tuple[str, str], int] = {
        (str(m), str(o)): int(c)
        for m, o, c in (
            await session.execute(select(bucketed.c.m, bucketed.c.o, func.count()).group_by(bucketed.c.m, bucketed.c.o))
        ).all()
    }
    labels = [m.label for m in months]
    out.trend = {
        "已回答": [counts.get((m, "answer"), 0) + counts.get((m, "picked"), 0) for m in labels],
        "让村民选": [counts.get((m, "clarify"), 0) for m in labels],
        "答不上": [counts.get((m, "handoff"), 0) for m in labels],
    }


__all__ = ["BotWork", "bot_work"]
