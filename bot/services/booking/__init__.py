"""Booking for the public legal service: calendar, free places, booking without overbooking, reminders.

Shared by the chat (handlers/booking/), the back-office (bot/admin/booking_views.py) and the periodic
job (:func:`tick`). One module per concern; this package's names are what those callers use:

* ``config`` — the rules and seed in ``knowledge/booking.yaml``; ``seed`` copies the seed in once.
* ``calendar`` — a day is open when it is a working day by chinesecalendar (statutory holidays are
  closed; 调休 working weekends are open and follow ``rules.adjusted_workday_weekday``'s schedule),
  when a schedule explicitly lists that weekend day, or when a special day opens it. Years without
  chinesecalendar data fall back to Monday–Friday minus ``fallback_holidays``.
* ``planning`` and ``availability`` — a day's slots, and the places still free in them. Every instant
  is stored in UTC and shown in ``rules.timezone`` (Asia/Shanghai).
* ``reservations`` — no overbooking: a place is taken only by ``UPDATE booking_slots SET taken = taken
  + 1 WHERE id = … AND taken < capacity`` on the slot's counter row, locked ``FOR UPDATE`` first
  (PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``). Nothing is checked and then
  inserted. A booking's ``request_key`` is unique, so a re-sent confirmation finds the booking it
  already made instead of booking twice.
* ``waitlist`` — cancelling; a freed place (cancellation, an offer declined or expired) is held for
  the first villager waiting for that day, who is told through the outbox.
* ``reminders`` — through the outbox under idempotency keys (``booking:<id>:eve`` /
  ``booking:<id>:soon``), so ticks on several workers never send one twice.
* ``overview`` (the back-office's day and week), ``formatting``, ``privacy``, ``job`` (:func:`tick`).
"""

from __future__ import annotations

from bot.services.booking.availability import (
    SEARCH_DAYS,
    DayAvailability,
    FreeSlot,
    availability,
    day_bounds,
    local_day,
    open_days,
)
from bot.services.booking.calendar import calendar_data_until
from bot.services.booking.config import BookingConfigError, Rules, load_config, parse_hhmm, parse_span
from bot.services.booking.formatting import WEEKDAY_NAMES, fmt_day, fmt_time, fmt_when, place_label, summary
from bot.services.booking.job import tick
from bot.services.booking.overview import (
    SOURCE_NAMES,
    STATUS_NAMES,
    DayOverview,
    day_overview,
    export_rows,
    week_overview,
)
from bot.services.booking.planning import Catalog, load_catalog
from bot.services.booking.privacy import erase_personal_data, export_personal_data
from bot.services.booking.reservations import (
    AttendanceError,
    book,
    booking_by_code,
    last_contact,
    mark_attendance,
    upcoming_bookings,
)
from bot.services.booking.seed import ensure_seeded
from bot.services.booking.waitlist import (
    accept_offer,
    cancel_booking,
    held_offer,
    join_waitlist,
    leave_waitlist,
    offer_place,
    waiting_entries,
)

__all__ = [
    "SEARCH_DAYS",
    "SOURCE_NAMES",
    "STATUS_NAMES",
    "WEEKDAY_NAMES",
    "AttendanceError",
    "BookingConfigError",
    "Catalog",
    "DayAvailability",
    "DayOverview",
    "FreeSlot",
    "Rules",
    "accept_offer",
    "availability",
    "book",
    "booking_by_code",
    "calendar_data_until",
    "cancel_booking",
    "day_bounds",
    "day_overview",
    "ensure_seeded",
    "erase_personal_data",
    "export_personal_data",
    "export_rows",
    "fmt_day",
    "fmt_time",
    "fmt_when",
    "held_offer",
    "join_waitlist",
    "last_contact",
    "leave_waitlist",
    "load_catalog",
    "load_config",
    "local_day",
    "mark_attendance",
    "offer_place",
    "open_days",
    "parse_hhmm",
    "parse_span",
    "place_label",
    "summary",
    "tick",
    "upcoming_bookings",
    "waiting_entries",
    "week_overview",
]
