"""How days, times, places and a booking read in Chinese (chat and back-office alike)."""

from __future__ import annotations

import datetime as dt

from bot.services.booking.availability import local_day
from bot.services.booking.config import Rules
from bot.services.booking.planning import Catalog
from bot.storage.booking import (
    Booking,
    BookingPlace,
)

WEEKDAY_NAMES = "一二三四五六日"


def fmt_day(day: dt.date) -> str:
    return f"{day.month}月{day.day}日 周{WEEKDAY_NAMES[day.weekday()]}"


def fmt_time(moment: dt.datetime, rules: Rules) -> str:
    local = moment.astimezone(rules.tz)
    return f"{local.hour}:{local.minute:02d}"


def fmt_when(starts_at: dt.datetime, ends_at: dt.datetime, rules: Rules) -> str:
    return f"{fmt_day(local_day(starts_at, rules))} {fmt_time(starts_at, rules)}-{fmt_time(ends_at, rules)}"


def relative_day(day: dt.date, today: dt.date) -> str:
    return {0: "今天", 1: "明天", 2: "后天"}.get((day - today).days, fmt_day(day))


def place_label(place: BookingPlace | None) -> str:
    if place is None:
        return "（地点已删除）"
    return f"{place.name}（{place.address}）" if place.address else place.name


def summary(cat: Catalog, booking: Booking, rules: Rules) -> str:
    service = cat.services.get(booking.service_id)
    return "\n".join(
        (
            f"事项：{service.name if service else '（已删除）'}",
            f"时间：{fmt_when(booking.starts_at, booking.ends_at, rules)}",
            f"地点：{place_label(cat.places.get(booking.place_id))}",
        )
    )
