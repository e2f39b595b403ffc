"""删除我的信息 and the data export, for dispute cases (called by the tickets' privacy hooks).

A villager linked to a case (they came through WeChat: the party's ``openid``) is anonymised there
too: their name, phone and address go, and so do the case's free texts (facts, points, terms, notes,
timeline notes), which tell their story. The case's village, category, dates, status and risk stay,
so the monthly numbers do not change. The paper 卷宗 kept by the committee (人民调解法第二十七条)
is not touched by this.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.disputes import timeline
from bot.storage.disputes import DisputeCase, DisputeEvent, DisputeParty
from bot.storage.models import utcnow

REDACTED = "[已应当事人要求删除]"
ANONYMOUS = "（已删除）"


async def erase_personal_data(session: AsyncSession, openid: str, now: dt.datetime | None = None) -> int:
    """Anonymise ``openid``'s parties and the texts of their cases; returns how many cases."""
    now = now or utcnow()
    case_ids = sorted(
        set((await session.execute(select(DisputeParty.case_id).where(DisputeParty.openid == openid))).scalars())
    )
    if not case_ids:
        return 0
    await session.execute(
        update(DisputeParty)
        .where(DisputeParty.openid == openid)
        .values(
            name=ANONYMOUS,
            gender="",
            ethnicity="",
            age=None,
            address="",
            phone=None,
            phone_consent_at=None,
            openid=None,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(DisputeEvent)
        .where(
            DisputeEvent.case_id.in_(case_ids), DisputeEvent.kind.in_(["note", "visit", "agreement", "status", "risk"])
        )
        .values(body=REDACTED)
        .execution_options(synchronize_session=False)
    )
    cases = list((await session.execute(select(DisputeCase).where(DisputeCase.id.in_(case_ids)))).scalars())
    for case in cases:
        case.summary = case.points = case.responsibility = case.notes = REDACTED
        if case.agreement_terms:
            case.agreement_terms = REDACTED
        case.visit_notes = REDACTED if case.visit_notes else ""
        case.anonymised_at = now
        timeline.add(
            session, case, "anonymised", "当事人要求删除个人信息：姓名、电话和案情文字已删除，只保留统计数据", now
        )
    return len(cases)


async def export_personal_data(session: AsyncSession, openid: str) -> list[dict[str, Any]]:
    """The cases where ``openid`` is a party: what the case says about them and the matter."""
    rows = await session.execute(
        select(DisputeParty, DisputeCase)
        .join(DisputeCase, DisputeCase.id == DisputeParty.case_id)
        .where(DisputeParty.openid == openid)
        .order_by(DisputeCase.id)
    )
    return [
        {
            "case_no": case.case_no,
            "side": party.side,
            "name": party.name,
            "phone": party.phone,
            "address": party.address,
            "type": case.type,
            "status": case.status,
            "found_on": case.found_on.isoformat(),
            "summary": case.summary,
            "agreement_terms": case.agreement_terms,
        }
        for party, case in rows.all()
    ]
