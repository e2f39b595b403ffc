"""The FAQ matcher, as a villager meets it: what they type → what the bot decides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.knowledge import KnowledgeBase, load_knowledge
from bot.matcher import Matcher, MatcherConfig, Normalizer, fold, pinyin
from tests.test_knowledge_tiny import ENTRIES, entry_yaml, write_tiny_kb


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return load_knowledge(write_tiny_kb(tmp_path_factory.mktemp("tiny") / "knowledge"))


@pytest.fixture(scope="module")
def matcher(kb: KnowledgeBase) -> Matcher:
    return Matcher(kb)


# -- normalisation ---------------------------------------------------------------------
def test_fold_handles_width_case_script_and_punctuation() -> None:
    assert fold("俺兩口子，過不下去了！！ＡＢＣ １２😡") == "俺两口子过不下去了abc12"


def test_synonyms_are_one_pass_longest_first_and_fillers_go() -> None:
    n = Normalizer(
        {"俺": "我", "咋办": "怎么办", "咋": "怎么", "庄基地": "宅基地", "宅基": "宅基地"},
        ("请问", "我想问一下", "那个"),
    )
    assert n.normalize("請問，俺想問一下：那個庄基地咋辦？") == "宅基地怎么办"
    assert n.normalize("咋申请宅基地") == "怎么申请宅基地"  # 宅基 does not eat into 宅基地
    assert n.apply_synonyms("俺咋办") == "我怎么办"


def test_homophone_typos_sound_the_same() -> None:
    for typed, meant in (("宅急地", "宅基地"), ("欠新", "欠薪"), ("低宝", "低保"), ("离昏", "离婚"), ("攻伤", "工伤")):
        assert pinyin(typed) == pinyin(meant), typed
    assert pinyin("打12348") == ["da", "12348"]
    assert pinyin("找知识") == pinyin("找姿势")  # zh/z folded, as fuzzy-pinyin keyboards and dialects mix them
    assert pinyin("留守") == pinyin("牛手") and pinyin("老人") == pinyin("脑人")  # n/l, as Henan speech merges them


# -- a conversation ------------------------------------------------------------------------
CONVERSATION = [
    ("俺俩都同意离了，去哪办手续？", "answer", "divorce-by-agreement"),  # a variant, dialect and punctuation
    ("两口子商量好了要离婚咋整", "answer", "divorce-by-agreement"),
    ("男人不同意离婚俺咋办", "answer", "divorce-spouse-refuses"),
    ("宅急地咋申请", "answer", "homestead-application"),  # typed by sound
    ("你好，宅基地咋申请", "answer", "homestead-application"),  # the greeting is a filler here
    ("城里人能买村里的房子不", "answer", "homestead-sale"),
    ("老板欠俺工钱不给咋办", "answer", "wage-arrears-complain"),
    ("欠新去哪告", "answer", "wage-arrears-complain"),
    ("低宝咋申请", "answer", "dibao-apply"),
    ("跟邻居闹矛盾了找谁说和", "answer", "mediation-apply"),
    ("离婚", "clarify", "divorce-by-agreement"),  # too short to settle: pick one of three
    ("醫保報銷要啥材料", "clarify", "dibao-apply"),  # looks like 低保 but has no 低保 word: never an answer
    ("今天天气咋样", "handoff", None),
    ("养老保险一年交多少", "handoff", None),
]


@pytest.mark.parametrize(("said", "outcome", "entry_id"), CONVERSATION)
def test_what_the_villager_says_and_what_the_bot_decides(
    matcher: Matcher, said: str, outcome: str, entry_id: str | None
) -> None:
    result = matcher.match(said)
    assert result.outcome == outcome, (said, result)
    if entry_id is not None:
        assert result.entry is not None and result.entry.id == entry_id
    assert len(result.candidates) >= 3
    assert [c.score for c in result.candidates] == sorted((c.score for c in result.candidates), reverse=True)
    assert result.candidates[0].score == result.score
    assert not result.urgent and result.smalltalk is None


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        ("你好", "greeting"),
        ("在吗？", "greeting"),
        ("嗯", "greeting"),
        ("谢谢！", "thanks"),
        ("多谢多谢", "thanks"),
        ("菜单", "help"),
        ("你好，帮助", "help"),
        ("再见", "bye"),
        ("谢谢，再见", "bye"),
    ],
)
def test_small_talk_is_not_a_question(matcher: Matcher, said: str, kind: str) -> None:
    result = matcher.match(said)
    assert (result.outcome, result.smalltalk, result.entry, result.candidates) == ("smalltalk", kind, None, ())


@pytest.mark.parametrize(
    ("said", "kind"),
    [("我不想活了", "suicide"), ("他正在打我", "violence_now"), ("现在就动手了，离婚咋办", "violence_now")],
)
def test_urgent_messages_are_flagged_whatever_the_outcome(matcher: Matcher, said: str, kind: str) -> None:
    result = matcher.match(said)
    assert result.urgent and result.urgent_kind == kind


def test_nothing_to_match(matcher: Matcher) -> None:
    for said in ("？？", "😡", ""):
        result = matcher.match(said)
        assert (result.outcome, result.entry, result.candidates, result.score) == ("handoff", None, (), 0.0)
    assert matcher.match("ＡＢＣ").outcome == "handoff"


def test_the_result_says_what_it_compared(matcher: Matcher) -> None:
    result = matcher.match("請問，俺想問一下宅基地咋申請？")
    assert result.normalized == "宅基地怎么申请"
    assert result.reason == "confident"


def test_thresholds_are_configuration(kb: KnowledgeBase) -> None:
    strict = Matcher(kb, MatcherConfig(answer_threshold=1.01, offer_threshold=1.01))
    assert strict.match("宅急地咋申请").outcome == "clarify"
    lax = Matcher(kb, MatcherConfig(clarify_threshold=0.0))
    assert lax.match("今天天气咋样").outcome == "clarify"


def test_a_matcher_never_changes_and_a_reload_builds_a_new_one(tmp_path: Path, matcher: Matcher) -> None:
    with pytest.raises(AttributeError):
        matcher.config = MatcherConfig()  # type: ignore[misc]
    result = matcher.match("宅急地咋申请")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.outcome = "handoff"  # type: ignore[misc]
    # an editor adds an entry; the old matcher keeps answering from the old knowledge
    root = write_tiny_kb(
        tmp_path / "k",
        faq={
            "all.yaml": "".join(entry_yaml(*e) for e in ENTRIES)
            + entry_yaml(
                "homestead-area",
                "land.homestead",
                "宅基地能占多大面积？",
                "宅基地多大, 盖房能占多少地, 宅子面积有规定不, 庄基地面积多大, 一处宅基地多大面积",
                "宅基地面积",
                "宅基地面积按省里规定。",
                "土地管理法第62条",
            )
        },
    )
    fresh = Matcher(load_knowledge(root))
    assert fresh.match("宅基地能占多大面积").entry.id == "homestead-area"  # type: ignore[union-attr]
    assert matcher.match("宅基地能占多大面积").entry.id != "homestead-area"  # type: ignore[union-attr]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(alphabet=st.sampled_from("离婚宅基地低保欠薪咋办俺的了吗？！ 12ａb😡你好谢谢不想活"), max_size=40)
    | st.text(max_size=30)
)
def test_any_text_gets_a_well_formed_result(matcher: Matcher, text: str) -> None:
    result = matcher.match(text)
    assert result.outcome in ("answer", "clarify", "handoff", "smalltalk")
    assert 0.0 <= result.score <= 1.0
    if result.candidates:
        assert len(result.candidates) >= 3
        assert len({c.entry.id for c in result.candidates}) == len(result.candidates)
        assert all(0.0 <= c.score <= 1.0 for c in result.candidates)
    if result.outcome == "answer":
        assert result.entry is not None and result.entry is result.candidates[0].entry
    assert result.urgent == (result.urgent_kind is not None)


def test_clarify_choices_hold_at_most_two_entries_of_one_topic() -> None:
    from bot.knowledge.model import Entry
    from bot.matcher.core import Candidate, diversified

    def entry(i: int, topic: str) -> Entry:
        return Entry(
            id=f"e{i}",
            topic=topic,
            question=f"q{i}",
            variants=(),
            keywords=(),
            answer="a",
            details=None,
            basis=(),
            next_step="n",
            urgent=False,
            reviewed=None,
            source_file="f",
            source_line=i,
        )

    ranked = tuple(Candidate(entry(i, t), 1 - i / 10) for i, t in enumerate(["a", "a", "a", "b", "c"]))
    assert [c.entry.id for c in diversified(ranked)] == ["e0", "e1", "e3", "e2", "e4"]
    single = tuple(Candidate(entry(i, "a"), 1 - i / 10) for i in range(4))
    assert [c.entry.id for c in diversified(single)] == ["e0", "e1", "e2", "e3"]


# -- confidence, alternatives, roles (issue #14) -----------------------------------------------
def test_a_confident_answer_comes_alone_and_says_how_sure_it_is(matcher: Matcher) -> None:
    result = matcher.match("宅急地咋申请")
    assert (result.outcome, result.reason, result.alternatives) == ("answer", "confident", ())
    assert matcher.config.sure_threshold <= result.confidence <= 1.0


def test_a_fairly_sure_answer_offers_the_next_two_as_numbered_picks(kb: KnowledgeBase) -> None:
    # everything between the two thresholds is "fairly sure": the answer plus "不是这个？回复 2 或 3"
    fairly = Matcher(kb, MatcherConfig(answer_threshold=0.0, sure_threshold=1.01))
    result = fairly.match("俺想离婚，他不同意，咋办")
    assert (result.outcome, result.reason) == ("answer", "fairly sure")
    assert result.entry is not None and result.entry.id == "divorce-spouse-refuses"
    assert result.alternatives and len(result.alternatives) <= 2
    assert result.alternatives == result.candidates[1 : 1 + len(result.alternatives)]  # they are picks 2 and 3
    assert all(c.entry.id != result.entry.id for c in result.alternatives)


def test_alternatives_leave_out_topics_without_a_word_in_the_message(kb: KnowledgeBase) -> None:
    fairly = Matcher(kb, MatcherConfig(answer_threshold=0.0, sure_threshold=1.01))
    result = fairly.match("俺想离婚，他不同意，咋办")
    # 低保 has a topic gate (低保, 救助, 特困): never offered to someone asking about divorce
    assert all(c.entry.topic != "social.assistance" for c in result.alternatives)


def test_below_the_answer_threshold_the_villager_picks_from_three(kb: KnowledgeBase) -> None:
    timid = Matcher(kb, MatcherConfig(answer_threshold=1.01, offer_threshold=1.01))
    result = timid.match("宅急地咋申请")
    assert (result.outcome, result.reason, result.alternatives) == ("clarify", "unsure", ())
    assert 0.0 < result.confidence < 1.01


ROLES = """\
wrong_role:
  wage-arrears-complain: [我欠*工资, 欠工人]
