"""normalise → retrieve (char + pinyin n-gram BM25) → re-score (rapidfuzz, topic gates) → decide.

``Matcher(kb)`` builds the index once and is immutable afterwards: the app builds a new
one off the event loop after a reload and swaps the reference.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rapidfuzz import fuzz
from rapidfuzz.process import extractOne

from bot.knowledge.model import Entry
from bot.matcher.bm25 import Bm25
from bot.matcher.confidence import ConfidenceModel, clause_count, clauses, shipped_model
from bot.matcher.normalize import fold, pinyin

if TYPE_CHECKING:
    from bot.knowledge.base import KnowledgeBase

Outcome = Literal["answer", "clarify", "handoff", "smalltalk"]
SMALLTALK_PRIORITY = ("help", "bye", "thanks", "greeting")
ROLE_GAP = 6  # what `*` in a wrong_role word may stand for


def diversified(candidates: tuple[Candidate, ...], *, shown: int = 3, per_topic: int = 2) -> tuple[Candidate, ...]:
    """Reorder so that the first ``shown`` candidates hold at most ``per_topic`` entries of one topic.

    A long story can make three entries of one wrong topic outscore the right one; a villager
    offered "1/2/3" is better served by choices that differ. The best candidate stays first.
    """
    first: list[Candidate] = []
    rest: list[Candidate] = []
    per: dict[str, int] = {}
    for c in candidates:
        if len(first) < shown and per.get(c.entry.topic, 0) < per_topic:
            first.append(c)
            per[c.entry.topic] = per.get(c.entry.topic, 0) + 1
        else:
            rest.append(c)
    if len(first) < shown:  # too few topics: fill up in score order
        fill = rest[: shown - len(first)]
        first += fill
        rest = rest[len(fill) :]
    return tuple(first + rest)


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    """Weights and thresholds. Ranking weights were calibrated on knowledge/eval/tune.tsv, the shared
    dev set and out-of-scope probes (``python bench/matcher.py weights``); the confidence model and
    its two thresholds come from confidence.json (``python bench/matcher.py calibrate``), fitted on
    the calibration sets only — never on a held-out set. Numbers: bench/matcher_README.md."""

    # retrieval
    k1: float = 1.2
    b: float = 0.75
    pinyin_weight: float = 0.3  # pinyin-bigram BM25 relative to character n-gram BM25
    rescore_top: int = 12  # entries re-scored with rapidfuzz
    # score = (Σ w_x·x over the Features, each 0..1, − penalties) / Σ w_x
    w_entry: float = 1.0
    w_topic: float = 0.5
    w_fuzz: float = 0.25
    w_keyword: float = 0.0
    gate_penalty: float = 0.1  # entries whose topic gate fails rank a little lower (and are never answered)
    role_penalty: float = 0.1  # entries of the other side of a mirror (wrong_role words) likewise
    # decision
    model: ConfidenceModel = field(default_factory=shipped_model)
    answer_threshold: float = field(default_factory=lambda: shipped_model().answer_threshold)  # confidence 0..1
    sure_threshold: float = field(default_factory=lambda: shipped_model().sure_threshold)  # … without alternatives
    # the offer model's probability that the right topic is among the answer and the two offered with it
    offer_threshold: float = field(default_factory=lambda: shipped_model().offer_threshold)
    clarify_threshold: float = 0.19  # ranking score below which a message is handed off
    tie_share: float = 0.1  # another topic within this share of the score: always offer it (never a plain answer)
    min_answer_chars: int = 3  # shorter messages (孩子, 工伤) are answered only on an exact phrasing or keyword

    @property
    def weight_sum(self) -> float:
        return self.w_entry + self.w_topic + self.w_fuzz + self.w_keyword


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    score: float


@dataclass(frozen=True, slots=True)
class Features:
    """Why an entry scored what it did (``lawbot ask --explain``, calibration)."""

    entry: float  # char+pinyin BM25 of the entry's question+variants+keywords, over the query's own score
    topic: float  # all entries of the topic as one document
    fuzz: float  # best rapidfuzz ratio (characters or pinyin) against a phrasing
    keyword: float  # 1 if a keyword (or a homophone of it) is in the message (weight 0 by default:
    # keywords already count in the entry document)
    gate: bool  # the topic's gate word is present (or the topic has no gate)
    exact: bool = False  # the message is one of the entry's phrasings or keywords
    role: bool = True  # no word of the other side of a mirror (synonyms.yaml wrong_role) is present
    oos: float = 0.0  # the question bank's out-of-scope document, scored like a topic (same for every entry)


@dataclass(frozen=True, slots=True)
class MatchResult:
    outcome: Outcome
    entry: Entry | None  # the answer, or the best candidate
    score: float  # 0..1
    candidates: tuple[Candidate, ...]  # best first; >= 3 whenever there are any
    urgent: bool
    smalltalk: str | None  # greeting | thanks | help | bye
    normalized: str
    urgent_kind: str | None = None  # urgent.yaml category
    reason: str = ""  # why this outcome (logs, eval)
    confidence: float = 0.0  # probability that ``entry`` answers the message (confidence model)
    alternatives: tuple[Candidate, ...] = ()  # an answer that offers "不是这个？回复 2 或 3": candidates[1:3]


def char_tokens(text: str) -> list[str]:
    return [*text, *(text[i : i + 2] for i in range(len(text) - 1))]


def pinyin_tokens(syllables: list[str]) -> list[str]:
    return [f"{syllables[i]} {syllables[i + 1]}" for i in range(len(syllables) - 1)]


@dataclass(frozen=True, slots=True)
class _Doc:
    entry: int
    text: str
    pinyin: str


@dataclass(frozen=True, slots=True)
class _Field:
    """Character n-gram BM25 + pinyin-bigram BM25 over one kind of document."""

    char: Bm25
    pin: Bm25

    @classmethod
    def build(cls, docs: Sequence[list[tuple[str, str]]], config: MatcherConfig) -> _Field:
        """``docs``: per document, its (normalised text, pinyin) pieces."""

        def chars() -> Iterator[list[str]]:
            return ([tok for text, _ in doc for tok in char_tokens(text)] for doc in docs)

        def sounds() -> Iterator[list[str]]:
            return ([tok for _, pin in doc for tok in pinyin_tokens(pin.split(" "))] for doc in docs)

        return cls(Bm25.build(chars, k1=config.k1, b=config.b), Bm25.build(sounds, k1=config.k1, b=config.b))

    def scores(self, ctoks: list[str], ptoks: list[str], pinyin_weight: float) -> dict[int, float]:
        """Normalised scores (BM25 over the query's own BM25 as a document), pinyin blended in."""
        c_self = self.char.self_score(ctoks)
        p_self = self.pin.self_score(ptoks) if ptoks else 0.0
        if not p_self:
            return {doc: s / c_self for doc, s in self.char.scores(ctoks).items()} if c_self else {}
        # (char / c_self + w · pinyin / p_self) / (1 + w), as two multipliers
        c_mul = 1.0 / (c_self * (1.0 + pinyin_weight)) if c_self else 0.0
        p_mul = pinyin_weight / (p_self * (1.0 + pinyin_weight))
        out = {doc: s * c_mul for doc, s in self.char.scores(ctoks).items()} if c_self else {}
        get = out.get
        for doc, s in self.pin.scores(ptoks).items():
            out[doc] = get(doc, 0.0) + s * p_mul
        return out


class Matcher:
    """FAQ matcher over one KnowledgeBase. Safe to share; never mutated after __init__."""

    __slots__ = (
        "_built",
        "_entries",
        "_entry",
        "_entry_pinyins",
        "_entry_texts",
        "_entry_topic",
        "_gates",
        "_keywords",
        "_not_legal",
        "_oos_doc",
        "_position",
        "_roles",
        "_smalltalk_kind",
        "_smalltalk_re",
        "_smalltalk_word_re",
        "_topic",
        "config",
        "kb",
    )

    def __init__(self, kb: KnowledgeBase, config: MatcherConfig | None = None) -> None:
        self.kb = kb
        self.config = config = config or MatcherConfig()
        norm = kb.normalizer
        self._entries: tuple[Entry, ...] = kb.entries
        docs: list[_Doc] = []
        entry_docs: list[tuple[int, ...]] = []
        keywords: list[tuple[tuple[str, str], ...]] = []
        entry_texts: list[list[tuple[str, str]]] = []
        topic_ids: dict[str, int] = {}
        entry_topic: list[int] = []
        for i, entry in enumerate(self._entries):
            first = len(docs)
            seen: set[str] = set()
            for phrasing in entry.phrasings:
                text = norm.normalize(phrasing)
                if text and text not in seen:
                    seen.add(text)
                    docs.append(_Doc(i, text, " ".join(pinyin(text))))
            entry_docs.append(tuple(range(first, len(docs))))
            kws = sorted({k for k in (norm.normalize(k) for k in entry.keywords) if len(k) >= 2})
            keywords.append(tuple((k, " ".join(pinyin(k))) for k in kws))
            entry_texts.append([(d.text, d.pinyin) for d in docs[first:]] + list(keywords[-1]))
            entry_topic.append(topic_ids.setdefault(entry.topic, len(topic_ids)))
        self._entry_texts: tuple[tuple[str, ...], ...] = tuple(
            tuple(docs[d].text for d in ids) for ids in entry_docs)
        self._entry_pinyins: tuple[tuple[str, ...], ...] = tuple(
            tuple(docs[d].pinyin for d in ids) for ids in entry_docs)
        self._entry_topic: tuple[int, ...] = tuple(entry_topic)
        self._keywords: tuple[tuple[tuple[str, str], ...], ...] = tuple(keywords)
        topic_texts: list[list[tuple[str, str]]] = [[] for _ in topic_ids]
        for i, texts in enumerate(entry_texts):
            topic_texts[entry_topic[i]].extend(texts)
        out_of_scope: list[tuple[str, str]] = []
        for topic, questions in kb.tables.topic_examples.items():
            bucket = topic_texts[topic_ids[topic]] if topic in topic_ids else out_of_scope if topic == "-" else None
            if bucket is not None:  # the question bank only adds words to a topic that has entries …
                bucket.extend((text, " ".join(pinyin(text))) for text in filter(None, map(norm.normalize, questions)))
        # … and its out-of-scope questions become one more document of the topic field, which no entry
        # belongs to: it never ranks, it only tells the confidence model how much it explains
        self._oos_doc: int | None = len(topic_texts) if out_of_scope else None
        if out_of_scope:
            topic_texts.append(out_of_scope)
        self._entry = _Field.build(entry_texts, config)
        self._topic = _Field.build(topic_texts, config)
        self._gates: dict[str, tuple[tuple[str, str], ...]] = {
            # one-character gate words match by character only: by sound they would match anything
            topic: tuple((w, f" {' '.join(pinyin(w))} " if len(w) > 1 else "\0") for w in words)
            for topic, words in kb.tables.topic_gates.items()
        }
        self._roles: dict[str, re.Pattern[str]] = {
            # 被*撞: `*` stands for up to ROLE_GAP characters of anything
            entry_id: re.compile("|".join(f".{{0,{ROLE_GAP}}}".join(map(re.escape, w.split("*"))) for w in words))
            for entry_id, words in kb.tables.wrong_role.items() if words
        }
        self._position: dict[str, int] = {e.id: i for i, e in enumerate(self._entries)}
        words = sorted(set(kb.tables.not_legal), key=lambda w: (-len(w), w))
        self._not_legal = re.compile("|".join(map(re.escape, words))) if words else None
        kinds: dict[str, str] = {}
        for kind, phrases in kb.tables.smalltalk.items():
            for phrase in phrases:
                kinds.setdefault(phrase, kind)
        for filler in kb.tables.fillers:
            kinds.setdefault(filler, "")
        self._smalltalk_kind = kinds
        alternation = "|".join(re.escape(p) for p in sorted(kinds, key=lambda p: (-len(p), p)))
        self._smalltalk_word_re = re.compile(alternation) if alternation else None
        self._smalltalk_re = re.compile(f"(?:{alternation})+") if alternation else None
        self._built = True

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_built", False):
            raise AttributeError(f"a Matcher is immutable (build a new one to change {name})")
        object.__setattr__(self, name, value)

    # -- public ------------------------------------------------------------------
    def match(self, text: str) -> MatchResult:
        """Decide what to do with ``text``. Candidates: the best entry first, then the next best
        with at most two entries of one topic among the first three (see :func:`diversified`)."""
        kb = self.kb
        synonymised = kb.normalizer.apply_synonyms(fold(text))
        urgent_kind = kb.urgent_rules.kind(synonymised)
        urgent = urgent_kind is not None
        smalltalk = None if urgent else self._smalltalk(synonymised)
        normalized = kb.normalizer.drop_fillers(synonymised)
        if smalltalk is not None:
            return MatchResult("smalltalk", None, 1.0, (), urgent, smalltalk, normalized, urgent_kind, "small talk")
        if not normalized:
            return MatchResult("handoff", None, 0.0, (), urgent, None, normalized, urgent_kind, "empty")
        ranked = self.rank(normalized, limit=8, text=text)
        if not ranked:
            return MatchResult("handoff", None, 0.0, (), urgent, None, normalized, urgent_kind, "no candidate")
        candidates = diversified(tuple(Candidate(e, s) for e, s, _ in ranked))
        top, top_score, top_features = ranked[0]
        cfg = self.config
        features = self.confidence_features(text, normalized, ranked)
        confidence = cfg.model.probability(features)
        tied = features["topic_margin"] < cfg.tie_share * top_score  # e.g. 离婚了孩子归谁、房子怎么分
        specific = len(normalized) >= cfg.min_answer_chars or top_features.exact
        blocked = ("topic gate" if not top_features.gate else "wrong role" if not top_features.role
                   else "too short" if not specific else "")
        outcome: Outcome
        alternatives: tuple[Candidate, ...] = ()
        offered = self.offered(candidates, ranked)
        if not blocked and normalized in self._entry_texts[self._position[top.id]]:
            outcome, reason = "answer", "one of its phrasings"  # the very question the entry answers
        elif not blocked and not tied and confidence >= max(cfg.sure_threshold, cfg.answer_threshold):
            outcome, reason = "answer", "confident"
        elif not blocked and (confidence >= cfg.answer_threshold or (
                offered and cfg.model.offer_probability(features) >= cfg.offer_threshold)):
            # the best answer, and the next two to pick from: the offer model is sure enough that the right
            # one is among the three ("离婚了孩子归谁、房子怎么分") even when it cannot tell which comes first
            outcome, reason, alternatives = "answer", "fairly sure", offered
        elif top_score >= cfg.clarify_threshold and self._any_gate(candidates[:3], ranked):
            outcome, reason = "clarify", blocked or "unsure"
        elif top_score >= cfg.clarify_threshold:
            # none of the three choices has a word of its topic in the message (医保, 天气, 户口 …):
            # three unrelated legal questions would only confuse; say plainly we can't answer
            outcome, reason = "handoff", "no topic word among the choices"
        else:
            outcome, reason = "handoff", "nothing close"
        return MatchResult(outcome, top, top_score, candidates, urgent, None, normalized, urgent_kind, reason,
                           confidence, alternatives)

    def confidence_features(self, text: str, normalized: str,
                            ranked: Sequence[tuple[Entry, float, Features]]) -> dict[str, float]:
        """What the confidence model weighs (bot/matcher/confidence.py), for the best of ``ranked``."""
        top, score, f = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        other = next((s for e, s, _ in ranked if e.topic != top.topic), 0.0)
        pairs = [normalized[i : i + 2] for i in range(len(normalized) - 1)] or [normalized]
        distinct = len(set(pairs))
        position = self._position[top.id]
        held, known = self._entry.char.present(position, pairs)
        topic_held, _ = self._topic.char.present(self._entry_topic[position], pairs)
        return {
            "score": score, "margin": score - second, "topic_margin": score - other,
            "entry": f.entry, "topic": f.topic, "fuzz": f.fuzz, "gate": float(f.gate),
            "explained": held / distinct, "topic_explained": topic_held / distinct,
            "unknown": 1.0 - known / distinct, "log_length": math.log(max(1, len(normalized))),
            "clauses": float(clause_count(text)),
            "not_legal": float(self._not_legal is not None and self._not_legal.search(normalized) is not None),
            "oos": f.oos,
        }

    @staticmethod
    def offered(candidates: tuple[Candidate, ...], ranked: Sequence[tuple[Entry, float, Features]],
                ) -> tuple[Candidate, ...]:
        """The two entries offered with a fairly sure answer ("不是这个？回复 2 或 3"): the next two
        candidates, unless their topic has no word in the message or a word of the other side of a mirror
        is (an unrelated choice only confuses)."""
        allowed = {e.id for e, _, f in ranked if f.gate and f.role}
        return tuple(c for c in candidates[1:3] if c.entry.id in allowed)

    @staticmethod
    def _any_gate(shown: tuple[Candidate, ...], ranked: list[tuple[Entry, float, Features]]) -> bool:
        gates = {entry.id: features.gate for entry, _score, features in ranked}
        return any(gates.get(c.entry.id, False) for c in shown)

    def role_text(self, text: str, normalized: str) -> str:
        """Where wrong-role words are looked for: the message's clauses, each normalised, one per line —
        so a word cannot span two clauses ("叫人撞了 人家逃逸了" holds no "撞了人")."""
        parts = clauses(text)
        if len(parts) < 2:
            return normalized
        return "\n".join(filter(None, map(self.kb.normalizer.normalize, parts)))

    def rank(self, normalized: str, *, limit: int = 5, text: str | None = None,
             ) -> list[tuple[Entry, float, Features]]:
        """Best entries for an already normalised query, best first (at least 3 when any).
        ``text``: the raw message, so wrong-role words are looked for clause by clause (:meth:`role_text`,
        worked out only when a candidate has such words); without it, in ``normalized``."""
        roles_in = normalized if text is None else None
        cfg = self.config
        syllables = pinyin(normalized)
        q_pinyin = " ".join(syllables)
        ctoks = char_tokens(normalized)
        ptoks = pinyin_tokens(syllables)
        wp = cfg.pinyin_weight
        entry_scores = self._entry.scores(ctoks, ptoks, wp)
        if not entry_scores:
            return []
        topic_scores = self._topic.scores(ctoks, ptoks, wp)
        oos = topic_scores.get(self._oos_doc, 0.0) if self._oos_doc is not None else 0.0
        entry_topic = self._entry_topic
        w_entry, w_topic = cfg.w_entry, cfg.w_topic
        pre = {e: w_entry * s + w_topic * topic_scores.get(entry_topic[e], 0.0) for e, s in entry_scores.items()}
        top = heapq.nlargest(max(cfg.rescore_top, 3), pre.items(), key=lambda kv: kv[1])
        raw: list[tuple[float, Entry, Features]] = []
        padded_pinyin = f" {q_pinyin} "
        gates: dict[str, bool] = {}  # a topic's gate, checked once per message
        total = cfg.weight_sum or 1.0
        for e, retrieval in top:
            entry = self._entries[e]
            by_chars = extractOne(normalized, self._entry_texts[e], scorer=fuzz.ratio)
            by_sound = extractOne(q_pinyin, self._entry_pinyins[e], scorer=fuzz.ratio)
            fz = max(by_chars[1] if by_chars else 0.0, by_sound[1] if by_sound else 0.0) / 100.0
            kw = 0.0
            for word, word_pinyin in self._keywords[e]:
                if word in normalized or f" {word_pinyin} " in padded_pinyin:
                    kw = 1.0
                    break
            gate = gates.get(entry.topic)
            if gate is None:
                gate = gates[entry.topic] = self._gate_ok(entry.topic, normalized, padded_pinyin)
            role_words = self._roles.get(entry.id)
            role = True
            if role_words is not None:
                if roles_in is None:
                    roles_in = self.role_text(text or normalized, normalized)
                role = role_words.search(roles_in) is None
            score = retrieval + cfg.w_fuzz * fz + cfg.w_keyword * kw
            if not gate:
                score -= cfg.gate_penalty
            if not role:
                score -= cfg.role_penalty
            score /= total
            exact = normalized in self._entry_texts[e] or any(normalized == w for w, _ in self._keywords[e])
            features = Features(entry_scores.get(e, 0.0), topic_scores.get(entry_topic[e], 0.0), fz, kw, gate, exact,
                                role, oos)
            raw.append((score, entry, features))
        # rank on the raw score (short messages can push several entries past 1.0), report it clipped
        raw.sort(key=lambda t: (-t[0], t[1].id))
        scored = [(entry, max(0.0, min(1.0, score)), features) for score, entry, features in raw]
        if len(scored) < 3:  # pad with other entries so a clarify list always has three
            have = {t[0].id for t in scored}
            for entry in self._entries:
                if len(scored) >= 3:
                    break
                if entry.id not in have:
                    scored.append((entry, 0.0, Features(0.0, 0.0, 0.0, 0.0, True)))
        return scored[: max(limit, 3)]

    # -- helpers -----------------------------------------------------------------
    def _gate_ok(self, topic: str, normalized: str, padded_pinyin: str) -> bool:
        words = self._gates.get(topic)
        if not words:
            return True
        return any(w in normalized or p in padded_pinyin for w, p in words)

    def _smalltalk(self, text: str) -> str | None:
        if not text or self._smalltalk_re is None or self._smalltalk_word_re is None:
            return None
        if not self._smalltalk_re.fullmatch(text):
            return None
        kinds = {self._smalltalk_kind.get(m) for m in self._smalltalk_word_re.findall(text)}
        for kind in SMALLTALK_PRIORITY:
            if kind in kinds:
                return kind
        return "greeting"  # only fillers (嗯, 请问 …)

