"""Matcher quality on the eval sets (``knowledge/eval/*.tsv``) before and after a change.

Three figures per set — top-1 (the right topic first), answered (in-scope questions answered
confidently) and out-of-scope answered — measured by building the index the chat would build
(``Matcher(kb)``) and running bot/matcher/evaluate.py; questions of the question bank are matched
by an index without their fold of the bank (``unseen_matchers``), so a banked set measures what
unseen questions get, not memory. A change that makes any figure worse by
more than :data:`DROP_POINTS` percentage points needs a reviewer's confirmation with a reason.

This takes a few seconds per layer (six index builds + ~1,800 questions): it runs on one thread of
its own (:func:`run`), never on the event loop, and the score of a published version is cached.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.knowledge import KnowledgeBase
from bot.matcher.evaluate import Labelled, evaluate_each, read_tsv, unseen_matchers

DROP_POINTS = 1.0
#: (metrics key, name shown to staff, True when higher is better)
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("top1", "首选答对", True),
    ("coverage", "能直接回答", True),
    ("oos_answered", "范围外被误答", False),
)
#: what staff read on the page (knowledge/eval/README.md says how each set was written)
SET_NAMES = {
    "holdout": "留出集（从未用来调参）", "tune": "调参集",
    "narrative_holdout": "长消息留出集（从未用来调参）", "narrative_cal": "长消息（校准）",
    "short_cal": "短问题（校准）", "paraphrase_cal": "换个说法（校准）",
    "scope_cal": "按范围写的问题（校准）", "scope_check": "按范围写的问题（检查，从未用来调参）",
    "reach_cal": "新问答的新问法", "bank_a": "题库：婚姻家庭", "bank_b": "题库：土地、邻里、低保、村务",
    "bank_c": "题库：打工、借钱、事故、买东西", "bank_d": "题库：诈骗、法律服务、范围外",
}

Scores = dict[str, dict[str, Any]]  # set name → {"label", "questions", top1, coverage, oos_answered}
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_sets_cache: dict[Path, tuple[tuple[tuple[str, float], ...], list[tuple[str, list[Labelled]]]]] = {}
_scores_cache: OrderedDict[tuple[int, int, str], tuple[KnowledgeBase, Scores]] = OrderedDict()
_CACHE_SIZE = 8


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the knowledge-quality thread (one at a time: two evaluations never compete)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-quality")
    return await asyncio.get_running_loop().run_in_executor(_executor, lambda: fn(*args))


def eval_sets(knowledge_dir: Path) -> list[tuple[str, list[Labelled]]]:
    """The labelled sets in ``knowledge_dir/eval`` (re-read when a file changes)."""
    files = sorted((knowledge_dir / "eval").glob("*.tsv"))
    stamp = tuple((f.name, f.stat().st_mtime) for f in files)
    cached = _sets_cache.get(knowledge_dir)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    sets = [(f.stem, read_tsv(f)) for f in files]
    _sets_cache[knowledge_dir] = (stamp, sets)
    return sets


def score(kb: KnowledgeBase) -> Scores:
    """The three figures per eval set for ``kb`` (builds its index)."""
    out: Scores = {}
    sets = eval_sets(kb.root)
    # a question of the question bank is matched by an index without its fold of the bank (else: memory);
    # the six indexes are built once for all sets
    matchers = iter(unseen_matchers(kb, [item for _, items in sets for item in items]))
    for name, items in sets:
        metrics = evaluate_each([next(matchers) for _ in items], items).metrics()
        out[name] = {"label": SET_NAMES.get(name, name), "questions": metrics["questions"],
                     **{key: round(float(metrics[key]), 2) for key, _label, _up in METRICS}}
    return out


def score_cached(kb: KnowledgeBase, shipped: KnowledgeBase, version: int) -> Scores:
    """:func:`score` of a published version (the 'before' of every proposal), computed once."""
    key = (id(shipped), version, str(shipped.root))
    hit = _scores_cache.get(key)
    if hit is not None and hit[0] is shipped:
        _scores_cache.move_to_end(key)
        return hit[1]
    scores = score(kb)
    _scores_cache[key] = (shipped, scores)  # the pack is kept alive with its key: id() is not reused
    while len(_scores_cache) > _CACHE_SIZE:
        _scores_cache.popitem(last=False)
    return scores


def compare(before: Scores, after: Scores) -> dict[str, Any]:
    """Rows for the page and the drops (> DROP_POINTS worse) that need a confirmation."""
    rows: list[dict[str, Any]] = []
    drops: list[str] = []
    for name, b in before.items():
        a = after.get(name)
        if a is None:
            continue
        figures = []
        for key, label, up in METRICS:
            delta = round(float(a[key]) - float(b[key]), 2)
            worse = -delta if up else delta
            figures.append({"key": key, "label": label, "before": b[key], "after": a[key], "delta": delta,
                            "worse": worse > DROP_POINTS})
            if worse > DROP_POINTS:
                drops.append(f"{b['label']}：{label} {b[key]:.1f}% → {a[key]:.1f}%")
        rows.append({"name": name, "label": b["label"], "questions": b["questions"], "figures": figures})
    return {"sets": rows, "drops": drops}
