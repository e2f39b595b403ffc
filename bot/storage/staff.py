"""Back-office staff (township admins, village mediators, legal-clarity volunteers) and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.storage.models import Base, Village, utcnow

#: role → what it may see: admin the whole township; mediator their villages; volunteer their own tickets;
#: leader (三长联动成员) only the 三长联动 queue and the cases and tickets in it
ROLES: tuple[str, ...] = ("admin", "mediator", "volunteer", "leader")
ROLE_NAMES: dict[str, str] = {
    "admin": "乡管理员",
    "mediator": "调解员",
    "volunteer": "法律明白人",
    "leader": "三长联动",
}
#: 三长联动 position held by an account ("" none); any role may hold one (an admin who is also 司法所所长)
POSITIONS: tuple[str, ...] = ("", "centre_head", "police_head", "judicial_head", "court")
POSITION_NAMES: dict[str, str] = {
    "centre_head": "乡矛调中心组长",
    "police_head": "派出所负责人",
    "judicial_head": "司法所所长",
    "court": "人民法庭",
}

staff_villages = Table(
    "staff_villages",
    Base.metadata,
    Column("staff_id", ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True),
    Column("village_id", ForeignKey("villages.id", ondelete="CASCADE"), primary_key=True),
)


class StaffUser(Base):
    """A back-office account. ``session_epoch`` goes up on a password reset or deactivation: old sessions end."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin | mediator | volunteer | leader
    #: 三长联动 position: "" | centre_head | police_head | judicial_head | court (POSITION_NAMES)
    position: Mapped[str] = mapped_column(String(32), default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: may publish the township's FAQ answers (the judicial office's lawyer; admins only)
    reviewer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: round robin: the mediator whose last automatic assignment is oldest gets the next ticket
    last_assigned_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: the last time one of their back-office pages checked for alerts while visible (presence)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    villages: Mapped[list[Village]] = relationship(secondary=staff_villages, lazy="raise_on_sql", order_by=Village.id)

    @property
    def label(self) -> str:
        return self.display_name or self.username

    @property
    def position_name(self) -> str:
        return POSITION_NAMES.get(self.position, "")


class AuditLog(Base):
    """Every view of personal data and every change made in the back-office (and by the system)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), default=None)
    username: Mapped[str] = mapped_column(String(64), default="")  # kept if the account is deleted
    action: Mapped[str] = mapped_column(String(64))  # e.g. ticket.view, ticket.reply, auth.sign_in_failed
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_action_ip_at", "action", "ip", "at"),
    )


class DutyShift(Base):
    """The township duty roster (值班): who is on duty on a weekday (``weekday`` 0 = Monday) or on one
    date (``day``, which wins over the weekday). Nobody rostered → urgent matters go to every active admin."""

    __tablename__ = "duty_shifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    weekday: Mapped[int | None] = mapped_column(Integer, default=None, unique=True)
    day: Mapped[dt.date | None] = mapped_column(Date, default=None, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
