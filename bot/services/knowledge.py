"""The knowledge in use: FAQ base, matcher and chat texts, swapped whole on reload.

A reload builds everything off the event loop; if any file is broken the old knowledge
keeps serving and the errors are kept for the back-office and the log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from bot.matcher import Matcher, MatcherConfig, MatchResult

log = logging.getLogger(__name__)

REQUIRED_TEXTS = (
    "welcome",
    "help",
    "no_match",
    "clarify",
    "alternatives",
    "emergency",
    "voice_unrecognised",
    "media_ack",
    "disclaimer",
)


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{name}`` placeholders; unknown names are left as they are (never an exception)."""
    return string.Formatter().vformat(template, (), _Keep(values))


def match_level(score: object) -> str:
    """A matcher score as staff read it (the matcher's own thresholds, never the number): 高 would be
    answered, 中 offered as a choice, 低 not even that."""
    value = float(score) if isinstance(score, int | float) else 0.0
    config = MatcherConfig()
    return "高" if value >= config.answer_threshold else "中" if value >= config.clarify_threshold else "低"


@dataclass(frozen=True)
class Texts:
    templates: Mapping[str, str]
    site: Mapping[str, Any]

    def get(self, name: str, **values: Any) -> str:
        template = self.templates.get(name) or self.templates.get("no_match", "")
        return fill(template, {**self.site, **values}).strip()

    @classmethod
    def load(cls, directory: Path, site: Mapping[str, Any]) -> Texts:
        """``texts.yaml`` plus every ``texts/*.yaml`` (one file per feature), merged."""
        merged: dict[str, str] = {}
        for path in [directory / "texts.yaml", *sorted((directory / "texts").glob("*.yaml"))]:
            if not path.exists():
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise KnowledgeError([f"{path}:1: texts must be a mapping of name: text"])
            for key, value in data.items():
                if str(key) in merged:
                    raise KnowledgeError([f"{path}:1: text {key!r} is defined twice"])
                merged[str(key)] = str(value)
        missing = [k for k in REQUIRED_TEXTS if not merged.get(k, "").strip()]
        if missing:
            raise KnowledgeError([f"{directory / 'texts.yaml'}:1: missing texts: {', '.join(missing)}"])
        return cls(merged, dict(site))


MATCH_CACHE_SIZE = 8192


@dataclass(frozen=True)
class Knowledge:
    kb: KnowledgeBase
    matcher: Matcher
    texts: Texts
    loaded_at: dt.datetime

    def __post_init__(self) -> None:
        # Villagers ask the same few hundred questions over and over; a result depends only
        # on the text and this (immutable) knowledge, so it is cached here and dropped with
        # it on reload.
        object.__setattr__(self, "_cached_match", functools.lru_cache(maxsize=MATCH_CACHE_SIZE)(self.matcher.match))

    def match(self, text: str) -> MatchResult:
        result: MatchResult = self._cached_match(text)  # type: ignore[attr-defined]
        return result

    @classmethod
    def load(cls, directory: Path) -> Knowledge:
        kb = load_knowledge(directory)
        texts = Texts.load(directory, kb.site)
        return cls(kb=kb, matcher=Matcher(kb), texts=texts, loaded_at=dt.datetime.now(dt.UTC))


class KnowledgeHolder:
    def __init__(self, directory: Path, current: Knowledge) -> None:
        self.directory = directory
        self.current = current
        self.last_errors: list[str] = []
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls, directory: Path) -> KnowledgeHolder:
        return cls(directory, Knowledge.load(directory))

    async def reload(self) -> list[str]:
        """Rebuild from disk; on error keep serving the old knowledge and return the errors."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(Knowledge.load, self.directory)
            except KnowledgeError as exc:
                self.last_errors = list(exc.messages)
                log.error("knowledge reload failed, keeping the old index: %s", "; ".join(self.last_errors))
                return self.last_errors
            except (OSError, yaml.YAMLError) as exc:
                self.last_errors = [f"{self.directory}: {exc}"]
                log.error("knowledge reload failed, keeping the old index: %s", exc)
                return self.last_errors
            self.current = new
            self.last_errors = []
            log.info("knowledge reloaded: %d entries", len(new.kb.entries))
            return []
