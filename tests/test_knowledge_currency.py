"""Keeping answers current: versions and in-force dates of the statutes, and the entries due for review.

`lawbot kb check` warns and `lawbot kb review-due [--json]` lists every entry whose `reviewed`
date is earlier than the in-force date of a law it cites (or of a law touching its topic), every
citation of a version a newer shipped file replaces, and every entry resting on a revised text
that is not shipped. The tiny knowledge directory of test_knowledge_tiny.py is the base.
"""

from __future__ import annotations

import html
import json
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bot.kbcli import kb
from bot.knowledge import check_knowledge, load_knowledge
from bot.knowledge.currency import review_due
from tests import test_tickets_support as support
from tests.test_knowledge_tiny import write_tiny_kb
from tests.test_tickets_support import add_staff

SHIPPED = Path(__file__).resolve().parent.parent / "knowledge"

CURRENCY = """\
texts:
  民法典-婚姻家庭编.md: {version: 2020-05-28, in_force: 2021-01-01}
  土地管理法(2019-08-26).md: {in_force: 2020-01-01}
  刑法.md: {version: 2023-12-29, in_force: 2024-03-01}
  行政复议法(2023-09-01).md: {in_force: 2024-01-01, added: 2026-12-06}
touches:
  行政复议法: [land.homestead]
  治安管理处罚法: [service.mediation]
name_only:
  治安管理处罚法: {version: 2025-06-27, in_force: 2026-01-01}
revised_not_shipped:
  治安管理处罚法: {version: 2025-06-27, in_force: 2026-01-01, note: 只按名称引用。}
"""

REVIEW_LAW = ("# 中华人民共和国行政复议法\n\n<!-- INFO END -->\n\n"
              "第二十条 ……可以自知道或者应当知道该行政行为之日起六十日内提出行政复议申请。\n")


def entry(id: str, topic: str, question: str, basis: str, reviewed: str, answer: str = "先申请。") -> str:
    variants = ", ".join(f"{question}说法{i}" for i in range(5))
    return textwrap.dedent(f"""\
        - id: {id}
          topic: {topic}
          question: {question}
          variants: [{variants}]
          answer: {answer}
          basis: [{basis}]
          next_step: 可以找村调委会，或到{{office_name}}咨询（电话{{office_phone}}）。
          reviewed: {reviewed}
        """)


def knowledge(tmp_path: Path, faq: str, currency: str | None = CURRENCY, laws: dict[str, str] | None = None) -> Path:
    root = write_tiny_kb(tmp_path / "knowledge", faq={"zz.yaml": faq})  # only these entries
    for name, text in {"行政复议法(2023-09-01).md": REVIEW_LAW, **(laws or {})}.items():
        (root / "laws" / name).write_text(text, encoding="utf-8")
    if currency is not None:
        (root / "law_currency.yaml").write_text(currency, encoding="utf-8")
    return root


def due_ids(root: Path) -> dict[str, list[tuple[str, str]]]:
    """entry id → [(law, kind)] of what review-due lists."""
    return {d.entry.id: [(r.law, r.kind) for r in d.reasons] for d in review_due(load_knowledge(root))}


def test_an_entry_reviewed_before_a_cited_law_came_into_force_is_listed_one_reviewed_after_is_not(
        tmp_path: Path) -> None:
    root = knowledge(tmp_path, entry("old-answer", "marriage.divorce_procedure", "协议离婚老说法？", "民法典第1076条",
                                     "2020-12-01")
                     + entry("new-answer", "marriage.divorce_procedure", "协议离婚新说法？", "民法典第1076条",
                             "2021-01-02"))
    due = due_ids(root)
    assert due["old-answer"] == [("民法典", "cited")]
    assert "new-answer" not in due
    [item] = [d for d in review_due(load_knowledge(root)) if d.entry.id == "old-answer"]
    [reason] = item.reasons
    assert (reason.version, str(reason.in_force)) == ("2020-05-28", "2021-01-01")
    assert "2021-01-01施行" in reason.why and "2020-12-01" in reason.why and reason.citations == ("民法典第1076条",)


def test_a_law_added_to_laws_after_the_review_makes_the_entries_on_its_topics_due(tmp_path: Path) -> None:
    """行政复议法 was in force since 2024 but only shipped on 2026-12-06: a 2026-11-29 review could not use it."""
    root = knowledge(tmp_path, entry("boundary-old", "land.homestead", "宅基地边界老说法？", "土地管理法第62条",
                                     "2026-11-29")
                     + entry("boundary-new", "land.homestead", "宅基地边界新说法？", "行政复议法第20条", "2026-12-06"))
    due = due_ids(root)
    assert due["boundary-old"] == [("行政复议法", "topic")]
    assert "boundary-new" not in due
    why = review_due(load_knowledge(root))[0].reasons[0].why
    assert "2026-12-06才收入条文库" in why and "宅基地" in why


