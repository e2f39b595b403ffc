"""Legal currency: the version and in-force date of every law the answers rest on, and
which FAQ entries must be checked again because a law changed after they were reviewed.

Owns ``knowledge/law_currency.yaml`` (see knowledge/README.md, "Keeping answers current"):

* ``texts`` — for shipped files in ``laws/``: the version where the file name has no date,
  the in-force date where the header has no ``……施行`` line, and ``added``, the day the
  text was added to ``laws/``;
* ``touches`` — which FAQ topics each law bears on;
* ``name_only`` — laws not shipped that entries may cite by name (never with an article);
* ``revised_not_shipped`` — revisions known to be in force whose new text is not shipped.

The rules (:func:`review_due`), each giving one :class:`DueReason`:

* ``cited`` — the entry cites a law whose current text came into force, or was added to
  ``laws/``, after the entry's ``reviewed`` date;
* ``replaced`` — the same, when an older shipped text of that law was current at the
  review: the entry was checked against a version a newer shipped file replaces;
* ``topic`` — a law that touches the entry's topic came into force or was added after
  the review;
* ``unshipped`` — the entry cites or names a law whose revised text is in force but not
  shipped: it cannot be checked article by article, whatever its ``reviewed`` date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bot.knowledge.laws import NAME_ONLY_LAWS, LawIndex, _name_key, parse_citation
from bot.knowledge.model import Entry, Level, Topic

if TYPE_CHECKING:
    from bot.knowledge.base import KnowledgeBase

CURRENCY_FILE = "law_currency.yaml"
SECTIONS = ("texts", "touches", "name_only", "revised_not_shipped")
#: kinds of reasons, most serious first (the order reasons are listed in)
KINDS = ("unshipped", "replaced", "cited", "topic")

AddProblem = Callable[[str, int, str, Level], None]


@dataclass(frozen=True, slots=True)
class LawVersion:
    """One version of a law: a shipped text, or a known text that is not shipped."""

    law: str
    version: str | None  # "2023-09-01", or a document number such as 法释〔2025〕12号
    in_force: dt.date | None
    added: dt.date | None = None  # when the text was added to laws/ (shipped texts only)
    files: tuple[str, ...] = ()  # laws/ files; empty when not shipped
    note: str = ""

    @property
    def shipped(self) -> bool:
        return bool(self.files)

    @property
    def known_since(self) -> dt.date | None:
        """From when an answer can rest on this text: in force and, if shipped later, added."""
        dates = [d for d in (self.in_force, self.added) if d is not None]
        return max(dates) if dates else None

    def label(self) -> str:
        """``行政复议法（2023-09-01版，2024-01-01施行）``."""
        parts = [f"{self.version}版" if self.version else "", f"{self.in_force}施行" if self.in_force else ""]
        inner = "，".join(p for p in parts if p)
        return book(self.law) + (f"（{inner}）" if inner else "")


@dataclass(frozen=True, slots=True)
class Currency:
    """Everything law_currency.yaml and the shipped files say about versions and dates."""

    versions: Mapping[str, tuple[LawVersion, ...]] = field(default_factory=dict)  # shipped, oldest first
    name_only: Mapping[str, LawVersion] = field(default_factory=dict)
    revised: Mapping[str, LawVersion] = field(default_factory=dict)  # law → its unshipped revision
    touches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # law → topic ids
    enabled: bool = False  # law_currency.yaml exists: dates are checked and entries can be due

    @property
    def name_only_keys(self) -> frozenset[str]:
        """Spelling-insensitive keys of the laws that may be cited by name only."""
        return frozenset(_name_key(n) for n in (*NAME_ONLY_LAWS, *self.name_only))

    def current(self, law: str) -> LawVersion | None:
        texts = self.versions.get(law)
        return texts[-1] if texts else None


@dataclass(frozen=True, slots=True)
class DueReason:
    law: str
    version: str | None
    in_force: dt.date | None
    kind: str  # one of KINDS
    why: str  # plain Chinese, shown to the judicial office
    citations: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"law": self.law, "version": self.version,
                "in_force": self.in_force.isoformat() if self.in_force else None,
                "kind": self.kind, "why": self.why, "citations": list(self.citations)}


@dataclass(frozen=True, slots=True)
class DueEntry:
    """An entry to check again, and why."""

    entry: Entry
    reasons: tuple[DueReason, ...]

    def as_json(self, topic_name: str) -> dict[str, Any]:
        e = self.entry
        return {"entry_id": e.id, "id": e.id, "question": e.question, "topic": e.topic, "topic_name": topic_name,
                "file": e.source_file, "line": e.source_line,
                "reviewed": e.reviewed.isoformat() if e.reviewed else None,
                "reasons": [r.as_json() for r in self.reasons]}

    def summary(self) -> str:
        """One line per entry for `kb check`: the laws and kinds."""
        laws = "；".join(f"{book(r.law)}{_KIND_WORDS[r.kind]}" for r in self.reasons)
        return f"{self.entry.id}: 需要复核（复核于 {self.entry.reviewed or '未填'}）：{laws}"


_KIND_WORDS = {"unshipped": "新修订文本未收入", "replaced": "已有新版本", "cited": "晚于复核日期施行或收入",
               "topic": "涉及本类别，晚于复核日期"}


# -- reading law_currency.yaml -----------------------------------------------------------
def book(law: str) -> str:
    """``《行政复议法》``; a name that holds 《》 itself gets 〈〉 inside: ``《最高人民法院关于适用〈民法典〉……》``."""
    return "《" + law.replace("《", "〈").replace("》", "〉") + "》"


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _children(node: yaml.Node | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """key text → (key node, value node) of a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}


