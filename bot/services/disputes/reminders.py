"""The periodic job: 司法确认 reminders (day 20 and day 27 of the 30), 回访 reminders, and the monthly
screening report's reminders (two days before the due day and on it). From 09:00 China time.

Idempotent under several workers: a case's reminder is claimed with a conditional ``UPDATE … WHERE
stage < n RETURNING`` before anything is written, and WeChat notices carry outbox idempotency keys.
Every reminder also lands on the case's timeline, so staff without a bound WeChat see it there.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.disputes import notices, timeline
from bot.services.disputes.deadlines import (
    CONFIRMATION_DAYS,
    CONFIRMATION_REMINDER_DAYS,
    chinese_date,
    confirmation_deadline,
    is_remind_time,
    month_of,
    report_due_on,
    today,
)
from bot.storage.disputes import RESOLVED, WRITTEN, DisputeCase, DisputeReport
from bot.storage.models import Village

if TYPE_CHECKING:
    from bot.services.jobs import JobContext

CONFIRM_NOTICE = (
    "【乡法通】纠纷 {case_no}（{village}）的调解协议{on}生效，今天是第{days}天。双方如需司法确认，"
    "须在 {deadline} 前共同向基层人民法院申请（民事诉讼法第二百零五条），还剩{left}天：{url}"
)
VISIT_NOTICE = "【乡法通】纠纷 {case_no}（{village}）化解已满30天，请回访协议履行情况并登记：{url}"
REPORT_NOTICES = {
    "before": "【乡法通】{village}{month}的矛盾纠纷月排查报告请在 {due} 前提交（还有2天）。"
    "没有发现纠纷可直接回复：本月排查：无",
    "due": "【乡法通】今天（{due}）是{village}{month}月排查报告的截止日，还没有提交。"
    "没有发现纠纷可直接回复：本月排查：无；有纠纷请在后台登记后提交：{url}",
}


async def _village_names(session: AsyncSession) -> dict[int, str]:
    return {v.id: v.name for v in (await session.execute(select(Village))).scalars()}


async def confirmation_reminders(session: AsyncSession, now: dt.datetime, base_url: str = "") -> list[int]:
    """Written agreements in force for 20 (then 27) days whose parties have not decided on 司法确认."""
    day = today(now)
    first = min(CONFIRMATION_REMINDER_DAYS)
    candidates = list(
        (
            await session.execute(
                select(DisputeCase).where(
                    DisputeCase.agreement_kind == WRITTEN,
                    DisputeCase.confirmation == "",
                    DisputeCase.agreement_on.is_not(None),
                    DisputeCase.agreement_on <= day - dt.timedelta(days=first),
                    DisputeCase.agreement_on >= day - dt.timedelta(days=CONFIRMATION_DAYS),
                    DisputeCase.confirm_reminder_stage < max(CONFIRMATION_REMINDER_DAYS),
                )
            )
        ).scalars()
    )
    villages = await _village_names(session) if candidates else {}
    reminded = []
    for case in candidates:
        assert case.agreement_on is not None
        days = (day - case.agreement_on).days
        stage = max(n for n in CONFIRMATION_REMINDER_DAYS if n <= days)
        claimed = (
            await session.execute(
                update(DisputeCase)
                .where(DisputeCase.id == case.id, DisputeCase.confirm_reminder_stage < stage)
                .values(confirm_reminder_stage=stage)
                .returning(DisputeCase.id)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        if claimed is None:
            continue
        case.confirm_reminder_stage = stage
        deadline = confirmation_deadline(case.agreement_on)
        left = (deadline - day).days
        timeline.add(
            session,
            case,
            "reminder",
            f"协议生效第{days}天：如需司法确认，须在 {chinese_date(deadline)} 前共同申请（还剩{left}天）",
            now,
        )
        content = CONFIRM_NOTICE.format(
            case_no=case.case_no,
            village=villages.get(case.village_id, ""),
            on=chinese_date(case.agreement_on),
            days=days,
            deadline=chinese_date(deadline),
            left=left,
            url=notices.case_url(base_url, case),
        )
        await notices.send(
            session,
            await notices.case_mediators(session, case),
            content,
            f"dispute-confirm:{case.id}:{case.agreement_on.isoformat()}:{stage}",
            f"dispute:{case.id}",
        )
        reminded.append(case.id)
    return reminded


async def visit_reminders(session: AsyncSession, now: dt.datetime, base_url: str = "") -> list[int]:
    """Cases resolved 30 days ago and not yet visited: remind the mediator once."""
    day = today(now)
    ids = list(
        (
            await session.execute(
                update(DisputeCase)
                .where(
                    DisputeCase.status == RESOLVED,
                    DisputeCase.visit_due_on <= day,
                    DisputeCase.visited_on.is_(None),
                    DisputeCase.visit_reminded_at.is_(None),
                )
                .values(visit_reminded_at=now)
                .returning(DisputeCase.id)
                .execution_options(synchronize_session=False)
            )
        ).scalars()
    )
    if not ids:
        return []
    villages = await _village_names(session)
    for case in (await session.execute(select(DisputeCase).where(DisputeCase.id.in_(ids)))).scalars():
        case.visit_reminded_at = now
        timeline.add(session, case, "reminder", "化解已满30天，请回访协议履行情况", now)
        content = VISIT_NOTICE.format(
            case_no=case.case_no, village=villages.get(case.village_id, ""), url=notices.case_url(base_url, case)
        )
        await notices.send(
            session,
            await notices.case_mediators(session, case),
            content,
            f"dispute-visit:{case.id}:{case.visit_due_on}",
            f"dispute:{case.id}",
        )
    return ids


async def report_reminders(session: AsyncSession, now: dt.datetime, report_day: int, base_url: str = "") -> int:
    """Two days before the due day, and on it: the mediators of villages that have not reported."""
    day = today(now)
    month = month_of(day)
    due = report_due_on(month, report_day)
    kind = "before" if day == due - dt.timedelta(days=2) else "due" if day == due else None
    if kind is None:
        return 0
    reported = set(
        (await session.execute(select(DisputeReport.village_id).where(DisputeReport.month == month))).scalars()
    )
    sent = 0
    for village in (await session.execute(select(Village).where(Village.active.is_(True)))).scalars():
        if village.id in reported:
            continue
        content = REPORT_NOTICES[kind].format(
            village=village.name, month=month, due=chinese_date(due), url=f"{base_url}/admin/disputes/monthly"
        )
        sent += await notices.send(
            session,
            await notices.mediators_of(session, village.id),
            content,
            f"dispute-report:{month}:{village.id}:{kind}",
            f"dispute-report:{month}",
        )
    return sent


async def tick(ctx: JobContext) -> None:
    """Periodic (every minute): the reminders that are due, from 09:00 China time."""
    now = ctx.now()
    if not is_remind_time(now):
        return
    base_url = ctx.settings.base_url
    async with ctx.session_factory() as session, session.begin():
        await confirmation_reminders(session, now, base_url)
        await visit_reminders(session, now, base_url)
        await report_reminders(session, now, ctx.settings.dispute_report_day, base_url)
