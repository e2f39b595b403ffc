"""转人工 → ticket, as villagers live it: signed WeChat XML in, the reply out."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from bot.services import tickets as svc
from bot.settings import Settings
from bot.storage.models import InboundMessage, Villager, utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import ANSWERED, ASSIGNED, CLOSED, IN_PROGRESS, NEW, RESOLVED, Ticket
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import CS_SEND, add_staff, all_tickets, deliver, outbox, sessions, staff_row, thread

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


async def staff_replies(client: Any, ticket_id: int, text: str, username: str = "zhang") -> None:
    async with sessions(client)() as session, session.begin():
        ticket = await session.get(Ticket, ticket_id)
        staff = (await session.execute(select(StaffUser).where(StaffUser.username == username))).scalar_one()
        assert ticket is not None
        await svc.staff_reply(session, ticket, staff, text, _texts(client), utcnow())


def _texts(client: Any) -> Any:
    from bot.keys import SERVICES

    return client.app[SERVICES].texts


async def set_status(client: Any, ticket_id: int, status: str, username: str = "zhang") -> None:
    async with sessions(client)() as session, session.begin():
        ticket = await session.get(Ticket, ticket_id)
        staff = (await session.execute(select(StaffUser).where(StaffUser.username == username))).scalar_one()
        assert ticket is not None
        await svc.set_status(session, ticket, status, "", staff, _texts(client), utcnow())


async def file_ticket(phone: Phone, what: str = "邻居把墙砌到我家地里了") -> str:
    """The whole intake; picks village 1 when the villager's village is not known yet."""
    start = await phone.say("转人工")
    assert "发生了什么事" in start or "您刚才问的是" in start  # a question just answered is carried over
    await dialog(phone, [(what, "说完了回复“好了”"), ("好了", "手机号")])
    if "哪个村" in await phone.say("跳过"):
        assert "请核对" in await phone.say("1")
    replies = await dialog(phone, [("1", "已提交")])
    return replies[-1]


