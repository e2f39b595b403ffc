"""Tickets: a villager's request for a person, its thread, and the per-year number counter."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, utcnow

# Statuses (stored as shown to staff). 调解中 and 已转交 sit beside the main line.
NEW = "新建"
ASSIGNED = "已分派"
IN_PROGRESS = "处理中"
ANSWERED = "已答复"
RESOLVED = "已解决"
CLOSED = "已关闭"
MEDIATING = "调解中"
TRANSFERRED = "已转交"
STATUSES: tuple[str, ...] = (NEW, ASSIGNED, IN_PROGRESS, ANSWERED, RESOLVED, CLOSED, MEDIATING, TRANSFERRED)
#: a ticket in one of these still needs the township's work; the villager's messages may join it
OPEN_STATUSES: tuple[str, ...] = (NEW, ASSIGNED, IN_PROGRESS, ANSWERED, MEDIATING)

PRIORITY_HIGH, PRIORITY_NORMAL, PRIORITY_LOW = 1, 2, 3
PRIORITY_NAMES: dict[int, str] = {PRIORITY_HIGH: "高", PRIORITY_NORMAL: "中", PRIORITY_LOW: "低"}


class TicketCounter(Base):
    """One row per year: the last ticket number handed out (row-locked by the UPDATE that increments it)."""

    __tablename__ = "ticket_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    """A villager's request for a person. ``openid`` is None once the villager had their data deleted."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)  # 2026-0001
    openid: Mapped[str | None] = mapped_column(String(64), default=None)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), default=None)
    summary: Mapped[str] = mapped_column(Text, default="")  # what happened, as the villager put it first
    topic: Mapped[str | None] = mapped_column(String(64), default=None)  # the FAQ's topic guess
    topic_score: Mapped[float | None] = mapped_column(Float, default=None)
    source: Mapped[str] = mapped_column(String(16), default="wechat")  # wechat | urgent | staff
    status: Mapped[str] = mapped_column(String(16), default=NEW)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the urgent.yaml category that made it urgent (suicide, threat_to_life, violence_now, minors)
    urgent_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    priority: Mapped[int] = mapped_column(Integer, default=PRIORITY_NORMAL)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: urgent tickets: the township duty person (值班) answers beside the village mediator
    duty_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    #: the first time a staff member with access opened the ticket page
    first_opened_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    first_opened_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    # the urgent alert (banner, sound, WeChat notices): raised at alert_at, ended when a staff member with
    # access opens the ticket (alert_seen_*), escalated once to every township admin when nobody did in time
    alert_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    alert_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    alert_seen_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    alert_escalated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # 三长联动: escalated to the township (mediation centre, police station, judicial office)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    escalated_to: Mapped[str | None] = mapped_column(String(32), default=None)
    escalation_reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: a 三长联动 escalation: when a holder of the target's position first opened the ticket after it
    escalation_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    overdue_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # set once by the overdue job
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    first_response_due_at: Mapped[dt.datetime]
    first_response_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_staff_reply_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_villager_message_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    villager_ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # "结束" ends the follow-up chat
    resolved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # a signed mediation agreement: judicial confirmation must be applied for within 30 days
    agreement_signed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    satisfaction: Mapped[int | None] = mapped_column(Integer, default=None)  # 1 有帮助 2 一般 3 没帮助
    satisfaction_asked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    satisfaction_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # only with the villager's consent; deleted by the retention job or on request
    contact_phone: Mapped[str | None] = mapped_column(String(32), default=None)
    phone_consent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    anonymised_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # phone numbers typed into the story, 补充 or any message of the thread were taken out (180 days after
    # the ticket ended, like contact_phone)
    phones_erased_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    inbound_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("inbound_messages.id"), default=None, unique=True
    )

    __table_args__ = (
        Index("ix_tickets_openid_status", "openid", "status"),
        Index("ix_tickets_village_status", "village_id", "status"),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_created_at", "created_at"),
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def alert_pending(self) -> bool:
        """An urgent alert nobody has acknowledged by opening the ticket yet."""
        return self.alert_at is not None and self.alert_seen_at is None and self.is_open


class TicketMessage(Base):
    """One thread entry: villager (inbound), reply (public, through the outbox), note (internal), event (system)."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # villager | reply | note | event
    body: Mapped[str] = mapped_column(Text, default="")
    #: villager media: {"type": "image"|"voice"|..., "media_id": ..., "pic_url": ..., "recognised": bool}
    media: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: events: {"event": "status", "from": ..., "to": ..., "reason": ...} and the like
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    inbound_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("inbound_messages.id"), default=None
    )
    outbox_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("outbox.id"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_ticket_messages_ticket_id", "ticket_id", "id"),)
