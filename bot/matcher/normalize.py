"""Text normalisation shared by the FAQ index, the queries and the urgent-word check.

``fold``      full/half width (NFKC), lower case, traditional → simplified, only letters and digits kept
``normalize`` fold, then the synonyms table (dialect/colloquial/typo → standard), then fillers dropped
``pinyin``    toneless syllables of a normalised text, with the sounds villagers' input mixes up folded
              together (zh/z, ch/c, sh/s, -ng/-n, and n/l as Henan speech and fuzzy-pinyin
              keyboards merge them), so 宅急地 and 宅基地, 欠新 and 欠薪 sound alike

This module imports nothing from ``bot.knowledge`` (the knowledge base builds a Normalizer).
"""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import opencc

_T2S = opencc.OpenCC("t2s")


@lru_cache(maxsize=4096)
def _fold_syllable(syllable: str) -> str:
    """Fold the initials/finals that dialect speakers and fuzzy-pinyin keyboards confuse."""
    s = syllable
    if s[:2] in ("zh", "ch", "sh"):
        s = s[0] + s[2:]
    if s.endswith("ng") and len(s) > 2:
        s = s[:-1]
    if s[:1] == "l" and len(s) > 1:  # 老/脑, 流/牛
        s = "n" + s[1:]
    return s


def fold(text: str) -> str:
    """Width, case and script folding; everything that is not a letter or digit is dropped.

    >>> fold("俺兩口子，過不下去了！！ＡＢＣ１２")
    '俺两口子过不下去了abc12'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch.isalnum())
    if not text.isascii():
        text = str(_T2S.convert(text))
    return text


@cache
def _readings() -> dict[str, str]:
    """pypinyin's single-character dictionary ({"23429": "zhái,zé", …}), read straight from its
    data file: importing pypinyin itself would also load its phrase dictionary (~45 MB, 0.2 s),
    which per-character readings do not need."""
    spec = importlib.util.find_spec("pypinyin")
    if spec is None or spec.origin is None:
        raise RuntimeError("pypinyin is not installed")
    data: dict[str, str] = json.loads((Path(spec.origin).parent / "pinyin_dict.json").read_text(encoding="utf-8"))
    return data


@cache
def _char_pinyin(ch: str) -> str:
    """The character's most common reading, toneless (ü as v, like pypinyin's NORMAL style), folded."""
    readings = _readings().get(str(ord(ch)))
    if not readings:
        return ch
    decomposed = unicodedata.normalize("NFD", readings.split(",", 1)[0]).replace("u\u0308", "v")
    return _fold_syllable("".join(c for c in decomposed if not unicodedata.combining(c)))


def _is_han(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def pinyin(text: str) -> list[str]:
    """Toneless, folded syllables, one per Chinese character (its most common reading, the same
    on both sides of a match); a run of other letters/digits stays one token.

    >>> pinyin("宅急地") == pinyin("宅基地"), pinyin("欠新") == pinyin("欠薪"), pinyin("打12348")
    (True, True, ['da', '12348'])
    """
    out: list[str] = []
    run = ""
    for ch in text:
        if _is_han(ch):
            if run:
                out.append(run)
                run = ""
            out.append(_char_pinyin(ch))
        else:
            run += ch
    if run:
        out.append(run)
    return out


def _alternation(words: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({w for w in words if w}, key=lambda w: (-len(w), w))
    if not ordered:
        return None
    return re.compile("|".join(re.escape(w) for w in ordered))


@dataclass(frozen=True, slots=True)
class Normalizer:
    """``synonyms`` maps a variant (already folded) to its standard word; ``fillers`` are dropped."""

    synonyms: Mapping[str, str] = field(default_factory=dict)
    fillers: tuple[str, ...] = ()
    _table: Mapping[str, str] = field(init=False, repr=False, compare=False)
    _syn_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _filler_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # standard words map to themselves, so a shorter variant never matches inside one
        # (宅基 must not turn 宅基地 into 宅基地地)
        table = {standard: standard for standard in self.synonyms.values()}
        table.update(self.synonyms)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_syn_re", _alternation(table))
        object.__setattr__(self, "_filler_re", _alternation(self.fillers))

    def apply_synonyms(self, folded: str) -> str:
        if self._syn_re is None:
            return folded
        table = self._table
        return self._syn_re.sub(lambda m: table[m.group(0)], folded)

    def drop_fillers(self, text: str) -> str:
        if self._filler_re is None:
            return text
        return self._filler_re.sub("", text)

    def normalize(self, text: str) -> str:
        """fold → synonyms → fillers.

        >>> n = Normalizer({"俺": "我", "咋办": "怎么办", "咋": "怎么"}, ("请问", "我想问一下"))
        >>> n.normalize("請問，俺想問一下：離婚咋辦？")
        '离婚怎么办'
        """
        return self.drop_fillers(self.apply_synonyms(fold(text)))
