"""Plain data types of the knowledge base (no I/O, no matcher)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "check"]


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    name: str
    scope: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One FAQ entry of ``knowledge/faq/*.yaml`` (see knowledge/README.md)."""

    id: str
    topic: str
    question: str
    variants: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str
    details: str | None
    basis: tuple[str, ...]
    next_step: str
    urgent: bool
    reviewed: dt.date | None
    source_file: str  # relative to the knowledge directory, e.g. "faq/marriage.yaml"
    source_line: int  # 1-based line of the entry's "- id:" item

    @property
    def phrasings(self) -> tuple[str, ...]:
        """The question and its variants (what a villager might type)."""
        return (self.question, *self.variants)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of validation. ``error`` problems stop loading; ``check`` ones fail `kb check` only."""

    file: str
    line: int
    message: str
    level: Level = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class KnowledgeError(Exception):
    """The knowledge directory cannot be loaded. ``messages`` are ``file:line: message`` lines."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
