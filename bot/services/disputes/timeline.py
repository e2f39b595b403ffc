"""A case's timeline: every change and note in order, and a case's state on a past day read back from it.

Status, risk and queue changes are events whose ``details`` carry the new value and whose
``effective_on`` is the day the change took effect (the 化解 day for 已化解, the ledger's dates for
imported rows, otherwise the day it was recorded). The monthly report asks :func:`state_on` for a
case's status and 三长联动 queue membership at a month's end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.disputes.deadlines import today
from bot.storage.disputes import DisputeCase, DisputeEvent
from bot.storage.staff import StaffUser

#: event kinds as staff read them
KIND_NAMES: dict[str, str] = {
    "created": "登记",
    "status": "状态",
    "risk": "风险",
    "queue": "三长联动",
    "note": "记录",
    "edit": "修改",
    "agreement": "调解协议",
    "confirmation": "司法确认",
    "visit": "回访",
    "reminder": "提醒",
    "ticket": "工单",
    "document": "文书",
    "anonymised": "删除个人信息",
}
STATE_KINDS: tuple[str, ...] = ("created", "status", "queue")


def add(
    session: AsyncSession,
    case: DisputeCase,
    kind: str,
    body: str,
    now: dt.datetime,
    *,
    staff: StaffUser | None = None,
    effective_on: dt.date | None = None,
    **details: Any,
) -> DisputeEvent:
    event = DisputeEvent(
        case_id=case.id,
        kind=kind,
        body=body,
        details=details,
        staff_id=staff.id if staff is not None else None,
        at=now,
        effective_on=effective_on or today(now),
    )
    session.add(event)
    case.updated_at = now
    return event


@dataclass(frozen=True)
class State:
    status: str
    queued: bool


@dataclass(frozen=True)
class Change:
    """One state-carrying event, as the report reads it."""

    case_id: int
    id: int
    effective_on: dt.date
    details: dict[str, Any]


def state_on(changes: Iterable[Change], day: dt.date, default_status: str) -> State:
    """The case's status and queue membership at the end of ``day``."""
    status, queued = default_status, False
    for change in sorted(changes, key=lambda c: (c.effective_on, c.id)):
        if change.effective_on > day:
            break
        if "status" in change.details:
            status = str(change.details["status"])
        if "queue" in change.details:
            queued = bool(change.details["queue"])
    return State(status, queued)


async def changes_of(session: AsyncSession, case_ids: Sequence[int]) -> dict[int, list[Change]]:
    found: dict[int, list[Change]] = {}
    if not case_ids:
        return found
    rows = await session.execute(
        select(DisputeEvent.case_id, DisputeEvent.id, DisputeEvent.effective_on, DisputeEvent.details).where(
            DisputeEvent.case_id.in_(list(case_ids)), DisputeEvent.kind.in_(STATE_KINDS)
        )
    )
    for case_id, event_id, effective_on, details in rows.all():
        found.setdefault(case_id, []).append(Change(case_id, event_id, effective_on, dict(details or {})))
    return found


@dataclass(frozen=True)
class Entry:
    event: DisputeEvent
    kind: str
    author: str


async def entries(session: AsyncSession, case_id: int) -> list[Entry]:
    rows = await session.execute(
        select(DisputeEvent, StaffUser)
        .outerjoin(StaffUser, StaffUser.id == DisputeEvent.staff_id)
        .where(DisputeEvent.case_id == case_id)
        .order_by(DisputeEvent.at, DisputeEvent.id)
    )
    return [
        Entry(event, KIND_NAMES.get(event.kind, event.kind), staff.label if staff is not None else "系统")
        for event, staff in rows.all()
    ]
