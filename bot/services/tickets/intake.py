"""Intake: a ticket filed from the villager's words, numbered (``2026-0001``: a per-year counter row,
incremented with ``UPDATE … RETURNING``), assigned round robin over the active mediators of the villager's
village (none → the township queue, ``assignee_id`` None), with its first-response deadline; urgent →
escalated at once, due within minutes, the duty person beside the mediator and an alert raised
(:mod:`bot.services.tickets.alerts`; :func:`file_urgent` is the chat's way in). Also what the villager adds
later.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tickets.alerts import URGENT_REASON, AlertOutcome, make_urgent, raise_alert, urgent_due
from bot.services.tickets.deadlines import add_working_hours, first_response_hours, local
from bot.services.tickets.escalation import escalate
from bot.services.tickets.lookups import latest_open_ticket
from bot.services.tickets.notices import notify_staff
from bot.services.tickets.thread import add_event, add_message, audit_row
from bot.storage.models import Village
from bot.storage.staff import StaffUser, staff_villages
from bot.storage.tickets import (
    ANSWERED,
    ASSIGNED,
    IN_PROGRESS,
    NEW,
    PRIORITY_HIGH,
    Ticket,
    TicketCounter,
    TicketMessage,
)

if TYPE_CHECKING:
    from bot.services.knowledge import Knowledge
    from bot.settings import Settings


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


_PHONE_CHARS = re.compile(r"[\s\-－—()（）]")


def parse_phone(text: str) -> str | None:
    """A mainland mobile (11 digits starting 1) or a landline (7–12 digits, area code optional)."""
    raw = _PHONE_CHARS.sub("", text.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    raw = raw.removeprefix("+86").removeprefix("86") if len(raw) > 11 else raw
    if re.fullmatch(r"1[3-9]\d{9}", raw) or re.fullmatch(r"0\d{9,11}|\d{7,8}", raw):
        return raw
    return None


def summary_of(text: str, media: Sequence[dict[str, Any]] = ()) -> str:
    text = " ".join(text.split())
    if text:
        return text[:500]
    kinds = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "shortvideo": "[视频]"}
    return " ".join(kinds.get(str(m.get("type")), "[附件]") for m in media)[:500] or "（未说明）"


async def next_number(session: AsyncSession, now: dt.datetime) -> str:
    year = local(now).year
    await session.execute(
        _insert(session)(TicketCounter).values(year=year, last=0).on_conflict_do_nothing(index_elements=["year"])
    )
    number = (
        await session.execute(
            update(TicketCounter)
            .where(TicketCounter.year == year)
            .values(last=TicketCounter.last + 1)
            .returning(TicketCounter.last)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    return f"{year}-{number:04d}"


def guess_topic(knowledge: Knowledge, text: str) -> tuple[str | None, float | None]:
    """The FAQ matcher's best topic for the villager's words (a hint for staff, never shown to villagers)."""
    if not text.strip():
        return None, None
    result = knowledge.matcher.match(text)
    if result.outcome == "smalltalk" or result.entry is None:
        return None, None
    return result.entry.topic, round(float(result.score), 3)


@dataclass
class Part:
    """One piece of what the villager told us: text, and/or a picture or a voice message."""

    text: str = ""
    inbound_id: int | None = None
    media: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "inbound_id": self.inbound_id, "media": self.media}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        inbound = data.get("inbound_id")
        media = data.get("media")
        return cls(str(data.get("text") or ""), int(inbound) if inbound else None, media if media else None)


@dataclass
class Intake:
    openid: str
    village_id: int | None
    parts: list[Part] = field(default_factory=list)
    phone: str | None = None
    urgent: bool = False
    source: str = "wechat"
    inbound_id: int | None = None
    #: the urgent.yaml category of an urgent intake (suicide, violence_now …)
    urgent_kind: str | None = None


async def pick_assignee(session: AsyncSession, village_id: int | None, now: dt.datetime) -> StaffUser | None:
    """Round robin over the village's active mediators; None → the township queue."""
    if village_id is None:
        return None
    stmt = (
        select(StaffUser)
        .join(staff_villages, staff_villages.c.staff_id == StaffUser.id)
        .where(staff_villages.c.village_id == village_id, StaffUser.role == "mediator", StaffUser.active.is_(True))
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=StaffUser)  # concurrent intakes wait here, then see fresh values
    mediators = list((await session.execute(stmt)).scalars())
    if not mediators:
        return None
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    chosen = min(mediators, key=lambda m: (m.last_assigned_at or oldest, m.id))
    chosen.last_assigned_at = now
    return chosen


