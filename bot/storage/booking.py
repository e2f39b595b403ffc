"""Appointment booking for the public legal service: services, places, schedules, slots, bookings.

Wall-clock times of a schedule (``08:30``) are local (Asia/Shanghai) by nature and stored as
``time``; every instant (a slot's start, a booking, a reminder) is stored in UTC.

A slot row is the per-slot counter that prevents overbooking: a place is taken with
``UPDATE booking_slots SET taken = taken + 1 WHERE id = … AND taken < capacity`` (see
:mod:`bot.services.booking`). Slot rows are created lazily from the schedule when first booked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, utcnow

#: booking statuses; ``held`` (a place kept for a waiting-list offer), ``confirmed``, ``checked_in`` and
#: ``no_show`` occupy a place, ``cancelled`` and ``expired`` do not.
BOOKING_STATUSES: tuple[str, ...] = ("held", "confirmed", "checked_in", "no_show", "cancelled", "expired")
OCCUPYING_STATUSES: tuple[str, ...] = ("held", "confirmed", "checked_in", "no_show")
#: what counts towards a villager's limit of upcoming bookings
UPCOMING_STATUSES: tuple[str, ...] = ("held", "confirmed")
WAITLIST_STATUSES: tuple[str, ...] = ("waiting", "offered", "booked", "expired", "cancelled")
SPECIAL_DAY_KINDS: tuple[str, ...] = ("closed", "extra")


class BookingService(Base):
    """What a villager can book: 法律咨询, 法律援助申请, 人民调解, …"""

    __tablename__ = "booking_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    bring: Mapped[str] = mapped_column(Text, default="")  # 要带的材料, shown on confirmation and reminders
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class BookingPlace(Base):
    """Where: the township's 公共法律服务站 or a village service point."""

    __tablename__ = "booking_places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Text, default="")
    # the village (site.yaml id) a service point belongs to; None for the township's station
    village_id: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class BookingSchedule(Base):
    """One opening session of a service at a place, on some weekdays (0 = Monday … 6 = Sunday)."""

    __tablename__ = "booking_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("booking_places.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("booking_services.id", ondelete="CASCADE"))
    weekdays: Mapped[list[Any]] = mapped_column(default=list)
    start_time: Mapped[dt.time] = mapped_column(Time())
    end_time: Mapped[dt.time] = mapped_column(Time())
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    breaks: Mapped[list[Any]] = mapped_column(default=list)  # ["10:00-10:15", …] local times
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint("slot_minutes > 0", name="slot_minutes_positive"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
    )


class BookingSpecialDay(Base):
    """A closure (``closed``) or a day with more places or other hours (``extra``: 法律咨询日 …).

    ``place_id``/``service_id`` None means every place / every service. An ``extra`` day with
    ``start_time``/``end_time`` opens those hours (even on a weekend or holiday: staff chose to);
    without them it adds ``extra_capacity`` to every slot of the regular schedule that day.
    """

    __tablename__ = "booking_special_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # closed | extra
    place_id: Mapped[int | None] = mapped_column(ForeignKey("booking_places.id", ondelete="CASCADE"), default=None)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("booking_services.id", ondelete="CASCADE"), default=None)
    title: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    volunteers: Mapped[str] = mapped_column(Text, default="")  # who is on duty, shown to villagers
    start_time: Mapped[dt.time | None] = mapped_column(Time(), default=None)
    end_time: Mapped[dt.time | None] = mapped_column(Time(), default=None)
    slot_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    capacity: Mapped[int | None] = mapped_column(Integer, default=None)
    extra_capacity: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), default=None)


class BookingSlot(Base):
    """The counter row of one slot: ``taken`` places out of ``capacity``."""

    __tablename__ = "booking_slots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("booking_places.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("booking_services.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    taken: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("place_id", "service_id", "starts_at", name="uq_booking_slots_place_service_start"),
        CheckConstraint("taken >= 0", name="taken_not_negative"),
        Index("ix_booking_slots_starts_at", "starts_at"),
    )


class Booking(Base):
    """One villager's appointment (or a place held for a waiting-list offer)."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)  # the 预约码 villagers quote
    # one booking per request: a re-sent confirmation finds the booking it already made
    request_key: Mapped[str] = mapped_column(String(191), unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("booking_slots.id"), index=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("booking_places.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("booking_services.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    openid: Mapped[str | None] = mapped_column(String(64), default=None)  # None: booked by staff for a caller
    name: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str | None] = mapped_column(String(32), default=None)  # only with consent
    phone_consent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    source: Mapped[str] = mapped_column(String(16), default="wechat")  # wechat | staff | waitlist
    hold_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    remind_eve_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    remind_eve_sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    remind_soon_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    remind_soon_sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_by: Mapped[str | None] = mapped_column(String(64), default=None)  # villager | staff:<name> | system
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    marked_by: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by: Mapped[str | None] = mapped_column(String(64), default=None)  # staff who booked by phone
    note: Mapped[str] = mapped_column(Text, default="")
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), default=None)

    __table_args__ = (
        Index("ix_bookings_openid_status_starts_at", "openid", "status", "starts_at"),
        Index("ix_bookings_place_starts_at", "place_id", "starts_at"),
        Index("ix_bookings_status_remind_eve_at", "status", "remind_eve_at"),
        Index("ix_bookings_status_remind_soon_at", "status", "remind_soon_at"),
        Index("ix_bookings_status_hold_expires_at", "status", "hold_expires_at"),
    )


class BookingWaitlist(Base):
    """A villager waiting for a place on a full day; the first in line is offered a freed place."""

    __tablename__ = "booking_waitlist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("booking_places.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("booking_services.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    phone_consent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    offered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), default=None)

    __table_args__ = (Index("ix_booking_waitlist_line", "place_id", "service_id", "day", "status", "created_at"),)


class BookingSeed(Base):
    """Marks that knowledge/booking.yaml was loaded once; staff edit the tables afterwards."""

    __tablename__ = "booking_seed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seeded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(255), default="")
