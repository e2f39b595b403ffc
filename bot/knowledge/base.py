"""The loaded, validated knowledge: entries, topics, site values, statutes, word tables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.knowledge.currency import Currency
from bot.knowledge.laws import LawIndex
from bot.knowledge.model import Entry, Topic
from bot.knowledge.tables import MatcherTables, UrgentRules
from bot.matcher.normalize import Normalizer, fold

DISCLAIMER = "（以上为普法解答，不构成律师意见。）"
#: The placeholders FAQ texts may use (knowledge/README.md); values come from site.yaml.
PLACEHOLDERS: frozenset[str] = frozenset(
    {"township", "office_name", "office_phone", "office_address", "office_hours", "mediation_center_phone"}
)
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """Immutable once loaded: a reload builds a new one (and a new Matcher) and swaps it in."""

    root: Path
    topics: dict[str, Topic]
    entries: tuple[Entry, ...]
    site: dict[str, Any]
    laws: LawIndex
    tables: MatcherTables = field(default_factory=MatcherTables)
    urgent_rules: UrgentRules = field(default_factory=UrgentRules)
    currency: Currency = field(default_factory=Currency)  # versions, in-force dates, what is due for review
    by_id: dict[str, Entry] = field(init=False)
    normalizer: Normalizer = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {e.id: e for e in self.entries})
        object.__setattr__(self, "normalizer", Normalizer(self.tables.synonyms, self.tables.fillers))

    # -- texts -----------------------------------------------------------------
    def fill(self, text: str) -> str:
        """Replace ``{placeholder}`` with site.yaml values; unknown ones are left as they are."""

        def sub(m: re.Match[str]) -> str:
            value = self.site.get(m.group(1))
            if value is None or isinstance(value, (dict, list)):
                return m.group(0)
            return str(value)

        return PLACEHOLDER_RE.sub(sub, text)

    def render_answer(self, entry: Entry, *, max_basis: int | None = None, disclaimer: bool = True) -> str:
        """answer, 依据 line, 下一步 and the disclaimer — the text a villager gets.

        ``max_basis``: cite at most this many (a phone shows a short line; the rest say where to find them).
        ``disclaimer=False``: without the closing disclaimer (staff insert the text into their own reply)."""
        parts = [self.fill(entry.answer.strip())]
        if entry.basis:
            shown = entry.basis if max_basis is None else entry.basis[:max_basis]
            more = "等（回复“更多”看全部依据）" if len(shown) < len(entry.basis) else ""
            parts.append("\n依据：" + "、".join(shown) + more)
        parts.append("\n\n下一步：" + self.fill(entry.next_step.strip()))
        if disclaimer:
            parts.append("\n" + DISCLAIMER)
        return "".join(parts)

    def render_details(self, entry: Entry) -> str | None:
        return self.fill(entry.details.strip()) if entry.details else None

    # -- urgency ---------------------------------------------------------------
    @property
    def urgent_terms(self) -> tuple[str, ...]:
        return self.urgent_rules.terms

    def urgent_kind(self, text: str) -> str | None:
        """Category from urgent.yaml (e.g. ``violence_now``, ``suicide``) of an urgent message, else None."""
        return self.urgent_rules.kind(self.normalizer.apply_synonyms(fold(text)))

    def is_urgent(self, text: str) -> bool:
        return self.urgent_kind(text) is not None

    # -- helpers ---------------------------------------------------------------
    def entries_for(self, topic: str) -> list[Entry]:
        return [e for e in self.entries if e.topic == topic]

    def topic_name(self, topic: str) -> str:
        t = self.topics.get(topic)
        return t.name if t else topic

    def with_entries(self, entries: tuple[Entry, ...]) -> KnowledgeBase:
        """A copy with other entries (benchmarks, tests)."""
        return KnowledgeBase(self.root, self.topics, entries, self.site, self.laws, self.tables, self.urgent_rules,
                             self.currency)

    def with_examples(self, examples: Mapping[str, tuple[str, ...]]) -> KnowledgeBase:
        """A copy whose question bank is ``examples`` (topic → questions): calibration leaves a fold out."""
        return KnowledgeBase(self.root, self.topics, self.entries, self.site, self.laws,
                             replace(self.tables, topic_examples=examples), self.urgent_rules, self.currency)

