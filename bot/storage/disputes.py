"""Dispute cases (纠纷台账): the grid's mediation work, its timeline, and the monthly screening reports.

Values are stored as staff read them (Chinese): the statistics categories of 人民调解, the risk
levels and the statuses below are also the values of the import file and of `lawbot disputes list`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, utcnow

#: 人民调解 statistics categories, in the order of the county's report form
TYPES: tuple[str, ...] = (
    "婚姻家庭纠纷",
    "邻里纠纷",
    "房屋宅基地纠纷",
    "山林土地纠纷",
    "合同纠纷",
    "损害赔偿纠纷",
    "劳动争议纠纷",
    "征地拆迁纠纷",
    "道路交通事故纠纷",
    "村务管理纠纷",
    "其他纠纷",
)
RISKS: tuple[str, ...] = ("低", "中", "高")
SCREENING, MEDIATING, RESOLVED, CONTAINED, REPORTED = "排查中", "调解中", "已化解", "稳控中", "已上报"
STATUSES: tuple[str, ...] = (SCREENING, MEDIATING, RESOLVED, CONTAINED, REPORTED)
#: how the dispute came to the grid's attention
SOURCES: tuple[str, ...] = ("排查", "来访", "微信工单", "转交")
SIDES: tuple[str, ...] = ("当事人", "对方当事人")
WRITTEN, ORAL = "书面", "口头"
#: 司法确认: the parties decide whether to apply (人民调解法第33条: "认为有必要的")
CONFIRM_APPLIED, CONFIRM_DECLINED = "已申请", "不申请"
VISIT_RESULTS: tuple[str, ...] = ("已履行", "部分履行", "未履行")


class DisputeCounter(Base):
    """The last case number handed out, per case word (``观调字``) and year; row-locked by its UPDATE."""

    __tablename__ = "dispute_counters"

    word: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class DisputeCase(Base):
    """One dispute in the grid's ledger, from the day it was found to the 回访 after it was resolved."""

    __tablename__ = "dispute_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_no: Mapped[str] = mapped_column(String(40), unique=True)  # (2026)观调字第12号
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    found_on: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(8))  # SOURCES
    type: Mapped[str] = mapped_column(String(16))  # TYPES
    risk: Mapped[str] = mapped_column(String(2))  # RISKS
    status: Mapped[str] = mapped_column(String(8))  # STATUSES
    summary: Mapped[str] = mapped_column(Text, default="")  # the main facts (简要情况)
    points: Mapped[str] = mapped_column(Text, default="")  # the points in dispute (争议事项)
    responsibility: Mapped[str] = mapped_column(Text, default="")  # each party's responsibility
    notes: Mapped[str] = mapped_column(Text, default="")
    committee: Mapped[str] = mapped_column(String(64), default="")  # the 人民调解委员会 that mediates
    mediator_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    mediator_name: Mapped[str] = mapped_column(String(64), default="")  # from a ledger, when no account matches
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), default=None, unique=True
    )
    resolved_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    # 三长联动: entered when the risk is 高 or the case is 稳控中; followed until it is resolved
    queue_entered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    queue_left_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # the mediation agreement (人民调解法第28-30条)
    agreement_kind: Mapped[str] = mapped_column(String(4), default="")  # "" | 书面 | 口头
    agreement_terms: Mapped[str] = mapped_column(Text, default="")
    performance_method: Mapped[str] = mapped_column(Text, default="")
    performance_deadline: Mapped[str] = mapped_column(String(64), default="")
    agreement_on: Mapped[dt.date | None] = mapped_column(Date, default=None)  # the day it took effect
    # 司法确认 within 30 days of agreement_on (民事诉讼法第205条)
    confirmation: Mapped[str] = mapped_column(String(8), default="")  # "" undecided | 已申请 | 不申请
    confirmation_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    confirm_reminder_stage: Mapped[int] = mapped_column(Integer, default=0)  # 0, 20, 27: reminders sent
    # 回访 30 days after 已化解
    visit_due_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    visited_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    visit_result: Mapped[str] = mapped_column(String(8), default="")  # VISIT_RESULTS
    visit_notes: Mapped[str] = mapped_column(Text, default="")
    visit_reminded_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: a ledger row's identity (date, village, parties, type, facts): importing it again is a no-op
    import_key: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    anonymised_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_dispute_cases_village_found", "village_id", "found_on"),
        Index("ix_dispute_cases_found_on", "found_on"),
        Index("ix_dispute_cases_mediator_id", "mediator_id"),
    )

    @property
    def in_queue(self) -> bool:
        """In the 三长联动 queue now."""
        return self.queue_entered_at is not None and self.queue_left_at is None

    @property
    def has_agreement(self) -> bool:
        return bool(self.agreement_kind)


class DisputeParty(Base):
    """A party to a case. ``phone`` only with consent; ``openid`` links a villager who came through WeChat."""

    __tablename__ = "dispute_parties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"), index=True)
    side: Mapped[str] = mapped_column(String(8))  # SIDES
    name: Mapped[str] = mapped_column(String(64))
    gender: Mapped[str] = mapped_column(String(2), default="")
    ethnicity: Mapped[str] = mapped_column(String(16), default="")
    age: Mapped[int | None] = mapped_column(Integer, default=None)
    address: Mapped[str] = mapped_column(String(128), default="")
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    phone_consent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    openid: Mapped[str | None] = mapped_column(String(64), default=None, index=True)


class DisputeEvent(Base):
    """The case's timeline. Status, risk and queue changes carry ``details`` and the day they took effect
    (``effective_on``), from which the monthly report reads a case's state at a month's end."""

    __tablename__ = "dispute_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # created | status | risk | queue | note | agreement | …
    body: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"status": …} {"risk": …} {"queue": bool}
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    effective_on: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (Index("ix_dispute_events_case", "case_id", "id"),)


class DisputeReport(Base):
    """A village's monthly screening report (月报告); ``zero`` is a 零报告 ("本月排查：无")."""

    __tablename__ = "dispute_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    month: Mapped[str] = mapped_column(String(7))  # 2026-03
    zero: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    via: Mapped[str] = mapped_column(String(8), default="后台")  # 后台 | 微信 | 命令行
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("village_id", "month"),)
