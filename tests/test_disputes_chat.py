"""月排查 from WeChat: a mediator who bound their WeChat reports the month by sending "本月排查：无"
(signed XML in through tests/phone.py); a villager's "本月排查" is just another message."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from bot.keys import SERVICES
from bot.settings import Settings
from bot.storage.disputes import DisputeReport
from bot.storage.models import utcnow
from bot.storage.staff import AuditLog
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_disputes_support import bind_wechat
from tests.test_tickets_support import add_staff, sessions

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


def this_month() -> str:
    return f"{(utcnow() + dt.timedelta(hours=8)).date():%Y-%m}"


async def reports(client: Any) -> list[tuple[int, str, bool, str]]:
    async with sessions(client)() as session:
        rows = (await session.execute(select(DisputeReport).order_by(DisputeReport.village_id))).scalars()
        return [(r.village_id, r.month, r.zero, r.via) for r in rows]


async def register_case(client: Any, village_id: int) -> None:
    from bot.services.disputes import PartyIn, create_case

    async with client.app[SERVICES].session_factory() as session, session.begin():
        await create_case(
            session,
            site=client.app[SERVICES].knowledge.kb.site,
            village_id=village_id,
            found_on=(utcnow() + dt.timedelta(hours=8)).date(),
            source="排查",
            type="邻里纠纷",
            risk="低",
            summary="两家为院墙吵架",
            parties=[PartyIn("当事人", "甲"), PartyIn("对方当事人", "乙")],
            now=utcnow(),
        )


async def test_a_mediator_sends_a_zero_report_from_wechat(client: Any, settings: Settings) -> None:
    zhang = await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    phone = Phone(client, settings, "o_staff_zhang")
    await bind_wechat(client, zhang, phone)
    month = this_month()
    await dialog(
        phone,
        [
            ("本月排查", [f"观音寺村{month}：已登记纠纷 0 件", "还没报", "本月排查：无"]),
            ("本月排查：无", ["收到", f"观音寺村{month}月排查零报告", "已提交"]),
            ("本月排查:无", "已更新上次的报告"),
            ("本月排查", "已报（零报告）"),
        ],
    )
    assert await reports(client) == [(1, month, True, "微信")]
    async with sessions(client)() as session:
        audit = (await session.execute(select(AuditLog).where(AuditLog.action == "dispute_report.submit"))).scalars()
        assert [(a.username, a.details["via"]) for a in audit] == [("zhang", "微信"), ("zhang", "微信")]


async def test_a_month_with_registered_disputes_is_reported_not_zeroed(client: Any, settings: Settings) -> None:
    zhang = await add_staff(client, "zhang", "mediator", (1,))
    phone = Phone(client, settings, "o_staff_zhang")
    await bind_wechat(client, zhang, phone)
    await register_case(client, 1)
    await dialog(
        phone,
        [
            ("本月排查：无", ["已登记 1 件纠纷，不能报“无”", "/admin/disputes/monthly"]),
            ("本月排查：已报，1件邻里纠纷正在调解", ["月排查报告已提交", "本月登记纠纷 1 件"]),
        ],
    )
    assert await reports(client) == [(1, this_month(), False, "微信")]


async def test_a_mediator_of_several_villages_names_the_village(client: Any, settings: Settings) -> None:
    li = await add_staff(client, "li", "mediator", (2, 3))
    phone = Phone(client, settings, "o_staff_li")
    await bind_wechat(client, li, phone)
    await dialog(
        phone,
        [
            ("本月排查：无", ["西竹园村、东竹园村", "请写明村名"]),
            ("本月排查：东竹园 无", "东竹园村"),
            ("本月排查：老庄村 无", "您不负责老庄村"),
        ],
    )
    assert await reports(client) == [(3, this_month(), True, "微信")]


async def test_villagers_and_volunteers_saying_it_get_the_usual_bot(client: Any, settings: Settings) -> None:
    volunteer = await add_staff(client, "v1", "volunteer", (1,))
    bound = Phone(client, settings, "o_staff_v1")
    await bind_wechat(client, volunteer, bound)
    villager = Phone(client, settings, "o_villager_wang")
    await villager.subscribe("village_1")
    for phone in (villager, bound):
        reply = await phone.say("本月排查：无")
        assert reply and "零报告" not in reply  # never silence, never a report
    assert await reports(client) == []
