"""The township's layer over the shipped pack: what it holds, how it merges, what a release flags.

The shipped pack (``knowledge/``) comes with releases; the township's layer lives in the
database (bot/storage/knowledge.py) and holds

* ``variants`` — new phrasings villagers used, for shipped entries;
* ``entries`` — the township's own entries, in the FAQ format of ``knowledge/faq/*.yaml``;
* ``overrides`` — local replacements of a shipped entry's answer / next step / details /
  basis, each with a copy and a hash of the shipped entry it was made against;
* ``site`` — local values of the placeholders (``{office_phone}`` …).

:func:`merge` builds the KnowledgeBase the matcher indexes. A shipped entry that a new release
changed after the township replaced it is *flagged* for re-review: the township's text keeps
serving (the reviewer vouched for it) and the knowledge page shows both texts until a
reviewer keeps one. An item that cannot be loaded makes the whole layer unusable
(:class:`LayerError`): the process then keeps the index it has.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.knowledge import PLACEHOLDERS, Entry, KnowledgeBase
from bot.knowledge.loader import ENTRY_KEYS, parse_entry

#: the fields of a shipped entry the township may replace locally
REPLACEABLE: tuple[str, ...] = ("answer", "next_step", "details", "basis")
#: site values the township may set (the placeholders FAQ texts use)
SITE_KEYS: tuple[str, ...] = tuple(sorted(PLACEHOLDERS))
SITE_NAMES: dict[str, str] = {
    "township": "乡镇名称",
    "office_name": "司法所名称",
    "office_phone": "司法所电话",
    "office_address": "司法所地址",
    "office_hours": "办公时间",
    "mediation_center_phone": "矛调中心电话",
}
TOWNSHIP_SOURCE = "township"


def to_staff(text: str) -> str:
    """Placeholders as staff read and write them: ``{office_phone}`` → ``{司法所电话}``."""
    for key, name in SITE_NAMES.items():
        text = text.replace("{" + key + "}", "{" + name + "}")
    return text


def from_staff(text: str) -> str:
    """The reverse of :func:`to_staff`: what staff typed, with the placeholders the knowledge format uses."""
    for key, name in SITE_NAMES.items():
        text = text.replace("{" + name + "}", "{" + key + "}")
    return text  # Entry.source_file of the township's own entries

FlagKind = Literal["release_changed", "missing", "id_taken"]


class LayerError(Exception):
    """The layer cannot be used; ``messages`` say why, in plain Chinese."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def entry_hash(entry: Entry) -> str:
    """What a local replacement was made against: the shipped entry's content (not its phrasings)."""
    data = [entry.topic, entry.question, entry.answer, entry.details or "", list(entry.basis), entry.next_step,
            entry.urgent]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


def shipped_part(entry: Entry) -> dict[str, Any]:
    """The replaceable fields of a shipped entry, as stored beside a replacement."""
    return {"answer": entry.answer, "next_step": entry.next_step, "details": entry.details,
            "basis": list(entry.basis)}


def entry_item(entry: Entry) -> dict[str, Any]:
    """An Entry as a FAQ-format mapping (JSON-safe: ``reviewed`` as YYYY-MM-DD), keys in file order."""
    item: dict[str, Any] = {
        "id": entry.id,
        "topic": entry.topic,
        "question": entry.question,
        "variants": list(entry.variants),
        "keywords": list(entry.keywords),
        "answer": entry.answer,
        "details": entry.details,
        "basis": list(entry.basis),
        "next_step": entry.next_step,
        "urgent": entry.urgent,
        "reviewed": entry.reviewed.isoformat() if entry.reviewed else None,
    }
    return canonical_item(item)


