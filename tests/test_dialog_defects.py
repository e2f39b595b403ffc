"""The dialog defects of the 2026-12 walkthrough (issue 13, deliverable 3), each replayed as the villager
lived it: signed WeChat XML in, the reply out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update

from bot.knowledge.base import DISCLAIMER
from bot.services import tickets as svc
from bot.settings import Settings
from bot.storage.models import ConversationState, utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import Ticket
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import CS_SEND, add_staff, all_tickets, deliver, outbox, sessions, thread

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

pytestmark = support.sqlite_only  # conversations; the storage paths are covered on both backends elsewhere


# ------------------------------------------------------------------ every numbered list takes its own numbers
async def test_two_after_the_cant_answer_list_starts_the_handoff(phone: Phone) -> None:
    reply = await phone.say("明天天气咋样")
    assert "我还答不好" in reply and "2. 回复“转人工”" in reply
    assert "是这件事吗" in await phone.say("2")  # 转人工 — and 天气 is not taken as the matter without asking
    assert "已取消" in await phone.say("取消")
    await phone.say("医保报销咋弄")
    assert "换个说法" in await phone.say("1")
    await phone.say("明天天气咋样")
    assert "0375-0000000" in await phone.say("3")  # the judicial office's phone
    await phone.say("明天天气咋样")
    assert "请回复 1 到 3 之间的数字" in await phone.say("5")


async def test_a_clarify_list_of_two_asks_for_1_or_2_not_1_to_3(phone: Phone) -> None:
    reply = await phone.say("彩礼")
    assert "1. " in reply and "2. " in reply and "3. " not in reply
    assert "请回复 1 或 2" in await phone.say("3")


# ------------------------------------------------------------------ 转人工 carries only the confirmed question
async def test_handoff_after_an_unrelated_question_asks_and_the_story_replaces_it(client: Any, phone: Phone) -> None:
    await phone.subscribe("village_1")
    await phone.say("明天天气咋样")
    await dialog(
        phone,
        [
            ("转人工", ["您刚才问的是：“明天天气咋样”", "是这件事吗", "是就回复 1"]),
            ("俺家宅基地被邻居王二占了半米，他还在上面砌墙", ["收到", "说完了回复“好了”"]),
            ("说了他也不听", "收到"),
            ("好了", "手机号"),
            ("跳过", ["请核对", "宅基地被邻居王二占了半米"]),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert "天气" not in ticket.summary and ticket.summary.startswith("俺家宅基地")
    assert ticket.topic is not None and "weather" not in ticket.topic
    bodies = [m.body for m in await thread(client, ticket.id) if m.kind == "villager"]
    assert bodies == ["俺家宅基地被邻居王二占了半米，他还在上面砌墙", "说了他也不听"]


async def test_handoff_long_after_a_question_asks_whether_it_is_that_and_1_keeps_it(client: Any, phone: Phone) -> None:
    await phone.subscribe("village_1")
    await phone.say("儿媳妇不让俺看孙子")
    async with sessions(client)() as session, session.begin():  # the question was asked 20 minutes ago
        conv = (await session.execute(select(ConversationState))).scalar_one()
        asked = (utcnow() - dt.timedelta(minutes=20)).isoformat()
        await session.execute(
            update(ConversationState)
            .where(ConversationState.openid == conv.openid)
            .values(context={**(conv.context or {}), "last_query_at": asked})
        )
    await dialog(
        phone,
        [
            ("转人工", ["儿媳妇不让俺看孙子", "是这件事吗"]),
            ("1", ["还有要补充的请接着说", "好了"]),
            ("她说等孩子大了再说", "收到"),
            ("好了", "手机号"),
            ("跳过", "请核对"),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.summary.startswith("儿媳妇不让俺看孙子") and "等孩子大了" in ticket.summary


async def test_a_recent_legal_question_is_taken_as_is_and_no_means_a_new_story(client: Any, phone: Phone) -> None:
    await phone.subscribe("village_1")
    await phone.say("彩礼能要回来不")
    assert "还有要补充的请接着说" in await phone.say("转人工")  # recent and legal: no question asked
    await phone.say("取消")
    await phone.say("明天天气咋样")
    await dialog(phone, [("转人工", "是这件事吗"), ("不是", "那请说说是什么事")])


# ------------------------------------------------------------------ intake steps match their prompts
async def test_the_intake_collects_until_done_then_phone_then_village_and_done_is_not_a_village(
    client: Any, phone: Phone
) -> None:
    await dialog(
        phone,
        [
            ("转人工", ["发生了什么事", "可以分几次说", "说完了回复“好了”"]),
            ("好了", "还没说是什么事"),
            ("借给表哥三万块钱", "收到"),
            ("有借条", "收到"),
            ("好了", "手机号"),
            ("好了", "号码好像不对"),
            ("跳过", "哪个村"),
            ("好了", "还差最后一步"),  # never silently "不清楚"
            ("2", ["请核对", "西竹园村", "借给表哥三万块钱 有借条"]),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.village_id == 2


# ------------------------------------------------------------------ clarify lists never pad
async def test_bride_price_choices_never_offer_an_unrelated_question(client: Any, phone: Phone) -> None:
    from bot.keys import SERVICES

    matcher = client.app[SERVICES].knowledge.matcher
    clarified = 0
    for question in ("彩礼能要回来不", "彩礼"):
        result = matcher.match(question)
        reply = await phone.say(question)
        assert "作保" not in reply and "替人还" not in reply and "打赏" not in reply
        if result.outcome == "clarify":  # the matcher's third candidate is from another topic, far behind
            assert {c.entry.topic for c in result.candidates[:3]} != {"marriage.bride_price"}
            options = [line for line in reply.splitlines() if line[:2] in ("1.", "2.", "3.")]
            assert len(options) == 2 and all("彩礼" in line for line in options)
            clarified += 1
    assert clarified, "neither question led to a clarify list: pick one that does"


# ------------------------------------------------------------------ at most three citations on the phone
async def test_an_answer_cites_at_most_three_articles_and_more_shows_all(client: Any, phone: Phone) -> None:
    from bot.keys import SERVICES

    kb = client.app[SERVICES].knowledge.kb
    reply = await phone.say("老板欠工资不给咋办")
    basis_line = next(line for line in reply.splitlines() if line.startswith("依据："))
    entry = next(e for e in kb.entries if e.basis and basis_line.startswith("依据：" + e.basis[0]) and len(e.basis) > 3)
    shown = basis_line.removeprefix("依据：").split("等（")[0].split("、")
    assert shown == list(entry.basis[:3]) and "回复“更多”看全部依据" in basis_line
    more = await phone.say("更多")
    assert "全部依据：" + "、".join(entry.basis) in more and "法条" in more


# ------------------------------------------------------------------ a staff reply ends with one disclaimer at most
async def test_inserted_faq_text_and_the_staff_s_own_lines_carry_one_disclaimer_at_the_end(
    client: Any, settings: Settings, phone: Phone, fake_server: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    await phone.subscribe("village_1")
    await dialog(
        phone, [("转人工", "发生"), ("彩礼的事", "好了"), ("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")]
    )
    [ticket] = await all_tickets(client)
    body = f"张大娘您好，\r\n按法律说：\r\n彩礼在没领证时一般要退。\n{DISCLAIMER}\r\n明天上午我到您家细说。"
    async with sessions(client)() as session, session.begin():
        row = await session.get(Ticket, ticket.id)
        zhang = (await session.execute(select(StaffUser).where(StaffUser.username == "zhang"))).scalar_one()
        assert row is not None
        from bot.keys import SERVICES

        await svc.staff_reply(session, row, zhang, body, client.app[SERVICES].texts, utcnow())
    await deliver(client, settings)
    [call] = fake_server.fake.calls_to(CS_SEND)
    content = call.body["text"]["content"]
    assert content.count(DISCLAIMER) == 1 and "\r" not in content
    mine = content.split("】", 1)[1].split("——", 1)[0].strip()
    assert mine.endswith(DISCLAIMER) and mine.index("明天上午") < mine.index(DISCLAIMER)


# ------------------------------------------------------------------ copy slips
async def test_the_staff_notice_says_when_without_a_double_deadline(
    client: Any, settings: Settings, phone: Phone
) -> None:
    from bot.storage.campaigns import StaffWeChat

    staff_id = await add_staff(client, "zhang", "mediator", (1,))
    async with sessions(client)() as session, session.begin():
        session.add(StaffWeChat(staff_id=staff_id, openid="o_staff_zhang"))
    await Phone(client, settings, "o_staff_zhang").say("你好")  # their WeChat wrote: inside the 48-hour window
    await phone.subscribe("village_1")
    await dialog(
        phone, [("转人工", "发生"), ("地界的事", "好了"), ("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")]
    )
    [notice] = [m for m in await outbox(client) if m.openid == "o_staff_zhang"]
    [ticket] = await all_tickets(client)
    content = notice.payload["content"]
    assert f"请在{svc.format_due(ticket.first_response_due_at)}首次答复" in content
    assert "内 前" not in content and "内前" not in content


# ------------------------------------------------------------------ 删除我的信息 takes "1" like every confirmation
async def test_delete_my_information_accepts_1(client: Any, phone: Phone) -> None:
    await phone.subscribe("village_1")
    await dialog(
        phone,
        [("转人工", "发生"), ("宅基地的事", "好了"), ("好了", "手机号"), ("13900001111", "请核对"), ("1", "已提交")],
    )
    assert "回复 1 或“确认删除”就删" in await phone.say("删除我的信息")
    assert "已删除您的个人信息" in await phone.say("1")
    [ticket] = await all_tickets(client)
    assert ticket.openid is None and ticket.contact_phone is None