# ------------------------------------------------------------------ intake
async def test_intake_from_a_village_qr_code_files_a_ticket_for_the_village_mediator(client: Any, phone: Phone) -> None:
    await add_staff(client, "zhang", "mediator", (3,), name="张调解员")
    await phone.subscribe("village_3")
    replies = await dialog(
        phone,
        [
            ("转人工", ["发生了什么事", "说完了回复“好了”", "取消"]),
            ("邻居把墙砌到我家地里了，说了不听", ["收到", "还有要补充的请接着说", "好了"]),
            ("他还在上面搭了个棚子", "收到"),
            ("好了", ["手机号", "半年后自动删除", "跳过"]),
            ("13800138000", ["请核对", "邻居把墙砌到我家地里了", "东竹园村", "138****8000", "回复 1 提交"]),
            ("1", ["已提交，编号", "本村调解员", "通过这里回复您", "我的咨询", "110"]),
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.number in replies[-1] and ticket.number.startswith(f"{svc.local(utcnow()).year}-")
    assert ticket.village_id == 3 and ticket.status == ASSIGNED
    assert ticket.contact_phone == "13800138000" and ticket.phone_consent_at is not None
    mediator = await staff(client, "zhang")
    assert ticket.assignee_id == mediator.id
    assert ticket.first_response_due_at > ticket.created_at
    assert svc.format_due(ticket.first_response_due_at) in replies[-1]
    [said, more, *events] = await thread(client, ticket.id)
    assert said.kind == "villager" and "砌到我家地里" in said.body and said.inbound_id is not None
    assert more.kind == "villager" and "棚子" in more.body and "棚子" in ticket.summary
    assert {e.kind for e in events} == {"event"}


async def staff(client: Any, username: str) -> StaffUser:
    return await staff_row(client, username)


@support.sqlite_only
async def test_without_a_village_it_asks_with_a_numbered_list_and_no_phone_means_none_stored(
    client: Any, phone: Phone
) -> None:
    await dialog(
        phone,
        [
            ("我要咨询", "发生了什么事"),
            ("借给亲戚两万块钱不还", "好了"),
            ("好了", "手机号"),
            ("不留", ["哪个村", "1 观音寺村", "11 龙潭村", "0 不清楚"]),
            ("好了", ["还差最后一步", "哪个村", "1-11"]),  # "好了" is not a village
            ("十二", "没认出是哪个村"),
            ("3", ["请核对", "东竹园村", "电话：不留"]),
            ("确认", ["已提交", "乡司法所的工作人员"]),  # nobody serves village 3 yet: the township queue
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.contact_phone is None and ticket.phone_consent_at is None
    assert ticket.assignee_id is None and ticket.status == NEW
    assert ticket.topic is not None  # the FAQ's topic guess for staff
    async with sessions(client)() as session:
        villager = (await session.execute(select(Villager))).scalar_one()
    assert villager.village_id == 3 and villager.village_source == "asked"


@support.sqlite_only
async def test_the_village_can_be_typed_by_name_and_changed_before_submitting(client: Any, phone: Phone) -> None:
    await dialog(
        phone,
        [
            ("转人工", "发生了什么事"),
            ("地被人占了", "好了"),
            ("好了", "手机号"),
            ("跳过", "哪个村"),
            ("老庄", ["请核对", "老庄村"]),
            ("改村", "哪个村"),
            ("0", ["请核对", "不清楚（交给乡里）"]),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.village_id is None


@support.sqlite_only
async def test_the_question_the_faq_could_not_answer_is_prefilled(client: Any, phone: Phone) -> None:
    await phone.say("俺家的牛跑到别人地里被扣下了要罚款")
    await dialog(
        phone,
        [
            ("转人工", ["您刚才问的是", "牛跑到别人地里", "好了"]),
            ("好了", "手机号"),
            ("跳过", "哪个村"),
            ("1", ["请核对", "牛跑到别人地里"]),
            ("对方还要拉走俺的牛", ["已加上", "对方还要拉走"]),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert "牛" in ticket.summary
    bodies = [m.body for m in await thread(client, ticket.id) if m.kind == "villager"]
    assert bodies[0].startswith("俺家的牛") and "拉走" in bodies[-1]
    # the next 转人工 starts fresh
    assert "您刚才问的是" not in await phone.say("转人工")


@support.sqlite_only
async def test_cancel_works_at_every_step_and_nothing_is_filed(client: Any, phone: Phone) -> None:
    for steps in ([], ["吵架了"], ["吵架了", "好了"], ["吵架了", "好了", "跳过"]):
        await phone.say("转人工")
        for said in steps:
            await phone.say(said)
        assert "已取消" in await phone.say("取消")
    assert await all_tickets(client) == []


@support.sqlite_only
async def test_pictures_and_voice_become_part_of_the_description(client: Any, phone: Phone) -> None:
    await phone.subscribe("village_2")
    await phone.say("转人工")
    got = await phone.send(phone.signer.message(phone.openid, "image", PicUrl="http://127.0.0.1/a.png", MediaId="m1"))
    assert "收到了" in got.content and "好了" in got.content
    assert "没听清" in await phone.voice(None)
    assert "好了" in await phone.voice("他家的狗把我咬了")
    await dialog(phone, [("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")])
    [ticket] = await all_tickets(client)
    kinds = [(m.media or {}).get("type") for m in await thread(client, ticket.id) if m.kind == "villager"]
    assert kinds == ["image", "voice", "voice"]
    assert "狗" in ticket.summary


@support.sqlite_only
async def test_a_wrong_phone_number_is_asked_once_more_then_skipped(client: Any, phone: Phone) -> None:
    await dialog(
        phone,
        [
            ("转人工", "发生了什么事"),
            ("工钱没给", "好了"),
            ("好了", "手机号"),
            ("12345", "号码好像不对"),
            ("还是不对", "哪个村"),
            ("1", ["请核对", "电话：不留"]),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.contact_phone is None


async def test_a_wechat_retry_of_the_confirmation_never_files_a_second_ticket(client: Any, phone: Phone) -> None:
    await dialog(
        phone, [("转人工", "发生"), ("工钱没给", "好了"), ("好了", "手机号"), ("跳过", "哪个村"), ("1", "请核对")]
    )
    push = phone.signer.sign(phone.signer.text(phone.openid, "1"))
    replies = await asyncio.gather(*(phone.post(push) for _ in range(4)))
    again = await phone.post(push)
    assert any("已提交" in r.content for r in replies)
    assert "已提交" in again.content
    assert len(await all_tickets(client)) == 1


async def test_round_robin_over_the_village_mediators(client: Any, settings: Settings) -> None:
    for name in ("wang", "li"):
        await add_staff(client, name, "mediator", (5,))
    await add_staff(client, "off", "mediator", (5,), active=False)
    await add_staff(client, "vol", "volunteer", (5,))
    for i in range(4):
        villager = Phone(client, settings, f"o_rr_{i}")
        await villager.subscribe("village_5")
        await file_ticket(villager, f"第{i}件事，地界不清")
    assignees = [t.assignee_id for t in await all_tickets(client)]
    wang, li = (await staff(client, "wang")).id, (await staff(client, "li")).id
    assert assignees == [wang, li, wang, li]


# ------------------------------------------------------------------ 我的咨询, 补充
@support.sqlite_only
async def test_my_requests_lists_tickets_with_status(client: Any, phone: Phone) -> None:
    assert "还没有" in await phone.say("我的咨询")
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    reply = await phone.say("我的咨询")
    assert ticket.number in reply and "等待回复" in reply and "邻居把墙" in reply
    assert ticket.number in await phone.click("MY_TICKETS")


async def test_supplement_adds_to_the_latest_open_ticket(client: Any, phone: Phone) -> None:
    assert "没有在办" in await phone.say("补充")
    assert "补充" not in (await phone.say("补充协议有效吗"))[:12]  # a question for the FAQ, not a 补充
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    assert ticket.number in await phone.say("补充：对方今天又来闹了")
    assert "请发要补充的内容" in await phone.say("补充")
    got = await phone.send(phone.signer.message(phone.openid, "image", PicUrl="http://127.0.0.1/b.png", MediaId="m2"))
    assert "已补充" in got.content
    villager = [m for m in await thread(client, ticket.id) if m.kind == "villager"]
    assert villager[-2].body == "对方今天又来闹了" and (villager[-1].media or {}).get("type") == "image"


@support.sqlite_only
async def test_a_new_handoff_mentions_the_open_ticket(client: Any, phone: Phone) -> None:
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    reply = await phone.say("转人工")
    assert ticket.number in reply and "补充" in reply and "发生了什么事" in reply


# ------------------------------------------------------------------ follow-up chat
async def test_after_a_staff_reply_messages_join_the_thread_until_the_villager_says_end(
    client: Any, phone: Phone
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await phone.subscribe("village_1")
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    await staff_replies(client, ticket.id, "请问墙是哪天砌的？有没有照片？")
    await dialog(
        phone,
        [
            ("上个月十号砌的", ["已转给", ticket.number, "结束"]),
            ("彩礼能退吗", "已转给"),  # a question goes to the person, not the FAQ, during the chat
            ("帮助", "1 常见法律问题"),  # commands still work
        ],
    )
    got = await phone.send(phone.signer.message(phone.openid, "image", PicUrl="http://127.0.0.1/c.png", MediaId="m3"))
    assert "已转给" in got.content
    assert "对话结束" in await phone.say("结束")
    assert "已转给" not in await phone.say("彩礼能退吗")  # the FAQ again
    messages = await thread(client, ticket.id)
    villager = [m for m in messages if m.kind == "villager"]
    assert [m.body for m in villager[1:3]] == ["上个月十号砌的", "彩礼能退吗"]
    assert (villager[3].media or {}).get("type") == "image"
    [fresh] = await all_tickets(client)
    assert fresh.status == IN_PROGRESS  # the villager wrote after the answer: back to staff


@support.sqlite_only
async def test_follow_up_ends_48_hours_after_the_last_staff_reply(client: Any, phone: Phone) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    await staff_replies(client, ticket.id, "收到")
    async with sessions(client)() as session, session.begin():
        row = await session.get(Ticket, ticket.id)
        assert row is not None and row.status == ANSWERED
        # the reply also marks the villager, so the chat looks for a follow-up thread at all
        villager = (await session.execute(select(Villager).where(Villager.openid == phone.openid))).scalar_one()
        assert villager.last_staff_reply_at == row.last_staff_reply_at
        row.last_staff_reply_at = villager.last_staff_reply_at = utcnow() - dt.timedelta(hours=49)
    assert "已转给" not in await phone.say("彩礼能退吗")


# ------------------------------------------------------------------ urgent
async def test_an_urgent_message_gets_emergency_guidance_and_an_escalated_urgent_ticket(
    client: Any, phone: Phone
) -> None:
    reply = await phone.say("俺男人喝了酒就打俺，今天又打了")
    assert reply.startswith("【紧急提醒】") and "110" in reply
    [ticket] = await all_tickets(client)
    assert ticket.urgent and ticket.escalated_at is not None and ticket.priority == 1
    assert ticket.source == "urgent"
    # a second urgent message adds to the same open ticket
    await phone.say("他又拿着刀来了")
    assert len(await all_tickets(client)) == 1


@support.sqlite_only
async def test_urgent_words_during_intake_file_an_urgent_ticket_at_once(client: Any, phone: Phone) -> None:
    await phone.say("转人工")
    reply = await phone.say("他说要杀了我")
    assert "110" in reply and "紧急情况" in reply
    [ticket] = await all_tickets(client)
    assert ticket.urgent and ticket.escalated_at is not None
    assert "已取消" not in await phone.say("取消")  # the wizard is over


# ------------------------------------------------------------------ satisfaction
async def test_after_resolution_one_satisfaction_question_and_the_answer_is_recorded(
    client: Any, phone: Phone, settings: Settings, fake_server: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await phone.subscribe("village_1")
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    await set_status(client, ticket.id, RESOLVED)
    await set_status(client, ticket.id, RESOLVED)  # asked once only
    await deliver(client, settings)
    sent = [c.body["text"]["content"] for c in fake_server.fake.calls_to(CS_SEND)]
    assert len(sent) == 1 and "回复 1 有帮助" in sent[0] and ticket.number in sent[0]
    assert "谢谢您的评价" in await phone.say("1")
    [rated] = await all_tickets(client)
    assert rated.satisfaction == 1
    assert "谢谢您的评价" not in await phone.say("1")  # asked and answered: "1" is an ordinary message again
    [still] = await all_tickets(client)
    assert still.satisfaction == 1


@support.sqlite_only
async def test_a_bare_number_is_not_taken_as_a_rating_before_the_question_arrives(
    client: Any, phone: Phone, settings: Settings
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await phone.subscribe("village_1")
    await file_ticket(phone)
    [ticket] = await all_tickets(client)
    await set_status(client, ticket.id, RESOLVED)  # the question is queued, not yet delivered
    await phone.say("帮助")
    assert "谢谢您的评价" not in await phone.say("1")
    assert "抱歉没帮上忙" in await phone.say("没帮助")  # the words always count
    [rated] = await all_tickets(client)
    assert rated.satisfaction == 3


# ------------------------------------------------------------------ 删除我的信息
async def test_delete_my_information_asks_first_then_anonymises(client: Any, phone: Phone) -> None:
    await phone.subscribe("village_4")
    await dialog(
        phone,
        [
            ("转人工", "发生"),
            ("邻居占我家宅基地", "好了"),
            ("好了", "手机号"),
            ("13900001111", "请核对"),
            ("1", "已提交"),
        ],
    )
    assert "没有删除" in await dialog_one(phone, "删除我的信息", "算了")
    assert "已删除您的个人信息" in await dialog_one(phone, "删除我的信息", "确认删除")
    [ticket] = await all_tickets(client)
    assert ticket.openid is None and ticket.contact_phone is None and ticket.status == CLOSED
    assert "宅基地" not in ticket.summary
    assert all("宅基地" not in m.body for m in await thread(client, ticket.id))
    async with sessions(client)() as session:
        villagers = list((await session.execute(select(Villager))).scalars())
        contents = list((await session.execute(select(InboundMessage.content))).scalars())
    assert villagers == []  # the row (village, phone) is gone: nothing links back to the openid
    assert not any(c and ("宅基地" in c or "13900001111" in c) for c in contents)
    assert "还没有" in await phone.say("我的咨询")


async def dialog_one(phone: Phone, first: str, second: str) -> str:
    assert "确认删除" in await phone.say(first)
    return await phone.say(second)


async def test_ticket_numbers_count_up_per_year(client: Any, settings: Settings) -> None:
    for i in range(3):
        await file_ticket(Phone(client, settings, f"o_num_{i}"), "地的事")
    numbers = [t.number for t in await all_tickets(client)]
    year = svc.local(utcnow()).year
    assert numbers == [f"{year}-0001", f"{year}-0002", f"{year}-0003"]


# ------------------------------------------------------------------ staff hear about it in their own WeChat
async def test_staff_with_a_linked_wechat_are_told_of_new_and_urgent_tickets(
    client: Any, phone: Phone, settings: Settings
) -> None:
    campaigns = pytest.importorskip("bot.storage.campaigns")
    mediator = await add_staff(client, "zhang", "mediator", (1,))
    chief = await add_staff(client, "chief", "admin")
    await add_staff(client, "unlinked", "admin")
    async with sessions(client)() as session, session.begin():
        session.add(campaigns.StaffWeChat(staff_id=mediator, openid="o_staff_zhang"))
        session.add(campaigns.StaffWeChat(staff_id=chief, openid="o_staff_chief"))
    await phone.subscribe("village_1")
    await file_ticket(phone)
    await Phone(client, settings, "o_in_danger").say("他拿着刀说要砍死我")
    notices = {(m.openid, m.payload["content"].split("】")[0]) for m in await outbox(client)}
    assert ("o_staff_zhang", "【乡法通") in notices
    assert ("o_staff_chief", "【乡法通·紧急") in notices
    [new] = [m for m in await outbox(client) if m.openid == "o_staff_zhang"]
    assert "/admin/tickets/" in new.payload["content"] and "邻居" not in new.payload["content"]  # no details


async def test_after_the_story_1_means_done_and_skip_means_no_phone(client: Any, phone: Phone) -> None:
    """The prompt after each part of the story offers "好了" or 1 (then the phone question) and "跳过" (no
    phone: straight to the summary)."""
    await phone.subscribe("village_1")
    await dialog(
        phone,
        [
            ("转人工", "发生了什么事"),
            ("邻居把墙砌到我家地里了", ["收到", "“好了”或 1", "跳过"]),
            ("1", "手机号"),
            ("2", "号码好像不对"),
            ("13800138000", "请核对"),
            ("是", "已提交"),
        ],
    )
    await dialog(
        phone,
        [("转人工", "发生了什么事"), ("又来闹了", "收到"), ("跳过", ["请核对", "电话：不留"]), ("1", "已提交")],
    )
    first, second = await all_tickets(client)
    assert first.contact_phone == "13800138000" and "1" not in first.summary
    assert second.contact_phone is None and second.summary == "又来闹了"


async def test_every_intake_step_can_be_skipped(client: Any, phone: Phone) -> None:
    await dialog(
        phone,
        [
            ("转人工", "发生了什么事"),
            ("跳过", "手机号"),
            ("跳过", "哪个村"),
            ("跳过", "请核对"),  # the village step too: the township queue takes it
            ("确认", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    assert ticket.village_id is None and ticket.contact_phone is None
