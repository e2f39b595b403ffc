"""The shipped knowledge/: `kb check` passes and the matcher meets the quality bars.

The only test that reads the real FAQ content (others build a tiny directory in tmp_path).
Bars (issue #14, held-out halves): the old holdout — top-1 >= 93 %, top-3 >= 98 %, out-of-scope
answered confidently <= 3 %; the narrative held-out set — >= 65 % answered (answer or answer with
alternatives) at >= 92 % precision, out-of-scope answered <= 3 %. The calibration sets keep the
older bars (top-1 >= 90 %, top-3 >= 97 %, out of scope <= 5 %) and the narrative bars.

Met since the question bank grew (knowledge/question_bank.yaml, bench/matcher_README.md "Held-out
looks" 12–15): holdout top-1 93.5 %, top-3 98.4 %, out of scope answered 0 %; narrative held-out
88.3 % answered at 100 %, out of scope 0 %. Sets in the question bank are evaluated with their fold
of the bank left out (evaluate_unseen), or they would only measure memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.knowledge import check_knowledge, load_knowledge
from bot.matcher import Matcher
from bot.matcher.confidence import FEATURES, MODEL_PATH
from bot.matcher.evaluate import Report, evaluate, evaluate_unseen, reach, read_tsv

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
EVAL = KNOWLEDGE / "eval"
# the shared development sets sit next to the main checkout; a worktree is one level deeper
SHARED = next((p / "shared" / "eval" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "eval").is_dir()),
              ROOT.parent / "shared" / "eval")
DEV = SHARED / "dev_queries.tsv"
HOLDOUT_TOP1 = 93.0  # issue #14's bars
HOLDOUT_TOP3 = 98.0
NARRATIVE_DEV = SHARED / "narrative_dev.tsv"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_knowledge(KNOWLEDGE))


def ranking_bars(report: Report, *, top1: float = 90.0, top3: float = 97.0, oos: float = 5.0) -> list[str]:
    m = report.metrics()
    failures = []
    if m["top1"] < top1:
        failures.append(f"top-1 {m['top1']:.1f}% < {top1}%")
    if m["top3"] < top3:
        failures.append(f"top-3 {m['top3']:.1f}% < {top3}%")
    if m["oos_answered"] > oos:
        failures.append(f"out-of-scope answered {m['oos_answered']:.1f}% > {oos}%")
    return failures


def narrative_bars(report: Report) -> list[str]:
    m = report.metrics()
    failures = []
    if m["coverage"] < 65.0:
        failures.append(f"answered {m['coverage']:.1f}% < 65%")
    if m["answer_precision"] < 92.0:
        failures.append(f"precision {m['answer_precision']:.1f}% < 92%")
    if m["oos_answered"] > 3.0:
        failures.append(f"out-of-scope answered {m['oos_answered']:.1f}% > 3%")
    return failures


def test_the_shipped_knowledge_passes_kb_check() -> None:
    report = check_knowledge(KNOWLEDGE)
    assert [str(p) for p in report.problems] == []
    assert report.kb is not None and len(report.kb.entries) >= 3 * len(report.kb.topics)


@pytest.mark.skipif(not DEV.exists(), reason=f"{DEV} is not here")
def test_quality_bars_on_the_dev_set(matcher: Matcher) -> None:
    assert ranking_bars(evaluate(matcher, read_tsv(DEV))) == []


def test_quality_bars_on_the_tuning_set(matcher: Matcher) -> None:
    assert ranking_bars(evaluate_unseen(matcher.kb, read_tsv(EVAL / "tune.tsv"))) == []


def test_quality_bars_on_the_holdout_set(matcher: Matcher) -> None:
    report = evaluate(matcher, read_tsv(EVAL / "holdout.tsv"))
    assert ranking_bars(report, top1=HOLDOUT_TOP1, top3=HOLDOUT_TOP3, oos=3.0) == []


def test_real_consultations_are_answered_on_the_narrative_held_out_set(matcher: Matcher) -> None:
    assert narrative_bars(evaluate(matcher, read_tsv(EVAL / "narrative_holdout.tsv"))) == []


def test_real_consultations_are_answered_on_the_narrative_calibration_sets(matcher: Matcher) -> None:
    assert narrative_bars(evaluate_unseen(matcher.kb, read_tsv(EVAL / "narrative_cal.tsv"))) == []
    if NARRATIVE_DEV.exists():
        assert narrative_bars(evaluate(matcher, read_tsv(NARRATIVE_DEV))) == []


def test_the_shipped_confidence_model_was_fitted_on_calibration_sets_only() -> None:
    model = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert set(model["coefficients"]) == set(FEATURES)
    assert 0.0 < model["answer_threshold"] <= model["sure_threshold"] < 1.0
    fitted_on = set(model["meta"]["messages"])
    assert fitted_on and not any("holdout" in name or "hold" in name for name in fitted_on)


def test_every_entry_is_answered_for_its_own_phrasings_and_for_fresh_ones(matcher: Matcher) -> None:
    """Reachability: each entry is the confident answer to its own question and to most of its
    phrasings (all indexed), and is answered or offered first for most of the fresh, unseen phrasings
    written for the entries the legal review added (knowledge/eval/reach_cal.tsv) — a topic gate or a
    mirror's role words that miss an entry's vocabulary show up here as an entry villagers can never
    get. (How often a fresh phrasing is answered rather than offered as choice 1 is the confidence
    model's business, calibrated on out-of-scope messages too: 81 % of them today.)"""
    fresh = read_tsv(EVAL / "reach_cal.tsv")
    rows = reach(matcher, fresh)
    assert len(rows) == len(matcher.kb.entries)
    assert [r.entry_id for r in rows if not r.question] == []
    assert [(r.entry_id, f"{r.answered}/{r.phrasings}", r.misses) for r in rows if r.share < 0.75] == []
    answered, phrasings = sum(r.answered for r in rows), sum(r.phrasings for r in rows)
    assert answered / phrasings >= 0.95
    with_fresh = [r for r in rows if r.fresh]
    assert len(with_fresh) >= 22 and all(r.fresh >= 3 for r in with_fresh)
    assert [(r.entry_id, f"{r.fresh_first}/{r.fresh}") for r in with_fresh if r.fresh_first * 2 < r.fresh] == []
    assert sum(r.fresh_first for r in with_fresh) / sum(r.fresh for r in with_fresh) >= 0.9
    assert sum(r.fresh_answered for r in with_fresh) / sum(r.fresh for r in with_fresh) >= 0.75


def test_a_school_bullying_question_and_a_payment_order_question_get_their_answers(matcher: Matcher) -> None:
    """The two questions of the reachability report: both were handed off although their entry ranked first."""
    bullied = matcher.match("孩子在学校老被同学欺负咋办")
    assert (bullied.outcome, bullied.entry and bullied.entry.id) == ("answer", "school-bullying")
    order = matcher.match("支付令咋申请")
    assert (order.outcome, order.entry and order.entry.id) == ("answer", "payment-order")
