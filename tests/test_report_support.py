"""A year of a township's work for the monthly-report tests, the screenshots and bench/report.py (no tests
here): villagers in 11 villages, tickets, the bot's answers, knowledge gaps, bookings, campaigns — written
with bulk inserts, and kept as plain records so a test can count what the report must say.

The numbers are random but seeded: the same ``seed`` gives the same year.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from bot.knowledge import KnowledgeBase
from bot.services import booking
from bot.services.reports import Month, months_up_to
from bot.settings import DEFAULT_KNOWLEDGE_DIR
from bot.storage.booking import Booking, BookingPlace, BookingService, BookingSlot
from bot.storage.campaigns import Campaign
from bot.storage.models import InboundMessage, KnowledgeGap, Village, Villager
from bot.storage.tickets import CLOSED, RESOLVED, STATUSES, Ticket, TicketMessage

VILLAGES = {
    1: "观音寺村",
    2: "西竹园村",
    3: "东竹园村",
    4: "老庄村",
    5: "柳树岭村",
    6: "黄土岭村",
    7: "大坪村",
    8: "寺沟村",
    9: "九龙潭村",
    10: "焦山村",
    11: "龙潭村",
}
TARGETS = ("township", "mediation_center", "police", "judicial", "court")
OUTCOMES = ("answer", "answer", "answer", "picked", "clarify", "handoff", "smalltalk")
#: questions the bot could not answer; one reads like a spreadsheet formula (villager text is data)
GAP_TEXTS = (
    "医保报销咋弄",
    "明天天气咋样",
    "户口迁移找谁",
    '=HYPERLINK("http://x","点我")',
    "那个事咋办",
    "宅急地证丢了",
)
DELAYS = (0.5, 2.0, 6.0, 30.0, 100.0)  # first-response hours, one per bucket
#: tickets per month (oldest first): more around the Spring Festival and after the harvest
TICKET_SEASON = (8, 12, 14, 9, 8, 7, 8, 9, 10, 11, 9, 9)
#: questions to the bot per month: more as more villagers follow the account
QUESTION_GROWTH = tuple(range(5, 17))


@dataclass
class Year:
    """What was written, as plain records (for counting in a test)."""

    months: list[Month]
    tickets: list[dict[str, Any]] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    bookings: list[dict[str, Any]] = field(default_factory=list)
    services: dict[int, str] = field(default_factory=dict)
    places: dict[int, int | None] = field(default_factory=dict)  # place id → village id
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    openid_village: dict[str, int] = field(default_factory=dict)


def _moment(rng: random.Random, month: Month) -> dt.datetime:
    seconds = (month.end - month.start).total_seconds()
    return (month.start + dt.timedelta(seconds=rng.uniform(0, seconds - 1))).astimezone(dt.UTC)


async def fill_year(
    factory: Any,
    kb: KnowledgeBase,
    last: Month,
    *,
    tickets: int = 2400,
    questions: int = 6000,
    bookings: int = 600,
    villagers_per_village: int = 30,
    seed: int = 7,
    formulas: bool = True,
) -> Year:
    """Twelve months of work ending with ``last``, plus a few rows just outside them. ``formulas``: some
    villager text and a campaign title read like spreadsheet formulas (for the export tests)."""
    rng = random.Random(seed)
    months = months_up_to(last, 12)
    outside = Month("next", last.end, last.end + dt.timedelta(days=28))  # a few rows after: never counted
    year = Year(months)
    topics = sorted(kb.topics)
    entries = [e for e in kb.entries]
    async with factory() as session, session.begin():
        known = set((await session.execute(select(Village.id))).scalars())
        missing = [{"id": v, "name": n, "active": True} for v, n in VILLAGES.items() if v not in known]
        if missing:
            await session.execute(insert(Village), missing)
        villagers = []
        for vid in VILLAGES:
            for i in range(villagers_per_village):
                openid = f"o_year_{vid}_{i}"
                year.openid_village[openid] = vid
                villagers.append(
                    {"openid": openid, "village_id": vid, "first_seen_at": months[0].start, "subscribed": True}
                )
        await session.execute(insert(Villager), villagers)
        openids = list(year.openid_village)

        # ---------------------------------------------------------------- tickets
        rows = []
        for n in range(tickets):
            month = rng.choices(months, weights=TICKET_SEASON)[0] if n < tickets - 30 else outside
            created = _moment(rng, month)
            openid = rng.choice(openids)
            village = year.openid_village[openid] if rng.random() > 0.03 else None
            status = rng.choice(STATUSES)
            delay = rng.choice(DELAYS) if rng.random() < 0.85 else None
            escalated = rng.random() < 0.1
            resolved = created + dt.timedelta(days=rng.choice((1, 3, 20))) if status in (RESOLVED, CLOSED) else None
            rows.append(
                {
                    "number": f"2025-{n:04d}",  # the format of real numbers, a year before
                    "openid": openid,
                    "village_id": village,
                    "summary": "邻居占了我家的地",
                    "topic": rng.choice(topics) if rng.random() > 0.05 else None,
                    "source": rng.choice(("wechat", "wechat", "urgent", "staff")),
                    "status": status,
                    "urgent": rng.random() < 0.06,
                    "created_at": created,
                    "updated_at": created,
                    "first_response_due_at": created + dt.timedelta(hours=24),
                    "first_response_at": created + dt.timedelta(hours=delay) if delay is not None else None,
                    "escalated_at": created + dt.timedelta(hours=5) if escalated else None,
                    "escalated_to": rng.choice(TARGETS) if escalated else None,
                    "resolved_at": resolved if status == RESOLVED else None,
                    "satisfaction": rng.choice((1, 1, 2, 3)) if rng.random() < 0.4 else None,
                    "contact_phone": f"1380000{n:04d}" if n % 2 else None,
                    "phone_consent_at": created if n % 2 else None,
                }
            )
        rows.sort(key=lambda row: row["created_at"])
        ids = (await session.execute(insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True), rows)).scalars()
        events = [
            {
                "ticket_id": ticket_id,
                "kind": "event",
                "body": "升级",
                "details": {"event": "escalated", "target": row["escalated_to"]},
                "created_at": row["escalated_at"],
            }
            for ticket_id, row in zip(ids, rows, strict=True)
            if row["escalated_at"] is not None
        ]
        await session.execute(insert(TicketMessage), events)
        year.tickets = rows

        # ---------------------------------------------------------------- the bot's answers and its gaps
        inbound, gaps = [], []
        for n in range(questions):
            month = rng.choices(months, weights=QUESTION_GROWTH)[0] if n < questions - 40 else outside
            at = _moment(rng, month)
            openid = rng.choice(openids)
            outcome = rng.choice(OUTCOMES) if rng.random() > 0.1 else None  # None: menu clicks, bookings …
            entry = rng.choice(entries) if outcome in ("answer", "picked", "clarify") else None
            topic = entry.topic if entry is not None else (rng.choice(topics) if outcome == "handoff" else None)
            inbound.append(
                {
                    "dedup_key": f"year-{seed}-{n}",
                    "openid": openid,
                    "msg_type": "text",
                    "content": "问题",
                    "payload": {},
                    "wechat_created_at": at,
                    "received_at": at,
                    "status": "replied",
                    "handler": "faq.question",
                    "outcome": outcome,
                    "topic": topic,
                    "entry_id": entry.id if entry is not None else None,
                }
            )
            if outcome in ("clarify", "handoff"):
                text = rng.choice(GAP_TEXTS if formulas else [t for t in GAP_TEXTS if not t.startswith("=")])
                gaps.append(
                    {
                        "openid": openid,
                        "text": text,
                        "normalized": text,
                        "outcome": outcome,
                        "candidates": [],
                        "created_at": at,
                    }
                )
        # written as they arrive (in time order), as the webhook writes them
        inbound.sort(key=lambda row: row["received_at"])
        gaps.sort(key=lambda row: row["created_at"])
        await session.execute(insert(InboundMessage), inbound)
        await session.execute(insert(KnowledgeGap), gaps)
        year.inbound, year.gaps = inbound, gaps

        # ---------------------------------------------------------------- bookings
        await booking.ensure_seeded(session, booking.load_config(DEFAULT_KNOWLEDGE_DIR), kb.site)
        year.places = dict((await session.execute(select(BookingPlace.id, BookingPlace.village_id))).all())
        year.services = dict((await session.execute(select(BookingService.id, BookingService.name))).all())
        slots, booked = [], []
        for n in range(bookings):
            month = months[n % 12]
            starts = _moment(rng, month).replace(minute=0, second=0, microsecond=0)
            place, service = rng.choice(sorted(year.places)), rng.choice(sorted(year.services))
            slots.append(
                {"place_id": place, "service_id": service, "starts_at": starts + dt.timedelta(seconds=n),
                 "ends_at": starts + dt.timedelta(minutes=30), "capacity": 1, "taken": 1}
            )  # fmt: skip
        slot_ids = (await session.execute(insert(BookingSlot).returning(BookingSlot.id), slots)).scalars().all()
        for n, (slot, slot_id) in enumerate(zip(slots, slot_ids, strict=True)):
            booked.append(
                {
                    "code": f"{900000 + n}",
                    "request_key": f"year-{seed}-{n}",
                    "slot_id": slot_id,
                    "place_id": slot["place_id"],
                    "service_id": slot["service_id"],
                    "starts_at": slot["starts_at"],
                    "ends_at": slot["ends_at"],
                    "openid": rng.choice(openids),
                    "name": "张三",
                    "status": rng.choice(("confirmed", "checked_in", "checked_in", "no_show", "cancelled", "expired")),
                    "source": "wechat",
                }
            )
        await session.execute(insert(Booking), booked)
        year.bookings = booked

        # ---------------------------------------------------------------- campaigns (three in the last month)
        scam = "@SUM(1+1) 防诈骗" if formulas else "防诈骗"
        campaigns = [
            ("宪法宣传周", "all", [], last.start + dt.timedelta(days=3), 420, 400, 3, 120),
            (scam, "villages", [1, 2], last.start + dt.timedelta(days=10), 60, 58, 0, 0),
            ("秋收用工提醒", "villages", [5], last.start + dt.timedelta(days=20), 30, 30, 0, 12),
            ("上个月的活动", "all", [], months[-2].start + dt.timedelta(days=5), 400, 390, 1, 0),
        ]
        for n, (title, audience, village_ids, sent_at, target, sent, failed, follow_ups) in enumerate(campaigns):
            record = {
                "title": title,
                "audience": audience,
                "village_ids": village_ids,
                "status": "sent",
                "send_key": f"k{seed}{n}",
                "sent_at": sent_at.astimezone(dt.UTC),
                "total_count": target,
                "filter_count": target,
                "sent_count": sent,
                "error_count": failed,
                "follow_up_count": follow_ups,
                "text": "普法",
            }
            await session.execute(insert(Campaign), [record])
            year.campaigns.append(record)
    return year


__all__ = ["GAP_TEXTS", "TARGETS", "VILLAGES", "Year", "fill_year"]
