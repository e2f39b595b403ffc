"""What an audit entry was about, in words: 工单 2026-0003, 预约 589922（李建国）, 普法活动《…》, a villager by
name and village — never a table name, a row id or an openid. One query per kind of object on a page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import villagers
from bot.services.audit.names import OBJECT_TYPE_NAMES
from bot.storage.booking import Booking, BookingPlace, BookingSchedule, BookingService, BookingSpecialDay
from bot.storage.campaigns import Campaign
from bot.storage.disputes import DisputeCase
from bot.storage.models import Village, Villager
from bot.storage.staff import AuditLog, StaffUser
from bot.storage.tickets import Ticket

#: object type → (model, the column that names a row)
_NAMED: dict[str, tuple[Any, Any]] = {
    "ticket": (Ticket, Ticket.number),
    "booking_place": (BookingPlace, BookingPlace.name),
    "booking_service": (BookingService, BookingService.name),
    "campaign": (Campaign, Campaign.title),
    "dispute": (DisputeCase, DisputeCase.case_no),
    "staff": (StaffUser, StaffUser.display_name),
    "village": (Village, Village.name),
}


def _int_ids(rows: Sequence[AuditLog], kind: str) -> set[int]:
    return {int(r.object_id) for r in rows if r.object_type == kind and r.object_id.isdigit()}


async def _names(session: AsyncSession, kind: str, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    model, column = _NAMED[kind]
    found: dict[int, Any] = dict((await session.execute(select(model.id, column).where(model.id.in_(ids)))).all())
    if kind == "staff":  # a person without a display name goes by their sign-in name
        blank = [i for i, name in found.items() if not name]
        if blank:
            found.update(
                dict(
                    (
                        await session.execute(select(StaffUser.id, StaffUser.username).where(StaffUser.id.in_(blank)))
                    ).all()
                )
            )
    return {int(k): str(v) for k, v in found.items()}


async def _bookings(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (await session.execute(select(Booking.id, Booking.code, Booking.name).where(Booking.id.in_(ids)))).all()
    return {int(i): f"{code}（{name}）" if name else str(code) for i, code, name in rows}


async def _schedules(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (
        await session.execute(
            select(BookingSchedule.id, BookingPlace.name, BookingService.name)
            .join(BookingPlace, BookingPlace.id == BookingSchedule.place_id)
            .join(BookingService, BookingService.id == BookingSchedule.service_id)
            .where(BookingSchedule.id.in_(ids))
        )
    ).all()
    return {int(i): f"{place} · {service}" for i, place, service in rows}


async def _special_days(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (
        await session.execute(
            select(BookingSpecialDay.id, BookingSpecialDay.day, BookingSpecialDay.title).where(
                BookingSpecialDay.id.in_(ids)
            )
        )
    ).all()
    return {int(i): f"{day.month}月{day.day}日{' ' + title if title else ''}" for i, day, title in rows}


async def _villagers(session: AsyncSession, rows: Sequence[AuditLog]) -> dict[str, str]:
    """object_id → the villager's card label: a villager id, or (entries of older versions) an openid's tail."""
    mine = [r for r in rows if r.object_type == "villager" and r.action != "villager.forget"]
    ids = {int(r.object_id) for r in mine if r.object_id.isdigit()}
    tails = {r.object_id for r in mine if r.object_id and not r.object_id.isdigit()}
    openids: dict[str, str] = {}  # object_id → openid
    if ids:
        openids.update(
            {
                str(i): o
                for i, o in (await session.execute(select(Villager.id, Villager.openid).where(Villager.id.in_(ids))))
            }
        )
    for tail in tails:
        found = (
            await session.execute(select(Villager.openid).where(Villager.openid.like(f"%{tail}")).limit(1))
        ).scalar_one_or_none()
        if found:
            openids[tail] = found
    found_cards = await villagers.cards(session, openids.values())
    return {key: found_cards[o].label if o in found_cards else villagers.ERASED for key, o in openids.items()}


async def describe(session: AsyncSession, rows: Sequence[AuditLog], villages: dict[int, str]) -> list[str]:
    """What each entry was about, in words (same order as ``rows``)."""
    names: dict[str, dict[int, str]] = defaultdict(dict)
    for kind in _NAMED:
        names[kind] = await _names(session, kind, _int_ids(rows, kind))
    names["booking"] = await _bookings(session, _int_ids(rows, "booking"))
    names["booking_schedule"] = await _schedules(session, _int_ids(rows, "booking_schedule"))
    names["booking_special_day"] = await _special_days(session, _int_ids(rows, "booking_special_day"))
    people = await _villagers(session, rows)
    return [_one(r, names, people, villages) for r in rows]


def _one(r: AuditLog, names: dict[str, dict[int, str]], people: dict[str, str], villages: dict[int, str]) -> str:
    kind, oid = r.object_type, r.object_id
    what = OBJECT_TYPE_NAMES.get(kind, "")
    details = r.details or {}
    if kind == "villager":
        if r.action in ("villager.forget", "villager.forget_request"):
            tickets = details.get("tickets")
            count = len(tickets) if isinstance(tickets, list) else int(tickets or 0)
            return f"一位村民（{count} 个工单已匿名）" if details else "一位村民"
        if r.action == "villager.search":
            return f"村民（找到 {details.get('found', 0)} 位）" if details else "村民"
        return people.get(oid, villagers.ERASED)
    if kind in ("knowledge", "village_tags"):
        return what
    if kind == "duty":
        return f"值班表 {details['day']}" if details.get("day") else what
    if kind == "report":
        return f"月报告 {oid}" if oid else what
    if kind == "dispute_report":
        village, _sep, month = oid.partition(":")
        place = villages.get(int(village), "") if village.isdigit() else ""
        return f"{place} {month} 月排查报告".strip()
    if kind == "dispute" and r.action == "disputes.import":
        return f"导入台账（新增 {details.get('created', 0)} 件）"
    if kind == "staff" and r.action in ("auth.sign_in_failed", "auth.sign_in_blocked"):
        return f"登录名“{oid}”"
    if oid.isdigit():
        name = names.get(kind, {}).get(int(oid))
        if kind == "campaign" and name:
            return f"普法活动《{name}》"
        if name:
            return f"{what} {name}" if what else name
        return f"{what}（已删除）" if what else ""
    return what


__all__ = ["describe"]
