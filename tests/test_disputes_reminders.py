"""The reminder job with frozen time: 司法确认 on day 20 and day 27 of the 30, the 回访 30 days after
已化解, and the monthly report two days before its due day and on it — each once, to the mediator's
own WeChat (bound the usual way), and on the case's timeline."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.keys import SERVICES
from bot.services.jobs import JobContext
from bot.settings import Settings
from bot.storage.disputes import DisputeCase, DisputeEvent
from bot.storage.models import OutboxMessage
from tests import test_tickets_support as support
from tests.phone import Phone
from tests.test_disputes_documents import SIGNED, mediated_case
from tests.test_disputes_support import bind_wechat
from tests.test_tickets_support import CS_SEND, add_staff, deliver

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
CST = dt.timezone(dt.timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=CST).astimezone(dt.UTC)


async def tick(client: Any, now: dt.datetime) -> list[str]:
    """Run the disputes job at ``now``; return the staff notices it queued."""
    from bot.services import disputes

    services = client.app[SERVICES]
    before = await _notices(client)
    await disputes.tick(JobContext(services.settings, services.session_factory, now=lambda: now))
    return (await _notices(client))[len(before) :]


async def _notices(client: Any) -> list[str]:
    async with client.app[SERVICES].session_factory() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars()
        return [str(m.payload["content"]) for m in rows if "【乡法通】" in str(m.payload.get("content", ""))]


async def _case(client: Any, mediator_id: int) -> tuple[int, str]:
    async with client.app[SERVICES].session_factory() as session, session.begin():
        case = await mediated_case(session)
        case.mediator_id = mediator_id
        return case.id, case.case_no


async def test_judicial_confirmation_reminders_on_day_20_and_27_reach_the_mediators_wechat(
    client: Any, settings: Settings, fake_server: FakeWeChatServer
) -> None:
    zhang = await add_staff(client, "zhang", "mediator", (2,), name="张调解员")
    zhang_phone = Phone(client, settings, "o_staff_zhang")
    await bind_wechat(client, zhang, zhang_phone)
    case_id, case_no = await _case(client, zhang)
    assert dt.date(2026, 11, 20) == SIGNED  # in force from 20 November: apply by 20 December

    assert await tick(client, at(9, 10)) == []  # day 19
    assert await tick(client, at(10, 8, 59)) == []  # day 20, before 09:00
    [first] = await tick(client, at(10, 9, 5))
    assert case_no in first and "第20天" in first and "2026年12月20日" in first and "还剩10天" in first
    assert "赵春花" not in first and "界石" not in first  # no party or facts in a WeChat notice
    assert await tick(client, at(10, 15)) == []  # once
    assert await tick(client, at(16, 9)) == []
    [second] = await tick(client, at(17, 9))
    assert "第27天" in second and "还剩3天" in second
    assert await tick(client, at(18, 9)) == [] and await tick(client, at(21, 9)) == []

    await deliver(client, settings)
    sent = [c.body for c in fake_server.fake.successful(CS_SEND)]
    assert [b["touser"] for b in sent if case_no in b["text"]["content"]] == ["o_staff_zhang", "o_staff_zhang"]
    async with client.app[SERVICES].session_factory() as session:
        reminders = list(
            (
                await session.execute(
                    select(DisputeEvent.body).where(DisputeEvent.case_id == case_id, DisputeEvent.kind == "reminder")
                )
            ).scalars()
        )
    assert len(reminders) == 2 and "还剩10天" in reminders[0]


async def test_no_reminder_once_the_parties_applied_or_without_a_signed_agreement(client: Any) -> None:
    from bot.services.disputes import cases
    from bot.storage.staff import StaffUser

    zhang = await add_staff(client, "zhang", "mediator", (2,))
    case_id, _ = await _case(client, zhang)
    async with client.app[SERVICES].session_factory() as session, session.begin():
        case = await session.get(DisputeCase, case_id)
        me = await session.get(StaffUser, zhang)
        assert case is not None and me is not None
        cases.set_confirmation(session, case, "已申请", dt.date(2026, 11, 28), at(1, 10), me)
    assert await tick(client, at(10, 9, 30)) == []
    async with client.app[SERVICES].session_factory() as session:
        case = await session.get(DisputeCase, case_id)
        assert case is not None and case.confirm_reminder_stage == 0


async def test_a_visit_is_due_30_days_after_the_case_is_resolved(client: Any, settings: Settings) -> None:
    from bot.services.disputes import set_status

    zhang = await add_staff(client, "zhang", "mediator", (2,))
    await bind_wechat(client, zhang, Phone(client, settings, "o_staff_zhang"))
    case_id, case_no = await _case(client, zhang)
    async with client.app[SERVICES].session_factory() as session, session.begin():
        case = await session.get(DisputeCase, case_id)
        assert case is not None
        case.confirmation = "不申请"  # keep the 司法确认 reminders out of this test
        await set_status(session, case, "已化解", at(25, 10, month=11), resolved_on=dt.date(2026, 11, 21))
        assert case.visit_due_on == dt.date(2026, 12, 21)
    assert await tick(client, at(20, 9)) == []
    [visit] = await tick(client, at(21, 9, 1))
    assert case_no in visit and "回访" in visit
    assert await tick(client, at(22, 9)) == []


async def test_the_monthly_report_reminders_two_days_before_and_on_the_due_day(client: Any, settings: Settings) -> None:
    from bot.services.disputes import report
    from bot.storage.models import Village

    zhang = await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    li = await add_staff(client, "li", "mediator", (3,), name="李调解员")
    await bind_wechat(client, zhang, Phone(client, settings, "o_staff_zhang"))
    await bind_wechat(client, li, Phone(client, settings, "o_staff_li"))
    async with client.app[SERVICES].session_factory() as session, session.begin():
        village = await session.get(Village, 3)
        assert village is not None
        await report.submit(session, village, "2026-12", zero=True, now=at(5, 10), staff=None, via="后台")

    assert settings.dispute_report_day == 25
    assert await tick(client, at(22, 9)) == []
    [before] = await tick(client, at(23, 9))
    assert "观音寺村2026-12" in before and "2026年12月25日 前提交（还有2天）" in before and "本月排查：无" in before
    assert await tick(client, at(23, 16)) == []
    assert await tick(client, at(24, 9)) == []
    [due] = await tick(client, at(25, 9, 30))
    assert "截止日" in due and "观音寺村" in due  # 东竹园村 reported: 李调解员 gets nothing
    async with client.app[SERVICES].session_factory() as session:
        targets = [
            m.openid
            for m in (await session.execute(select(OutboxMessage))).scalars()
            if "月排查报告" in str(m.payload.get("content", ""))
        ]
    assert targets == ["o_staff_zhang", "o_staff_zhang"]
