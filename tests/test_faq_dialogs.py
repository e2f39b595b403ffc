"""Conversations with the FAQ, as a villager has them: signed WeChat XML in, the reply out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.keys import SERVICES
from bot.storage.models import KnowledgeGap
from tests.phone import Phone, dialog

DISCLAIMER = "不构成律师意见"


async def gaps(client: Any) -> list[KnowledgeGap]:
    async with client.app[SERVICES].session_factory() as session:
        return list((await session.execute(select(KnowledgeGap).order_by(KnowledgeGap.id))).scalars())


async def test_a_clear_question_gets_the_answer_with_basis_next_step_and_disclaimer(phone: Phone) -> None:
    reply = await phone.say("老板欠工资不给咋办")
    assert "12333" in reply  # the next step: labour inspection
    assert "下一步" in reply
    assert reply.count(DISCLAIMER) == 1
    assert "依据" in reply


async def test_more_sends_the_details_of_the_last_answer_then_says_there_is_no_more(phone: Phone) -> None:
    await phone.say("宅基地怎么申请")
    details = await phone.say("更多")
    assert details and "没有更多" not in details
    assert "没有更多" in await phone.say("更多")


async def test_dialect_typos_and_voice_are_understood(phone: Phone) -> None:
    assert "宅基地" in await phone.say("宅急地咋申请")
    assert "12333" in await phone.voice("那个老板欠俺工钱不给咋整")


VAGUE = ("彩礼", "借钱", "离婚", "土地", "孩子", "老人", "房子", "打官司", "工资", "地")


def a_vague_question(client: Any) -> str:
    """One of a few one-word questions the matcher cannot settle with three related choices (it decides
    which; the flow is under test)."""
    from handlers.faq import clarify_choices

    matcher = client.app[SERVICES].knowledge.matcher
    for q in VAGUE:
        result = matcher.match(q)
        if result.outcome == "clarify" and len(clarify_choices(result)) == 3:
            return q
    raise AssertionError("none of the vague questions led to a clarify outcome")


async def test_a_vague_question_offers_numbered_choices_and_a_number_picks_one(client: Any, phone: Phone) -> None:
    question = a_vague_question(client)
    reply = await phone.say(question)
    assert "1." in reply and "2." in reply and "3." in reply
    assert "转人工" in reply
    first_choice = reply.split("1. ", 1)[1].split("\n", 1)[0]
    picked = await phone.say("1")
    assert DISCLAIMER in picked
    assert first_choice  # the question the villager picked
    recorded = await gaps(client)
    assert recorded and recorded[-1].outcome == "clarify" and recorded[-1].text == question
    assert len(recorded[-1].candidates) >= 3


TWO_TOPICS = ("离了婚娃跟谁，家里那套房咋分呢", "俺在城里买了楼，老家还有个宅子，村里说一户只能一处要收回去",
              "工钱要不回来想找人评理", "被人打伤了想找村里调解", "离婚了孩子归谁、房子怎么分")


def a_fairly_sure_question(client: Any) -> Any:
    """A story that joins two neighbouring topics, which the matcher answers while offering the next two."""
    matcher = client.app[SERVICES].knowledge.matcher
    for q in TWO_TOPICS:
        result = matcher.match(q)
        if result.outcome == "answer" and len(result.alternatives) == 2:
            return q, result
    raise AssertionError("none of the two-topic questions got an answer with alternatives")


async def test_a_fairly_sure_answer_offers_two_more_and_a_number_picks_one(client: Any, phone: Phone) -> None:
    question, result = a_fairly_sure_question(client)
    first, second, third = result.entry, result.alternatives[0].entry, result.alternatives[1].entry
    reply = await phone.say(question)
    answer_part, offer = reply.rsplit("不是这个？", 1)
    assert DISCLAIMER in answer_part and first.answer[:12] in answer_part  # the answer comes first, whole
    assert offer.startswith("回复 2 或 3：")
    assert f"2. {second.question}" in offer and f"3. {third.question}" in offer
    picked = await phone.say("2")  # a wrong guess costs one tap
    assert second.answer[:12] in picked and DISCLAIMER in picked
    assert not await gaps(client)  # an answer is not a knowledge gap
    await phone.say(question)
    assert third.answer[:12] in await phone.say("3")


async def test_a_number_out_of_range_asks_again(client: Any, phone: Phone) -> None:
    await phone.say(a_vague_question(client))
    assert "1 到 3" in await phone.say("7")


async def test_out_of_scope_gets_no_legal_answer_but_a_way_forward(client: Any, phone: Phone) -> None:
    reply = await phone.say("今天天气咋样")
    assert DISCLAIMER not in reply
    assert "转人工" in reply and "12348" in reply
    recorded = await gaps(client)
    assert recorded[-1].outcome == "handoff"


async def test_statute_lookup_by_arabic_and_chinese_numbers(phone: Phone) -> None:
    await dialog(
        phone,
        [
            ("法条 民法典1079", ["民法典第1079条", "离婚"]),
            ("查法条 民法典第一千零七十九条", "民法典第1079条"),
            ("法条 民法典99999", "没有找到"),
            ("法条", "法条 民法典1079"),
        ],
    )


async def test_urgent_messages_get_emergency_guidance_first_and_an_urgent_ticket(client: Any, phone: Phone) -> None:
    from bot.storage.tickets import Ticket

    reply = await phone.say("俺男人喝了酒就打俺，今天又打了")
    assert reply.startswith("【紧急提醒】")
    assert reply.index("110") < 40
    async with client.app[SERVICES].session_factory() as session:
        urgent = (await session.execute(select(func.count()).select_from(Ticket).where(Ticket.urgent))).scalar_one()
    assert urgent == 1


async def test_smalltalk_and_help(phone: Phone) -> None:
    await dialog(
        phone,
        [
            ("你好", ["乡法通", "1 常见法律问题"]),
            ("谢谢", "不客气"),
            ("帮助", "转人工"),
            ("5", "12348"),  # help menu item 5: contact the judicial office
        ],
    )


async def test_help_menu_hot_topics_then_pick(phone: Phone) -> None:
    await phone.say("菜单")
    hot = await phone.say("1")
    assert "1." in hot
    assert DISCLAIMER in await phone.say("2")


async def test_near_misses_get_a_plain_no_rather_than_three_unrelated_choices(phone: Phone) -> None:
    for question in ("医保怎么报销", "户口怎么迁到城里", "明天下雨不"):
        reply = await phone.say(question)
        assert "您问的是不是" not in reply, question
        assert "转人工" in reply and DISCLAIMER not in reply


async def test_numbers_refer_to_the_last_list_shown(phone: Phone) -> None:
    await phone.say("帮助")
    assert "12348" in await phone.say("5")  # from the help menu
    assert "隐私" in await phone.say("6")  # the same menu still applies
    await phone.say("宅基地怎么申请")  # an answer: the menu is gone
    reply = await phone.say("1")
    assert reply.startswith("您回复了数字 1，但现在没有可选的列表")  # not the help menu's item 1 any more ...
    assert "1 常见法律问题" in reply  # ... but the menu, so that the next number means something
    assert "大家常问的问题" in await phone.say("1")  # item 1 of the menu just shown


async def test_a_bare_number_with_no_list_is_not_recorded_as_an_unanswered_question(client: Any, phone: Phone) -> None:
    reply = await phone.say("２")
    assert "没有可选的列表" in reply and "转人工" in reply
    assert await gaps(client) == []


async def test_a_villager_who_is_sued_is_told_the_15_days_and_not_to_stay_away(phone: Phone) -> None:
    """Being sued was a gap (the matcher engineers saw 传票 questions handed over): the answer gives the
    15 days for the defence, that staying away means a judgment without them, and that a time-barred debt
    must be raised by the villager; 更多 warns about fake 'court' calls asking for money."""
    reply = await phone.say("俺被人告了 法院来了传票 俺不想去")
    assert "15日内" in reply and "缺席判决" in reply and "诉讼时效" in reply
    assert "民事诉讼法第128条" in reply and "12348" in reply
    assert "诈骗" in await phone.say("更多")


async def test_a_matter_of_another_office_is_told_where_to_ask_and_still_gets_the_ways_forward(phone: Phone) -> None:
    """医保 is the 医保局's, not the judicial office's: the villager learns whom to ask (12393) instead of only
    "这个问题我还答不好"; a question nobody handles gets the usual reply alone."""
    reply = await phone.say("医保报销咋弄")
    assert reply.index("12393") < reply.index("转人工")
    assert "这个问题我还答不好" in reply
    reply = await phone.say("明天天气咋样")
    assert "这个问题我还答不好" in reply and "12393" not in reply and "归" not in reply.split("。")[0]


async def test_a_villager_who_suspects_a_cadre_of_embezzling_is_told_where_to_report(phone: Phone) -> None:
    """The walkthrough's 村干部贪污 question got the 村务公开 answer with no way to report: now the next step
    names 12388 (纪委监委) and 更多 says how to report."""
    reply = await phone.say("村干部贪污俺们的补助款咋举报")
    assert "12388" in reply and "村务监督委员会" in reply
    assert "纪委监委举报" in await phone.say("更多")