def canonical_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A township entry as stored and exported: file key order, no empty optional keys."""
    out: dict[str, Any] = {}
    for key in ENTRY_KEYS:
        value = item.get(key)
        if key in ("keywords", "details") and not value:
            continue
        if key == "urgent" and not value:
            continue
        if value is None:
            continue
        out[key] = value.isoformat() if isinstance(value, dt.date) else value
    return out


def yaml_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored mapping as the loader reads it from YAML (``reviewed`` a date), keys in file order."""
    out = {k: copy.deepcopy(item[k]) for k in ENTRY_KEYS if k in item and item[k] is not None}
    # unknown keys are kept: the loader says what is wrong with them
    out.update({k: copy.deepcopy(v) for k, v in item.items() if k not in ENTRY_KEYS})
    reviewed = out.get("reviewed")
    if isinstance(reviewed, str):
        with contextlib.suppress(ValueError):
            out["reviewed"] = dt.date.fromisoformat(reviewed)
    return out


@dataclass(frozen=True)
class Flag:
    """Something about the layer a reviewer must look at (never silently kept or dropped)."""

    entry_id: str
    kind: FlagKind
    title: str
    detail: str
    shipped_before: Mapping[str, Any] | None = None  # release_changed: the text the replacement was made against
    shipped_now: Mapping[str, Any] | None = None
    local: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Layer:
    """The township's layer. Treat as immutable: the ``with_…`` methods return a new one."""

    variants: dict[str, list[str]] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    site: dict[str, str] = field(default_factory=dict)

    # -- storage --------------------------------------------------------------
    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Layer:
        data = data or {}
        problems = [f"“{k}”应为映射" for k in ("variants", "entries", "overrides", "site")
                    if not isinstance(data.get(k) or {}, dict)]
        if problems:
            raise LayerError(["本乡知识库的数据格式不对：" + "；".join(problems)])
        variants = {str(k): [str(v) for v in vs] for k, vs in (data.get("variants") or {}).items()
                    if isinstance(vs, list)}
        entries = {str(k): dict(v) for k, v in (data.get("entries") or {}).items() if isinstance(v, dict)}
        overrides = {str(k): dict(v) for k, v in (data.get("overrides") or {}).items() if isinstance(v, dict)}
        site = {str(k): str(v) for k, v in (data.get("site") or {}).items()}
        return cls(variants, entries, overrides, site)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps({"variants": self.variants, "entries": self.entries,
                                                      "overrides": self.overrides, "site": self.site},
                                                     ensure_ascii=False))
        return data

    def copy(self) -> Layer:
        return Layer.from_json(self.to_json())

    @property
    def empty(self) -> bool:
        return not (self.variants or self.entries or self.overrides or self.site)

    def counts(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "variants": sum(len(v) for v in self.variants.values()),
            "overrides": len(self.overrides),
            "site": len(self.site),
        }

    def describe(self) -> str:
        c = self.counts()
        parts = [f"{c['entries']} 条本乡问答", f"{c['variants']} 个新问法", f"{c['overrides']} 条本乡替换的答案",
                 f"{c['site']} 项本乡信息"]
        return "、".join(parts)

    # -- changes ----------------------------------------------------------------
    def with_variant(self, entry_id: str, text: str) -> Layer:
        new = self.copy()
        if entry_id in new.entries:
            item = new.entries[entry_id]
            item["variants"] = [*item.get("variants", []), text]
        else:
            new.variants[entry_id] = [*new.variants.get(entry_id, []), text]
        return new

    def with_entry(self, item: Mapping[str, Any]) -> Layer:
        new = self.copy()
        new.entries[str(item["id"])] = json.loads(json.dumps(canonical_item(item), ensure_ascii=False, default=str))
        return new

    def with_override(self, shipped: Entry | None, entry_id: str, fields: Mapping[str, Any]) -> Layer:
        """Replace fields of an entry: a township entry is edited in place; a shipped one gets a replacement
        that remembers what it was made against (``shipped``, ``shipped_hash``)."""
        new = self.copy()
        changes = json.loads(json.dumps({k: v for k, v in fields.items() if k in (*REPLACEABLE, "reviewed")},
                                        ensure_ascii=False, default=str))
        if entry_id in new.entries:
            new.entries[entry_id].update(changes)
            return new
        if shipped is None:
            raise LayerError([f"没有这条问答：{entry_id}"])
        current = new.overrides.get(entry_id, {})
        new.overrides[entry_id] = {**current, **changes, "shipped": shipped_part(shipped),
                                   "shipped_hash": entry_hash(shipped)}
        return new

    def without_override(self, entry_id: str) -> Layer:
        new = self.copy()
        new.overrides.pop(entry_id, None)
        return new

    def with_site(self, values: Mapping[str, str]) -> Layer:
        new = self.copy()
        for key, value in values.items():
            if value:
                new.site[key] = value
            else:
                new.site.pop(key, None)
        return new


