"""Statute index over ``knowledge/laws/*.md``.

Each file is ``# 名称``, adoption/revision lines, ``<!-- INFO END -->``, then ``##``
headings and articles as paragraphs starting ``第X条 `` (Chinese numerals, optionally
``之一``). The law's *name* is the file name without the ``(date)`` and with
``民法典-xx编`` folded to ``民法典`` (article numbers run on across the 民法典's books).
The ``(date)`` is the text's *version*: when two versions of a law are shipped, the newest
is the current text that citations resolve in; the older ones are kept as ``replaced``
(see bot/knowledge/currency.py for what that means for the entries citing them).

>>> idx = LawIndex.from_texts({"反家庭暴力法(2015-12-27).md": "# 反家庭暴力法\\n\\n第二十三条 当事人……\\n"})
>>> idx.lookup("反家庭暴力法", 23).label
'反家庭暴力法第23条'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Laws that FAQ entries may cite by name although their text is not shipped, when
#: knowledge/law_currency.yaml does not say more (its ``name_only`` table adds to this).
NAME_ONLY_LAWS: frozenset[str] = frozenset({"治安管理处罚法"})

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_CN_NUM = "零〇一二三四五六七八九十百千万两"

_ARTICLE_RE = re.compile(rf"^第([{_CN_NUM}]+)条(之[{_CN_NUM}]+)?[ \u3000]+(.*)$")
_FILE_DATE_RE = re.compile(r"[(（](\d{4}-\d{2}-\d{2})[)）]$")
# "2022年5月1日 施行" among the header lines: the date the text came into force
_HEADER_IN_FORCE_RE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日[ \u3000]*施行")
_NUMBER = rf"(?:\d+|[{_CN_NUM}]+)"
_CITATION_RE = re.compile(rf"^(?P<name>.+?)(?:第(?P<num>{_NUMBER})条(?P<suffix>之[{_CN_NUM}]+)?)?$")
_QUERY_NUMBER_RE = re.compile(rf"^(?:的)?第?(?P<num>{_NUMBER})条?(?P<suffix>之[{_CN_NUM}]+)?$")
# what may come before the law's name in a look-up message: 查法条 / 法条 / 请帮我查一下法律条文：…
_QUERY_PREFIX_RE = re.compile(
    r"(?:请|麻烦)?(?:帮我|帮忙)?(?:查询|查一下|查查|查看|查|看看|看一下|看|搜一下|搜|找)?(?:一下)?"
    r"(?:法律条文|法条|条文|法律)?(?:一下)?[:：]?"
)

# Short names villagers, staff and authors use for the shipped texts (besides the
# canonical names and 中华人民共和国-prefixed titles, which always work).
_ALIASES: Mapping[str, str] = {
    "民间借贷规定": "最高人民法院关于审理民间借贷案件适用法律若干问题的规定",
    "民间借贷司法解释": "最高人民法院关于审理民间借贷案件适用法律若干问题的规定",
    "彩礼规定": "最高人民法院关于审理涉彩礼纠纷案件适用法律若干问题的规定",
    "彩礼司法解释": "最高人民法院关于审理涉彩礼纠纷案件适用法律若干问题的规定",
    "婚姻家庭编解释一": "最高人民法院关于适用《民法典》婚姻家庭编的解释（一）",
    "婚姻家庭编解释（一）": "最高人民法院关于适用《民法典》婚姻家庭编的解释（一）",
    "婚姻家庭编司法解释": "最高人民法院关于适用《民法典》婚姻家庭编的解释（一）",
    "婚姻家庭编解释二": "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）",
    "婚姻家庭编解释（二）": "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）",
    "婚姻家庭编司法解释二": "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）",
    "婚姻家庭编司法解释（二）": "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）",
    "继承编解释一": "最高人民法院关于适用《民法典》继承编的解释（一）",
    "继承编解释（一）": "最高人民法院关于适用《民法典》继承编的解释（一）",
    "继承编司法解释": "最高人民法院关于适用《民法典》继承编的解释（一）",
    "担保制度解释": "最高人民法院关于适用《民法典》有关担保制度的解释",
    "担保制度司法解释": "最高人民法院关于适用《民法典》有关担保制度的解释",
    "土地承包纠纷解释": "最高人民法院关于审理涉及农村土地承包纠纷案件适用法律问题的解释",
    "土地承包纠纷司法解释": "最高人民法院关于审理涉及农村土地承包纠纷案件适用法律问题的解释",
    "劳动争议解释一": "最高人民法院关于审理劳动争议案件适用法律问题的解释（一）",
    "劳动争议解释（一）": "最高人民法院关于审理劳动争议案件适用法律问题的解释（一）",
    "劳动争议司法解释一": "最高人民法院关于审理劳动争议案件适用法律问题的解释（一）",
    "劳动争议司法解释（一）": "最高人民法院关于审理劳动争议案件适用法律问题的解释（一）",
    "人身损害赔偿解释": "最高人民法院关于审理人身损害赔偿案件适用法律若干问题的解释",
    "人身损害赔偿司法解释": "最高人民法院关于审理人身损害赔偿案件适用法律若干问题的解释",
    "人身损害解释": "最高人民法院关于审理人身损害赔偿案件适用法律若干问题的解释",
    "食品药品惩罚性赔偿解释": "最高人民法院关于审理食品药品惩罚性赔偿纠纷案件适用法律若干问题的解释",
    "食品药品惩罚性赔偿司法解释": "最高人民法院关于审理食品药品惩罚性赔偿纠纷案件适用法律若干问题的解释",
    "食品药品解释": "最高人民法院关于审理食品药品惩罚性赔偿纠纷案件适用法律若干问题的解释",
    "司法确认规定": "最高人民法院关于人民调解协议司法确认程序的若干规定",
    "司法确认程序规定": "最高人民法院关于人民调解协议司法确认程序的若干规定",
    "人民调解协议司法确认程序规定": "最高人民法院关于人民调解协议司法确认程序的若干规定",
    "人民调解协议司法确认规定": "最高人民法院关于人民调解协议司法确认程序的若干规定",
    "调委会组织条例": "人民调解委员会组织条例",
    "调解委员会组织条例": "人民调解委员会组织条例",
    "集体经济组织法": "农村集体经济组织法",
    "复议法": "行政复议法",
    "行诉法": "行政诉讼法",
    "农民工工资支付条例": "保障农民工工资支付条例",
    "土地承包法": "农村土地承包法",
    "个保法": "个人信息保护法",
    "消法": "消费者权益保护法",
    "消保法": "消费者权益保护法",
    "民诉法": "民事诉讼法",
    "老年法": "老年人权益保障法",
    "妇女法": "妇女权益保障法",
    "未保法": "未成年人保护法",
    "反家暴法": "反家庭暴力法",
    "反诈法": "反电信网络诈骗法",
    "道交法": "道路交通安全法",
    "交通安全法": "道路交通安全法",
    "村组法": "村民委员会组织法",
    "食安法": "食品安全法",
}


def cn_to_int(text: str) -> int:
    """``"一千零七十九"`` → 1079, ``"十七"`` → 17, ``"1079"`` → 1079.

    >>> [cn_to_int(s) for s in ("十", "十七", "二百七十六", "一千零七十九", "两千", "1260")]
    [10, 17, 276, 1079, 2000, 1260]
    """
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _DIGITS and ch not in _UNITS for ch in text):
        raise ValueError(f"not a Chinese numeral: {text!r}")
    total = section = 0
    digit: int | None = None
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
            continue
        unit = _UNITS[ch]
        if unit == 10000:
            total += (section + (digit or 0)) * unit
            section = 0
        else:
            section += (1 if digit is None else digit) * unit
        digit = None
    return total + section + (digit or 0)


def int_to_cn_suffix(suffix: str) -> str:
    """Normalise ``之1``/``之一`` to ``之一`` (suffixes are small)."""
    if not suffix:
        return ""
    body = suffix.removeprefix("之")
    number = cn_to_int(body)
    names = "零一二三四五六七八九"
    return "之" + (names[number] if number < 10 else "十" + (names[number - 10] if number > 10 else ""))


def _name_key(name: str) -> str:
    """Spelling-insensitive key: no 中华人民共和国, no 《》, full-width brackets, no spaces."""
    key = name.strip().replace("中华人民共和国", "").replace("《", "").replace("》", "")
    key = key.replace("(", "（").replace(")", "）").replace(" ", "").replace("\u3000", "")
    return key


@dataclass(frozen=True, slots=True)
class Article:
    law: str  # canonical name, e.g. 民法典
    number: int
    suffix: str  # "" or "之一", "之二" …
    text: str  # the article's paragraphs, "\n"-joined, without the 第X条 prefix
    source: str  # file name, e.g. "民法典-婚姻家庭编.md", "反家庭暴力法(2015-12-27).md"

    @property
    def label(self) -> str:
        return f"{self.law}第{self.number}条{self.suffix}"

    def render(self) -> str:
        """The article as shown in chat: label, text and which file/version it comes from."""
        return f"{self.label}\n{self.text}\n（来源：{self.source.removesuffix('.md')}）"


@dataclass(frozen=True, slots=True)
class LawText:
    """One shipped version of a law: one file, or several files of the same date (the 民法典's books)."""

    version: str | None  # the file name's date, e.g. "2023-09-01"; None when the name has none (刑法.md)
    sources: tuple[str, ...]
    header_in_force: dt.date | None  # a "2022年5月1日 施行" line in the header, if any file has one
    articles: Mapping[tuple[int, str], Article]


@dataclass(frozen=True, slots=True)
class Law:
    """A law as shipped: its current text (the newest version) and any older, replaced versions."""

    name: str  # canonical name
    title: str  # the file's "# " title, e.g. 中华人民共和国民法典
    sources: tuple[str, ...]  # the current text's files
    articles: Mapping[tuple[int, str], Article]  # the current text's articles: what citations resolve in
    version: str | None = None
    header_in_force: dt.date | None = None
    replaced: tuple[LawText, ...] = ()  # older versions, oldest first

    @property
    def current(self) -> LawText:
        return LawText(self.version, self.sources, self.header_in_force, self.articles)

    @property
    def texts(self) -> tuple[LawText, ...]:
        """Every shipped version, oldest first, the current one last."""
        return (*self.replaced, self.current)


@dataclass(frozen=True, slots=True)
class Citation:
    """A parsed ``basis`` item or query: law name as written, optional article."""

    name: str
    number: int | None
    suffix: str
    arabic: bool  # the number was written in Arabic numerals


def law_name_from_file(file_name: str) -> str:
    """``民法典-婚姻家庭编.md`` → 民法典; ``反家庭暴力法(2015-12-27).md`` → 反家庭暴力法."""
    stem = file_name.removesuffix(".md")
    stem = _FILE_DATE_RE.sub("", stem)
    if stem.startswith("民法典-"):
        return "民法典"
    return stem


def law_version_from_file(file_name: str) -> str | None:
    """``行政复议法(2023-09-01).md`` → ``"2023-09-01"``; ``刑法.md`` → None."""
    m = _FILE_DATE_RE.search(file_name.removesuffix(".md"))
    return m.group(1) if m else None


def header_in_force(text: str) -> dt.date | None:
    """The date of the last ``2022年5月1日 施行`` line before ``<!-- INFO END -->`` (None if there is none).

    >>> header_in_force("# 某解释\\n\\n2022年2月15日 通过\\n\\n2022年5月1日 施行\\n\\n<!-- INFO END -->\\n")
    datetime.date(2022, 5, 1)
    """
    if "<!-- INFO END -->" not in text:
        return None
    found: dt.date | None = None
    for line in text.split("<!-- INFO END -->", 1)[0].splitlines():
        m = _HEADER_IN_FORCE_RE.match(line.strip())
        if m:
            try:
                found = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    return found


def parse_articles(text: str, *, law: str, source: str) -> list[Article]:
    """Articles of one statute file, in file order."""
    body = text.split("<!-- INFO END -->", 1)[-1]
    articles: list[Article] = []
    current: tuple[int, str, list[str]] | None = None

    def flush() -> None:
        if current is not None:
            number, suffix, paragraphs = current
            articles.append(Article(law, number, suffix, "\n".join(paragraphs), source))

    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            flush()
            current = None
            continue
        m = _ARTICLE_RE.match(line)
        if m:
            flush()
            current = (cn_to_int(m.group(1)), int_to_cn_suffix(m.group(2) or ""), [m.group(3).strip()])
        elif current is not None:
            current[2].append(line)
    flush()
    return articles


def parse_citation(text: str) -> Citation | None:
    """``刑法第276条之一`` → Citation(刑法, 276, 之一); ``种子法`` → Citation(种子法, None, "")."""
    text = text.strip()
    m = _CITATION_RE.match(text)
    if not m:
        return None
    num = m.group("num")
    number = cn_to_int(num) if num else None
    suffix = m.group("suffix") or ""
    return Citation(m.group("name").strip(), number, int_to_cn_suffix(suffix), bool(num and num.isdigit()))


@dataclass(frozen=True, slots=True)
class LawIndex:
    """All shipped statute texts, by canonical name and article number."""

    laws: Mapping[str, Law]
    _keys: Mapping[str, str] = field(repr=False)  # _name_key(alias) → canonical name

    @classmethod
    def from_texts(cls, files: Mapping[str, str]) -> LawIndex:
        """Build from ``{file name: text}`` (file order decides nothing but sources' order)."""
        grouped: dict[str, dict[str | None, list[tuple[str, str]]]] = {}
        for file_name in sorted(files):
            if not file_name.endswith(".md") or file_name.upper() == "README.MD":
                continue
            versions = grouped.setdefault(law_name_from_file(file_name), {})
            versions.setdefault(law_version_from_file(file_name), []).append((file_name, files[file_name]))
        laws: dict[str, Law] = {}
        keys: dict[str, str] = {}
        for name, versions in grouped.items():
            title = ""
            texts: list[LawText] = []
            for version in sorted(versions, key=lambda v: v or ""):  # no date sorts as the oldest
                articles: dict[tuple[int, str], Article] = {}
                in_force: dt.date | None = None
                for file_name, text in versions[version]:
                    first = next((ln for ln in text.splitlines() if ln.startswith("# ")), "")
                    title = first.removeprefix("# ").strip() or title
                    in_force = header_in_force(text) or in_force
                    for art in parse_articles(text, law=name, source=file_name):
                        articles.setdefault((art.number, art.suffix), art)
                texts.append(LawText(version, tuple(f for f, _ in versions[version]), in_force, articles))
            current = texts[-1]
            laws[name] = Law(name, title or name, current.sources, current.articles, current.version,
                             current.header_in_force, tuple(texts[:-1]))
            keys[_name_key(name)] = name
            if title:
                keys.setdefault(_name_key(title), name)
        for alias, target in _ALIASES.items():
            if target in laws:
                keys.setdefault(_name_key(alias), target)
        if "民法典" in laws:
            for part in ("总则", "物权编", "合同编", "人格权编", "婚姻家庭编", "继承编", "侵权责任编", "附则"):
                keys.setdefault(_name_key("民法典" + part), "民法典")
                keys.setdefault(_name_key("民法典-" + part), "民法典")
        return cls(laws, keys)

    @classmethod
    def load(cls, directory: Path) -> LawIndex:
        """Read every ``*.md`` in ``directory`` (missing directory → empty index)."""
        if not directory.is_dir():
            return cls({}, {})
        return cls.from_texts({p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.md"))})

    # -- names -----------------------------------------------------------------
    def canonical_name(self, name: str) -> str | None:
        """Canonical name for a shipped law's name, title or alias; None if not shipped."""
        return self._keys.get(_name_key(name))

    def has_law(self, name: str) -> bool:
        """True for shipped laws (any accepted spelling). 治安管理处罚法 is *not* shipped: see NAME_ONLY_LAWS."""
        return self.canonical_name(name) is not None

    @property
    def names(self) -> list[str]:
        return sorted(self.laws)

    # -- articles --------------------------------------------------------------
    def lookup(self, law: str, number: int, suffix: str = "") -> Article | None:
        name = self.canonical_name(law)
        if name is None:
            return None
        return self.laws[name].articles.get((number, int_to_cn_suffix(suffix)))

    def resolve_citation(self, citation: str) -> Article | None:
        """``刑法第276条之一`` → the article; None for name-only or unknown citations."""
        parsed = parse_citation(citation)
        if parsed is None or parsed.number is None:
            return None
        return self.lookup(parsed.name, parsed.number, parsed.suffix)

    def parse_query(self, text: str) -> Article | None:
        """A villager's or staff member's "查法条" message → the article, or None.

        Accepts ``法条 民法典1079``, ``查法条 民法典第一千零七十九条``, ``民法典第1079条``,
        ``《反家庭暴力法》第23条``, ``刑法276条之一``.
        """
        compact = re.sub(r"[\s《》“”\"'。？！?!,，]", "", text)
        # try the shortest prefix first, so 法律援助法第31条 is not read as 法律 + 援助法…
        for start in range(min(len(compact), 16) + 1):
            if start and not _QUERY_PREFIX_RE.fullmatch(compact[:start]):
                continue
            article = self._parse_law_and_number(compact[start:])
            if article is not None:
                return article
        return None

    def _parse_law_and_number(self, text: str) -> Article | None:
        for end in range(len(text), 0, -1):  # longest known law name at the start
            name = self._keys.get(_name_key(text[:end]))
            if name is None:
                continue
            m = _QUERY_NUMBER_RE.match(text[end:])
            if m:
                return self.lookup(name, cn_to_int(m.group("num")), m.group("suffix") or "")
        return None


def iter_citation_problems(index: LawIndex, basis: Iterable[str],
                           name_only: Collection[str] = NAME_ONLY_LAWS) -> Iterable[tuple[str, str]]:
    """(citation, problem) for every ``basis`` item that breaks the knowledge/README.md rules.

    ``name_only``: laws that are not shipped but may be cited by name (law_currency.yaml).
    """
    for item in basis:
        if not isinstance(item, str) or not item.strip():
            yield str(item), "empty or non-text citation"
            continue
        parsed = parse_citation(item)
        if parsed is None:
            yield item, "not a citation (<law name>第<N>条 or <law name>)"
            continue
        if parsed.number is not None and not parsed.arabic:
            yield item, "write the article number in Arabic numerals, e.g. 第1079条"
            continue
        canonical = index.canonical_name(parsed.name)
        if canonical is None and parsed.name in name_only:
            if parsed.number is not None:
                yield item, f"{parsed.name} is not shipped in laws/: cite it by name only"
            continue
        if canonical is None:
            yield item, f"unknown law {parsed.name!r}: not in laws/"
            continue
        if canonical != parsed.name:
            yield item, f"write the law's name as in laws/: {canonical}"
            continue
        if parsed.number is not None and index.lookup(canonical, parsed.number, parsed.suffix) is None:
            law = index.laws[canonical]
            where = f" (current text: {law.version})" if law.replaced else ""
            yield item, f"{canonical} has no article {parsed.number}{parsed.suffix} in laws/{where}"
