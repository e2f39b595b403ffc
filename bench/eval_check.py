"""Check a new labelled TSV before it joins knowledge/eval/ — run by hand, not a test.

    .venv/bin/python bench/eval_check.py knowledge/eval/new.tsv [--near 0.85] [--held-out-near 0.7]

Prints, for every line of the new file:
- format problems (topic<TAB>question[<TAB>entry ids], topics from topics.yaml, entry ids that exist);
- lines within ``--near`` (difflib ratio, normalised text) of an FAQ phrasing or keyword, or of a line
  of another calibration set — both lines are shown;
- lines within ``--held-out-near`` of a line of a held-out set (holdout, narrative_holdout,
  scope_check) — **only the new line is shown**, never the held-out one, so nobody reads it;
- duplicates inside the new file.
Exit status 1 when anything was found. Rewrite or drop the lines it lists.
"""

from __future__ import annotations

import argparse
import sys
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.knowledge import load_knowledge  # noqa: E402
from bot.knowledge.loader import HELD_OUT_SETS  # noqa: E402
from bot.matcher.evaluate import read_tsv  # noqa: E402

KNOWLEDGE = ROOT / "knowledge"


def _close(a: str, others: list[tuple[str, str]], cutoff: float) -> tuple[str, str] | None:
    """The first of ``others`` (normalised text, shown text) within ``cutoff`` of ``a``."""
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(a)
    for text, shown in others:
        matcher.set_seq1(text)
        if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff and matcher.ratio() >= cutoff:
            return text, shown
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--near", type=float, default=0.85)
    parser.add_argument("--held-out-near", type=float, default=0.7)
    args = parser.parse_args()
    kb = load_knowledge(KNOWLEDGE)
    norm = kb.normalizer.normalize
    new_path = args.file.resolve()
    try:
        items = read_tsv(new_path)
    except ValueError as exc:
        print(exc)
        return 1
    known: list[tuple[str, str]] = []
    for entry in kb.entries:
        known += [(norm(p), f"FAQ {entry.id}: {p}") for p in (*entry.phrasings, *entry.keywords)]
    held_out: list[tuple[str, str]] = []
    for path in sorted((KNOWLEDGE / "eval").glob("*.tsv")):
        if path.resolve() == new_path:
            continue
        rel = f"eval/{path.name}"
        for item in read_tsv(path):
            if rel in HELD_OUT_SETS:
                held_out.append((norm(item.question), "(a held-out line: not shown)"))
            else:
                known.append((norm(item.question), f"{path.name}:{item.line}: {item.question}"))
    found = 0
    seen: dict[str, int] = {}
    for item in items:
        text = norm(item.question)
        where = f"{args.file}:{item.line}: {item.question}"
        bad_topics = sorted(t for t in item.labels if t not in kb.topics)
        bad_entries = sorted(e for e in item.entries if e not in kb.by_id)
        problems = []
        if bad_topics:
            problems.append(f"unknown topic {', '.join(bad_topics)}")
        if bad_entries:
            problems.append(f"unknown entry {', '.join(bad_entries)}")
        if text in seen:
            problems.append(f"same as line {seen[text]} of this file")
        seen.setdefault(text, item.line)
        near = _close(text, known, args.near)
        if near is not None:
            problems.append(f"near {near[1]}")
        if _close(text, held_out, args.held_out_near) is not None:
            problems.append("near a held-out line (rewrite it without looking for that line)")
        if problems:
            found += 1
            print(f"{where}\n    " + "\n    ".join(problems))
    print(f"{len(items)} lines, {found} to rewrite or drop")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
