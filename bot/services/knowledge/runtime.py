"""The knowledge in use: the shipped pack with the township's layer, its matcher and chat texts.

One :class:`Knowledge` is immutable; :class:`KnowledgeHolder` swaps it whole — on a reload of
``knowledge/`` (SIGHUP, the back-office button) and when a new version of the township's layer
is published (bot/services/knowledge/sync.py). The new one is built off the event loop; a
message being answered keeps the object it started with, so nothing is dropped. If a file or
the layer is broken, the old knowledge keeps serving and the errors are kept for the
back-office, /healthz and the log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from bot.matcher import Matcher, MatcherConfig, MatchResult
from bot.services.knowledge.layer import Flag, Layer, LayerError, merge

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
    #: (words, where to ask instead) from ``referrals.yaml``: matters a judicial office does not handle
    referrals: tuple[tuple[tuple[str, ...], str], ...] = ()

    def get(self, name: str, **values: Any) -> str:
        template = self.templates.get(name) or self.templates.get("no_match", "")
        return fill(template, {**self.site, **values}).strip()

    def referral(self, message: str) -> str:
        """Where to ask instead, when the message is about something another office handles ("" if not)."""
        folded = unicodedata.normalize("NFKC", message)
        for words, text in self.referrals:
            if any(w in folded for w in words):
                return fill(text, self.site).strip()
        return ""

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
        return cls(merged, dict(site), _load_referrals(directory / "referrals.yaml"))


def _load_referrals(path: Path) -> tuple[tuple[tuple[str, ...], str], ...]:
    """``referrals: [{words: [医保, …], text: 医保的事归县医疗保障局管…}, …]`` (optional file)."""
    if not path.exists():
        return ()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rows = data.get("referrals") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise KnowledgeError([f"{path}:1: referrals must be a list of {{words: [...], text: ...}}"])
    out = []
    for i, row in enumerate(rows, 1):
        words = row.get("words") if isinstance(row, dict) else None
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(words, list) or not words or not isinstance(text, str) or not text.strip():
            raise KnowledgeError([f"{path}:1: referral {i} needs words (a list) and a text"])
        out.append((tuple(unicodedata.normalize("NFKC", str(w)) for w in words), text))
    return tuple(out)


MATCH_CACHE_SIZE = 8192


@dataclass(frozen=True)
class Knowledge:
    kb: KnowledgeBase  # what the chat uses: the shipped pack merged with the township's layer
    matcher: Matcher
    texts: Texts
    loaded_at: dt.datetime
    shipped: KnowledgeBase | None = None  # the pack alone (None: ``kb`` is the pack alone)
    layer: Layer = field(default_factory=Layer)
    version: int = 0  # the township layer's published version in use (0: none)
    flags: tuple[Flag, ...] = ()  # what a reviewer must look at (a release changed a replaced entry …)

    def __post_init__(self) -> None:
        # Villagers ask the same few hundred questions over and over; a result depends only
        # on the text and this (immutable) knowledge, so it is cached here and dropped with
        # it on reload.
        object.__setattr__(self, "_cached_match", functools.lru_cache(maxsize=MATCH_CACHE_SIZE)(self.matcher.match))

    def match(self, text: str) -> MatchResult:
        result: MatchResult = self._cached_match(text)  # type: ignore[attr-defined]
        return result

    @property
    def base(self) -> KnowledgeBase:
        """The shipped pack without the township's layer."""
        return self.shipped or self.kb

    @classmethod
    def load(cls, directory: Path) -> Knowledge:
        """The shipped pack of ``directory`` alone."""
        kb = load_knowledge(directory)
        texts = Texts.load(directory, kb.site)
        return cls(kb=kb, matcher=Matcher(kb), texts=texts, loaded_at=dt.datetime.now(dt.UTC), shipped=kb)

    def with_layer(self, layer: Layer, version: int) -> Knowledge:
        """The same shipped pack with another layer (raises LayerError). Slow: builds an index."""
        base = self.base
        flags: tuple[Flag, ...] = ()
        if layer.empty:
            merged_kb = base
        else:
            merged = merge(base, layer)
            merged_kb, flags = merged.kb, merged.flags
        texts = Texts(self.texts.templates, merged_kb.site, self.texts.referrals)
        return Knowledge(kb=merged_kb, matcher=Matcher(merged_kb), texts=texts,
                         loaded_at=dt.datetime.now(dt.UTC), shipped=base, layer=layer, version=version,
                         flags=tuple(flags))


class KnowledgeHolder:
    """The process's knowledge. ``current`` is swapped whole; readers never see a half-built one."""

    def __init__(self, directory: Path, current: Knowledge) -> None:
        self.directory = directory
        self.current = current
        self.last_errors: list[str] = []  # the last reload of knowledge/ failed: why
        self.layer_errors: list[str] = []  # a published layer version could not be used: why
        self.failed_version: int | None = None  # … and which (not retried until a newer one is published)
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls, directory: Path) -> KnowledgeHolder:
        return cls(directory, Knowledge.load(directory))

    @property
    def version(self) -> int:
        return self.current.version

    @property
    def errors(self) -> list[str]:
        return [*self.last_errors, *self.layer_errors]

    async def reload(self) -> list[str]:
        """Rebuild from disk with the layer in use; on error keep serving the old knowledge and return the errors."""
        async with self._lock:
            current = self.current
            try:
                new = await asyncio.to_thread(Knowledge.load, self.directory)
                if not current.layer.empty:
                    new = await asyncio.to_thread(new.with_layer, current.layer, current.version)
            except KnowledgeError as exc:
                self.last_errors = list(exc.messages)
                log.error("knowledge reload failed, keeping the old index: %s", "; ".join(self.last_errors))
                return self.last_errors
            except LayerError as exc:
                self.last_errors = [f"本乡知识库（第 {current.version} 版）和新的知识库文件合不上：{m}"
                                    for m in exc.messages]
                log.error("knowledge reload: the township layer does not fit the new files, keeping the old index: %s",
                          "; ".join(exc.messages))
                return self.last_errors
            except (OSError, yaml.YAMLError) as exc:
                self.last_errors = [f"{self.directory}: {exc}"]
                log.error("knowledge reload failed, keeping the old index: %s", exc)
                return self.last_errors
            self.current = new
            self.last_errors = []
            log.info("knowledge reloaded: %d entries (township layer version %d)", len(new.kb.entries), new.version)
            return []

    async def apply(self, layer: Layer, version: int) -> list[str]:
        """Use published ``version`` of the township's layer; a broken one never replaces a working index."""
        async with self._lock:
            current = self.current
            if version == current.version and version != self.failed_version:
                return []
            try:
                new = await asyncio.to_thread(current.with_layer, layer, version)
            except LayerError as exc:
                self.layer_errors = [f"本乡知识库第 {version} 版没有启用，仍在用第 {current.version} 版：{m}"
                                     for m in exc.messages]
                self.failed_version = version
                log.error("township knowledge version %d is broken, keeping version %d: %s", version,
                          current.version, "; ".join(exc.messages))
                return self.layer_errors
            self.current = new
            self.layer_errors = []
            self.failed_version = None
            log.info("township knowledge version %d in use: %s", version, layer.describe())
            return []


_process_holders: dict[Path, KnowledgeHolder] = {}


def process_holder(directory: str | Path) -> KnowledgeHolder:
    """One holder per knowledge directory in this process (a `lawbot worker` builds it on first need)."""
    path = Path(directory)
    holder = _process_holders.get(path)
    if holder is None:
        holder = _process_holders[path] = KnowledgeHolder.load(path)
    return holder
