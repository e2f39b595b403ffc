"""The matcher's word tables (``synonyms.yaml``) and the urgent rules (``urgent.yaml``).

Every word in them is stored *normalised* (fold + synonyms), the form the matcher
compares against, so authors may write either the dialect or the standard word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

SMALLTALK_KINDS = ("greeting", "thanks", "help", "bye")


@dataclass(frozen=True, slots=True)
class MatcherTables:
    synonyms: Mapping[str, str] = field(default_factory=dict)  # folded variant → standard word
    fillers: tuple[str, ...] = ()
    smalltalk: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # kind → normalised phrases
    topic_gates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # topic id → normalised words
    # entry id → words of the *other* side of a mirror (victim/doer, lender/borrower …); a word may
    # hold ``*`` (up to a few characters of anything), kept between its normalised parts
    wrong_role: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # words of questions a township legal office does not answer (医保, 户口, 天气 …): a feature of the
    # confidence model, not a block (户口 also comes up in land questions)
    not_legal: tuple[str, ...] = ()
    # topic id → villagers' questions labelled with it (knowledge/question_bank.yaml): more words for the
    # topic as a whole, never an answer by themselves; under "-" the out-of-scope ones
    topic_examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UrgentRule:
    """Urgent when the normalised message contains one word of *every* group."""

    groups: tuple[tuple[str, ...], ...]

    def matches(self, normalized: str) -> bool:
        return all(any(word in normalized for word in group) for group in self.groups)


@dataclass(frozen=True, slots=True)
class UrgentRules:
    rules: Mapping[str, tuple[UrgentRule, ...]] = field(default_factory=dict)  # category → rules
    # per category: one regex for its single words, and its multi-group rules
    _compiled: tuple[tuple[str, re.Pattern[str] | None, tuple[UrgentRule, ...]], ...] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = []
        for category, rules in self.rules.items():
            words = sorted({r.groups[0][0] for r in rules if len(r.groups) == 1 and len(r.groups[0]) == 1},
                           key=lambda w: (-len(w), w))
            pattern = re.compile("|".join(re.escape(w) for w in words)) if words else None
            combos = tuple(r for r in rules if not (len(r.groups) == 1 and len(r.groups[0]) == 1))
            compiled.append((category, pattern, combos))
        object.__setattr__(self, "_compiled", tuple(compiled))

    @property
    def terms(self) -> tuple[str, ...]:
        """Every single-word rule (what `any:` lists), for display and tests."""
        return tuple(r.groups[0][0] for rules in self.rules.values() for r in rules if len(r.groups) == 1)

    def kind(self, normalized: str) -> str | None:
        """The first category (in file order) whose rule matches, else None."""
        for category, pattern, combos in self._compiled:
            if pattern is not None and pattern.search(normalized):
                return category
            if any(rule.matches(normalized) for rule in combos):
                return category
        return None