@dataclass(frozen=True)
class Merged:
    kb: KnowledgeBase
    flags: tuple[Flag, ...] = ()


def _override_entry(entry: Entry, override: Mapping[str, Any], extra_variants: Iterable[str],
                    shipped: KnowledgeBase, site: dict[str, Any]) -> tuple[Entry | None, list[str]]:
    item = yaml_item({**entry_item(entry), **{k: override[k] for k in (*REPLACEABLE, "reviewed") if k in override}})
    item["variants"] = [*item.get("variants", []), *extra_variants]
    parsed, problems = parse_entry(item, shipped.topics, site, source=entry.source_file)
    errors = [p.message for p in problems if p.level == "error"]
    if parsed is None:
        return None, errors
    return dataclasses.replace(parsed, source_line=entry.source_line), errors


def merge(shipped: KnowledgeBase, layer: Layer) -> Merged:
    """The shipped pack with the township's layer on top (raises :class:`LayerError` if an item cannot load)."""
    from bot.services.knowledge.validation import chinese

    errors: list[str] = []
    flags: list[Flag] = []
    site = {**shipped.site, **{k: v for k, v in layer.site.items() if k in SITE_KEYS}}
    for key in sorted(set(layer.site) - set(SITE_KEYS)):
        errors.append(f"本乡信息“{key}”不是可以设置的项目")
    entries: list[Entry] = []
    for entry in shipped.entries:
        extra = [v for v in layer.variants.get(entry.id, []) if v not in entry.phrasings]
        override = layer.overrides.get(entry.id)
        if override is None:
            entries.append(dataclasses.replace(entry, variants=entry.variants + tuple(extra)) if extra else entry)
            continue
        merged, problems = _override_entry(entry, override, extra, shipped, site)
        if merged is None or problems:
            errors.extend(f"本乡替换的“{shipped.fill(entry.question)}”：{chinese(p)}" for p in problems)
            continue
        entries.append(merged)
        if override.get("shipped_hash") != entry_hash(entry):
            flags.append(Flag(
                entry.id, "release_changed", shipped.fill(entry.question),
                "新发布的知识库改了这条问答，而本乡替换过它的答案。现在仍用本乡的答案，请审核人对照新版本决定保留哪个。",
                shipped_before=override.get("shipped") or {}, shipped_now=shipped_part(entry),
                local={k: override.get(k) for k in REPLACEABLE if k in override},
            ))
    for entry_id in sorted((set(layer.variants) | set(layer.overrides)) - set(shipped.by_id)):
        flags.append(Flag(entry_id, "missing", entry_id,
                          "新发布的知识库里已经没有这条问答，本乡给它加的问法或替换的答案暂时不用，请审核人处理。"))
    for entry_id, raw in layer.entries.items():
        if entry_id in shipped.by_id:
            flags.append(Flag(entry_id, "id_taken", str(raw.get("question", entry_id)),
                              "新发布的知识库有了同一编号的问答，本乡的这条暂时不用，请审核人改个编号或删掉。"))
            continue
        parsed, found = parse_entry(yaml_item(raw), shipped.topics, site, source=TOWNSHIP_SOURCE)
        if parsed is None:
            title = str(raw.get("question") or entry_id)
            errors.extend(f"本乡问答“{title}”：{chinese(p.message)}" for p in found if p.level == "error")
            continue
        entries.append(parsed)
    if errors:
        raise LayerError(errors)
    kb = KnowledgeBase(shipped.root, shipped.topics, tuple(entries), site, shipped.laws, shipped.tables,
                       shipped.urgent_rules, shipped.currency)
    return Merged(kb, tuple(flags))