def test_a_citation_of_a_version_a_newer_shipped_file_replaces_is_listed(tmp_path: Path) -> None:
    old = "# 某法\n\n<!-- INFO END -->\n\n第一条 旧的说法。\n\n第二条 只有旧文本才有这一条。\n"
    new = "# 某法\n\n2025年1月1日 施行\n\n<!-- INFO END -->\n\n第一条 新的说法。\n"
    currency = CURRENCY.replace("texts:\n", "texts:\n  某法(2020-01-01).md: {in_force: 2020-06-01}\n"
                                           "  某法(2024-10-01).md: {added: 2025-02-01}\n", 1)
    root = knowledge(tmp_path, entry("checked-on-old", "labor.wage_arrears", "某法老说法？", "某法第1条", "2024-12-01")
                     + entry("checked-on-new", "labor.wage_arrears", "某法新说法？", "某法第1条", "2025-03-01"),
                     currency=currency,
                     laws={"某法(2020-01-01).md": old, "某法(2024-10-01).md": new})
    kbase = load_knowledge(root)
    article = kbase.laws.resolve_citation("某法第1条")
    assert article is not None and article.text == "新的说法。" and article.source == "某法(2024-10-01).md"
    due = due_ids(root)
    assert due["checked-on-old"] == [("某法", "replaced")]
    assert "checked-on-new" not in due
    reason = review_due(kbase)[0].reasons[0]
    assert "2020-01-01的文本" in reason.why and "2024-10-01的新文本" in reason.why and "某法第1条" in reason.why
    # an article only the replaced text has no longer resolves
    gone = entry("gone", "labor.wage_arrears", "某法第二条说法？", "某法第2条", "2025-03-01")
    (root / "faq" / "zz.yaml").write_text(gone, encoding="utf-8")
    assert any("某法 has no article 2 in laws/ (current text: 2024-10-01)" in p.message
               for p in check_knowledge(root).problems)


def test_an_entry_resting_on_a_revised_text_that_is_not_shipped_is_listed_with_the_reason(tmp_path: Path) -> None:
    """Cited by name, or only named in the answer: it cannot be checked article by article, whatever `reviewed` says."""
    root = knowledge(tmp_path, entry("cites-it", "service.mediation", "打架派出所咋处理？", "治安管理处罚法",
                                     "2026-12-06")
                     + entry("names-it", "land.homestead", "占地打人咋处理？", "土地管理法第62条", "2026-12-06",
                             answer="打人的依照治安管理处罚法处罚。")
                     + entry("unrelated", "land.homestead", "宅基地咋批？", "土地管理法第62条", "2026-12-06"))
    due = due_ids(root)
    assert due["cites-it"] == [("治安管理处罚法", "unshipped")]
    assert due["names-it"] == [("治安管理处罚法", "unshipped")]
    assert "unrelated" not in due
    reason = review_due(load_knowledge(root))[0].reasons[0]
    assert (reason.version, str(reason.in_force)) == ("2025-06-27", "2026-01-01")
    assert "新文本自2026-01-01施行" in reason.why and "无法逐条核对" in reason.why


def test_an_entry_on_a_topic_touched_by_an_unshipped_revision_reviewed_before_it_took_effect_is_listed(
        tmp_path: Path) -> None:
    root = knowledge(tmp_path, entry("before", "service.mediation", "调解老说法？", "", "2025-12-31")
                     + entry("after", "service.mediation", "调解新说法？", "", "2026-01-01"))
    due = due_ids(root)
    assert due["before"] == [("治安管理处罚法", "topic")]
    assert "after" not in due


def test_kb_check_warns_and_review_due_lists_the_same_entries(tmp_path: Path) -> None:
    root = knowledge(tmp_path, entry("boundary-old", "land.homestead", "宅基地边界老说法？", "土地管理法第62条",
                                     "2026-11-29"))
    runner = CliRunner()
    check = runner.invoke(kb, ["check", "--dir", str(root)])
    assert f"{root / 'faq' / 'zz.yaml'}:1: boundary-old: 需要复核" in check.stderr
    human = runner.invoke(kb, ["review-due", "--dir", str(root)])
    assert human.exit_code == 0
    assert "需要复核的问答：1 条" in human.stdout and "宅基地边界老说法？" in human.stdout
    out = runner.invoke(kb, ["review-due", "--json", "--dir", str(root)])
    assert out.exit_code == 0
    [item] = json.loads(out.stdout)
    assert {k: item[k] for k in ("entry_id", "file", "line", "reviewed", "topic")} == {
        "entry_id": "boundary-old", "file": "faq/zz.yaml", "line": 1, "reviewed": "2026-11-29",
        "topic": "land.homestead"}
    assert item["question"] == "宅基地边界老说法？"
    [reason] = item["reasons"]
    assert {k: reason[k] for k in ("law", "version", "in_force", "kind")} == {
        "law": "行政复议法", "version": "2023-09-01", "in_force": "2024-01-01", "kind": "topic"}
    assert reason["why"]


