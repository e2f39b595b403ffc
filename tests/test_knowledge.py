"""Loading and validating knowledge/: what loads, what stops a reload, what `kb check` flags."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from bot.knowledge import DISCLAIMER, KnowledgeError, check_knowledge, load_knowledge
from tests.test_knowledge_tiny import ENTRIES, entry_yaml, write_tiny_kb


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_kb(tmp_path / "knowledge")


def with_faq(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    """The tiny knowledge, plus one more FAQ file."""
    root = write_tiny_kb(tmp_path / "knowledge")
    (root / "faq" / name).write_text(text, encoding="utf-8")
    return root


def load_errors(root: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(root)
    return info.value.messages


def check_messages(root: Path) -> list[str]:
    return [str(p) for p in check_knowledge(root).problems]


# -- what loads ----------------------------------------------------------------------
def test_entries_topics_and_site_are_loaded_with_their_source_lines(tiny: Path) -> None:
    kb = load_knowledge(tiny)
    entry = kb.by_id["divorce-spouse-refuses"]
    assert entry.topic == "marriage.divorce_procedure"
    assert entry.variants[0] == "他不同意离婚咋弄"
    assert entry.keywords == ("起诉离婚",)
    assert entry.basis == ("民法典第1079条",)
    assert entry.reviewed == dt.date(2026, 11, 1)
    assert entry.urgent is False and entry.details is None
    assert (entry.source_file, entry.source_line) == ("faq/family.yaml", 10)
    assert kb.by_id["homestead-application"].source_line == 2  # after the comment line
    assert kb.topics["land.homestead"].name == "宅基地"
    assert kb.site["office_name"] == "观音寺乡司法所"
    assert kb.laws.lookup("民法典", 1079) is not None


def test_the_knowledge_base_is_immutable(tiny: Path) -> None:
    kb = load_knowledge(tiny)
    with pytest.raises(dataclasses.FrozenInstanceError):
        kb.entries = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        kb.entries[0].answer = "x"  # type: ignore[misc]


def test_an_answer_is_rendered_with_basis_next_step_and_one_disclaimer(tiny: Path) -> None:
    kb = load_knowledge(tiny)
    text = kb.render_answer(kb.by_id["divorce-by-agreement"])
    assert text == (
        "双方都愿意离婚的，可以一起到婚姻登记机关申请协议离婚。\n依据：民法典第1076条"
        "\n\n下一步：可以找村调委会，或到观音寺乡司法所咨询（电话0375-0000000）。\n" + DISCLAIMER
    )
    assert "依据" not in kb.render_answer(kb.by_id["dibao-apply"])  # basis: []


def test_details_and_placeholders(tmp_path: Path) -> None:
    root = with_faq(tmp_path, """\
- id: with-details
  topic: service.mediation
  question: 调解要钱吗？
  variants: [调解收费不, 调解要钱不, 说和要钱不, 找村里调解掏钱不, 调解免费不]
  answer: 人民调解不收费。
  details: 详情请到{office_address}问，{office_hours}。
  basis: [治安管理处罚法]
  next_step: 找{office_name}。
  urgent: true
  reviewed: 2026-11-01
