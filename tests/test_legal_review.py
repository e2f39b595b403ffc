"""The 2026-12 legal review (shared/reviews/legal-review-2026-12.md), as a villager meets it.

Each critical finding is asked the way a villager asks it, through signed WeChat XML, and the
answer must carry the rule that keeps the villager's right: the old wording fails these tests.
The major findings that rest on the newly shipped statutes are checked the same way.
"""

from __future__ import annotations

import re

import pytest

from tests.phone import Phone

DISCLAIMER = "不构成律师意见"


@pytest.mark.parametrize(("question", "also"), [
    ("两家宅基地界线有争议 乡政府作了处理决定 俺不服咋办", "证上四至清楚"),  # finding 2: neighbor-over-boundary
    ("宅基地地界争议 乡政府处理决定不服咋办", "证上四至清楚"),  # (plain encroachment stays a civil case)
    ("林地权属 县政府处理决定 不服", "上一级政府"),  # finding 1: land-dispute-who
    ("乡政府给地界下了处理决定 俺不服咋办", "上一级政府"),
])
async def test_a_decision_on_land_or_homestead_rights_is_appealed_by_administrative_review_within_60_days(
        phone: Phone, question: str, also: str) -> None:
    """Critical findings 1 and 2: the entries said to sue within 30 days of a government 处理决定. The
    prevailing rule makes 行政复议 come first, within 60 days; a villager who sues is turned away late."""
    reply = await phone.say(question)
    assert "行政复议" in reply and re.search(r"60日|60天|六十日", reply)
    assert "30日内可以起诉" not in reply
    assert also in reply and reply.count(DISCLAIMER) == 1
    details = await phone.say("更多")
    assert "15日内" in details  # then 15 days to sue after the 复议 decision
    # the answer cites the rule that makes 复议 come first (the phone shows three citations, 更多 all: issue 13)
    assert "行政复议法第23条" in reply + details


async def test_the_law_behind_the_60_days_can_be_looked_up(phone: Phone) -> None:
    reply = await phone.say("法条 行政复议法20")
    assert reply.startswith("行政复议法第20条") and "六十日内" in reply and "行政复议法(2023-09-01)" in reply


@pytest.mark.parametrize("question", ["五保户咋申请", "俺侄子爹娘都没了能申请特困不"])
async def test_a_minor_under_18_can_apply_for_tekun_support(phone: Phone, question: str) -> None:
    """Critical finding 3: the age was raised from 16 to 18; a 16–17-year-old must not read himself out."""
    reply = await phone.say(question)
    assert "未满18周岁" in reply
    assert "16岁" not in reply and "16周岁" not in reply
    assert "特困人员认定办法" in reply


async def test_a_married_out_woman_keeps_her_membership_and_is_told_the_one_year_limit(phone: Phone) -> None:
    """Major finding 5: 农村集体经济组织法 — marriage alone does not end membership; arbitration; 1 year."""
    reply = await phone.say("外嫁女分红")
    assert "不能取消" in reply and "土地承包仲裁" in reply and "一年内" in reply
    cited = reply + await phone.say("更多")  # three citations on the phone, all of them with 更多 (issue 13)
    assert "农村集体经济组织法第18条" in cited and "农村集体经济组织法第57条" in cited


async def test_parents_money_for_a_house_after_marriage_follows_the_2025_interpretation(phone: Phone) -> None:
    """Major finding 4: 婚姻家庭编解释（二）第8条 replaces 'usually common property'."""
    reply = await phone.say("结婚后俺爹妈全款给俺买的房 离婚媳妇能分一半不")
    assert "出钱父母的孩子" in reply and "补偿" in reply
    cited = reply + await phone.say("更多")  # three citations on the phone, all of them with 更多 (issue 13)
    assert "最高人民法院关于适用《民法典》婚姻家庭编的解释（二）第8条" in cited


async def test_overtime_rates_cite_the_labour_law(phone: Phone) -> None:
    """Minor finding 9: the 150/200/300% come from 劳动法第44条."""
    reply = await phone.say("加班工资按啥算")
    assert "150%" in reply and "300%" in reply and "劳动法第44条" in reply


async def test_a_scam_victim_is_told_to_call_110_first(phone: Phone) -> None:
    """Minor findings 20–22: no minutes lost on the wrong line."""
    reply = await phone.say("刚给骗子打了钱 还能追回来不")
    assert "拨打110报警" in reply and "110或96110" not in reply
