"""Back-office staff (township admins, village mediators, legal-clarity volunteers) and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.storage.models import Base, Village, utcnow

#: role → what it may see: admin the whole township; mediator their villages; volunteer their own tickets
ROLES: tuple[str, ...] = ("admin", "mediator", "volunteer")
ROLE_NAMES: dict[str, str] = {"admin": "乡管理员", "mediator": "调解员", "volunteer": "法律明白人"}

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
    role: Mapped[str] = mapped_column(String(16))  # admin | mediator | volunteer
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: round robin: the mediator whose last automatic assignment is oldest gets the next ticket
    last_assigned_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    villages: Mapped[list[Village]] = relationship(secondary=staff_villages, lazy="raise_on_sql", order_by=Village.id)

    @property
    def label(self) -> str:
        return self.display_name or self.username


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