""")
    kb = load_knowledge(root)
    entry = kb.by_id["with-details"]
    assert entry.urgent is True
    assert kb.render_details(entry) == "详情请到乡政府院内问，工作日。"
    assert kb.render_details(kb.by_id["dibao-apply"]) is None
    assert kb.fill("{township}的{unknown}") == "观音寺乡的{unknown}"


def test_numbers_may_be_keywords(tmp_path: Path) -> None:
    root = with_faq(tmp_path, entry_yaml("hotline", "service.mediation", "12348是什么电话？",
                                         "12348, 幺二三四八, 免费法律电话, 法律热线, 打哪个电话问法律", "12348, 热线",
                                         "12348是公共法律服务热线。", ""))
    assert load_knowledge(root).by_id["hotline"].keywords == ("12348", "热线")


def test_urgent_words_are_read_from_urgent_yaml(tiny: Path) -> None:
    kb = load_knowledge(tiny)
    assert kb.is_urgent("俺真不想活了")
    assert kb.urgent_kind("他現在正在打我！") == "violence_now"  # traditional characters fold too
    assert not kb.is_urgent("现在能不能申请低保")
    assert "不想活" in kb.urgent_terms


# -- what stops loading (the app keeps its old index) -------------------------------------
def test_a_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = with_faq(tmp_path, "- id: x\n  topic: [unclosed\n  question: y\n")
    messages = load_errors(root)
    assert len(messages) == 1
    assert messages[0].startswith(f"{root / 'faq' / 'bad.yaml'}:") and "YAML syntax" in messages[0]


def test_a_duplicate_id_points_at_both_places(tmp_path: Path) -> None:
    root = with_faq(tmp_path, "\n" + entry_yaml(*ENTRIES[0]), name="zz.yaml")  # files load in name order
    (message,) = load_errors(root)
    assert message == (f"{root / 'faq' / 'zz.yaml'}:2: duplicate id 'divorce-by-agreement' "
                       "(first at faq/family.yaml:1)")


@pytest.mark.parametrize(("change", "expected"), [
    (("topic: marriage.divorce_procedure", "topic: marriage.nope"), ":3: unknown topic 'marriage.nope'"),
    (("id: divorce-by-agreement", "id: Divorce_1"), ":2: id 'Divorce_1' must match [a-z0-9-]+"),
    (("answer: 双方", "answer: 找{office_fax}，双方"), ":7: answer: unknown placeholder {office_fax}"),
    (("answer: 双方", "answer: 见}双方"), ":7: answer: stray brace"),
    (("reviewed:", "reviewd:"), ":10: unknown key 'reviewd'"),
    (("  question: 两口子都同意离婚，协议离婚咋办？\n", ""), ":2: `question` is required and must be text"),
    (("keywords: [协议离婚, 冷静期]", "keywords: 协议离婚"), ":6: `keywords` must be a list of texts"),
    (("keywords: [协议离婚, 冷静期]", "keywords: [协议离婚]\n  keywords: [冷静期]"), ":7: duplicate key 'keywords'"),
])
def test_broken_entries_stop_loading_with_file_line_messages(tmp_path: Path, change: tuple[str, str],
                                                             expected: str) -> None:
    text = "# one entry\n" + entry_yaml(*ENTRIES[0]).replace(*change)
    root = write_tiny_kb(tmp_path / "knowledge",
                         faq={"bad.yaml": text, "rest.yaml": "".join(entry_yaml(*e) for e in ENTRIES[1:])})
    messages = load_errors(root)
    assert any(m.startswith(str(root / "faq" / "bad.yaml")) and expected in m for m in messages), messages


def test_a_file_that_is_not_a_list_and_an_empty_faq_stop_loading(tmp_path: Path) -> None:
    root = with_faq(tmp_path, "id: x\n")
    assert load_errors(root) == [f"{root / 'faq' / 'bad.yaml'}:1: expected a YAML list of entries (- id: …)"]
    empty = write_tiny_kb(tmp_path / "empty", faq={})
    assert load_errors(empty) == [f"{empty / 'faq'}:1: no FAQ entries found in faq/*.yaml"]


def test_broken_word_tables_stop_loading(tmp_path: Path) -> None:
    root = write_tiny_kb(tmp_path / "knowledge", synonyms="synonyms:\n  我: [俺]\n  咱: [俺]\ntopic_gates:\n"
                                                         "  no.such: [x]\n")
    messages = load_errors(root)
    assert f"{root / 'synonyms.yaml'}:3: synonyms: '俺' is already a variant of '我'" in messages
    assert f"{root / 'synonyms.yaml'}:5: topic_gates: unknown topic 'no.such'" in messages
    bad_urgent = write_tiny_kb(tmp_path / "u", urgent="suicide:\n  all: [\"不想活\"]\n")
    assert "needs two or more non-empty groups" in load_errors(bad_urgent)[0]


def test_wrong_role_words_are_normalised_and_checked(tmp_path: Path) -> None:
    from tests.test_knowledge_tiny import SYNONYMS

    roles = "wrong_role:\n  wage-arrears-complain: [俺欠*工钱, 欠工人]\n  no-such-entry: [x]\n"
    root = write_tiny_kb(tmp_path / "knowledge", synonyms=SYNONYMS + roles)
    kb = load_knowledge(root)  # an unknown entry id does not stop loading (entries come and go)
    assert kb.tables.wrong_role["wage-arrears-complain"] == ("我欠*工资", "欠工人")  # synonyms applied, `*` kept
    report = check_knowledge(root)
    assert f"{root / 'synonyms.yaml'}:1: wrong_role: unknown entry 'no-such-entry'" in [str(p) for p in report.problems]
    broken = write_tiny_kb(tmp_path / "broken", synonyms=SYNONYMS + "wrong_role:\n  wage-arrears-complain: [欠*]\n")
    assert any("has an empty part around `*`" in m for m in load_errors(broken))


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    assert load_errors(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere' / '.'}:1: knowledge directory does not exist"]


# -- what `kb check` adds --------------------------------------------------------------
def test_the_tiny_knowledge_only_fails_coverage(tiny: Path) -> None:
    report = check_knowledge(tiny)
    assert report.kb is not None
    assert {p.level for p in report.problems} == {"check"}
    assert all("entries, at least 3 needed" in p.message for p in report.problems)
    assert f"{tiny / 'topics.yaml'}:3: topic marriage.divorce_procedure has 2 entries, at least 3 needed" in [
        str(p) for p in report.problems]
    assert report.warnings and "EXAMPLE values" in report.warnings[0]


def test_content_rules_fail_check_but_not_loading(tmp_path: Path) -> None:
    root = with_faq(tmp_path, """\