def test_nothing_due_prints_so_and_an_empty_json_list(tmp_path: Path) -> None:
    root = knowledge(tmp_path, entry("fresh", "land.homestead", "宅基地边界新说法？", "行政复议法第20条", "2026-12-06"))
    runner = CliRunner()
    assert "没有需要复核的问答" in runner.invoke(kb, ["review-due", "--dir", str(root)]).stdout
    assert json.loads(runner.invoke(kb, ["review-due", "--json", "--dir", str(root)]).stdout) == []


def test_every_shipped_text_needs_a_version_and_an_in_force_date(tmp_path: Path) -> None:
    currency = (CURRENCY.replace("  土地管理法(2019-08-26).md: {in_force: 2020-01-01}\n", "")
                .replace("  刑法.md: {version: 2023-12-29, in_force: 2024-03-01}\n",
                         "  刑法.md: {in_force: 2024-03-01}\n  婚姻法(2001-04-28).md: {in_force: 2001-04-28}\n")
                .replace("touches:\n", "touches:\n  不存在的法: [land.homestead]\n  民法典: [no.such]\n"))
    root = knowledge(tmp_path, entry("x", "land.homestead", "宅基地说法？", "土地管理法第62条", "2026-12-06"),
                     currency=currency,
                     laws={"某解释(2022-04-24).md": "# 某解释\n\n2022年5月1日 施行\n\n<!-- INFO END -->\n\n"
                                                 "第一条 内容。\n"})
    messages = [str(p) for p in check_knowledge(root).problems]
    assert f"{root / 'laws/土地管理法(2019-08-26).md'}:1: no in-force date (the header has no “……施行” line): add " \
           f"it under texts: in law_currency.yaml" in messages
    assert any("texts: 婚姻法(2001-04-28).md is not a file in laws/" in m for m in messages)
    assert any("touches: unknown law '不存在的法'" in m for m in messages)
    assert any("touches: 民法典: unknown topic(s) no.such" in m for m in messages)
    assert any(m.endswith("no version (the file name has no date): add it under texts: in law_currency.yaml")
               and "刑法.md" in m for m in messages)
    assert not any("某解释" in m for m in messages)  # the header's 施行 line is enough
    assert load_knowledge(root).entries  # none of this stops the bot


def test_without_law_currency_yaml_nothing_is_due_and_check_says_so(tmp_path: Path) -> None:
    root = knowledge(tmp_path, entry("boundary-old", "land.homestead", "宅基地边界老说法？", "土地管理法第62条",
                                     "2020-01-01"), currency=None)
    report = check_knowledge(root)
    assert report.due == ()
    assert any("law_currency.yaml: missing" in w for w in report.warnings)


# -- the back-office: 知识库 → 需要复核的问答 ------------------------------------------------------
browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


@support.sqlite_only
async def test_the_knowledge_page_lists_the_answers_due_for_review_by_their_titles(
        client: Any, browsers: Any, knowledge_holder: Any) -> None:
    kbase = knowledge_holder.current.kb
    due = review_due(kbase)
    assert due, "the shipped knowledge rests on revised texts that are not shipped (治安管理处罚法 …)"
    await add_staff(client, "chief", "admin", name="乡司法所")
    chief = await browsers("chief")
    status, page = await chief.get("/admin/knowledge")
    assert status == 200 and "需要复核的问答" in page
    for item in due:
        assert html.escape(item.entry.question) in page
        assert item.entry.id not in page  # titles, never slugs
        for reason in item.reasons:
            assert html.escape(reason.why) in page


# -- the shipped knowledge ---------------------------------------------------------------------
def test_the_shipped_knowledge_is_current_but_for_revised_texts_that_are_not_shipped() -> None:
    """After the 2026-12 review only entries resting on 治安管理处罚法/婚姻登记条例/食品安全法 (2025) are due."""
    kbase = load_knowledge(SHIPPED)
    assert kbase.currency.enabled and len(kbase.entries) >= 170
    due = review_due(kbase)
    assert due
    for item in due:
        assert {r.kind for r in item.reasons} == {"unshipped"}, item.entry.id
        assert {r.law for r in item.reasons} <= set(kbase.currency.revised), item.entry.id
    assert check_knowledge(SHIPPED).problems == ()


def test_every_shipped_text_has_a_version_and_an_in_force_date() -> None:
    kbase = load_knowledge(SHIPPED)
    for law, texts in kbase.currency.versions.items():
        for text in texts:
            assert text.version and text.in_force, (law, text.files)
    for law, in_force in (("行政复议法", "2024-01-01"), ("农村集体经济组织法", "2025-05-01"), ("民法典", "2021-01-01"),
                          ("最高人民法院关于适用《民法典》婚姻家庭编的解释（二）", "2025-02-01")):
        current = kbase.currency.current(law)
        assert current is not None and str(current.in_force) == in_force, law