async def create_ticket(
    session: AsyncSession, knowledge: Knowledge, settings: Settings, intake: Intake, now: dt.datetime
) -> Ticket:
    """File a ticket from the villager's words, assign it, set its deadline; urgent → escalate and alert at once."""
    ticket, _alert = await _create(session, knowledge, settings, intake, now)
    return ticket


async def _create(
    session: AsyncSession, knowledge: Knowledge, settings: Settings, intake: Intake, now: dt.datetime
) -> tuple[Ticket, AlertOutcome | None]:
    text = "\n".join(p.text for p in intake.parts if p.text).strip()
    media = [p.media for p in intake.parts if p.media]
    # words about ending one's life say nothing about a legal topic: the FAQ's guess would only mislead staff
    topic, score = (None, None) if intake.urgent_kind == "suicide" else guess_topic(knowledge, text)
    ticket = Ticket(
        number=await next_number(session, now),
        openid=intake.openid,
        village_id=intake.village_id,
        summary=summary_of(text, media),
        topic=topic,
        topic_score=score,
        source=intake.source,
        status=NEW,
        urgent=intake.urgent,
        urgent_kind=intake.urgent_kind if intake.urgent else None,
        priority=PRIORITY_HIGH if intake.urgent else 2,
        created_at=now,
        updated_at=now,
        first_response_due_at=urgent_due(settings, now)
        if intake.urgent
        else add_working_hours(now, first_response_hours(settings)),
        last_villager_message_at=now,
        contact_phone=intake.phone,
        phone_consent_at=now if intake.phone else None,
        inbound_id=intake.inbound_id,
    )
    session.add(ticket)
    await session.flush()
    for part in intake.parts:
        add_message(session, ticket, "villager", part.text, now, inbound_id=part.inbound_id, media=part.media)
    village = await session.get(Village, intake.village_id) if intake.village_id else None
    add_event(
        session,
        ticket,
        "created",
        f"村民通过微信提交（{village.name if village else '未选村'}）" + ("，已同意留手机号" if intake.phone else ""),
        now,
    )
    assignee = await pick_assignee(session, intake.village_id, now)
    if assignee is not None:
        ticket.assignee_id = assignee.id
        ticket.assigned_at = now
        ticket.status = ASSIGNED
        add_event(session, ticket, "assigned", f"自动分派给{assignee.label}（轮流分派）", now, to=assignee.id)
    else:
        add_event(session, ticket, "queued", "进入乡里待分派队列", now)
    alert: AlertOutcome | None = None
    if intake.urgent:
        escalate(session, ticket, now, target="township", reason=URGENT_REASON)
        alert = await raise_alert(session, ticket, settings, now)  # the assignee hears of it here
    elif assignee is not None:
        await notify_staff(
            session, ticket, [assignee.id], "new", settings.base_url, now, template_id=settings.wechat_staff_template_id
        )
    session.add(
        audit_row("ticket.create", now, object_type="ticket", object_id=ticket.id, details={"source": intake.source})
    )
    return ticket, alert


async def file_urgent(
    session: AsyncSession,
    knowledge: Knowledge,
    settings: Settings,
    intake: Intake,
    now: dt.datetime,
    *,
    join_open: bool = True,
) -> AlertOutcome:
    """An urgent message from chat: it joins the villager's open ticket (``join_open``) or files a new
    one; either way the ticket is urgent and its alert raised. The outcome says whether anyone can be
    reached now."""
    ticket = await latest_open_ticket(session, intake.openid) if join_open else None
    if ticket is None:
        intake.urgent, intake.source = True, "urgent"
        _ticket, alert = await _create(session, knowledge, settings, intake, now)
        assert alert is not None
        return alert
    for part in intake.parts:
        add_villager_message(session, ticket, now, text=part.text, inbound_id=part.inbound_id, media=part.media)
    return await make_urgent(session, ticket, settings, now, intake.urgent_kind)


def add_villager_message(
    session: AsyncSession,
    ticket: Ticket,
    now: dt.datetime,
    *,
    text: str,
    inbound_id: int | None,
    media: dict[str, Any] | None = None,
) -> TicketMessage:
    """The villager added to the ticket: it goes back to staff's 处理中 if it had been answered."""
    message = add_message(session, ticket, "villager", text, now, inbound_id=inbound_id, media=media)
    ticket.last_villager_message_at = now
    if ticket.status == ANSWERED:
        ticket.status = IN_PROGRESS
        add_event(session, ticket, "status", "村民发来新消息，状态回到处理中", now, to=IN_PROGRESS)
    return message