- id: few-variants
  topic: land.homestead
  question: 一户一宅是啥意思？
  variants: [一户一宅, 能有两处宅基地不]
  answer: 一户只能有一处宅基地。
  basis: [民法典第1080条, 土地管理法第六十二条, 治安管理处罚法第3条, 婚姻法第32条, 中华人民共和国土地管理法]
  next_step: 多问问。
  reviewed: 2026-11-01
- id: copies-a-variant
  topic: land.homestead
  question: 宅基地找谁批？
  variants: [批宅子要啥手续, 庄基地咋批, 宅基地審批, 宅基地审批, 宅基地申请去哪]
  answer: 向乡政府申请。以上为普法解答，不构成律师意见。
  basis: []
  next_step: 到{office_name}问。
""", name="zz.yaml")
    load_knowledge(root)  # loads: none of this breaks the bot
    messages = sorted(m.split(": ", 1)[1] for m in check_messages(root) if "zz.yaml" in m)
    assert messages == sorted([
        "few-variants: 2 variants, at least 5 needed",
        "few-variants: next_step does not say who to go to (村调委会, {office_name}, 12348, 法院 …)",
        "few-variants: basis '民法典第1080条': 民法典 has no article 1080 in laws/",
        "few-variants: basis '土地管理法第六十二条': write the article number in Arabic numerals, e.g. 第1079条",
        "few-variants: basis '治安管理处罚法第3条': 治安管理处罚法 is not shipped in laws/: cite it by name only",
        "few-variants: basis '婚姻法第32条': unknown law '婚姻法': not in laws/",
        "few-variants: basis '中华人民共和国土地管理法': write the law's name as in laws/: 土地管理法",
        "copies-a-variant: `reviewed` date is missing",
        "copies-a-variant: answer must not contain the disclaimer or the next step (the bot adds them)",
        "copies-a-variant: phrasing '批宅子要啥手续' is also in homestead-application (faq/other.yaml:2)",
        "copies-a-variant: phrasing '庄基地咋批' is also in homestead-application (faq/other.yaml:2)",
        "copies-a-variant: phrasing '宅基地审批' repeats another one of this entry",
    ])


def test_an_answer_over_300_characters_after_filling_fails_check(tmp_path: Path) -> None:
    answer = "长" * 295 + "{office_name}"  # 295 + 7 = 302 characters once filled
    variants = "宅基地能占多大, 盖房能占多少地, 宅子面积有规定不, 庄基地多大, 一处宅基地多大面积"
    root = with_faq(tmp_path, entry_yaml("too-long", "land.homestead", "宅基地多大？", variants, "", answer,
                                         "土地管理法第62条"))
    assert any("too-long: answer is 302 characters after filling (max 300)" in m for m in check_messages(root))