"""


def test_a_word_of_the_other_side_of_a_mirror_blocks_a_confident_answer(tmp_path: Path) -> None:
    from tests.test_knowledge_tiny import SYNONYMS

    plain = Matcher(load_knowledge(write_tiny_kb(tmp_path / "plain")))
    roles = Matcher(load_knowledge(write_tiny_kb(tmp_path / "roles", synonyms=SYNONYMS + ROLES)))
    worker = "老板欠俺工钱不给咋办"
    boss = "俺欠工人工资不给了咋办"
    assert plain.match(worker).outcome == roles.match(worker).outcome == "answer"  # the worker still gets it
    assert plain.match(boss).outcome == "answer"  # without the table the boss got the worker's answer
    blocked = roles.match(boss)
    assert (blocked.outcome, blocked.reason) == ("clarify", "wrong role")
    assert blocked.entry is not None and blocked.entry.id == "wage-arrears-complain"  # still offered as a choice
    explained = {e.id: f for e, _, f in roles.rank(blocked.normalized)}
    assert explained["wage-arrears-complain"].role is False
    assert roles.rank(blocked.normalized)[0][1] < plain.rank(blocked.normalized)[0][1]  # and it ranks lower


def test_a_word_of_the_other_side_is_only_looked_for_within_one_clause(tmp_path: Path) -> None:
    from tests.test_knowledge_tiny import SYNONYMS

    roles = Matcher(load_knowledge(write_tiny_kb(tmp_path / "roles", synonyms=SYNONYMS + ROLES)))
    # "…欠工人" spans two clauses here: the worker is still the one asking
    worker = "俺是给老板干活的 他欠 工人们的工钱一直不给咋办"
    across = roles.match(worker)
    assert across.entry is not None and across.entry.id == "wage-arrears-complain"
    assert across.reason != "wrong role"
    assert "\n" in roles.role_text(worker, across.normalized)
    # within one clause it still blocks
    assert roles.match("俺欠工人工资不给了咋办").reason == "wrong role"


def test_a_near_tie_with_another_topic_always_offers_it(kb: KnowledgeBase) -> None:
    # sure of the answer, but another topic is (almost) as good: the villager gets both ways forward
    question = "工钱要不回来想找人评理"
    plain = Matcher(kb, MatcherConfig(answer_threshold=0.0, sure_threshold=0.0, tie_share=0.0)).match(question)
    assert (plain.outcome, plain.reason, plain.alternatives) == ("answer", "confident", ())
    tied = Matcher(kb, MatcherConfig(answer_threshold=0.0, sure_threshold=0.0, tie_share=1.01)).match(question)
    assert (tied.outcome, tied.reason) == ("answer", "fairly sure") and tied.alternatives
    assert tied.entry == plain.entry


def test_a_not_legal_word_makes_the_matcher_less_sure(tmp_path: Path) -> None:
    from tests.test_knowledge_tiny import SYNONYMS

    plain = Matcher(load_knowledge(write_tiny_kb(tmp_path / "plain")))
    table = SYNONYMS + "not_legal: [医保, 上户口]\n"
    listed = Matcher(load_knowledge(write_tiny_kb(tmp_path / "listed", synonyms=table)))
    question = "低保和医保能一起办不"
    with_word = listed.match(question)
    without = plain.match(question)
    assert with_word.entry == without.entry  # ranking is untouched: it is only a feature of the confidence
    ranked = listed.rank(with_word.normalized)
    assert listed.confidence_features(question, with_word.normalized, ranked)["not_legal"] == 1.0
    assert plain.confidence_features(question, without.normalized, plain.rank(without.normalized))["not_legal"] == 0.0
    assert with_word.confidence < without.confidence


def test_the_offer_model_answers_a_two_topic_question_with_two_more_to_pick(kb: KnowledgeBase) -> None:
    """"离婚了孩子归谁、房子怎么分": which topic comes first is unsure, that the right one is among the three is
    not — the offer model (its own probability, its own threshold) answers and offers the next two."""
    question = "俺俩都同意离了去哪办手续，老板欠俺工钱不给"
    unsure = MatcherConfig(answer_threshold=1.01, sure_threshold=1.01, offer_threshold=1.01)
    assert Matcher(kb, unsure).match(question).outcome == "clarify"
    offering = Matcher(kb, dataclasses.replace(unsure, offer_threshold=0.5)).match(question)
    assert (offering.outcome, offering.reason) == ("answer", "fairly sure")
    topics = {offering.candidates[0].entry.topic, *(c.entry.topic for c in offering.alternatives)}
    assert {"marriage.divorce_procedure", "labor.wage_arrears"} <= topics


def test_a_confidence_model_without_an_offer_model_never_offers() -> None:
    from bot.matcher.confidence import ConfidenceModel, shipped_model

    shipped = shipped_model().to_json()
    assert "offer" in shipped and ConfidenceModel.from_json(shipped).to_json() == shipped  # round trip
    old = {k: v for k, v in shipped.items() if k != "offer"}
    model = ConfidenceModel.from_json(old)
    assert model.offer_threshold > 1.0 and model.offer_probability({"score": 1.0}) == 0.0
    with pytest.raises(ValueError, match="unknown features"):
        ConfidenceModel.from_json({**shipped, "offer": {**shipped["offer"], "coefficients": {"shoe_size": 1.0}}})
