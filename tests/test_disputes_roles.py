"""Who sees which dispute case, through the back-office (signed-in browsers with CSRF): a mediator
their villages' cases, a 法律明白人 only what they recorded, the township everything, a 三长联动
member only the queue — and every view of a party's data is audited. A ticket becomes a case with
one action, and 删除我的信息 anonymises the villager in the case too."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from bot.settings import Settings
from bot.storage.disputes import DisputeCase, DisputeParty
from bot.storage.models import OutboxMessage
from bot.storage.staff import AuditLog
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_disputes_support import bind_wechat
from tests.test_tickets_support import add_staff, all_tickets, sessions

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
pytestmark = support.sqlite_only


async def record(staffer: Any, village: int, parties: str, risk: str = "低", **extra: str) -> tuple[int, str]:
    form = {
        "village": str(village),
        "found_on": "2026-11-02",
        "source": "排查",
        "parties": parties,
        "others": "对门老李",
        "type": "邻里纠纷",
        "risk": risk,
        "summary": f"{parties}和对门老李为排水沟吵架",
        **extra,
    }
    status, page = await staffer.post("/admin/disputes/new", form)
    match = re.search(r"<h1>(\(2026\)观调字第\d+号)", page)
    assert status == 200 and match, page[:800]
    async with sessions(staffer.client)() as session:
        case = (await session.execute(select(DisputeCase).where(DisputeCase.case_no == match.group(1)))).scalar_one()
    return case.id, case.case_no


async def audits(client: Any, action: str) -> list[tuple[str, str]]:
    async with sessions(client)() as session:
        rows = await session.execute(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        return [(a.username, a.object_id) for a in rows.scalars()]


async def test_each_role_sees_and_changes_only_its_own_cases(client: Any, browsers: Any, settings: Settings) -> None:
    await add_staff(client, "chief", "admin")
    await add_staff(client, "m1", "mediator", (1,))
    await add_staff(client, "m2", "mediator", (2,))
    await add_staff(client, "v1", "volunteer", (1,))
    leader = await add_staff(client, "l1", "leader", position="police_head", name="王所长")
    await bind_wechat(client, leader, Phone(client, settings, "o_staff_police"))
    chief, m1, m2, v1, l1 = [await browsers(n) for n in ("chief", "m1", "m2", "v1", "l1")]

    c1, no1 = await record(m1, 1, "张大山")
    c2, no2 = await record(m2, 2, "赵春花", risk="高")  # 高 → the 三长联动 queue
    c3, no3 = await record(v1, 1, "孙老汉")
    status, page = await v1.post(
        "/admin/disputes/new",
        {"village": "2", "found_on": "2026-11-02", "source": "排查", "parties": "某人", "type": "邻里纠纷",
         "risk": "低", "summary": "外村的事"},
    )  # fmt: skip
    assert status == 400 and "请选择您负责的村" in page

    def shown(page: str) -> set[str]:
        return {no for no in (no1, no2, no3) if no in page}

    assert shown((await chief.get("/admin/disputes"))[1]) == {no1, no2, no3}  # the township sees all
    assert shown((await m1.get("/admin/disputes"))[1]) == {no1, no3}  # their village, incl. the volunteer's find
    assert shown((await m2.get("/admin/disputes"))[1]) == {no2}
    assert shown((await v1.get("/admin/disputes"))[1]) == {no3}  # only what they recorded
    assert (await l1.get("/admin/disputes"))[0] == 403  # 三长 see the queue, not the ledger
    assert shown((await l1.get("/admin/disputes/queue"))[1]) == {no2}

    for who, case, expected in (
        (m1, c2, 403), (m2, c1, 403), (v1, c1, 403), (l1, c1, 403),
        (m1, c1, 200), (m1, c3, 200), (chief, c2, 200), (v1, c3, 200), (l1, c2, 200),
    ):  # fmt: skip
        status, page = await who.get(f"/admin/disputes/{case}")
        assert status == expected, (who, case, status)
        if status == 403:
            assert "对门老李" not in page  # nothing leaks on the 403 page

    # changes: the village's mediator yes; the volunteer and the 三长 only read (the 三长 add notes)
    status, page = await m1.post(f"/admin/disputes/{c1}/status", {"status": "调解中"})
    assert status == 200 and "状态已改为“调解中”" in page
    assert (await m2.post(f"/admin/disputes/{c1}/status", {"status": "已化解"}))[0] == 403
    assert (await v1.post(f"/admin/disputes/{c3}/status", {"status": "调解中"}))[0] == 403
    assert "改状态" not in (await v1.get(f"/admin/disputes/{c3}"))[1]
    assert (await l1.post(f"/admin/disputes/{c2}/status", {"status": "已化解"}))[0] == 403
    status, page = await l1.post(f"/admin/disputes/{c2}/note", {"body": "派出所已约谈双方，稳控"})
    assert status == 200 and "派出所已约谈双方" in page
    assert (await l1.post(f"/admin/disputes/{c1}/note", {"body": "x"}))[0] == 403

    # the 三长 were told in WeChat when c2 entered the queue (number and village, no names)
    async with sessions(client)() as session:
        notices = [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.openid == "o_staff_police"]
    assert len(notices) == 1 and no2 in notices[0].payload["content"] and "赵春花" not in notices[0].payload["content"]

    # resolved: the case leaves the queue, and the 三长 no longer see it
    status, _ = await m2.post(f"/admin/disputes/{c2}/status", {"status": "已化解", "resolved_on": "2026-11-20"})
    assert status == 200
    assert (await l1.get(f"/admin/disputes/{c2}"))[0] == 403
    assert no2 not in (await l1.get("/admin/disputes/queue"))[1]

    views = await audits(client, "dispute.view")
    assert ("m1", str(c1)) in views and ("l1", str(c2)) in views and ("v1", str(c3)) in views
    assert ("m2", str(c1)) not in views  # a refused view shows nothing, so it is not a view
    assert {u for u, _ in await audits(client, "disputes.list")} == {"chief", "m1", "m2", "v1"}


async def test_a_ticket_becomes_a_case_and_the_villagers_erasure_reaches_it(
    client: Any, browsers: Any, settings: Settings
) -> None:
    await add_staff(client, "m1", "mediator", (1,), name="张调解员")
    villager = Phone(client, settings, "o_villager_zhao")
    await villager.subscribe("village_1")
    await dialog(
        villager,
        [
            ("转人工", "发生"),
            ("邻居把界石挪了半米，说不通", "好了"),
            ("好了", "手机号"),
            ("13800138000", "请核对"),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    m1 = await browsers("m1")
    status, page = await m1.post(f"/admin/tickets/{ticket.id}/to-case")
    assert status == 200 and "已转为纠纷案件 (2026)观调字第1号" in page
    assert "邻居把界石挪了半米" in page and "微信工单" in page and "138****8000" in page
    status, page = await m1.post(f"/admin/tickets/{ticket.id}/to-case")
    assert "这个工单已是纠纷案件 (2026)观调字第1号" in page  # one action, one case
    [ticket] = await all_tickets(client)
    assert ticket.status == "调解中"

    await dialog(villager, [("删除我的信息", "确认删除"), ("确认删除", "删除")])
    async with sessions(client)() as session:
        case = (await session.execute(select(DisputeCase))).scalar_one()
        [party] = (await session.execute(select(DisputeParty))).scalars().all()
    assert party.name == "（已删除）" and party.phone is None and party.openid is None
    assert "界石" not in case.summary and case.anonymised_at is not None
    assert case.type and case.village_id == 1 and case.found_on  # the numbers stay
    status, page = await m1.get(f"/admin/disputes/{case.id}")
    assert status == 200 and "界石" not in page and "13800138000" not in page


def test_lawbot_admin_creates_a_three_heads_member_with_a_position(database_url: str) -> None:
    import asyncio

    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.staff import StaffUser
    from tests.test_disputes_support import lawbot, migrate

    migrate(database_url)
    made = lawbot(
        database_url, "admin", "create-user", "wang", "--role", "leader", "--position", "police_head",
        "--password-stdin", input="a-long-password\n",
    )  # fmt: skip
    assert made.exit_code == 0 and "position police_head" in made.output, made.output
    bare = lawbot(
        database_url, "admin", "create-user", "li", "--role", "leader", "--password-stdin", input="pw-pw-pw-1\n"
    )
    assert bare.exit_code != 0 and "三长联动成员要选职务" in bare.output
    chief = lawbot(
        database_url, "admin", "create-user", "zhao", "--role", "admin", "--position", "judicial_head",
        "--password-stdin", input="pw-pw-pw-1-Qz7\n",  # issue 12: an admin's password needs 12+ characters
    )  # fmt: skip
    assert chief.exit_code == 0, chief.output

    async def positions() -> dict[str, tuple[str, str]]:
        engine = create_engine(database_url)
        async with create_session_factory(engine)() as session:
            rows = (await session.execute(select(StaffUser))).scalars()
            found = {s.username: (s.role, s.position) for s in rows}
        await engine.dispose()
        return found

    assert asyncio.run(positions()) == {"wang": ("leader", "police_head"), "zhao": ("admin", "judicial_head")}


async def test_an_admin_sets_a_position_in_the_staff_form(client: Any, browsers: Any) -> None:
    from bot.storage.staff import StaffUser

    await add_staff(client, "chief", "admin")
    chief = await browsers("chief")
    status, page = await chief.get("/admin/staff/new")
    assert status == 200 and "派出所负责人" in page and "三长联动" in page
    form = {"username": "wang", "display_name": "王所长", "role": "leader"}
    form |= {"password": support.PASSWORD, "confirm": support.PASSWORD}
    status, page = await chief.post("/admin/staff/new", form)
    assert status == 400 and "三长联动成员要选职务" in page
    status, page = await chief.post("/admin/staff/new", {**form, "position": "police_head"})
    assert status == 200 and "已新增 wang" in page and "派出所负责人" in page
    async with sessions(client)() as session:
        wang = (await session.execute(select(StaffUser).where(StaffUser.username == "wang"))).scalar_one()
    assert (wang.role, wang.position) == ("leader", "police_head")
    status, page = await chief.post(
        f"/admin/staff/{wang.id}", {"role": "leader", "position": "centre_head", "active": "1", "display_name": "王"}
    )
    assert status == 200
    async with sessions(client)() as session:
        wang = (await session.execute(select(StaffUser).where(StaffUser.username == "wang"))).scalar_one()
    assert wang.position == "centre_head"
    wang_browser = await browsers("wang")
    status, page = await wang_browser.get("/admin")
    assert status == 200 and "三长联动" in page and "乡矛调中心组长" in page  # a leader starts at the queue
