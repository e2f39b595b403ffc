"""Accuracy and latency of a Matcher on a labelled TSV (``topic<TAB>question[<TAB>entry ids]``).

``-`` labels an out-of-scope question, ``a|b`` means either topic is right. An optional third
column names the entries that answer the question (``id|id``); it is reported as entry-level
top-1 and precision. Used by ``lawbot kb eval`` and bench/matcher.py.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.matcher.core import Matcher, MatcherConfig, MatchResult

if TYPE_CHECKING:
    from bot.knowledge import KnowledgeBase

OUT_OF_SCOPE = "-"


@dataclass(frozen=True, slots=True)
class Labelled:
    line: int
    labels: frozenset[str]  # empty: out of scope
    question: str
    entries: frozenset[str] = frozenset()  # entry ids that answer it (optional third column)

    @property
    def in_scope(self) -> bool:
        return bool(self.labels)


def parse_tsv(text: str, *, source: str = "-") -> list[Labelled]:
    items: list[Labelled] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label, sep, rest = line.partition("\t")
        question, _, entry_ids = rest.partition("\t")
        if not sep or not question.strip():
            raise ValueError(f"{source}:{number}: expected topic<TAB>question")
        label = label.strip()
        labels = frozenset() if label == OUT_OF_SCOPE else frozenset(p.strip() for p in label.split("|") if p.strip())
        entries = frozenset(p.strip() for p in entry_ids.split("|") if p.strip())
        items.append(Labelled(number, labels, question.strip(), entries))
    return items


def read_tsv(path: Path) -> list[Labelled]:
    return parse_tsv(path.read_text(encoding="utf-8"), source=str(path))


@dataclass(frozen=True, slots=True)
class Row:
    item: Labelled
    outcome: str
    topics: tuple[str, ...]  # candidates' topics, best first
    entry_id: str | None
    score: float
    ms: float
    entry_ids: tuple[str, ...] = ()  # candidates' entries, best first
    alternatives: tuple[str, ...] = ()  # entries offered with an answer ("不是这个？回复 2 或 3")
    confidence: float = 0.0

    @property
    def top1(self) -> bool:
        return bool(self.topics) and self.topics[0] in self.item.labels

    @property
    def top3(self) -> bool:
        return any(t in self.item.labels for t in self.topics[:3])

    @property
    def answered(self) -> bool:
        return self.outcome == "answer"

    @property
    def correct_answer(self) -> bool:
        return self.answered and self.top1

    @property
    def entry_top1(self) -> bool:
        return bool(self.entry_ids) and self.entry_ids[0] in self.item.entries

    @property
    def rescued(self) -> bool:
        """A wrong answer whose right topic is one of the alternatives offered with it (one more tap)."""
        if not self.answered or self.top1:
            return False
        topic_of = dict(zip(self.entry_ids, self.topics, strict=False))
        return any(topic_of.get(a) in self.item.labels for a in self.alternatives)


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class Report:
    rows: tuple[Row, ...]

    @property
    def in_scope(self) -> list[Row]:
        return [r for r in self.rows if r.item.in_scope]

    @property
    def out_of_scope(self) -> list[Row]:
        return [r for r in self.rows if not r.item.in_scope]

    def metrics(self) -> dict[str, Any]:
        ins, outs = self.in_scope, self.out_of_scope
        answered = [r for r in self.rows if r.answered]
        latencies = [r.ms for r in self.rows]
        with_entries = [r for r in ins if r.item.entries]
        answered_entries = [r for r in with_entries if r.answered]
        return {
            "questions": len(self.rows),
            "in_scope": len(ins),
            "out_of_scope": len(outs),
            "top1": _pct(sum(r.top1 for r in ins), len(ins)),
            "top3": _pct(sum(r.top3 for r in ins), len(ins)),
            "answer_precision": _pct(sum(r.correct_answer for r in answered), len(answered)),
            "coverage": _pct(sum(r.answered for r in ins), len(ins)),
            "answered_wrong": sum(r.answered and not r.correct_answer for r in self.rows),
            "oos_refused": _pct(sum(r.outcome in ("handoff", "smalltalk") for r in outs), len(outs)),
            "oos_answered": _pct(sum(r.answered for r in outs), len(outs)),
            "with_alternatives": _pct(sum(bool(r.alternatives) for r in answered), len(answered)),
            "wrong_rescued": sum(r.rescued for r in answered),
            "entry_labelled": len(with_entries),
            "entry_top1": _pct(sum(r.entry_top1 for r in with_entries), len(with_entries)),
            "entry_precision": _pct(sum(r.entry_top1 for r in answered_entries), len(answered_entries)),
            "outcomes": dict(Counter(r.outcome for r in self.rows)),
            "latency_ms_p50": _percentile(latencies, 0.50),
            "latency_ms_p99": _percentile(latencies, 0.99),
        }

    def confusion(self) -> Counter[tuple[str, str]]:
        """(expected, got) for in-scope top-1 misses and for out-of-scope questions answered."""
        pairs: Counter[tuple[str, str]] = Counter()
        for r in self.rows:
            got = r.topics[0] if r.topics and r.outcome != "smalltalk" else "(none)"
            if r.item.in_scope and not r.top1:
                pairs[(sorted(r.item.labels)[0], got)] += 1
            elif not r.item.in_scope and r.answered:
                pairs[(OUT_OF_SCOPE, got)] += 1
        return pairs

    def per_topic(self) -> dict[str, tuple[int, int, int]]:
        """topic → (questions, top-1 right, answered confidently)."""
        table: dict[str, list[int]] = {}
        for r in self.in_scope:
            t = sorted(r.item.labels)[0]
            row = table.setdefault(t, [0, 0, 0])
            row[0] += 1
            row[1] += r.top1
            row[2] += r.answered
        return {t: (v[0], v[1], v[2]) for t, v in sorted(table.items())}

    def summary_lines(self) -> list[str]:
        """Three compact lines (the last lines `kb eval` prints; hooks `tail -n 3` them)."""
        m = self.metrics()
        entries = (f"  entry top-1 {m['entry_top1']:.1f}%  entry precision {m['entry_precision']:.1f}%"
                   if m["entry_labelled"] else "")
        return [
            f"in-scope {m['in_scope']}: top-1 {m['top1']:.1f}%  top-3 {m['top3']:.1f}%  "
            f"answered {m['coverage']:.1f}%  precision {m['answer_precision']:.1f}%{entries}",
            f"out-of-scope {m['out_of_scope']}: refused {m['oos_refused']:.1f}%  "
            f"answered confidently {m['oos_answered']:.1f}%",
            f"latency p50 {m['latency_ms_p50']:.2f} ms  p99 {m['latency_ms_p99']:.2f} ms  "
            f"({m['questions']} questions)",
        ]


def result_row(item: Labelled, result: MatchResult, ms: float) -> Row:
    return Row(item, result.outcome, tuple(c.entry.topic for c in result.candidates),
               result.entry.id if result.entry else None, result.score, ms,
               tuple(c.entry.id for c in result.candidates), tuple(c.entry.id for c in result.alternatives),
               result.confidence)


def evaluate(matcher: Matcher, items: Iterable[Labelled]) -> Report:
    return evaluate_with(matcher.match, items)


BANK_FOLDS = 5


def bank_fold(kb: KnowledgeBase, question: str) -> int:
    """The fold of a question of the question bank (by its normalised text, so a copy in another set
    falls in the same fold)."""
    return zlib.crc32(kb.normalizer.normalize(question).encode()) % BANK_FOLDS


def in_bank(kb: KnowledgeBase, item: Labelled) -> bool:
    if len(item.labels) > 1:
        return False
    key = next(iter(item.labels)) if item.labels else OUT_OF_SCOPE
    return item.question in kb.tables.topic_examples.get(key, ())


def unseen_matchers(kb: KnowledgeBase, items: Sequence[Labelled],
                    config: MatcherConfig | None = None) -> list[Matcher]:
    """For every item, a matcher that has not indexed it: a question of the question bank
    (knowledge/question_bank.yaml) is matched by an index whose bank leaves its fold out; any other
    question by the whole knowledge. Without this a banked set would only measure memory."""
    whole = Matcher(kb, config)
    folds = [bank_fold(kb, item.question) if in_bank(kb, item) else -1 for item in items]
    without: dict[int, Matcher] = {}
    for fold in sorted(set(folds) - {-1}):
        bank = {topic: tuple(q for q in questions if bank_fold(kb, q) != fold)
                for topic, questions in kb.tables.topic_examples.items()}
        without[fold] = Matcher(kb.with_examples(bank), config)
    return [without.get(fold, whole) for fold in folds]


def evaluate_unseen(kb: KnowledgeBase, items: Sequence[Labelled], config: MatcherConfig | None = None) -> Report:
    """Like :func:`evaluate`, but every question of the question bank is matched with its fold left out."""
    return evaluate_each(unseen_matchers(kb, items, config), items)


def evaluate_each(matchers: Sequence[Matcher], items: Sequence[Labelled]) -> Report:
    """Every item matched by its own matcher (:func:`unseen_matchers`)."""
    rows = []
    clock = time.perf_counter
    for item, matcher in zip(items, matchers, strict=True):
        start = clock()
        result = matcher.match(item.question)
        rows.append(result_row(item, result, (clock() - start) * 1000.0))
    return Report(tuple(rows))


def evaluate_with(match: Callable[[str], MatchResult], items: Iterable[Labelled]) -> Report:
    rows = []
    clock = time.perf_counter
    for item in items:
        start = clock()
        result = match(item.question)
        rows.append(result_row(item, result, (clock() - start) * 1000.0))
    return Report(tuple(rows))


@dataclass(frozen=True, slots=True)
class EntryReach:
    """How often an entry is the confident answer to its own phrasings and to fresh ones."""

    entry_id: str
    topic: str
    question: bool  # its canonical question is answered with it
    phrasings: int  # question + variants (all indexed)
    answered: int  # … answered (answer or answer with alternatives) with this entry first
    fresh: int = 0  # unseen phrasings naming this entry (a calibration TSV's third column)
    fresh_answered: int = 0
    fresh_first: int = 0  # … answered with it, or offered with it as choice 1 (one tap away)
    misses: tuple[tuple[str, str, str], ...] = ()  # (phrasing, outcome, entry answered or offered first)

    @property
    def share(self) -> float:
        return self.answered / self.phrasings if self.phrasings else 0.0


def reach(matcher: Matcher, fresh: Iterable[Labelled] = ()) -> list[EntryReach]:
    """For every entry of the matcher's knowledge: its phrasings and the ``fresh`` questions naming it
    that get a confident answer with that entry (an answer whose first entry is it)."""

    def answered_with(question: str, ids: frozenset[str]) -> tuple[bool, str, str]:
        r = matcher.match(question)
        top = r.entry.id if r.entry else "-"
        return r.outcome == "answer" and top in ids, r.outcome, top

    fresh_counts: dict[str, list[int]] = {}
    fresh_misses: dict[str, list[tuple[str, str, str]]] = {}
    for item in fresh:
        ok, outcome, top = answered_with(item.question, item.entries)
        for entry_id in item.entries:
            counts = fresh_counts.setdefault(entry_id, [0, 0, 0])
            counts[0] += 1
            counts[1] += ok
            counts[2] += outcome in ("answer", "clarify") and top in item.entries
            if not ok:
                fresh_misses.setdefault(entry_id, []).append((item.question, outcome, top))
    out = []
    for entry in matcher.kb.entries:
        own = frozenset({entry.id})
        results = [(p, *answered_with(p, own)) for p in entry.phrasings]
        n_fresh, n_fresh_ok, n_fresh_first = fresh_counts.get(entry.id, (0, 0, 0))
        misses = tuple((p, outcome, top) for p, ok, outcome, top in results if not ok)
        out.append(EntryReach(entry.id, entry.topic, results[0][1], len(results), sum(ok for _, ok, _, _ in results),
                              n_fresh, n_fresh_ok, n_fresh_first, misses + tuple(fresh_misses.get(entry.id, ()))))
    return out