@dataclass
class _Reader:
    rel: str
    add: AddProblem

    def problem(self, node: yaml.Node | None, message: str) -> None:
        self.add(self.rel, _line(node), message, "check")

    def mapping(self, value: Any, node: yaml.Node | None, what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(node, f"{what}: expected a mapping")
            return {}
        return {str(k): v for k, v in value.items()}

    def fields(self, value: Any, node: yaml.Node | None, what: str, allowed: tuple[str, ...],
               dates: tuple[str, ...]) -> dict[str, Any]:
        body = self.mapping(value, node, what)
        kids = _children(node)
        out: dict[str, Any] = {}
        for key, raw in body.items():
            where = kids.get(key, (node, node))[0]
            if key not in allowed:
                self.problem(where, f"{what}: unknown key {key!r} (allowed: {', '.join(allowed)})")
            elif key in dates:
                date = _as_date(raw)
                if date is None:
                    self.problem(where, f"{what}: {key} must be a date YYYY-MM-DD")
                else:
                    out[key] = date
            elif raw is not None:
                out[key] = raw.isoformat() if isinstance(raw, dt.date) else str(raw).strip()
        return out


def load_currency(root: Path, laws: LawIndex, topics: Mapping[str, Topic], add: AddProblem) -> Currency:
    """Read ``root/law_currency.yaml`` against the shipped texts; report ``check`` problems through ``add``.

    Without the file nothing is checked (``enabled`` is False) and only the version and
    in-force dates the files themselves give are known.
    """
    path = root / CURRENCY_FILE
    reader = _Reader(CURRENCY_FILE, add)
    if not path.exists():
        return Currency(_versions(laws, {}, None), enabled=False)
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        add(CURRENCY_FILE, mark.line + 1 if mark is not None else 1, f"cannot read: {exc}", "check")
        return Currency(_versions(laws, {}, None), enabled=False)
    body = reader.mapping(data, node, CURRENCY_FILE)
    sections = _children(node)
    for key in body:
        if key not in SECTIONS:
            reader.problem(sections[key][0], f"unknown section {key!r} (allowed: {', '.join(SECTIONS)})")

    def section(name: str) -> tuple[dict[str, Any], yaml.Node | None]:
        sub = sections.get(name, (None, None))[1]
        return reader.mapping(body.get(name), sub, name), sub

    texts_raw, texts_node = section("texts")
    shipped_files = {f for law in laws.laws.values() for t in law.texts for f in t.sources}
    file_rows: dict[str, dict[str, Any]] = {}
    for file_name, value in texts_raw.items():
        key_node, value_node = _children(texts_node)[file_name]
        if file_name not in shipped_files:
            reader.problem(key_node, f"texts: {file_name} is not a file in laws/")
            continue
        row = reader.fields(value, value_node, f"texts: {file_name}", ("version", "in_force", "added"),
                            ("in_force", "added"))
        file_rows[file_name] = {**row, "_line": _line(key_node)}
    versions = _versions(laws, file_rows, reader)

    name_only: dict[str, LawVersion] = {}
    raw, sub = section("name_only")
    for law, value in raw.items():
        key_node, value_node = _children(sub)[law]
        if laws.canonical_name(law) is not None:
            reader.problem(key_node, f"name_only: {law} is shipped in laws/: cite its articles instead")
            continue
        row = reader.fields(value, value_node, f"name_only: {law}", ("version", "in_force", "note"), ("in_force",))
        name_only[law] = LawVersion(law, row.get("version"), row.get("in_force"), note=row.get("note", ""))

    revised: dict[str, LawVersion] = {}
    raw, sub = section("revised_not_shipped")
    for law, value in raw.items():
        key_node, value_node = _children(sub)[law]
        row = reader.fields(value, value_node, f"revised_not_shipped: {law}", ("version", "in_force", "note"),
                            ("in_force",))
        canonical = laws.canonical_name(law)
        name = canonical or law
        if canonical is None and law not in name_only and law not in NAME_ONLY_LAWS:
            reader.problem(key_node, f"revised_not_shipped: {law} is neither shipped nor listed under name_only")
        if "version" not in row or "in_force" not in row:
            reader.problem(key_node, f"revised_not_shipped: {law} needs version and in_force")
            continue
        current = versions.get(name, ())
        if current and current[-1].version and current[-1].version >= str(row["version"]):
            reader.problem(key_node, f"revised_not_shipped: laws/ already has the {current[-1].version} text of "
                                     f"{name}: remove it here")
        revised[name] = LawVersion(name, row["version"], row["in_force"], note=row.get("note", ""))

    touches: dict[str, tuple[str, ...]] = {}
    raw, sub = section("touches")
    for law, value in raw.items():
        key_node, _ = _children(sub)[law]
        name = laws.canonical_name(law) or law
        if name not in versions and name not in name_only and name not in revised:
            reader.problem(key_node, f"touches: unknown law {law!r} (not in laws/, name_only or revised_not_shipped)")
            continue
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            reader.problem(key_node, f"touches: {law} must map to a list of topic ids")
            continue
        unknown = [t for t in value if topics and t not in topics]
        if unknown:
            reader.problem(key_node, f"touches: {law}: unknown topic(s) {', '.join(unknown)}")
        touches[name] = tuple(t for t in value if t not in unknown)
    return Currency(versions, name_only, revised, touches, enabled=True)


def _versions(laws: LawIndex, rows: Mapping[str, Mapping[str, Any]],
              reader: _Reader | None) -> dict[str, tuple[LawVersion, ...]]:
    """Every shipped text with its version and in-force date (file name/header, else law_currency.yaml)."""
    out: dict[str, tuple[LawVersion, ...]] = {}
    for name, law in sorted(laws.laws.items()):
        found: list[LawVersion] = []
        for text in law.texts:
            merged: dict[str, Any] = {}
            for file_name in text.sources:
                merged.update(rows.get(file_name, {}))
            version = text.version or merged.get("version")
            in_force = text.header_in_force
            if "in_force" in merged:
                if in_force is not None and merged["in_force"] != in_force and reader is not None:
                    reader.add(reader.rel, int(merged["_line"]), f"texts: {text.sources[0]}: in_force "
                                                                 f"{merged['in_force']}, but the file's header says "
                                                                 f"{in_force}", "check")
                in_force = in_force or merged["in_force"]
            if reader is not None and in_force is None:
                reader.add(f"laws/{text.sources[0]}", 1, f"no in-force date (the header has no “……施行” line): add "
                                                         f"it under texts: in {CURRENCY_FILE}", "check")
            if reader is not None and version is None:
                reader.add(f"laws/{text.sources[0]}", 1, f"no version (the file name has no date): add it under "
                                                         f"texts: in {CURRENCY_FILE}", "check")
            found.append(LawVersion(name, version, in_force, merged.get("added"), text.sources))
        out[name] = tuple(found)
    return out


# -- which entries are due -----------------------------------------------------------------
def _cited_laws(kb: KnowledgeBase, entry: Entry) -> dict[str, list[str]]:
    """Canonical law name → the basis items of ``entry`` that cite it."""
    by_key = {_name_key(n): n for n in (*kb.currency.name_only, *kb.currency.revised, *NAME_ONLY_LAWS)}
    cited: dict[str, list[str]] = {}
    for item in entry.basis:
        parsed = parse_citation(item)
        if parsed is None:
            continue
        name = kb.laws.canonical_name(parsed.name) or by_key.get(_name_key(parsed.name))
        if name is not None:
            cited.setdefault(name, []).append(item)
    return cited


def _mentions(entry: Entry, law: str) -> bool:
    text = "".join((entry.question, entry.answer, entry.details or ""))
    return law in text


def _version_at(texts: Iterable[LawVersion], day: dt.date) -> LawVersion | None:
    """The newest shipped text an entry reviewed on ``day`` could have been checked against."""
    usable = [t for t in texts if t.known_since is None or t.known_since <= day]
    return usable[-1] if usable else None


def entry_reasons(kb: KnowledgeBase, entry: Entry) -> tuple[DueReason, ...]:
    """Why ``entry`` must be checked again (empty: it is current)."""
    cur = kb.currency
    if not cur.enabled:
        return ()
    reviewed = entry.reviewed or dt.date.min
    shown = reviewed.isoformat() if entry.reviewed else "（未填）"
    reasons: dict[tuple[str, str], DueReason] = {}
    cited = _cited_laws(kb, entry)

    for law, revision in cur.revised.items():
        if law in cited or _mentions(entry, law):
            shipped = cur.current(law)
            have = f"条文库里是{shipped.version}的文本，" if shipped is not None else "条文库里没有它的文本，"
            reasons[(law, "unshipped")] = DueReason(
                law, revision.version, revision.in_force, "unshipped",
                f"本条依据或提到{book(law)}。它已修订（{revision.version}），新文本自{revision.in_force}施行，"
                f"{have}无法逐条核对。收入新文本后请对照复核。" + (f"{revision.note}" if revision.note else ""),
                tuple(cited.get(law, ())))

    for law, items in cited.items():
        texts = cur.versions.get(law, ())
        target = texts[-1] if texts else cur.name_only.get(law)
        since = target.known_since if target is not None else None
        if target is None or since is None or since <= reviewed:
            continue
        before = _version_at(texts[:-1], reviewed) if texts else None
        if before is not None:
            reasons[(law, "replaced")] = DueReason(
                law, target.version, target.in_force, "replaced",
                f"本条复核时（{shown}）依据的是{book(law)}{before.version}的文本，已被{target.version}的新文本取代"
                f"（{target.in_force}施行）。请对照新文本核对：{'、'.join(items)}。", tuple(items))
        else:
            reasons[(law, "cited")] = DueReason(law, target.version, target.in_force, "cited",
                                                _later_why(target, law, shown, "本条引用的"), tuple(items))

    for law, topic_ids in cur.touches.items():
        if entry.topic not in topic_ids or any(k[0] == law for k in reasons):
            continue
        newest = cur.current(law) or cur.name_only.get(law)
        for candidate in (cur.revised.get(law), newest):
            since = candidate.known_since if candidate is not None else None
            if candidate is not None and since is not None and since > reviewed:
                topic = kb.topic_name(entry.topic)
                reasons[(law, "topic")] = DueReason(
                    law, candidate.version, candidate.in_force, "topic",
                    _later_why(candidate, law, shown, f"涉及“{topic}”类问题的"))
                break
    return tuple(sorted(reasons.values(), key=lambda r: (KINDS.index(r.kind), r.law)))


def _later_why(version: LawVersion, law: str, shown: str, lead: str) -> str:
    ver = f"（{version.version}版）" if version.version else ""
    if version.added is not None and (version.in_force is None or version.added > version.in_force):
        return (f"{lead}{book(law)}{ver}{version.in_force}施行，{version.added}才收入条文库，晚于本条复核日期{shown}；"
                "请对照条文复核本条。")
    return f"{lead}{book(law)}{ver}自{version.in_force}施行，晚于本条复核日期{shown}；请对照新规定复核本条。"


def review_due(kb: KnowledgeBase) -> list[DueEntry]:
    """Every entry that must be checked again, in file order."""
    due = []
    for entry in kb.entries:
        reasons = entry_reasons(kb, entry)
        if reasons:
            due.append(DueEntry(entry, reasons))
    return sorted(due, key=lambda d: (d.entry.source_file, d.entry.source_line))
