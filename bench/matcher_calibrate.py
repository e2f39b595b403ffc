"""Fit the matcher's confidence model and rewrite bot/matcher/confidence.json — run by hand.

    .venv/bin/python bench/matcher.py calibrate            # fit, choose thresholds, write the JSON
    .venv/bin/python bench/matcher.py calibrate --dry-run  # only print what it would write

Data: the *calibration* sets only — knowledge/eval/tune.tsv, narrative_cal.tsv, short_cal.tsv,
paraphrase_cal.tsv, scope_cal.tsv, reach_cal.tsv, bank_*.tsv, the shared dev sets (dev_queries.tsv,
narrative_dev.tsv) and the out-of-scope probes in bench/matcher.py. The held-out sets (holdout.tsv,
narrative_holdout.tsv, scope_check.tsv) are never read here. A message of the question bank
(knowledge/question_bank.yaml) is featurised by an index without its fold of the bank.

Method: for every message the matcher ranks entries and computes the features of
bot/matcher/confidence.py for its best entry; the label is "the best entry's topic is right"
(out-of-scope messages: never right). An L2-regularised logistic regression (Newton's method,
standardised features, pure Python) is fitted; thresholds must hold both on *out-of-fold*
probabilities (5-fold cross-validation, not flattered by the fit) and on the final model's:
- ``answer_threshold``: the lowest probability at which, on each narrative set separately,
  answers are right ≥ --precision of the time, and ≤ --max-oos % of all the out-of-scope
  messages are answered pooled, and on each set at most --max-oos-set % (issue #14's bar) or one
  message (one line of a 30-line set is already 3 %);
- ``sure_threshold``: the lowest at which the pooled narrative answers are right ≥ --sure
  of the time — above it the answer comes without "不是这个？回复 2 或 3".
- the *offer model* (same features; label "the right topic is the answer's or one of the two offered",
  on the messages that have entries to offer) and its threshold: the lowest at which each narrative
  set's answers stay right ≥ --offer-precision and show the right topic ≥ --offer-shown, with the
  out-of-scope bars above still holding.
The final coefficients are fitted on all the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge import KnowledgeBase
from bot.matcher.confidence import FEATURES, MODEL_PATH, ConfidenceModel
from bot.matcher.evaluate import Labelled, unseen_matchers


@dataclass(frozen=True, slots=True)
class Sample:
    source: str
    item: Labelled
    x: tuple[float, ...]  # FEATURES, in order
    right: bool  # the best entry's topic is one of the labels
    blocked: bool  # a topic gate, a wrong-role word or a too short message forbids an answer
    can_offer: bool = False  # there are entries to offer with a fairly sure answer (Matcher.offered)
    offer_right: bool = False  # … and the right topic is the answer's or one of theirs


def samples(kb: KnowledgeBase, sets: dict[str, list[Labelled]]) -> list[Sample]:
    """Features of every message as the matcher sees a message it has never seen: a question of the
    question bank is matched with its fold of the bank left out (bot.matcher.evaluate.unseen_matchers)."""
    pooled = [(source, item) for source, items in sets.items() for item in items]
    out = []
    for (source, item), matcher in zip(pooled, unseen_matchers(kb, [i for _, i in pooled]), strict=True):
        r = matcher.match(item.question)
        if r.outcome == "smalltalk" or not r.normalized or r.entry is None:
            continue
        ranked = matcher.rank(r.normalized, limit=8, text=item.question)
        feats = matcher.confidence_features(item.question, r.normalized, ranked)
        top = ranked[0]
        blocked = (not top[2].gate or not top[2].role
                   or (len(r.normalized) < matcher.config.min_answer_chars and not top[2].exact))
        offered = matcher.offered(r.candidates, ranked)
        shown = {top[0].topic, *(c.entry.topic for c in offered)}
        out.append(Sample(source, item, tuple(feats[name] for name in FEATURES),
                          top[0].topic in item.labels, blocked, bool(offered), bool(shown & item.labels)))
    return out


# -- logistic regression ------------------------------------------------------------------
def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c and m[c][c]:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] for i in range(n)]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


def fit(xs: Sequence[Sequence[float]], ys: Sequence[bool], l2: float) -> tuple[float, list[float]]:
    """Intercept and coefficients (in the features' own units) of an L2-regularised logistic model."""
    d = len(xs[0])
    mean = [sum(x[j] for x in xs) / len(xs) for j in range(d)]
    sd = [math.sqrt(sum((x[j] - mean[j]) ** 2 for x in xs) / len(xs)) or 1.0 for j in range(d)]
    zs = [[1.0] + [(x[j] - mean[j]) / sd[j] for j in range(d)] for x in xs]
    beta = [0.0] * (d + 1)
    for _ in range(50):
        grad = [0.0] * (d + 1)
        hess = [[0.0] * (d + 1) for _ in range(d + 1)]
        for z, y in zip(zs, ys, strict=True):
            p = _sigmoid(sum(b * v for b, v in zip(beta, z, strict=True)))
            for a in range(d + 1):
                grad[a] += (float(y) - p) * z[a]
                for c in range(a, d + 1):
                    hess[a][c] += p * (1 - p) * z[a] * z[c]
        for a in range(d + 1):
            for c in range(a):
                hess[a][c] = hess[c][a]
        for a in range(1, d + 1):  # the intercept is not shrunk
            grad[a] -= l2 * beta[a]
            hess[a][a] += l2
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-8:
            break
    coefs = [beta[j + 1] / sd[j] for j in range(d)]
    intercept = beta[0] - sum(coefs[j] * mean[j] for j in range(d))
    return intercept, coefs


def _prob(intercept: float, coefs: Sequence[float], x: Sequence[float]) -> float:
    return _sigmoid(intercept + sum(c * v for c, v in zip(coefs, x, strict=True)))


def out_of_fold(data: Sequence[Sample], l2: float, folds: int = 5, seed: int = 14, *,
                offer: bool = False) -> list[float]:
    """Out-of-fold probabilities of the answer model, or (``offer``) of the offer model — fitted on the
    messages that have entries to offer, with "the right topic is shown" as the label."""
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    probs = [0.0] * len(data)
    for k in range(folds):
        test = set(order[k::folds])
        train = [data[i] for i in order if i not in test and (data[i].can_offer or not offer)]
        intercept, coefs = fit([s.x for s in train], [s.offer_right if offer else s.right for s in train], l2)
        for i in test:
            probs[i] = _prob(intercept, coefs, data[i].x)
    return probs


# -- thresholds -----------------------------------------------------------------------------
def answered_stats(data: Sequence[Sample], probs: Sequence[float], threshold: float,
                   sources: Sequence[str], totals: dict[str, tuple[int, int]]) -> tuple[float, float, float]:
    """(coverage %, precision %, out-of-scope answered %) over ``sources`` at ``threshold``."""
    answered = [s for s, p in zip(data, probs, strict=True)
                if s.source in sources and not s.blocked and p >= threshold]
    n_in = sum(totals[src][0] for src in sources)
    n_out = sum(totals[src][1] for src in sources)
    in_scope = [s for s in answered if s.item.in_scope]
    right = sum(s.right for s in answered)
    return (100.0 * len(in_scope) / max(1, n_in), 100.0 * right / max(1, len(answered)),
            100.0 * (len(answered) - len(in_scope)) / max(1, n_out))


def choose(data: Sequence[Sample], runs: Sequence[Sequence[float]], totals: dict[str, tuple[int, int]],
           narrative: Sequence[str], precision: float, max_oos: float, sure: float,
           max_oos_set: float = 3.0) -> tuple[float, float]:
    """The two thresholds; every bar must hold for each probability vector in ``runs``."""
    everything = list(totals)

    def bars_hold(probs: Sequence[float], t: float) -> bool:
        if any(answered_stats(data, probs, t, [src], totals)[1] < precision for src in narrative):
            return False
        if answered_stats(data, probs, t, everything, totals)[2] > max_oos:
            return False
        return all(answered_stats(data, probs, t, [src], totals)[2] * n_out / 100 <= max(1.0, max_oos_set * n_out / 100)
                   for src, (_, n_out) in totals.items() if n_out)

    answer = sure_t = 0.99
    for t1000 in range(990, 99, -5):  # walk down while every bar still holds
        t = t1000 / 1000
        if not all(bars_hold(probs, t) for probs in runs):
            break
        answer = t
    for t1000 in range(990, 99, -5):
        t = t1000 / 1000
        if any(answered_stats(data, probs, t, narrative, totals)[1] < sure for probs in runs):
            break
        sure_t = t
    return answer, max(answer, sure_t)


def offered_stats(data: Sequence[Sample], p1: Sequence[float], p3: Sequence[float], answer: float, offer: float,
                  sources: Sequence[str], totals: dict[str, tuple[int, int]]) -> tuple[float, float, float, float]:
    """(coverage %, precision %, right topic shown %, out-of-scope answered %) over ``sources`` when a message
    is answered at p1 >= ``answer`` or, with entries to offer, p3 >= ``offer``."""
    answered = [(s, a < answer) for s, a, o in zip(data, p1, p3, strict=True) if s.source in sources
                and not s.blocked and (a >= answer or (s.can_offer and o >= offer))]
    n_in = sum(totals[src][0] for src in sources)
    n_out = sum(totals[src][1] for src in sources)
    in_scope = [s for s, _ in answered if s.item.in_scope]
    right = sum(s.right for s, _ in answered)
    shown = sum(s.offer_right if band else s.right for s, band in answered)
    n = max(1, len(answered))
    return (100.0 * len(in_scope) / max(1, n_in), 100.0 * right / n, 100.0 * shown / n,
            100.0 * (len(answered) - len(in_scope)) / max(1, n_out))


def choose_offer(data: Sequence[Sample], runs: Sequence[tuple[Sequence[float], Sequence[float]]], answer: float,
                 totals: dict[str, tuple[int, int]], narrative: Sequence[str], args: argparse.Namespace) -> float:
    """The lowest offer threshold at which, for both probability vectors, every narrative set's answers are
    right >= --offer-precision and show the right topic >= --offer-shown of the time, and the out-of-scope
    bars of :func:`choose` still hold. 2.0 (never) when even 0.99 breaks one."""
    everything = list(totals)

    def bars_hold(p1: Sequence[float], p3: Sequence[float], t: float) -> bool:
        for src in narrative:
            _, prec, shown, _ = offered_stats(data, p1, p3, answer, t, [src], totals)
            if prec < args.offer_precision or shown < args.offer_shown:
                return False
        if offered_stats(data, p1, p3, answer, t, everything, totals)[3] > args.max_oos:
            return False
        return all(offered_stats(data, p1, p3, answer, t, [src], totals)[3] * n_out / 100
                   <= max(1.0, args.max_oos_set * n_out / 100) for src, (_, n_out) in totals.items() if n_out)

    offer = 2.0
    for t1000 in range(990, 99, -5):
        t = t1000 / 1000
        if not all(bars_hold(p1, p3, t) for p1, p3 in runs):
            break
        offer = t
    return offer


def calibrate(kb: KnowledgeBase, sets: dict[str, list[Labelled]], narrative: Sequence[str],
              args: argparse.Namespace) -> None:
    data = samples(kb, sets)
    totals = {src: (sum(i.in_scope for i in items), sum(not i.in_scope for i in items))
              for src, items in sets.items()}
    probs = out_of_fold(data, args.l2)
    intercept, coefs = fit([s.x for s in data], [s.right for s in data], args.l2)
    fitted = [_prob(intercept, coefs, s.x) for s in data]
    answer, sure = choose(data, [probs, fitted], totals, narrative, args.precision, args.max_oos, args.sure,
                          args.max_oos_set)
    offerable = [s for s in data if s.can_offer]
    offer_intercept, offer_coefs = fit([s.x for s in offerable], [s.offer_right for s in offerable], args.l2)
    offer_probs = out_of_fold(data, args.l2, offer=True)
    offer_fitted = [_prob(offer_intercept, offer_coefs, s.x) for s in data]
    offer = choose_offer(data, [(probs, offer_probs), (fitted, offer_fitted)], answer, totals, narrative, args)
    print(f"{len(data)} messages from {', '.join(f'{k} ({len(v)})' for k, v in sets.items())}")
    print(f"thresholds on out-of-fold probabilities: answer >= {answer:.3f}, without alternatives >= {sure:.3f}, "
          f"offer model >= {offer:.3f}")
    print(f"{'set':14} {'answered':>8} {'precision':>9} {'shown':>6} {'oos answered':>12}  (out of fold)")
    oof = {}
    for src in sets:
        cov, prec, shown, oos = offered_stats(data, probs, offer_probs, answer, offer, [src], totals)
        oof[src] = {"answered": round(cov, 1), "precision": round(prec, 1), "shown": round(shown, 1),
                    "oos_answered": round(oos, 1)}
        print(f"{src:14} {cov:8.1f} {prec:9.1f} {shown:6.1f} {oos:12.1f}")
    model = ConfidenceModel(intercept, dict(zip(FEATURES, coefs, strict=True)), answer, sure, {
        "fitted": dt.date.today().isoformat(),
        "by": "python bench/matcher.py calibrate " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items()) if k in
            ("precision", "max_oos", "max_oos_set", "sure", "l2", "offer_precision", "offer_shown")),
        "knowledge": f"{len(kb.entries)} entries, {len(kb.topics)} topics",
        "messages": {src: len(items) for src, items in sets.items()},
        "out_of_fold": oof,
    }, offer_intercept, dict(zip(FEATURES, offer_coefs, strict=True)), offer)
    text = json.dumps(model.to_json(), ensure_ascii=False, indent=1) + "\n"
    print("coefficients: " + ", ".join(f"{k} {v:+.3f}" for k, v in model.coefficients.items())
          + f"; intercept {intercept:+.3f}")
    if args.dry_run:
        print(text)
        return
    Path(MODEL_PATH).write_text(text, encoding="utf-8")
    print(f"wrote {MODEL_PATH}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", type=float, default=97.0,
                        help="answers right at least this %% of the time on each narrative calibration set")
    parser.add_argument("--max-oos", type=float, default=1.5,
                        help="at most this %% of the out-of-scope messages (all sets pooled) answered")
    parser.add_argument("--max-oos-set", type=float, default=3.0,
                        help="… and on each set at most this %% of its out-of-scope messages, or one message")
    parser.add_argument("--sure", type=float, default=99.0,
                        help="answers without alternatives right at least this %% of the time (pooled narrative sets)")
    parser.add_argument("--offer-precision", type=float, default=95.0,
                        help="with the offer model's answers too, answers right at least this %% on each narrative set")
    parser.add_argument("--offer-shown", type=float, default=98.5,
                        help="… and the right topic among the answer and the two offered at least this %%")
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty on the standardised coefficients")
    parser.add_argument("--dry-run", action="store_true", help="print the model instead of writing it")
