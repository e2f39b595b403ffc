"""FAQ matcher: normalise → retrieve (char + pinyin n-gram BM25) → re-score (rapidfuzz) → decide.

>>> m = Matcher(kb)             # doctest: +SKIP
>>> r = m.match("俺想离婚咋办")   # doctest: +SKIP
>>> r.outcome, r.entry.id       # doctest: +SKIP
('answer', 'divorce-by-agreement')
"""

from bot.matcher.core import Candidate, Features, Matcher, MatcherConfig, MatchResult, Outcome
from bot.matcher.normalize import Normalizer, fold, pinyin

__all__ = [
    "Candidate",
    "Features",
    "MatchResult",
    "Matcher",
    "MatcherConfig",
    "Normalizer",
    "Outcome",
    "fold",
    "pinyin",
]
