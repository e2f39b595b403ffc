"""The shipped knowledge/: `kb check` passes and the matcher meets the quality bars.

The only test that reads the real FAQ content (others build a tiny directory in tmp_path).
Bars: top-1 >= 90 %, top-3 >= 97 %, out-of-scope answered confidently <= 5 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import check_knowledge, load_knowledge
from bot.matcher import Matcher
from bot.matcher.evaluate import Report, evaluate, read_tsv

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
DEV = ROOT.parent / "shared" / "eval" / "dev_queries.tsv"  # the shared development set, next to the repository


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_knowledge(KNOWLEDGE))


def meets_bars(report: Report) -> list[str]:
    m = report.metrics()
    failures = []
    if m["top1"] < 90.0:
        failures.append(f"top-1 {m['top1']:.1f}% < 90%")
    if m["top3"] < 97.0:
        failures.append(f"top-3 {m['top3']:.1f}% < 97%")
    if m["oos_answered"] > 5.0:
        failures.append(f"out-of-scope answered {m['oos_answered']:.1f}% > 5%")
    return failures


def test_the_shipped_knowledge_passes_kb_check() -> None:
    report = check_knowledge(KNOWLEDGE)
    assert [str(p) for p in report.problems] == []
    assert report.kb is not None and len(report.kb.entries) >= 3 * len(report.kb.topics)


@pytest.mark.skipif(not DEV.exists(), reason=f"{DEV} is not here")
def test_quality_bars_on_the_dev_set(matcher: Matcher) -> None:
    assert meets_bars(evaluate(matcher, read_tsv(DEV))) == []


def test_quality_bars_on_the_tuning_set(matcher: Matcher) -> None:
    assert meets_bars(evaluate(matcher, read_tsv(KNOWLEDGE / "eval" / "tune.tsv"))) == []


def test_quality_bars_on_the_holdout_set(matcher: Matcher) -> None:
    assert meets_bars(evaluate(matcher, read_tsv(KNOWLEDGE / "eval" / "holdout.tsv"))) == []
