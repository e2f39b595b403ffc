"""The statute index over knowledge/laws/*.md: numbers, names, look-ups and citations."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.knowledge.laws import LawIndex, cn_to_int, law_name_from_file, parse_articles, parse_citation
from tests.test_knowledge_tiny import LAWS

SHIPPED_LAWS = Path(__file__).resolve().parent.parent / "knowledge" / "laws"


def to_chinese(n: int) -> str:
    """Reference writer of statute numbers (1..9999), as the official texts spell them."""
    digits = "零一二三四五六七八九"
    out = ""
    zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, value)
        if d:
            if zero:
                out += "零"
            out += ("" if (unit == "十" and d == 1 and not out) else digits[d]) + unit
            zero = False
        elif out:
            zero = True
    return out


@pytest.fixture(scope="module")
def tiny() -> LawIndex:
    return LawIndex.from_texts(LAWS)


@pytest.fixture(scope="module")
def shipped() -> LawIndex:
    return LawIndex.load(SHIPPED_LAWS)


@pytest.mark.parametrize(("text", "number"), [
    ("十", 10), ("十七", 17), ("二十", 20), ("一百零五", 105), ("二百七十六", 276), ("一千零七十九", 1079),
    ("一千二百六十", 1260), ("两千", 2000), ("1079", 1079),
])
def test_chinese_numerals(text: str, number: int) -> None:
    assert cn_to_int(text) == number


@given(st.integers(min_value=1, max_value=9999))
def test_every_article_number_reads_back(n: int) -> None:
    assert cn_to_int(to_chinese(n)) == n


def test_not_a_numeral() -> None:
    with pytest.raises(ValueError, match="not a Chinese numeral"):
        cn_to_int("第一")


def test_file_names_give_law_names() -> None:
    assert law_name_from_file("民法典-婚姻家庭编.md") == "民法典"
    assert law_name_from_file("反家庭暴力法(2015-12-27).md") == "反家庭暴力法"
    assert law_name_from_file("最高人民法院关于适用《民法典》婚姻家庭编的解释（一）(2020-12-29).md") == (
        "最高人民法院关于适用《民法典》婚姻家庭编的解释（一）")
    assert law_name_from_file("刑法.md") == "刑法"


def test_articles_keep_their_paragraphs_and_stop_at_headings() -> None:
    text = ("# 某法\n\n前言第一条 不是条文\n<!-- INFO END -->\n\n## 第一章\n\n第一条 第一款。\n\n第二款。\n\n"
            "## 第二章\n\n说明\n\n第二条之一 补充。\n")
    articles = parse_articles(text, law="某法", source="某法.md")
    assert [(a.number, a.suffix, a.text) for a in articles] == [(1, "", "第一款。\n第二款。"), (2, "之一", "补充。")]


def test_lookup_labels_and_sources(tiny: LawIndex) -> None:
    article = tiny.lookup("民法典", 1079)
    assert article is not None
    assert article.label == "民法典第1079条"
    assert article.source == "民法典-婚姻家庭编.md"
    assert article.text.endswith("应当准予离婚。")
    assert article.render().endswith("（来源：民法典-婚姻家庭编）")
    crime = tiny.lookup("刑法", 276, "之一")
    assert crime is not None and crime.label == "刑法第276条之一" and crime.text.startswith("以转移财产")
    assert tiny.lookup("刑法", 276) != crime
    assert tiny.lookup("民法典", 1) is None
    assert tiny.lookup("婚姻法", 32) is None


@pytest.mark.parametrize("query", [
    "法条 民法典1079", "查法条 民法典第一千零七十九条", "民法典第1079条", "《民法典》第1079条",
    "民法典婚姻家庭编第1079条", "中华人民共和国民法典第一千零七十九条", "查法律 民法典 1079",
    "请帮我查一下法条：民法典第1079条。",
])
def test_a_statute_query_finds_the_article(tiny: LawIndex, query: str) -> None:
    article = tiny.parse_query(query)
    assert article is not None and article.label == "民法典第1079条"


@pytest.mark.parametrize("query", ["法条", "查法条 民法典", "民法典第9999条", "婚姻法第32条", "离婚咋办", ""])
def test_queries_without_a_shipped_article_find_nothing(tiny: LawIndex, query: str) -> None:
    assert tiny.parse_query(query) is None


def test_citations(tiny: LawIndex) -> None:
    article = tiny.resolve_citation("刑法第276条之一")
    assert article is not None and article.suffix == "之一"
    assert tiny.resolve_citation("土地管理法") is None  # name-only: nothing to resolve
    assert tiny.has_law("土地管理法") and tiny.has_law("中华人民共和国土地管理法") and tiny.has_law("民法典")
    assert not tiny.has_law("治安管理处罚法")  # cited by name only, never shipped
    parsed = parse_citation("刑法第二百七十六条之一")
    assert parsed is not None and (parsed.name, parsed.number, parsed.suffix, parsed.arabic) == (
        "刑法", 276, "之一", False)


def test_the_shipped_texts_parse_completely(shipped: LawIndex) -> None:
    civil = shipped.laws["民法典"]
    assert sorted(n for n, s in civil.articles if not s) == list(range(1, 1261))  # eight books, one numbering
    assert shipped.lookup("刑法", 276, "之一") is not None
    assert shipped.lookup("反家庭暴力法", 23) is not None
    assert shipped.lookup("最高人民法院关于审理民间借贷案件适用法律若干问题的规定", 25) is not None
    for name, law in shipped.laws.items():  # every law's own articles run 1, 2, 3 … (之一 besides)
        numbers = sorted(n for n, _ in law.articles)
        assert numbers[0] == 1 and len(set(numbers)) == numbers[-1], name


@pytest.mark.parametrize(("alias", "canonical"), [
    ("民间借贷规定", "最高人民法院关于审理民间借贷案件适用法律若干问题的规定"),
    ("婚姻家庭编解释一", "最高人民法院关于适用《民法典》婚姻家庭编的解释（一）"),
    ("最高人民法院关于适用中华人民共和国民法典婚姻家庭编的解释(一)",
     "最高人民法院关于适用《民法典》婚姻家庭编的解释（一）"),
    ("反家暴法", "反家庭暴力法"),
    ("婚姻家庭编解释二", "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）"),
    ("婚姻家庭编解释(二)", "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）"),
    ("劳动争议解释一", "最高人民法院关于审理劳动争议案件适用法律问题的解释（一）"),
    ("人身损害赔偿解释", "最高人民法院关于审理人身损害赔偿案件适用法律若干问题的解释"),
    ("食品药品惩罚性赔偿解释", "最高人民法院关于审理食品药品惩罚性赔偿纠纷案件适用法律若干问题的解释"),
    ("司法确认规定", "最高人民法院关于人民调解协议司法确认程序的若干规定"),
    ("调委会组织条例", "人民调解委员会组织条例"),
    ("集体经济组织法", "农村集体经济组织法"),
    ("中华人民共和国行政复议法", "行政复议法"),
    ("行政诉讼法", "行政诉讼法"),
    ("劳动法", "劳动法"),
])
def test_short_and_full_names_of_shipped_laws(shipped: LawIndex, alias: str, canonical: str) -> None:
    assert shipped.canonical_name(alias) == canonical
    article = shipped.parse_query(f"法条 {alias}第5条")
    assert article is not None and article.law == canonical


@pytest.mark.parametrize(("query", "label", "source"), [
    ("法条 行政复议法20", "行政复议法第20条", "行政复议法(2023-09-01).md"),
    ("查法条 劳动法第四十四条", "劳动法第44条", "劳动法(2018-12-29).md"),
    ("法条 劳动合同法44", "劳动合同法第44条", "劳动合同法(2012-12-28).md"),  # not read as 劳动法
    ("法条 婚姻家庭编解释二第8条", "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）第8条",
     "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）(2025-01-15).md"),
    ("法条 集体经济组织法57", "农村集体经济组织法第57条", "农村集体经济组织法(2024-06-28).md"),
    ("法条 行政诉讼法第46条", "行政诉讼法第46条", "行政诉讼法(2017-06-27).md"),
])
def test_the_newer_statutes_answer_the_law_command(shipped: LawIndex, query: str, label: str, source: str) -> None:
    article = shipped.parse_query(query)
    assert article is not None and (article.label, article.source) == (label, source)


def test_the_header_gives_the_in_force_date_of_interpretations(shipped: LawIndex) -> None:
    injury = shipped.laws["最高人民法院关于审理人身损害赔偿案件适用法律若干问题的解释"]
    assert str(injury.header_in_force) == "2022-05-01"
    assert shipped.laws["行政复议法"].header_in_force is None  # laws say it in their last article: law_currency.yaml
    assert shipped.laws["行政复议法"].version == "2023-09-01"
