"""How sure the matcher is that its best entry answers the message: a logistic model over
features it already computes, with coefficients and thresholds shipped as data.

``confidence.json`` (next to this module) is written by ``python bench/matcher.py calibrate``
from the calibration sets only (knowledge/eval/tune.tsv, narrative_cal.tsv, the shared dev
sets, the out-of-scope probes — never a held-out set). Serving needs nothing but ``math``:
``p = 1 / (1 + exp(-(intercept + Σ coefficient·feature)))``.

Features of a message (all computed for the best entry after ranking):

``score``      the ranking score, 0..1
``margin``     ahead of the next entry
``topic_margin`` ahead of the best entry of another topic
``entry``      char+pinyin BM25 of the entry, over the message's own BM25 (how much it explains)
``topic``      the same for the entry's whole topic
``fuzz``       best rapidfuzz ratio against one phrasing
``gate``       1 if the topic gate has a word in the message
``explained``  share of the message's character pairs found in the entry's phrasings
``topic_explained`` the same for the whole topic
``unknown``    share of the message's character pairs found in no phrasing at all
``log_length`` log of the normalised message's length
``clauses``    number of clauses (split at punctuation and spaces) of the raw message
``not_legal``  1 if a word of synonyms.yaml ``not_legal`` (医保, 户口, 个税, 天气 …) is in the message
``oos``        how much of the message the question bank's out-of-scope questions explain, as one
               document scored like a topic (0 without such questions): "诈骗五万判几年" is close to them
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

MODEL_PATH = Path(__file__).with_name("confidence.json")
FEATURES: tuple[str, ...] = (
    "score", "margin", "topic_margin", "entry", "topic", "fuzz", "gate",
    "explained", "topic_explained", "unknown", "log_length", "clauses", "not_legal", "oos",
)
_CLAUSE_SPLIT = re.compile(r"[，,。.！!？?；;、：:…~～\s]+")


def clauses(text: str) -> list[str]:
    """The raw message's clauses: punctuation and spaces split them; pieces without a letter or digit drop."""
    return [part for part in _CLAUSE_SPLIT.split(text) if any(ch.isalnum() for ch in part)]


def clause_count(text: str) -> int:
    """Number of clauses of the raw message (at least 1)."""
    return max(1, len(clauses(text)))


@dataclass(frozen=True, slots=True)
class ConfidenceModel:
    intercept: float
    coefficients: Mapping[str, float]
    answer_threshold: float  # answer, offering the next two entries ("不是这个？回复 2 或 3")
    sure_threshold: float  # answer without alternatives
    meta: Mapping[str, Any] = field(default_factory=dict)  # how and on what it was fitted
    # the offer model: probability that the right topic is among the answer and the two entries offered
    # with it ("离婚了孩子归谁、房子怎么分"); at or above offer_threshold the answer comes with alternatives
    offer_intercept: float = 0.0
    offer_coefficients: Mapping[str, float] = field(default_factory=dict)
    offer_threshold: float = 2.0  # > 1: no offer model

    def probability(self, features: Mapping[str, float]) -> float:
        return _logistic(self.intercept, self.coefficients, features)

    def offer_probability(self, features: Mapping[str, float]) -> float:
        return _logistic(self.offer_intercept, self.offer_coefficients, features) if self.offer_coefficients else 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfidenceModel:
        coefficients = _coefficients(data["coefficients"])
        offer = dict(data.get("offer") or {})
        return cls(float(data["intercept"]), coefficients, float(data["answer_threshold"]),
                   float(data["sure_threshold"]), dict(data.get("meta") or {}),
                   float(offer.get("intercept", 0.0)), _coefficients(offer.get("coefficients") or {}),
                   float(offer.get("threshold", 2.0)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "intercept": round(self.intercept, 6),
            "coefficients": {k: round(v, 6) for k, v in self.coefficients.items()},
            "answer_threshold": self.answer_threshold, "sure_threshold": self.sure_threshold}
        if self.offer_coefficients:
            out["offer"] = {"intercept": round(self.offer_intercept, 6),
                            "coefficients": {k: round(v, 6) for k, v in self.offer_coefficients.items()},
                            "threshold": self.offer_threshold}
        out["meta"] = dict(self.meta)
        return out


def _logistic(intercept: float, coefficients: Mapping[str, float], features: Mapping[str, float]) -> float:
    z = intercept + sum(w * features.get(name, 0.0) for name, w in coefficients.items())
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


def _coefficients(raw: Mapping[str, Any]) -> dict[str, float]:
    coefficients = {str(k): float(v) for k, v in dict(raw).items()}
    unknown = set(coefficients) - set(FEATURES)
    if unknown:
        raise ValueError(f"confidence model: unknown features {sorted(unknown)}")
    return coefficients


@cache
def shipped_model() -> ConfidenceModel:
    """The model in confidence.json (read once per process)."""
    data: dict[str, Any] = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    return ConfidenceModel.from_json(data)
