"""Read and validate ``knowledge/`` → :class:`KnowledgeBase`.

Two levels of rules (knowledge/README.md):

* ``error`` — the directory cannot be used: YAML syntax, wrong types, missing fields,
  unknown keys, bad or duplicate ids, unknown topics, unknown placeholders, broken
  word tables, no entries at all. :func:`load_knowledge` raises :class:`KnowledgeError`
  (the running app keeps its old index).
* ``check`` — content rules that ``lawbot kb check`` enforces before a release: ≥ 5
  variants, ≥ 3 entries per topic, answers ≤ 300 characters after filling, citations
  that resolve in ``laws/``, ``reviewed`` dates, who-to-go-to in ``next_step``, no
  phrasing shared by two entries, a version and in-force date for every statute text
  (``law_currency.yaml``, read by bot/knowledge/currency.py).

Entries due for review (bot/knowledge/currency.py) are warnings, not problems.

Line numbers come from ``yaml.compose`` node marks.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bot.knowledge.base import DISCLAIMER, PLACEHOLDER_RE, PLACEHOLDERS, KnowledgeBase
from bot.knowledge.currency import CURRENCY_FILE, DueEntry, load_currency, review_due
from bot.knowledge.laws import NAME_ONLY_LAWS, LawIndex, iter_citation_problems
from bot.knowledge.model import Entry, KnowledgeError, Level, Problem, Topic
from bot.knowledge.tables import SMALLTALK_KINDS, MatcherTables, UrgentRule, UrgentRules
from bot.matcher.normalize import Normalizer, fold

ENTRY_KEYS = ("id", "topic", "question", "variants", "keywords", "answer", "details", "basis", "next_step",
              "urgent", "reviewed")
ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MIN_VARIANTS = 5
MIN_ENTRIES_PER_TOPIC = 3
MAX_ANSWER_CHARS = 300
#: next_step must name somewhere to go; any of these counts.
CONTACT_WORDS = (
    "调委会", "调解委员会", "调解中心", "司法所", "{office_name}", "{office_phone}", "{mediation_center_phone}",
    "12348", "法院", "劳动监察", "12333", "96110", "110", "120", "12315", "民政", "派出所", "公安", "仲裁", "信访",
    "妇联", "人社", "乡政府", "村委会", "律师", "法律援助", "农业农村", "市场监管", "自然资源", "交警", "12345",
    "12338", "12356",
)


@dataclass
class _Collector:
    root: Path
    problems: list[Problem] = field(default_factory=list)

    def add(self, rel: str, line: int, message: str, level: Level = "error") -> None:
        self.problems.append(Problem(str(self.root / rel), line, message, level))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _read_yaml(col: _Collector, rel: str, *, required: bool = True) -> tuple[Any, yaml.Node | None]:
    path = col.root / rel
    if not path.exists():
        if required:
            col.add(rel, 1, "file is missing")
        return None, None
    try:
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        col.add(rel, 1, f"not UTF-8: {exc}")
        return None, None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        col.add(rel, mark.line + 1 if mark else 1, f"YAML syntax: {exc.problem or exc}")
        return None, None
    except yaml.YAMLError as exc:
        col.add(rel, 1, f"YAML: {exc}")
        return None, None
    if node is not None:
        _check_duplicate_keys(col, rel, node)
    return data, node


def _check_duplicate_keys(col: _Collector, rel: str, node: yaml.Node) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        col.add(rel, _line(key), f"duplicate key {key.value!r}")
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def _value_nodes(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _word_list(value: Any) -> list[str] | None:
    """Like _str_list, but bare numbers (12315, 96110) are words too."""
    if isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    return None


# -- topics / site ---------------------------------------------------------------
def _load_topics(col: _Collector) -> tuple[dict[str, Topic], dict[str, int]]:
    data, node = _read_yaml(col, "topics.yaml")
    topics: dict[str, Topic] = {}
    lines: dict[str, int] = {}
    if data is None and node is None:
        return topics, lines
    raw = data.get("topics") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        col.add("topics.yaml", _line(node), "expected a mapping with a `topics:` list")
        return topics, lines
    for item, item_node in zip(raw, _items(_value_nodes(node).get("topics")), strict=False):
        line = _line(item_node)
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("name"), str):
            col.add("topics.yaml", line, "a topic needs `id` and `name`")
            continue
        if item["id"] in topics:
            col.add("topics.yaml", line, f"duplicate topic id {item['id']!r}")
            continue
        topics[item["id"]] = Topic(item["id"], item["name"], str(item.get("scope") or ""))
        lines[item["id"]] = line
    return topics, lines


def _load_site(col: _Collector) -> dict[str, Any]:
    data, node = _read_yaml(col, "site.yaml")
    if data is None:
        return {}
    if not isinstance(data, dict):
        col.add("site.yaml", _line(node), "expected a mapping of placeholder: value")
        return {}
    return {str(k): v for k, v in data.items()}


# -- word tables ------------------------------------------------------------------
def _load_tables(col: _Collector, topics: dict[str, Topic]) -> MatcherTables:
    rel = "synonyms.yaml"
    data, node = _read_yaml(col, rel, required=False)
    if data is None:
        return MatcherTables()
    if not isinstance(data, dict):
        col.add(rel, _line(node), "expected a mapping with synonyms/fillers/smalltalk/topic_gates/wrong_role/not_legal")
        return MatcherTables()
    nodes = _value_nodes(node)
    for key in data:
        if key not in ("synonyms", "fillers", "smalltalk", "topic_gates", "wrong_role", "not_legal"):
            col.add(rel, _line(nodes.get(str(key))), f"unknown section {key!r}")

    synonyms: dict[str, str] = {}
    syn_nodes = _value_nodes(nodes.get("synonyms"))
    raw_syn = data.get("synonyms") or {}
    if not isinstance(raw_syn, dict):
        col.add(rel, _line(nodes.get("synonyms")), "`synonyms` must map a standard word to a list of variants")
        raw_syn = {}
    for standard, variants in raw_syn.items():
        line = _line(syn_nodes.get(str(standard)))
        variant_list = _str_list(variants)
        if not isinstance(standard, str) or variant_list is None:
            col.add(rel, line, f"synonyms: {standard!r} must map to a list of words")
            continue
        for variant in variant_list:
            key = fold(variant)
            if not key or key == fold(standard):
                col.add(rel, line, f"synonyms: useless variant {variant!r}")
            elif key in synonyms and synonyms[key] != fold(standard):
                col.add(rel, line, f"synonyms: {variant!r} is already a variant of {synonyms[key]!r}")
            else:
                synonyms[key] = fold(standard)
    base = Normalizer(synonyms)

    def words(section: str, value: Any, line: int) -> tuple[str, ...]:
        items = _word_list(value)
        if items is None:
            col.add(rel, line, f"{section}: expected a list of words")
            return ()
        return tuple(w for w in (base.apply_synonyms(fold(i)) for i in items) if w)

    fillers = words("fillers", data.get("fillers") or [], _line(nodes.get("fillers")))
    not_legal = words("not_legal", data.get("not_legal") or [], _line(nodes.get("not_legal")))

    def section(name: str, what: str) -> list[tuple[Any, Any, int]]:
        """(key, value, line) of a mapping section, or a problem if it is not a mapping."""
        raw = data.get(name) or {}
        if not isinstance(raw, dict):
            col.add(rel, _line(nodes.get(name)), f"`{name}` must map {what}")
            return []
        value_nodes = _value_nodes(nodes.get(name))
        return [(key, value, _line(value_nodes.get(str(key)))) for key, value in raw.items()]

    smalltalk: dict[str, tuple[str, ...]] = {}
    for kind, phrases, line in section("smalltalk", "a kind to a list of phrases"):
        if kind not in SMALLTALK_KINDS:
            col.add(rel, line, f"smalltalk: unknown kind {kind!r} (one of {', '.join(SMALLTALK_KINDS)})")
            continue
        smalltalk[kind] = words(f"smalltalk.{kind}", phrases, line)

    gates: dict[str, tuple[str, ...]] = {}
    for topic, gate_words, line in section("topic_gates", "a topic id to a list of words"):
        if topics and topic not in topics:
            col.add(rel, line, f"topic_gates: unknown topic {topic!r}")
            continue
        gates[str(topic)] = words(f"topic_gates.{topic}", gate_words, line)

    roles: dict[str, tuple[str, ...]] = {}
    for entry_id, role_words, line in section("wrong_role", "an entry id to a list of words"):
        items = _word_list(role_words)
        if items is None:
            col.add(rel, line, f"wrong_role.{entry_id}: expected a list of words")
            continue
        patterns = []
        for item in items:  # 被*撞: the parts are normalised one by one, `*` stays between them
            parts = [base.apply_synonyms(fold(part)) for part in item.split("*")]
            if not all(parts):
                col.add(rel, line, f"wrong_role.{entry_id}: {item!r} has an empty part around `*`")
                continue
            patterns.append("*".join(parts))
        roles[str(entry_id)] = tuple(patterns)
    return MatcherTables(synonyms, fillers, smalltalk, gates, roles, not_legal)


def _load_urgent(col: _Collector, normalizer: Normalizer) -> UrgentRules:
    rel = "urgent.yaml"
    data, node = _read_yaml(col, rel, required=False)
    if data is None:
        return UrgentRules()
    if not isinstance(data, dict):
        col.add(rel, _line(node), "expected a mapping of category: {any: [...], all: [...]}")
        return UrgentRules()
    nodes = _value_nodes(node)
    rules: dict[str, tuple[UrgentRule, ...]] = {}
    for category, body in data.items():
        line = _line(nodes.get(str(category)))
        if not isinstance(body, dict) or set(body) - {"any", "all"}:
            col.add(rel, line, f"{category}: expected `any:` and/or `all:` lists")
            continue
        found: list[UrgentRule] = []
        for word in _word_list(body.get("any") or []) or []:
            w = normalizer.apply_synonyms(fold(word))
            if w:
                found.append(UrgentRule(((w,),)))
        if _word_list(body.get("any") or []) is None:
            col.add(rel, line, f"{category}.any: expected a list of words")
        combos = _str_list(body.get("all") or [])
        if combos is None:
            col.add(rel, line, f"{category}.all: expected a list of 'a|b + c|d' strings")
            combos = []
        for combo in combos:
            groups = tuple(
                tuple(w for w in (normalizer.apply_synonyms(fold(alt)) for alt in part.split("|")) if w)
                for part in combo.split("+")
            )
            if len(groups) < 2 or not all(groups):
                col.add(rel, line, f"{category}.all: {combo!r} needs two or more non-empty groups joined by +")
                continue
            found.append(UrgentRule(groups))
        rules[str(category)] = tuple(found)
    return UrgentRules(rules)


# -- FAQ entries ------------------------------------------------------------------
def _text_problems(text: str, site: dict[str, Any]) -> Iterator[str]:
    for name in PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            yield f"unknown placeholder {{{name}}} (allowed: {', '.join(sorted(PLACEHOLDERS))})"
        elif site and name not in site:
            yield f"placeholder {{{name}}} has no value in site.yaml"
    if "{" in PLACEHOLDER_RE.sub("", text) or "}" in PLACEHOLDER_RE.sub("", text):
        yield "stray brace: only {placeholder} is allowed"


def _load_entry(col: _Collector, rel: str, item: Any, node: yaml.Node, topics: dict[str, Topic],
                site: dict[str, Any]) -> Entry | None:
    line = _line(node)
    if not isinstance(item, dict):
        col.add(rel, line, "an entry must be a mapping (id, topic, question, …)")
        return None
    fields = _value_nodes(node)
    ok = True

    def bad(key: str, message: str, level: Level = "error") -> None:
        nonlocal ok
        if level == "check" and isinstance(item.get("id"), str):
            message = f"{item['id']}: {message}"
        col.add(rel, _line(fields.get(key, node)), message, level)
        ok = ok and level != "error"

    for key in item:
        if key not in ENTRY_KEYS:
            bad(str(key), f"unknown key {key!r} (allowed: {', '.join(ENTRY_KEYS)})")
    for key in ("id", "topic", "question", "answer", "next_step"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            bad(key, f"`{key}` is required and must be text")
    if isinstance(item.get("id"), str) and not ID_RE.match(item["id"]):
        bad("id", f"id {item['id']!r} must match [a-z0-9-]+ (lower case words joined by -)")
    if isinstance(item.get("topic"), str) and topics and item["topic"] not in topics:
        bad("topic", f"unknown topic {item['topic']!r} (see topics.yaml)")
    lists: dict[str, list[str]] = {}
    for key in ("variants", "keywords", "basis"):
        value = item.get(key)
        if value is None:
            lists[key] = []
            if key != "keywords":
                bad(key if key in fields else "id", f"`{key}` is missing", "check")
            continue
        strings = _str_list(value) if key == "basis" else _word_list(value)  # 12348 may be a keyword
        if strings is None:
            bad(key, f"`{key}` must be a list of texts")
            lists[key] = []
        else:
            lists[key] = [s.strip() for s in strings]
    details = item.get("details")
    if details is not None and not isinstance(details, str):
        bad("details", "`details` must be text")
    urgent = item.get("urgent", False)
    if not isinstance(urgent, bool):
        bad("urgent", "`urgent` must be true or false")
    reviewed = item.get("reviewed")
    if reviewed is None:
        bad("id", "`reviewed` date is missing", "check")
    elif not isinstance(reviewed, dt.date) or isinstance(reviewed, dt.datetime):
        bad("reviewed", "`reviewed` must be a date YYYY-MM-DD", "check")
        reviewed = None
    elif reviewed > dt.date.today() + dt.timedelta(days=1):
        bad("reviewed", f"`reviewed` {reviewed} is in the future", "check")
    for key in ("question", "answer", "details", "next_step"):
        if isinstance(item.get(key), str):
            for message in _text_problems(item[key], site):
                bad(key, f"{key}: {message}")
    for key in ("variants", "keywords"):
        for text in lists[key]:
            for message in _text_problems(text, site):
                bad(key, f"{key}: {message}")
    if not ok:
        return None
    return Entry(
        id=item["id"],
        topic=item["topic"],
        question=item["question"].strip(),
        variants=tuple(v for v in lists["variants"] if v),
        keywords=tuple(k for k in lists["keywords"] if k),
        answer=item["answer"].strip(),
        details=details.strip() if isinstance(details, str) and details.strip() else None,
        basis=tuple(lists["basis"]),
        next_step=item["next_step"].strip(),
        urgent=bool(urgent),
        reviewed=reviewed if isinstance(reviewed, dt.date) else None,
        source_file=rel,
        source_line=line,
    )


def _load_entries(col: _Collector, topics: dict[str, Topic], site: dict[str, Any]) -> list[Entry]:
    faq_dir = col.root / "faq"
    files = sorted(faq_dir.glob("*.yaml")) + sorted(faq_dir.glob("*.yml")) if faq_dir.is_dir() else []
    entries: list[Entry] = []
    first_seen: dict[str, str] = {}
    for path in files:
        rel = path.relative_to(col.root).as_posix()
        data, node = _read_yaml(col, rel)
        if data is None:
            if node is None and not any(p.file == str(path) for p in col.problems):
                col.add(rel, 1, "empty file (expected a list of entries)", "check")
            continue
        if not isinstance(data, list):
            col.add(rel, _line(node), "expected a YAML list of entries (- id: …)")
            continue
        for item, item_node in zip(data, _items(node), strict=True):
            entry = _load_entry(col, rel, item, item_node, topics, site)
            if entry is None:
                continue
            where = f"{rel}:{entry.source_line}"
            if entry.id in first_seen:
                col.add(rel, entry.source_line, f"duplicate id {entry.id!r} (first at {first_seen[entry.id]})")
                continue
            first_seen[entry.id] = where
            entries.append(entry)
    if not entries and not col.errors:
        col.add("faq", 1, "no FAQ entries found in faq/*.yaml")
    return entries


# -- content checks (kb check) ----------------------------------------------------
def _content_checks(col: _Collector, kb: KnowledgeBase, topic_lines: dict[str, int]) -> None:
    norm = kb.normalizer
    name_only = {*NAME_ONLY_LAWS, *kb.currency.name_only}
    owner: dict[str, Entry] = {}
    for e in kb.entries:
        rel, line = e.source_file, e.source_line
        if len(e.variants) < MIN_VARIANTS:
            col.add(rel, line, f"{e.id}: {len(e.variants)} variants, at least {MIN_VARIANTS} needed", "check")
        length = len(kb.fill(e.answer))
        if length > MAX_ANSWER_CHARS:
            col.add(rel, line, f"{e.id}: answer is {length} characters after filling (max {MAX_ANSWER_CHARS})",
                    "check")
        if "不构成律师意见" in e.answer or DISCLAIMER in e.answer or "下一步" in e.answer:
            col.add(rel, line, f"{e.id}: answer must not contain the disclaimer or the next step (the bot adds them)",
                    "check")
        if not any(word in e.next_step for word in CONTACT_WORDS):
            col.add(rel, line, f"{e.id}: next_step does not say who to go to "
                               "(村调委会, {office_name}, 12348, 法院 …)", "check")
        for citation, problem in iter_citation_problems(kb.laws, e.basis, name_only):
            col.add(rel, line, f"{e.id}: basis {citation!r}: {problem}", "check")
        seen_here: set[str] = set()
        for phrasing in e.phrasings:
            key = norm.normalize(phrasing)
            if not key:
                col.add(rel, line, f"{e.id}: phrasing {phrasing!r} is empty after normalisation", "check")
                continue
            if key in seen_here:
                col.add(rel, line, f"{e.id}: phrasing {phrasing!r} repeats another one of this entry", "check")
                continue
            seen_here.add(key)
            other = owner.get(key)
            if other is not None and other.id != e.id:
                col.add(rel, line, f"{e.id}: phrasing {phrasing!r} is also in {other.id} "
                                   f"({other.source_file}:{other.source_line})", "check")
            else:
                owner[key] = e
    for entry_id in kb.tables.wrong_role:
        if entry_id not in kb.by_id:
            col.add("synonyms.yaml", 1, f"wrong_role: unknown entry {entry_id!r}", "check")
    counts = Counter(e.topic for e in kb.entries)
    for topic in kb.topics:
        if counts[topic] < MIN_ENTRIES_PER_TOPIC:
            col.add("topics.yaml", topic_lines.get(topic, 1),
                    f"topic {topic} has {counts[topic]} entries, at least {MIN_ENTRIES_PER_TOPIC} needed", "check")


# -- public ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckReport:
    kb: KnowledgeBase | None
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]
    due: tuple[DueEntry, ...] = ()  # entries to check again against the law (`lawbot kb review-due`)

    @property
    def ok(self) -> bool:
        return not self.problems


BANK_FILE = "question_bank.yaml"
OUT_OF_SCOPE = "-"  # the bank's key for out-of-scope questions (one document the confidence model weighs)
#: evaluation sets that must never be indexed: they measure what the matcher does with questions it has not seen
HELD_OUT_SETS = ("eval/holdout.tsv", "eval/narrative_holdout.tsv", "eval/scope_check.tsv")


def _load_question_bank(col: _Collector, topics: dict[str, Topic]) -> dict[str, tuple[str, ...]]:
    """``question_bank.yaml``: ``sets:`` lists labelled TSV files (``topic<TAB>question[<TAB>entries]``) under
    knowledge/ whose single-topic questions become topic-level evidence for the matcher, and whose out-of-scope
    ones (``-``) one document of what the bot does not answer."""
    data, node = _read_yaml(col, BANK_FILE, required=False)
    if data is None:
        return {}
    nodes = _value_nodes(node)
    if not isinstance(data, dict) or set(data) - {"sets"}:
        col.add(BANK_FILE, _line(node), "expected a mapping with one key, `sets`: a list of TSV files")
        return {}
    files = _str_list(data.get("sets") or [])
    if files is None:
        col.add(BANK_FILE, _line(nodes.get("sets")), "`sets` must be a list of TSV file paths")
        return {}
    bank: dict[str, list[str]] = {}
    for rel in files:
        line = _line(nodes.get("sets"))
        clean = PurePosixPath(posixpath.normpath(rel)).as_posix()
        if clean in HELD_OUT_SETS:
            col.add(BANK_FILE, line, f"{rel} is a held-out set: indexing it would make its numbers meaningless")
            continue
        path = col.root / clean
        if clean.startswith(("/", "../")) or clean == ".." or not path.is_file():
            # a missing set only weakens matching: `kb check` fails, the bot still loads
            col.add(BANK_FILE, line, f"{rel}: no such file under the knowledge directory", "check")
            continue
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            label, sep, rest = raw.partition("\t")
            question = rest.partition("\t")[0].strip()
            label = label.strip()
            if not sep or not question:
                col.add(rel, number, "expected topic<TAB>question")
            elif "|" in label:
                continue  # either of two topics: no evidence for one topic
            elif label != OUT_OF_SCOPE and label not in topics:
                col.add(rel, number, f"unknown topic {label!r}")
            else:
                bank.setdefault(label, []).append(question)
    return {topic: tuple(questions) for topic, questions in bank.items()}


def _build(directory: Path, *, content: bool) -> tuple[KnowledgeBase | None, _Collector, list[str]]:
    col = _Collector(directory)
    warnings: list[str] = []
    if not directory.is_dir():
        col.add(".", 1, "knowledge directory does not exist")
        return None, col, warnings
    topics, topic_lines = _load_topics(col)
    site = _load_site(col)
    tables = _load_tables(col, topics)
    tables = replace(tables, topic_examples=_load_question_bank(col, topics))
    urgent = _load_urgent(col, Normalizer(tables.synonyms))
    entries = _load_entries(col, topics, site)
    laws = LawIndex.load(directory / "laws")
    currency = load_currency(directory, laws, topics, col.add)
    if col.errors:
        return None, col, warnings
    kb = KnowledgeBase(directory, topics, tuple(entries), site, laws, tables, urgent, currency)
    if content:
        _content_checks(col, kb, topic_lines)
        if site.get("example") is True:
            warnings.append(f"{directory / 'site.yaml'}: holds EXAMPLE values (example: true) — fill in the real ones "
                            "before going live")
        if not currency.enabled:
            warnings.append(f"{directory / CURRENCY_FILE}: missing — in-force dates and entries due for review are "
                            "not checked")
    return kb, col, warnings


def load_knowledge(directory: Path | str) -> KnowledgeBase:
    """Load ``directory``; raise :class:`KnowledgeError` on any ``error``-level problem."""
    kb, col, _ = _build(Path(directory), content=False)
    if kb is None:
        raise KnowledgeError([str(p) for p in col.errors])
    return kb


def check_knowledge(directory: Path | str) -> CheckReport:
    """Every rule, for ``lawbot kb check``; entries due for review come as ``due`` (and one summary warning)."""
    kb, col, warnings = _build(Path(directory), content=True)
    due = tuple(review_due(kb)) if kb is not None else ()
    if due:
        warnings.append(f"{len(due)} 条问答需要对照法律复核（lawbot kb review-due，或后台 知识库 → 需要复核的问答）")
    return CheckReport(kb, tuple(col.problems), tuple(warnings), due)


# -- single entries, for the township's own layer (bot/services/knowledge) ----------
def parse_entry(item: dict[str, Any], topics: dict[str, Topic], site: dict[str, Any], *,
                source: str = "township") -> tuple[Entry | None, list[Problem]]:
    """Read one entry given as a mapping by exactly the rules of a ``faq/*.yaml`` item.

    Returns the entry (None when an ``error`` problem stops it) and every problem found.
    """
    node = yaml.compose(yaml.safe_dump([item], allow_unicode=True, sort_keys=False), Loader=yaml.SafeLoader)
    col = _Collector(Path("."))
    entry = _load_entry(col, source, item, _items(node)[0], topics, site)
    return entry, col.problems


def load_entry_file(directory: Path, rel: str, topics: dict[str, Topic],
                    site: dict[str, Any]) -> tuple[list[Entry], list[Problem]]:
    """The entries of one FAQ file (``lawbot kb import``); problems carry ``file:line``."""
    col = _Collector(directory)
    data, node = _read_yaml(col, rel, required=False)
    entries: list[Entry] = []
    if data is None:
        return entries, col.problems
    if not isinstance(data, list):
        col.add(rel, _line(node), "expected a YAML list of entries (- id: …)")
        return entries, col.problems
    for item, item_node in zip(data, _items(node), strict=True):
        entry = _load_entry(col, rel, item, item_node, topics, site)
        if entry is not None:
            entries.append(entry)
    return entries, col.problems


def content_problems(kb: KnowledgeBase) -> list[Problem]:
    """The content rules of ``lawbot kb check`` (variants, length, citations, next step, shared phrasings)."""
    col = _Collector(kb.root)
    _content_checks(col, kb, {})
    return col.problems
