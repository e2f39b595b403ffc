"""Reach: MASSSENDJOBFINISH reports stored and matched to parts (by ``msg_id`` when known, otherwise the
oldest sent part still waiting), and the campaign's counts added up from them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.campaigns.store import _insert
from bot.storage.campaigns import Campaign, CampaignPart, CampaignReport
from bot.storage.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)


#: how long a sent part waits for its MASSSENDJOBFINISH to be matched by order
REPORT_MATCH_WINDOW = dt.timedelta(days=3)
#: MASSSENDJOBFINISH Status values (WeChat's documentation)
JOB_STATUS_LABELS = {
    "send success": "发送成功",
    "sendsuccess": "发送成功",
    "send fail": "发送失败",
    "sendfail": "发送失败",
    "err(10001)": "涉嫌广告",
    "err(20001)": "涉嫌政治",
    "err(20002)": "涉嫌色情",
    "err(20004)": "涉嫌社会",
    "err(20006)": "涉嫌违法犯罪",
    "err(20008)": "涉嫌欺诈",
    "err(20013)": "涉嫌版权",
    "err(21000)": "涉嫌其他",
    "err(22000)": "涉嫌互推（互相宣传）",
    "err(30001)": "原创校验出现系统错误，且选择了被判为转载就不群发",
    "err(30002)": "原创校验被判定为不能群发",
    "err(30003)": "原创校验被判定为转载文，且选择了被判为转载就不群发",
}
_MSG_ID_IN_ERROR = re.compile(r"msg_id (\d+)")


def _outbox_msg_id(row: OutboxMessage) -> int | None:
    """WeChat's msg_id of a sent mass message, from the outbox row's kept answer."""
    result = row.result
    if isinstance(result, Mapping) and result.get("msg_id"):
        return int(result["msg_id"])
    match = _MSG_ID_IN_ERROR.search(row.last_error or "")  # "already sent … (msg_id 123)"
    return int(match.group(1)) if match else None


def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def job_status_label(status: str) -> str:
    return JOB_STATUS_LABELS.get(status.strip().lower(), status or "未知")


def job_succeeded(status: str) -> bool:
    return status.strip().lower() in ("send success", "sendsuccess")


async def record_job_finish(
    session: AsyncSession, payload: Mapping[str, Any], *, now: dt.datetime | None = None
) -> CampaignReport | None:
    """Store a MASSSENDJOBFINISH push (MsgID, Status, TotalCount, FilterCount, SentCount, ErrorCount)
    and add its counts to the campaign it belongs to. The same MsgID again only updates the report."""
    now = now or utcnow()
    msg_id = _int(payload.get("MsgID") or payload.get("MsgId"))
    if not msg_id:
        log.warning("MASSSENDJOBFINISH without MsgID: %s", dict(payload))
        return None
    values = {
        "status": str(payload.get("Status") or "")[:64],
        "total_count": _int(payload.get("TotalCount")),
        "filter_count": _int(payload.get("FilterCount")),
        "sent_count": _int(payload.get("SentCount")),
        "error_count": _int(payload.get("ErrorCount")),
        "payload": {str(k): v for k, v in payload.items() if isinstance(v, str | int | float)},
    }
    insert = _insert(session)
    stmt = insert(CampaignReport).values(msg_id=msg_id, received_at=now, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["msg_id"], set_=values))
    await _link_reports(session, now)
    report = (await session.execute(select(CampaignReport).where(CampaignReport.msg_id == msg_id))).scalar_one()
    await session.refresh(report)
    return report


async def _link_reports(session: AsyncSession, now: dt.datetime) -> None:
    """Match reports to parts (by msg_id, else oldest sent part waiting), then recount the campaigns."""
    touched: set[int] = set()
    # parts whose call went out: take WeChat's msg_id from the outbox row
    learned = (
        await session.execute(
            select(CampaignPart, OutboxMessage)
            .join(OutboxMessage, OutboxMessage.idempotency_key == CampaignPart.idempotency_key)
            .where(
                CampaignPart.msg_id.is_(None),
                OutboxMessage.status == "sent",
                CampaignPart.created_at >= now - REPORT_MATCH_WINDOW,
            )
        )
    ).all()
    for learner, row in learned:
        learner.msg_id = _outbox_msg_id(row)
    # a part that learned its msg_id: undo a match by order that was wrong
    wrong = list(
        (
            await session.execute(
                select(CampaignReport)
                .join(CampaignPart, CampaignPart.id == CampaignReport.part_id)
                .where(CampaignPart.msg_id.is_not(None), CampaignPart.msg_id != CampaignReport.msg_id)
            )
        ).scalars()
    )
    for report in wrong:
        previous = await session.get(CampaignPart, report.part_id)
        if previous is not None:
            touched.add(previous.campaign_id)
        report.part_id, report.matched_by = None, None
    await session.flush()
    unmatched = list(
        (
            await session.execute(
                select(CampaignReport)
                .where(CampaignReport.part_id.is_(None), CampaignReport.received_at >= now - REPORT_MATCH_WINDOW)
                .order_by(CampaignReport.id)
            )
        ).scalars()
    )
    for report in unmatched:
        part = (
            await session.execute(
                select(CampaignPart).where(CampaignPart.msg_id == report.msg_id).order_by(CampaignPart.id).limit(1)
            )
        ).scalar_one_or_none()
        how = "msg_id"
        if part is None:
            how = "order"
            taken = select(CampaignReport.part_id).where(CampaignReport.part_id.is_not(None))
            part = (
                await session.execute(
                    select(CampaignPart)
                    .join(OutboxMessage, OutboxMessage.idempotency_key == CampaignPart.idempotency_key)
                    .where(
                        CampaignPart.msg_id.is_(None),
                        CampaignPart.id.not_in(taken),
                        OutboxMessage.status == "sent",
                        OutboxMessage.sent_at >= now - REPORT_MATCH_WINDOW,
                        CampaignPart.created_at <= report.received_at,
                    )
                    .order_by(OutboxMessage.sent_at, CampaignPart.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
        if part is None:
            continue
        existing = (
            await session.execute(select(CampaignReport).where(CampaignReport.part_id == part.id))
        ).scalar_one_or_none()
        if existing is not None:
            continue
        report.part_id, report.matched_by = part.id, how
        touched.add(part.campaign_id)
        await session.flush()
    for campaign_id in touched:
        await _recount(session, campaign_id)


async def _recount(session: AsyncSession, campaign_id: int) -> None:
    c = await session.get(Campaign, campaign_id)
    if c is None:
        return
    rows = list(
        (
            await session.execute(
                select(CampaignReport)
                .join(CampaignPart, CampaignPart.id == CampaignReport.part_id)
                .where(CampaignPart.campaign_id == campaign_id)
            )
        ).scalars()
    )
    c.total_count = sum(r.total_count for r in rows)
    c.filter_count = sum(r.filter_count for r in rows)
    c.sent_count = sum(r.sent_count for r in rows)
    c.error_count = sum(r.error_count for r in rows)
    c.reports = len(rows)
    bad = [r for r in rows if not job_succeeded(r.status)]
    if bad:
        c.last_error = f"微信群发结果：{job_status_label(bad[0].status)}（{bad[0].status}）"
        parts = int(
            await session.scalar(
                select(func.count()).select_from(CampaignPart).where(CampaignPart.campaign_id == campaign_id)
            )
            or 0
        )
        if c.status == "sent" and len(bad) == len(rows) == parts:
            c.status = "failed"


@dataclass(frozen=True)
class PartView:
    part: CampaignPart
    report: CampaignReport | None
    outbox_status: str
    outbox_error: str


async def campaign_parts(session: AsyncSession, campaign_id: int) -> list[PartView]:
    rows = (
        await session.execute(
            select(CampaignPart, CampaignReport, OutboxMessage.status, OutboxMessage.last_error)
            .outerjoin(CampaignReport, CampaignReport.part_id == CampaignPart.id)
            .outerjoin(OutboxMessage, OutboxMessage.idempotency_key == CampaignPart.idempotency_key)
            .where(CampaignPart.campaign_id == campaign_id)
            .order_by(CampaignPart.seq)
        )
    ).all()
    return [PartView(p, r, s or "missing", e or "") for p, r, s, e in rows]
