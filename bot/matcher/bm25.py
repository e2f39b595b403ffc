"""A compact Okapi BM25 index for short documents (FAQ phrasings, entries, topics).

All postings live in two flat ``array``s (document ids, precomputed term weights), found
through one ``token → slot`` dict, so 10,000 entries cost tens of megabytes, not hundreds.
A query's rarer tokens are walked through their postings to find candidates; tokens that
occur in a large share of documents (怎么, 什么 …) only add their weight to documents
already found (binary search in the posting), so a common word never makes a query walk
half the index.
"""

from __future__ import annotations

import heapq
import math
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bm25:
    vocab: dict[str, int]  # token → slot
    idf: array[float]  # by slot
    start: array[int]  # postings of slot k are [start[k], start[k + 1])
    doc_ids: array[int]  # ascending within a slot
    weights: array[float]
    n_docs: int
    avgdl: float
    k1: float
    b: float
    common_df: int  # tokens in more documents than this do not generate candidates

    @classmethod
    def build(cls, docs: Callable[[], Iterable[Sequence[str]]], *, k1: float = 1.2, b: float = 0.75,
              common_share: float = 0.05, min_common_df: int = 200) -> Bm25:
        """``docs()`` yields each document's tokens; it is called twice (counting, then filling)."""
        df: Counter[str] = Counter()
        lengths = array("f")
        for tokens in docs():
            lengths.append(len(tokens))
            df.update(set(tokens))
        n = len(lengths)
        total = math.fsum(lengths)
        avgdl = total / n if n and total else 1.0
        vocab: dict[str, int] = {}
        start = array("I", [0])
        idf = array("f")
        for token, count in df.items():
            vocab[sys.intern(token)] = len(idf)  # interned: the entry and topic indexes share the strings
            idf.append(math.log(1 + (n - count + 0.5) / (count + 0.5)))
            start.append(start[-1] + count)
        del df
        cursor = array("I", start[:-1])
        doc_ids = array("I", [0]) * start[-1]
        weights = array("f", [0.0]) * start[-1]
        for doc, tokens in enumerate(docs()):
            norm = k1 * (1 - b + b * lengths[doc] / avgdl)
            for token, tf in Counter(tokens).items():
                slot = vocab[token]
                at = cursor[slot]
                doc_ids[at] = doc
                weights[at] = idf[slot] * tf * (k1 + 1) / (tf + norm)
                cursor[slot] = at + 1
        return cls(vocab, idf, start, doc_ids, weights, n, avgdl, k1, b, max(min_common_df, int(common_share * n)))

    def unseen_idf(self) -> float:
        """idf of a token no document has (it still counts in the query's self-score)."""
        return math.log(1 + (self.n_docs + 0.5) / 0.5)

    def self_score(self, query: Iterable[str]) -> float:
        """The score the query would get against itself as a document: the normaliser."""
        counts = Counter(query)
        length = sum(counts.values())
        if not length:
            return 0.0
        norm = self.k1 * (1 - self.b + self.b * length / self.avgdl)
        unseen = self.unseen_idf()
        vocab, idf = self.vocab, self.idf
        total = 0.0
        for token, tf in counts.items():
            slot = vocab.get(token)
            total += (unseen if slot is None else idf[slot]) * tf * (self.k1 + 1) / (tf + norm)
        return total

    def scores(self, query: Iterable[str], *, limit: int = 100) -> dict[int, float]:
        """BM25 score of every candidate document (each distinct query token counted once)."""
        start = self.start
        slots = sorted((s for s in {self.vocab.get(t) for t in query} if s is not None),
                       key=lambda s: start[s + 1] - start[s])
        rare = [s for s in slots if start[s + 1] - start[s] <= self.common_df]
        common = [s for s in slots if start[s + 1] - start[s] > self.common_df]
        if not rare:  # only common words: let them find candidates after all
            rare, common = common, []
        acc: dict[int, float] = {}
        get = acc.get
        doc_ids, weights = self.doc_ids, self.weights
        for slot in rare:
            lo, hi = start[slot], start[slot + 1]
            for doc, weight in zip(doc_ids[lo:hi], weights[lo:hi], strict=True):
                acc[doc] = get(doc, 0.0) + weight
        if common and acc:
            if len(acc) > limit:
                acc = dict(heapq.nlargest(limit, acc.items(), key=lambda kv: kv[1]))
            for slot in common:
                lo, hi = start[slot], start[slot + 1]
                for doc in acc:
                    i = bisect_left(doc_ids, doc, lo, hi)
                    if i < hi and doc_ids[i] == doc:
                        acc[doc] += weights[i]
        return acc

    def present(self, doc: int, query: Iterable[str]) -> tuple[int, int]:
        """(distinct query tokens the document holds, distinct query tokens the index knows)."""
        start, doc_ids = self.start, self.doc_ids
        held = known = 0
        for slot in {self.vocab.get(t) for t in query}:
            if slot is None:
                continue
            known += 1
            lo, hi = start[slot], start[slot + 1]
            i = bisect_left(doc_ids, doc, lo, hi)
            held += i < hi and doc_ids[i] == doc
        return held, known
