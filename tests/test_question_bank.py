"""The question bank (knowledge/question_bank.yaml): villagers' labelled questions that give a topic
the words people really use for it, without ever becoming an answer of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import KnowledgeError, check_knowledge, load_knowledge
from bot.knowledge.loader import HELD_OUT_SETS
from bot.matcher import Matcher
from bot.matcher.evaluate import evaluate, evaluate_unseen, parse_tsv, unseen_matchers
from tests.test_knowledge_tiny import write_tiny_kb

ROOT = Path(__file__).resolve().parent.parent

# the tiny FAQ's divorce entries know 离婚/协议/起诉 … but not how this villager says it
STORY = "俺家那口子天天喝酒耍钱不着家，这日子真过不下去了"
BANK = (
    "marriage.divorce_procedure\t那口子天天喝酒耍钱 日子过不下去了 想跟他散伙\n"
    "marriage.divorce_procedure\t男人耍钱不着家 俺想离\n"
    "land.homestead|marriage.divorce_procedure\t离了婚宅子归谁\n"  # two topics: no evidence for either
    "-\t耍钱输了房子咋办\n"  # out of scope: skipped
    "social.assistance\t家里穷得揭不开锅 能吃低保不\n"
)


def bank_dir(root: Path, *, sets: str = "[eval/cal.tsv]", bank: str = BANK) -> Path:
    knowledge = write_tiny_kb(root)
    (knowledge / "eval").mkdir(exist_ok=True)
    (knowledge / "eval" / "cal.tsv").write_text(bank, encoding="utf-8")
    (knowledge / "question_bank.yaml").write_text(f"sets: {sets}\n", encoding="utf-8")
    return knowledge


def test_a_villager_who_says_it_the_banks_way_gets_the_right_topic(tmp_path: Path) -> None:
    plain = Matcher(load_knowledge(write_tiny_kb(tmp_path / "plain")))
    banked = Matcher(load_knowledge(bank_dir(tmp_path / "banked")))
    before, after = plain.match(STORY), banked.match(STORY)
    assert before.outcome == "handoff"  # nothing close enough: "转给工作人员"
    assert after.outcome == "answer" and after.entry is not None
    assert after.entry.topic == "marriage.divorce_procedure"
    # the bank adds words to the topic, not to an entry: the topic feature rose, the entry one did not
    before_f = {e.id: f for e, _, f in plain.rank(after.normalized, limit=10)}
    after_f = {e.id: f for e, _, f in banked.rank(after.normalized, limit=10)}
    assert after_f[after.entry.id].topic > before_f[after.entry.id].topic
    assert after_f[after.entry.id].entry == pytest.approx(before_f[after.entry.id].entry)


def test_single_topic_and_out_of_scope_lines_are_read(tmp_path: Path) -> None:
    kb = load_knowledge(bank_dir(tmp_path / "k"))
    assert dict(kb.tables.topic_examples) == {
        "marriage.divorce_procedure": ("那口子天天喝酒耍钱 日子过不下去了 想跟他散伙", "男人耍钱不着家 俺想离"),
        "-": ("耍钱输了房子咋办",),  # out of scope: one document of what the bot does not answer
        "social.assistance": ("家里穷得揭不开锅 能吃低保不",),
    }
    # a bank question is never an answer by itself: no entry has it as a phrasing
    assert all("男人耍钱不着家 俺想离" not in e.phrasings for e in kb.entries)


def test_an_errand_like_the_banks_out_of_scope_questions_is_not_answered_confidently(tmp_path: Path) -> None:
    """"离婚证丢了咋补办" is an errand at the civil affairs office, not a divorce question: with out-of-scope
    questions like it in the bank, the confidence model's ``oos`` feature takes the bot's certainty away."""
    bank = ("marriage.divorce_procedure\t两口子过不下去了想离\n"
            "-\t离婚证丢了去哪补办\n-\t结婚证丢了咋补\n-\t离婚证上的照片能换不\n")
    plain = Matcher(load_knowledge(write_tiny_kb(tmp_path / "plain")))
    banked = Matcher(load_knowledge(bank_dir(tmp_path / "banked", bank=bank)))
    errand = "离婚证弄丢了上哪补"
    assert plain.match(errand).confidence > 0.5
    result = banked.match(errand)
    assert result.outcome != "answer" and result.confidence < 0.1
    assert banked.rank(result.normalized)[0][2].oos > 0.3
    # a real divorce question is answered as before
    asked = banked.match("两口子都同意离婚咋办")
    assert asked.outcome == "answer" and asked.entry is not None and asked.entry.id == "divorce-by-agreement"


@pytest.mark.parametrize("held_out", HELD_OUT_SETS)
def test_a_held_out_set_is_refused(tmp_path: Path, held_out: str) -> None:
    knowledge = bank_dir(tmp_path / "k", sets=f"[eval/cal.tsv, {held_out}]")
    (knowledge / held_out).write_text("social.assistance\t低保咋申请\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="held-out set"):
        load_knowledge(knowledge)


@pytest.mark.parametrize(("sets", "bank", "says"), [
    ("[eval/missing.tsv]", BANK, "no such file"),
    ("[../outside.tsv]", BANK, "no such file"),
    ("eval/cal.tsv", BANK, "list of TSV file paths"),
    ("[eval/cal.tsv]", "marriage.nonsense\t离婚咋办\n", "unknown topic"),
    ("[eval/cal.tsv]", "just one column\n", "expected topic<TAB>question"),
])
def test_a_broken_bank_is_reported_with_its_file(tmp_path: Path, sets: str, bank: str, says: str) -> None:
    (tmp_path / "outside.tsv").write_text("social.assistance\t低保咋申请\n", encoding="utf-8")
    report = check_knowledge(bank_dir(tmp_path / "k", sets=sets, bank=bank))
    assert [p for p in report.problems if says in p.message], report.problems


def test_a_missing_set_fails_the_check_but_the_bot_still_loads(tmp_path: Path) -> None:
    knowledge = bank_dir(tmp_path / "k", sets="[eval/cal.tsv, eval/gone.tsv]")
    assert [p.level for p in check_knowledge(knowledge).problems if "gone.tsv" in p.message] == ["check"]
    assert load_knowledge(knowledge).tables.topic_examples  # the other set is still read


def test_a_symlinked_eval_directory_is_read(tmp_path: Path) -> None:
    """The back-office tests (and some deployments) link knowledge/ item by item."""
    real = bank_dir(tmp_path / "real")
    linked = tmp_path / "linked"
    linked.mkdir()
    for item in real.iterdir():
        (linked / item.name).symlink_to(item)
    assert load_knowledge(linked).tables.topic_examples == load_knowledge(real).tables.topic_examples


def test_a_banked_question_is_evaluated_by_an_index_that_has_not_seen_it(tmp_path: Path) -> None:
    kb = load_knowledge(bank_dir(tmp_path / "k"))
    items = parse_tsv(BANK + "marriage.divorce_procedure\t两口子都同意离婚咋办\n")
    matchers = unseen_matchers(kb, items)
    for item, matcher in zip(items, matchers, strict=True):
        banked = matcher.kb.tables.topic_examples
        assert all(item.question not in questions for questions in banked.values())
    assert matchers[-1].kb is kb  # not in the bank: the whole knowledge
    # memorised vs unseen: the bank's own story is answered from memory, not necessarily unseen
    assert evaluate(Matcher(kb), items).metrics()["top1"] >= evaluate_unseen(kb, items).metrics()["top1"]


def test_the_shipped_bank_reads_calibration_sets_only() -> None:
    """The held-out sets and the fresh reach phrasings are never indexed."""
    text = (ROOT / "knowledge" / "question_bank.yaml").read_text(encoding="utf-8")
    listed = [line.split("-", 1)[1].strip() for line in text.splitlines() if line.startswith("  - ")]
    assert listed and not set(listed) & {*HELD_OUT_SETS, "eval/reach_cal.tsv"}
    kb = load_knowledge(ROOT / "knowledge")
    bank = kb.tables.topic_examples
    assert sum(len(q) for t, q in bank.items() if t != "-") > 2000 and len(bank["-"]) > 300
