"""Booking from chat, end to end through /wechat: what the villager sends, what comes back.

The clock is frozen at Tue 2026-02-10 08:00 (Shanghai), days before the 2026 Spring Festival:
Sat 02-14 is a 调休 working day, 02-15…02-23 are holidays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from bot.services import booking as svc
from bot.storage.booking import Booking, BookingSchedule, BookingSlot, BookingWaitlist
from bot.storage.models import ConversationState
from tests.phone import Phone, dialog
from tests.test_booking_helpers import (
    Clock,
    at,
    booking_client,
    booking_settings,
    booking_yaml,
    bookings,
    clock,
    job_context,
    outbox,
    with_booking_router,
)

__all__ = ["booking_client", "booking_settings", "booking_yaml", "clock", "with_booking_router"]


def villager(client: Any, settings: Any, openid: str = "o_villager_zhang") -> Phone:
    return Phone(client, settings, openid)


async def book_thursday_nine(phone: Phone, contact: str = "张三 13812345678") -> str:
    """法律咨询, Thu 2026-02-12 9:00, with the phone number kept; returns the 预约码."""
    await dialog(
        phone,
        [
            ("预约", "1. 法律咨询"),
            ("1", "3. 2月12日 周四"),
            ("3", "1. 9:00-9:30"),
            ("1", "姓名和手机号"),
            (contact, "回复 1 确认预约"),
        ],
    )
    reply = await phone.say("1")
    assert "预约成功" in reply, reply
    return reply.split("预约码：")[1].split()[0]


# ------------------------------------------------------------------ the whole way
async def test_book_from_text_to_code(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    replies = await dialog(
        phone,
        [
            ("预约", ["请选要办的事", "1. 法律咨询", "2. 法律援助申请", "取消"]),
            ("1", ["法律咨询｜司法所公共法律服务站", "1. 2月10日 周二（空8个）", "5. 2月14日 周六【调休上班】"]),
            ("3", ["2月12日 周四", "1. 9:00-9:30（剩2个）", "4. 10:30-11:00"]),
            ("1", ["姓名和手机号", "180天后删除", "只回复姓名也能约"]),
            ("张三 138 1234 5678", ["请核对", "时间：2月12日 周四 9:00-9:30", "手机：138****5678", "同意保存手机号"]),
            (
                "1",
                ["预约成功", "预约码：", "请带：身份证；借条、合同等材料。", "前一天18:00和开始前2小时会在这里提醒您"],
            ),
        ],
    )
    # the holiday week is skipped: after Sat 02-14 (调休) comes Tue 02-24
    assert "6. 2月24日 周二" in replies[1] and "2月16日" not in replies[1] and "2月15日" not in replies[1]
    (booking,) = await bookings(booking_client)
    assert booking.status == "confirmed" and booking.name == "张三"
    assert booking.phone == "13812345678" and booking.phone_consent_at is not None
    assert booking.starts_at == dt.datetime(2026, 2, 12, 1, 0, tzinfo=dt.UTC)  # 9:00 in Shanghai, stored in UTC
    assert booking.code in replies[-1]


async def test_menu_button_and_legal_aid_says_what_to_bring(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    assert "1. 法律咨询" in await phone.click("BOOKING")
    await dialog(
        phone,
        [
            ("2", "法律援助申请｜司法所公共法律服务站"),
            ("2", "1. 9:00-10:00（剩1个）"),
            ("1", "姓名"),
            ("李四", ["姓名：李四", "回复 1 确认预约"]),
            ("确认", ["预约成功", "经济困难证明"]),
        ],
    )
    (booking,) = await bookings(booking_client)
    assert booking.phone is None and booking.phone_consent_at is None


async def test_phone_given_but_not_kept_when_villager_says_2(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(
        phone,
        [("预约", "法律咨询"), ("1", "2月10日"), ("1", "9:00"), ("1", "姓名"), ("王五 13900001111", "回复 2")],
    )
    assert "预约成功" in await phone.say("2")
    (booking,) = await bookings(booking_client)
    assert booking.name == "王五" and booking.phone is None and booking.phone_consent_at is None


async def test_late_booking_promises_only_the_reminders_that_will_come(
    booking_client: Any, booking_settings: Any, clock: Clock
) -> None:
    clock.set(at(2026, 2, 11, 20, 0))  # Wednesday evening, for Thursday 9:00: no evening reminder any more
    phone = villager(booking_client, booking_settings)
    reply = (
        await dialog(
            phone,
            [
                ("预约", "法律咨询"),
                ("1", "1. 2月12日"),
                ("1", "9:00"),
                ("1", "姓名"),
                ("张三", "确认"),
                ("1", "预约成功"),
            ],
        )
    )[-1]
    assert "开始前2小时会在这里提醒您" in reply and "前一天" not in reply


async def test_phone_alone_then_name(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(
        phone,
        [
            ("预约", "法律咨询"),
            ("1", "2月10日"),
            ("1", "9:00"),
            ("1", "姓名"),
            ("13900001111", "请再发一下您的姓名"),
            ("赵六", ["姓名：赵六", "手机：139****1111"]),
        ],
    )


async def test_second_time_offers_last_contact(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await book_thursday_nine(phone)
    await dialog(
        phone,
        [
            ("预约", "法律咨询"),
            ("1", "2月10日"),
            ("1", "9:00"),
            ("1", ["还用上次的信息吗", "张三 138****5678"]),
            ("1", ["姓名：张三", "手机：138****5678"]),
            ("1", "预约成功"),
        ],
    )
    assert [b.phone for b in await bookings(booking_client)] == ["13812345678", "13812345678"]


# ------------------------------------------------------------------ never twice
async def test_resent_confirmation_does_not_book_twice(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    code = await book_thursday_nine(phone)
    again = await phone.say("1")
    assert "已经约好了" in again and code in again
    assert "已经约好了" in await phone.say("确认")
    assert len(await bookings(booking_client)) == 1


async def test_wechat_retry_of_the_same_push_books_once(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(
        phone, [("预约", "法律咨询"), ("1", "2月10日"), ("1", "9:00"), ("1", "姓名"), ("张三", "回复 1 确认预约")]
    )
    push = phone.signer.sign(phone.signer.text(phone.openid, "1", msg_id=777001))
    first, retry = await phone.post(push), await phone.post(push)
    assert "预约成功" in first.content
    assert retry.content == first.content  # the stored reply, not a second booking
    assert len(await bookings(booking_client)) == 1


async def test_double_tap_sent_at_once_books_once(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(
        phone, [("预约", "法律咨询"), ("1", "2月10日"), ("1", "9:00"), ("1", "姓名"), ("张三", "回复 1 确认预约")]
    )
    replies = await asyncio.gather(phone.say("1"), phone.say("1"), phone.say("1"))
    assert sum("预约成功" in r for r in replies) == 1
    assert sum("已经约好了" in r for r in replies) == 2
    assert len(await bookings(booking_client)) == 1


# ------------------------------------------------------------------ every step: 取消, expiry, wrong answers
async def test_cancel_word_leaves_at_every_step(booking_client: Any, booking_settings: Any) -> None:
    answers = ["预约", "1", "1", "1", "张三"]  # service, day, time, contact, confirm
    for step in range(1, len(answers) + 1):
        phone = villager(booking_client, booking_settings, f"o_step_{step}")
        for said in answers[:step]:
            await phone.say(said)
        assert "这次不约了" in await phone.say("取消"), f"after {answers[:step]}"
        assert "请选要办的事" not in await phone.say("1")  # the wizard is over: "1" is not a step answer any more
    assert await bookings(booking_client) == []


async def test_unanswered_step_expires_gracefully(booking_client: Any, booking_settings: Any, clock: Clock) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(phone, [("预约", "法律咨询"), ("1", "2月10日")])
    clock.advance(minutes=31)
    assert "超过30分钟没回复" in await phone.say("2")
    assert "请选要办的事" in await phone.say("预约")  # starting again works


async def test_wrong_answer_repeats_the_step_then_lets_go(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(
        phone,
        [
            ("预约", "法律咨询"),
            ("9", ["请回复 1 到 2 之间的数字", "1. 法律咨询"]),
            ("随便说说", "请回复 1 到 2 之间的数字"),
        ],
    )
    # a third message that is no answer goes on to the rest of the bot (the FAQ), the step ends
    reply = await phone.say("借钱不还怎么办")
    assert "请回复 1 到 2" not in reply
    async with booking_client.app[SERVICES].session_factory() as session:
        conv = await session.get(ConversationState, phone.openid)
        assert conv is not None and conv.state is None


async def test_time_step_zero_goes_back_to_days(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await dialog(phone, [("预约", "法律咨询"), ("1", "2月10日"), ("1", "9:00"), ("0", "选哪天")])


# ------------------------------------------------------------------ limits, my bookings, cancel, reschedule
async def test_at_most_two_upcoming_bookings(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await book_thursday_nine(phone)
    await book_thursday_nine(phone)
    reply = await phone.say("预约")
    assert "您已经有2个预约了（最多同时2个）" in reply and "取消预约" in reply


async def test_my_bookings_cancel_by_code_frees_the_place(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    assert "您现在没有预约" in await phone.click("MY_BOOKINGS")
    code = await book_thursday_nine(phone)
    mine = await phone.say("我的预约")
    assert "2月12日 周四 9:00-9:30 法律咨询" in mine and code in mine
    assert "已取消" in await phone.say(f"取消预约 {code}")
    (booking,) = await bookings(booking_client)
    assert booking.status == "cancelled" and booking.cancelled_by == "villager"
    async with booking_client.app[SERVICES].session_factory() as session:
        slot = await session.get(BookingSlot, booking.slot_id)
        assert slot is not None and slot.taken == 0
    assert "没找到预约码" in await phone.say(f"取消预约 {code}")
    assert "没找到预约码 999999" in await phone.say("取消预约 999999")


async def test_cancel_by_choosing(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await book_thursday_nine(phone)
    await book_thursday_nine(phone)
    await dialog(
        phone,
        [
            ("取消预约", ["要取消哪个", "1. 2月12日", "2. 2月12日"]),
            ("2", ["要取消这个预约吗", "回复 1 确认取消"]),
            ("2", "预约保留"),
            ("取消预约", "要取消哪个"),
            ("1", "要取消这个预约吗"),
            ("1", "已取消"),
        ],
    )
    assert [b.status for b in await bookings(booking_client)] == ["cancelled", "confirmed"]


async def test_someone_elses_code_cannot_be_cancelled(booking_client: Any, booking_settings: Any) -> None:
    code = await book_thursday_nine(villager(booking_client, booking_settings))
    other = villager(booking_client, booking_settings, "o_villager_li")
    assert "没找到预约码" in await other.say(f"取消预约 {code}")
    assert [b.status for b in await bookings(booking_client)] == ["confirmed"]


async def test_reschedule_moves_the_booking(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    code = await book_thursday_nine(phone)
    replies = await dialog(
        phone,
        [
            # 改约 says which booking it changes, on the day list and again at the confirmation
            ("改约", [f"改约：2月12日 周四 9:00-9:30 法律咨询（司法所公共法律服务站）预约码 {code}", "选哪天"]),
            ("5", "2月14日 周六"),
            ("2", ["请核对", "2月14日 周六 9:30-10:00", f"原来的预约 2月12日 周四 9:00-9:30，预约码 {code} 会取消"]),
            # only 1 confirms here: the bot says so (never "请回复 1 到 1 之间的数字")
            ("2", ["请回复 1。", "确认改到这个时间"]),
            ("1", ["改约成功", "原来的预约（2月12日 周四 9:00-9:30）已经取消"]),
        ],
    )
    assert not any("1 到 1" in said for said in replies)
    old, new = await bookings(booking_client)
    assert old.status == "cancelled" and new.status == "confirmed"
    assert new.rescheduled_from_id == old.id and new.phone == "13812345678" and new.name == "张三"
    assert new.starts_at == dt.datetime(2026, 2, 14, 1, 30, tzinfo=dt.UTC)


# ------------------------------------------------------------------ a full slot, the waiting list
async def test_slot_taken_while_confirming_offers_next_times(booking_client: Any, booking_settings: Any) -> None:
    a, b, c = (villager(booking_client, booking_settings, f"o_v{i}") for i in range(3))
    for phone in (a, b, c):  # all three reach the confirm step for Tue 9:00-10:00 法律援助申请 (1 place)
        await dialog(
            phone, [("预约", "法律援助"), ("2", "2月10日"), ("1", "9:00-10:00"), ("1", "姓名"), ("张三", "确认")]
        )
    assert "预约成功" in await a.say("1")
    reply = await b.say("1")
    assert "刚刚被别人约满了" in reply and "1. 2月11日 周三 9:00-10:00" in reply
    assert "时间：2月11日 周三 9:00-10:00" in await b.say("1")  # picks the first offered time, checks it again
    assert "预约成功" in await b.say("1")
    assert len(await bookings(booking_client)) == 2


async def test_full_day_waitlist_and_offer_after_cancellation(
    booking_client: Any, booking_settings: Any, clock: Clock
) -> None:
    first = villager(booking_client, booking_settings, "o_first")
    await dialog(first, [("预约", "法律援助"), ("2", "选哪天"), ("2", "9:00-10:00"), ("1", "姓名"), ("张三", "确认")])
    code = (await first.say("1")).split("预约码：")[1].split()[0]
    waiting = villager(booking_client, booking_settings, "o_waiting")
    await dialog(
        waiting,
        [
            ("预约", "法律援助"),
            ("2", "2. 2月11日 周三（约满，可排队）"),
            ("2", ["2月11日 周三已经约满了", "回复 1 排队候补"]),
            ("1", "姓名"),
            ("李四 13900002222", ["排队候补：法律援助申请｜司法所公共法律服务站｜2月11日 周三", "回复 1 确认排队"]),
            ("1", ["已经帮您排队候补", "您排第1位"]),
            ("我的预约", "排队候补：2月11日 周三 法律援助申请"),
        ],
    )
    # the first villager cancels: the place is held for the waiting villager and they are told via the outbox
    assert "已取消" in await first.say(f"取消预约 {code}")
    offers = [m for m in await outbox(booking_client) if m.openid == "o_waiting"]
    assert len(offers) == 1 and "有空位了" in offers[0].payload["content"]
    assert "2月11日 周三 9:00-10:00" in offers[0].payload["content"]
    held = [b for b in await bookings(booking_client) if b.status == "held"]
    assert len(held) == 1 and held[0].openid == "o_waiting"
    # somebody else cannot take the held place
    other = villager(booking_client, booking_settings, "o_other")
    assert "2. 2月11日 周三（约满，可排队）" in (await dialog(other, [("预约", "法律援助"), ("2", "选哪天")]))[-1]
    # the waiting villager accepts with a plain “1” (the offer put them in its step)
    reply = await waiting.say("1")
    assert "预约成功" in reply and "经济困难证明" in reply
    accepted = [b for b in await bookings(booking_client) if b.openid == "o_waiting"]
    assert accepted[0].status == "confirmed" and accepted[0].phone == "13900002222"
    async with booking_client.app[SERVICES].session_factory() as session:
        (entry,) = (await session.execute(select(BookingWaitlist))).scalars()
        assert entry.status == "booked"


async def test_offer_not_taken_up_goes_to_the_next_in_line(
    booking_client: Any, booking_settings: Any, clock: Clock
) -> None:
    first = villager(booking_client, booking_settings, "o_first")
    await dialog(first, [("预约", "法律援助"), ("2", "选哪天"), ("2", "9:00-10:00"), ("1", "姓名"), ("张三", "确认")])
    code = (await first.say("1")).split("预约码：")[1].split()[0]
    for openid, name in (("o_w1", "李四"), ("o_w2", "王五")):
        phone = villager(booking_client, booking_settings, openid)
        await dialog(
            phone,
            [
                ("预约", "法律援助"),
                ("2", "2. 2月11日 周三（约满，可排队）"),
                ("2", "约满"),
                ("1", "姓名"),
                (name, "确认排队"),
                ("1", "排队"),
            ],
        )
    await first.say(f"取消预约 {code}")
    declined = villager(booking_client, booking_settings, "o_w1")
    assert "让给别人了" in await declined.say("不要了")
    # declined → offered at once to the second in line
    assert [m.openid for m in await outbox(booking_client)] == ["o_w1", "o_w2"]
    clock.advance(minutes=121)  # the second does not answer within the hold
    await svc.tick(job_context(booking_client, booking_settings, clock))
    statuses = {b.openid: b.status for b in await bookings(booking_client)}
    assert statuses == {"o_first": "cancelled", "o_w1": "cancelled", "o_w2": "expired"}
    async with booking_client.app[SERVICES].session_factory() as session:
        (slot,) = (await session.execute(select(BookingSlot).where(BookingSlot.taken >= 0))).scalars()
        assert slot.taken == 0
    assert "没有给您留的空位" in await villager(booking_client, booking_settings, "o_w2").say("确认预约")


async def test_words_that_are_not_about_a_booking_go_on(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    reply = await phone.say("不要了")  # nothing is offered to this villager: the rest of the bot answers
    assert reply and "让给别人" not in reply
    assert "乡法通" in await phone.say("你好")


async def test_booking_row_matches_what_the_villager_saw(booking_client: Any, booking_settings: Any) -> None:
    phone = villager(booking_client, booking_settings)
    await book_thursday_nine(phone)
    async with booking_client.app[SERVICES].session_factory() as session:
        booking = (await session.execute(select(Booking))).scalar_one()
        # reminders: Wed 18:00 and Thu 7:00 Shanghai
        assert booking.remind_eve_at == at(2026, 2, 11, 18, 0)
        assert booking.remind_soon_at == at(2026, 2, 12, 7, 0)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_fifty_villagers_confirm_the_same_time_at_once(booking_client: Any, booking_settings: Any) -> None:
    """Through the webhook: 50 villagers at the confirm step of Thu 9:00 法律咨询 (2 places + 1 raised by staff = 3)
    all send “1” at the same moment. Three get it; everybody else is offered the next free times.
    PostgreSQL only: SQLite serialises every writer; its 50-at-once test is in test_booking_service.py."""
    async with booking_client.app[SERVICES].session_factory() as session, session.begin():
        config = svc.load_config(booking_settings.knowledge_dir)
        await svc.ensure_seeded(session, config, {})
        for schedule in (await session.execute(select(BookingSchedule))).scalars():
            schedule.capacity = 3
    phones = [villager(booking_client, booking_settings, f"o_crowd_{i:02d}") for i in range(50)]

    async def to_confirm(phone: Phone) -> None:
        await dialog(
            phone,
            [("预约", "法律咨询"), ("1", "2月12日"), ("3", "9:00-9:30"), ("1", "姓名"), ("张三", "回复 1 确认预约")],
        )

    await asyncio.gather(*(to_confirm(p) for p in phones))
    replies = await asyncio.gather(*(p.say("1") for p in phones))
    assert sum("预约成功" in r for r in replies) == 3
    losers = [r for r in replies if "预约成功" not in r]
    assert len(losers) == 47
    assert all("刚刚被别人约满了" in r and "1. 2月12日 周四 9:30-10:00（剩3个）" in r for r in losers)
    assert len(await bookings(booking_client)) == 3


async def test_a_one_choice_question_never_asks_for_a_number_from_1_to_1(
    booking_client: Any, booking_settings: Any
) -> None:
    """The walkthrough: a new name typed at "还用上次的信息吗", then "2" → it said "请回复 1 到 1 之间的数字"."""
    phone = villager(booking_client, booking_settings)
    await book_thursday_nine(phone)
    await dialog(phone, [("预约", "法律咨询"), ("1", "2月10日"), ("1", "9:00"), ("1", "还用上次的信息吗")])
    await phone.say("李四")
    reply = await phone.say("2")
    assert "1 到 1" not in reply and reply.startswith("请回复 1。")
