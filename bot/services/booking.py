"""Booking for the public legal service: calendar, free places, booking without overbooking, reminders.

Shared by the chat (handlers/booking.py), the back-office (bot/admin/booking_views.py) and the
periodic job (:func:`tick`).

* **Calendar.** A day is open when it is a working day by chinesecalendar (statutory holidays are
  closed; 调休 working weekends are open and follow ``rules.adjusted_workday_weekday``'s
  schedule), when a schedule explicitly lists that weekend day, or when a special day opens it.
  Years without chinesecalendar data fall back to Monday–Friday minus ``fallback_holidays``.
* **No overbooking.** A place is taken only by ``UPDATE booking_slots SET taken = taken + 1
  WHERE id = … AND taken < capacity`` on the slot's counter row, locked ``FOR UPDATE`` first
  (PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``). Nothing is checked and then
  inserted. A booking's ``request_key`` is unique, so a re-sent confirmation finds the booking it
  already made instead of booking twice.
* **Times.** Every instant is stored in UTC and shown in ``rules.timezone`` (Asia/Shanghai).
* **Reminders** go through the outbox under idempotency keys (``booking:<id>:eve`` /
  ``booking:<id>:soon``), so ticks on several workers never send one twice.
* **Waiting list.** A freed place (cancellation, an offer declined or expired) is held for the
  first villager waiting for that day, who is told through the outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import chinese_calendar
import yaml
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.jobs import JobContext
from bot.services.knowledge import Texts, fill
from bot.services.outbox import enqueue
from bot.storage.booking import (
    OCCUPYING_STATUSES,
    UPCOMING_STATUSES,
    Booking,
    BookingPlace,
    BookingSchedule,
    BookingSeed,
    BookingService,
    BookingSlot,
    BookingSpecialDay,
    BookingWaitlist,
)
from bot.storage.models import ConversationState, Villager, utcnow

log = logging.getLogger(__name__)

CONFIG_FILE = "booking.yaml"
WEEKDAY_NAMES = "一二三四五六日"
#: how far ahead (calendar days) open days are looked for
SEARCH_DAYS = 60
#: a freed place is offered to the waiting list only if the villager has at least this long to say yes
MIN_OFFER = dt.timedelta(minutes=10)
OCCUPYING = frozenset(OCCUPYING_STATUSES)
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class BookingConfigError(ValueError):
    """knowledge/booking.yaml is malformed."""


# ================================================================ configuration
@dataclass(frozen=True)
class Rules:
    """The booking rules from ``knowledge/booking.yaml`` (``rules:``)."""

    timezone: str = "Asia/Shanghai"
    days_ahead: int = 7
    max_upcoming: int = 2
    min_lead_minutes: int = 60
    wizard_minutes: int = 30
    reminder_eve_time: dt.time = dt.time(18, 0)
    reminder_before_minutes: int = 120
    offer_hold_minutes: int = 120
    phone_retention_days: int = 180
    adjusted_workday_weekday: int = 0
    fallback_holidays: tuple[str, ...] = ("01-01", "05-01", "05-02", "05-03", "10-01", "10-02", "10-03")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def min_lead(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.min_lead_minutes)

    @property
    def reminder_before(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.reminder_before_minutes)


@dataclass(frozen=True)
class BookingConfig:
    rules: Rules
    seed: Mapping[str, Any]
    path: str = ""


def parse_hhmm(value: Any, where: str = "time") -> dt.time:
    """'08:30' → time(8, 30); a YAML 1.1 sexagesimal int (8:30 unquoted) is accepted too."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and 0 <= value < 24 * 60:  # YAML reads an unquoted 8:30 as 510
        return dt.time(value // 60, value % 60)
    match = _HHMM.match(str(value).strip())
    if not match:
        raise BookingConfigError(f"{where}: expected HH:MM, got {value!r}")
    return dt.time(int(match.group(1)), int(match.group(2)))


def parse_span(value: Any, where: str = "hours") -> tuple[dt.time, dt.time]:
    """'08:30-12:00' → (08:30, 12:00)."""
    text = str(value).replace("—", "-").replace("～", "-").replace("~", "-")
    start, sep, end = text.partition("-")
    if not sep:
        raise BookingConfigError(f"{where}: expected HH:MM-HH:MM, got {value!r}")
    a, b = parse_hhmm(start, where), parse_hhmm(end, where)
    if b <= a:
        raise BookingConfigError(f"{where}: {value!r} ends before it starts")
    return a, b


def _positive_int(raw: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BookingConfigError(f"rules.{key}: expected a whole number >= {minimum}, got {value!r}")
    return value


def parse_rules(raw: Mapping[str, Any] | None) -> Rules:
    raw = raw or {}
    d = Rules()
    timezone = str(raw.get("timezone", d.timezone))
    try:
        ZoneInfo(timezone)
    except (KeyError, ValueError) as exc:
        raise BookingConfigError(f"rules.timezone: unknown time zone {timezone!r}") from exc
    weekday = _positive_int(raw, "adjusted_workday_weekday", d.adjusted_workday_weekday)
    if weekday > 6:
        raise BookingConfigError("rules.adjusted_workday_weekday: 0 (Monday) to 6 (Sunday)")
    fallback = raw.get("fallback_holidays", list(d.fallback_holidays))
    if not isinstance(fallback, list) or not all(re.fullmatch(r"\d\d-\d\d", str(x)) for x in fallback):
        raise BookingConfigError("rules.fallback_holidays: a list of MM-DD")
    return Rules(
        timezone=timezone,
        days_ahead=_positive_int(raw, "days_ahead", d.days_ahead, minimum=1),
        max_upcoming=_positive_int(raw, "max_upcoming", d.max_upcoming, minimum=1),
        min_lead_minutes=_positive_int(raw, "min_lead_minutes", d.min_lead_minutes),
        wizard_minutes=_positive_int(raw, "wizard_minutes", d.wizard_minutes, minimum=1),
        reminder_eve_time=parse_hhmm(raw.get("reminder_eve_time", "18:00"), "rules.reminder_eve_time"),
        reminder_before_minutes=_positive_int(raw, "reminder_before_minutes", d.reminder_before_minutes),
        offer_hold_minutes=_positive_int(raw, "offer_hold_minutes", d.offer_hold_minutes, minimum=1),
        phone_retention_days=_positive_int(raw, "phone_retention_days", d.phone_retention_days, minimum=1),
        adjusted_workday_weekday=weekday,
        fallback_holidays=tuple(str(x) for x in fallback),
    )


def parse_config(data: Any, path: str = "") -> BookingConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BookingConfigError(f"{path}: expected a mapping with rules/services/places/schedules")
    rules = parse_rules(data.get("rules"))
    seed = {k: data.get(k) or [] for k in ("services", "places", "schedules", "special_days")}
    for key, items in seed.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BookingConfigError(f"{path}: {key} must be a list of mappings")
    _check_seed(seed)
    return BookingConfig(rules=rules, seed=seed, path=path)


def _check_seed(seed: Mapping[str, list[dict[str, Any]]]) -> None:
    services = {str(s.get("code")) for s in seed["services"]}
    places = {str(p.get("code")) for p in seed["places"]}
    for kind, items in (("services", seed["services"]), ("places", seed["places"])):
        for item in items:
            if not item.get("code") or not item.get("name"):
                raise BookingConfigError(f"{kind}: every item needs code and name ({item!r})")
    for i, sch in enumerate(seed["schedules"]):
        where = f"schedules[{i}]"
        if str(sch.get("place")) not in places:
            raise BookingConfigError(f"{where}: unknown place {sch.get('place')!r}")
        for code in sch.get("services") or []:
            if str(code) not in services:
                raise BookingConfigError(f"{where}: unknown service {code!r}")
        for span in sch.get("hours") or []:
            parse_span(span, f"{where}.hours")
        for span in sch.get("breaks") or []:
            parse_span(span, f"{where}.breaks")
        days = sch.get("weekdays") or []
        if not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise BookingConfigError(f"{where}: weekdays must be a list of 0 (Monday) to 6 (Sunday)")
    for i, sp in enumerate(seed["special_days"]):
        if sp.get("kind") not in ("closed", "extra"):
            raise BookingConfigError(f"special_days[{i}]: kind must be closed or extra")
        if not isinstance(sp.get("day"), dt.date):
            raise BookingConfigError(f"special_days[{i}]: day must be a date (YYYY-MM-DD)")


_config_cache: dict[Path, tuple[int, BookingConfig]] = {}


def load_config(knowledge_dir: str | Path) -> BookingConfig:
    """``knowledge/booking.yaml``, re-read when the file changes. A missing file means the defaults."""
    path = Path(knowledge_dir) / CONFIG_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return BookingConfig(rules=Rules(), seed={}, path=str(path))
    cached = _config_cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BookingConfigError(f"{path}: {exc}") from exc
    config = parse_config(data, str(path))
    _config_cache[path] = (mtime, config)
    return config


_texts_cache: dict[Path, tuple[tuple[int, ...], Texts]] = {}


def load_texts(knowledge_dir: str | Path) -> Texts:
    """Chat texts and site values for code that runs outside a chat (the periodic job)."""
    directory = Path(knowledge_dir)
    files = [directory / "site.yaml", directory / "texts.yaml", *sorted((directory / "texts").glob("*.yaml"))]
    stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in files)
    cached = _texts_cache.get(directory)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    site_file = directory / "site.yaml"
    site = yaml.safe_load(site_file.read_text(encoding="utf-8")) if site_file.exists() else {}
    texts = Texts.load(directory, site if isinstance(site, dict) else {})
    _texts_cache[directory] = (stamp, texts)
    return texts


# ================================================================ seed
def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def ensure_seeded(session: AsyncSession, config: BookingConfig, site: Mapping[str, Any] | None = None) -> bool:
    """Copy the seed of ``booking.yaml`` into empty tables, once (the marker row makes it once)."""
    if await session.scalar(select(BookingSeed.id).where(BookingSeed.id == 1)) is not None:
        return False
    claim = (
        _insert(session)(BookingSeed)
        .values(id=1, seeded_at=utcnow(), source=config.path[-255:])
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(BookingSeed.id)
    )
    if (await session.execute(claim)).scalar_one_or_none() is None:
        return False  # another transaction seeded
    site = site or {}
    seed = config.seed
    services: dict[str, BookingService] = {}
    for i, s in enumerate(seed.get("services", [])):
        row = BookingService(
            code=str(s["code"]),
            name=str(s["name"]),
            description=fill(str(s.get("description", "")), site),
            bring=fill(str(s.get("bring", "")), site),
            active=bool(s.get("active", True)),
            sort_order=int(s.get("sort_order", i + 1)),
        )
        session.add(row)
        services[row.code] = row
    places: dict[str, BookingPlace] = {}
    for i, p in enumerate(seed.get("places", [])):
        village = p.get("village")
        place = BookingPlace(
            code=str(p["code"]),
            name=str(p["name"]),
            address=fill(str(p.get("address", "")), site),
            village_id=int(village) if village is not None else None,
            active=bool(p.get("active", True)),
            sort_order=int(p.get("sort_order", i + 1)),
        )
        session.add(place)
        places[place.code] = place
    await session.flush()
    for sch in seed.get("schedules", []):
        place = places[str(sch["place"])]
        breaks = [str(b) for b in sch.get("breaks") or []]
        for code in sch.get("services") or []:
            for span in sch.get("hours") or []:
                start, end = parse_span(span)
                session.add(
                    BookingSchedule(
                        place_id=place.id,
                        service_id=services[str(code)].id,
                        weekdays=sorted({int(d) for d in sch["weekdays"]}),
                        start_time=start,
                        end_time=end,
                        slot_minutes=int(sch.get("slot_minutes", 30)),
                        capacity=int(sch.get("capacity", 1)),
                        breaks=breaks,
                        active=True,
                    )
                )
    for sp in seed.get("special_days", []):
        place_code, service_codes = sp.get("place"), sp.get("services") or [None]
        for code in service_codes:
            hours = parse_span(sp["hours"]) if sp.get("hours") else None
            session.add(
                BookingSpecialDay(
                    day=sp["day"],
                    kind=str(sp["kind"]),
                    place_id=places[str(place_code)].id if place_code else None,
                    service_id=services[str(code)].id if code else None,
                    title=str(sp.get("title", "")),
                    note=str(sp.get("note", "")),
                    volunteers=str(sp.get("volunteers", "")),
                    start_time=hours[0] if hours else None,
                    end_time=hours[1] if hours else None,
                    slot_minutes=sp.get("slot_minutes"),
                    capacity=sp.get("capacity"),
                    extra_capacity=int(sp.get("extra_capacity", 0)),
                )
            )
    await session.flush()
    log.info("booking: seeded %d services and %d places from %s", len(services), len(places), config.path)
    return True


# ================================================================ calendar
DayKind = Literal["workday", "adjusted_workday", "holiday", "weekend"]


@dataclass(frozen=True)
class CalendarDay:
    day: dt.date
    kind: DayKind
    holiday: str | None = None  # 春节, 国庆节 … (Chinese name)
    known: bool = True  # False: chinesecalendar has no data for this year (fallback rules used)

    @property
    def working(self) -> bool:
        return self.kind in ("workday", "adjusted_workday")


def _holiday_name(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return str(chinese_calendar.Holiday(name).chinese)
    except ValueError:
        return name


def calendar_day(day: dt.date, rules: Rules) -> CalendarDay:
    """Statutory holidays and 调休 working days from chinesecalendar (fallback rules for unknown years)."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        if f"{day:%m-%d}" in rules.fallback_holidays:
            return CalendarDay(day, "holiday", None, known=False)
        return CalendarDay(day, "workday" if day.weekday() < 5 else "weekend", None, known=False)
    if not on_holiday:
        kind: DayKind = "adjusted_workday" if day.weekday() >= 5 else "workday"
        return CalendarDay(day, kind, _holiday_name(name) if kind == "adjusted_workday" else None)
    if name is not None:
        return CalendarDay(day, "holiday", _holiday_name(name))
    return CalendarDay(day, "weekend")


def calendar_data_until() -> int:
    """The last year chinesecalendar knows holidays for."""
    years: list[int] = [d.year for d in chinese_calendar.holidays]
    return max(years)


# ================================================================ catalog and planning
@dataclass
class Catalog:
    """Services, places, schedules and special days, as one chat message or page needs them."""

    services: dict[int, BookingService]
    places: dict[int, BookingPlace]
    schedules: list[BookingSchedule]
    specials: list[BookingSpecialDay]

    def active_services(self) -> list[BookingService]:
        return [s for s in self.services.values() if s.active]

    def places_for(self, service_id: int) -> list[BookingPlace]:
        """Active places with an active schedule (or a special opening) for the service."""
        ids = {s.place_id for s in self.schedules if s.active and s.service_id == service_id}
        ids |= {
            sp.place_id
            for sp in self.specials
            if sp.kind == "extra" and sp.start_time and sp.place_id and sp.service_id in (None, service_id)
        }
        return [p for p in self.places.values() if p.active and p.id in ids]


async def load_catalog(session: AsyncSession, start: dt.date | None = None, end: dt.date | None = None) -> Catalog:
    services = (
        await session.execute(select(BookingService).order_by(BookingService.sort_order, BookingService.id))
    ).scalars()
    places = (await session.execute(select(BookingPlace).order_by(BookingPlace.sort_order, BookingPlace.id))).scalars()
    schedules = (await session.execute(select(BookingSchedule).order_by(BookingSchedule.id))).scalars()
    q = select(BookingSpecialDay).order_by(BookingSpecialDay.day, BookingSpecialDay.id)
    if start is not None:
        q = q.where(BookingSpecialDay.day >= start)
    if end is not None:
        q = q.where(BookingSpecialDay.day <= end)
    specials = (await session.execute(q)).scalars()
    return Catalog(
        services={s.id: s for s in services},
        places={p.id: p for p in places},
        schedules=list(schedules),
        specials=list(specials),
    )


@dataclass(frozen=True)
class PlannedSlot:
    place_id: int
    service_id: int
    starts_at: dt.datetime  # UTC
    ends_at: dt.datetime  # UTC
    capacity: int


@dataclass(frozen=True)
class DayPlan:
    day: dt.date
    calendar: CalendarDay
    slots: tuple[PlannedSlot, ...]
    specials: tuple[BookingSpecialDay, ...] = ()  # the special days that apply (closures included)

    @property
    def closed_by(self) -> BookingSpecialDay | None:
        return next((s for s in self.specials if s.kind == "closed"), None)


def _local(day: dt.date, t: dt.time, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, t, tzinfo=tz).astimezone(dt.UTC)


def _session_slots(
    day: dt.date,
    start: dt.time,
    end: dt.time,
    minutes: int,
    breaks: Iterable[tuple[dt.time, dt.time]],
    tz: ZoneInfo,
) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    step = dt.timedelta(minutes=max(1, minutes))
    cursor = dt.datetime.combine(day, start)
    stop = dt.datetime.combine(day, end)
    spans = [(dt.datetime.combine(day, a), dt.datetime.combine(day, b)) for a, b in breaks]
    while cursor + step <= stop:
        nxt = cursor + step
        if not any(cursor < b_end and nxt > b_start for b_start, b_end in spans):
            out.append((cursor.replace(tzinfo=tz).astimezone(dt.UTC), nxt.replace(tzinfo=tz).astimezone(dt.UTC)))
        cursor = nxt
    return out


def _breaks(raw: Iterable[Any]) -> list[tuple[dt.time, dt.time]]:
    out = []
    for item in raw or []:
        try:
            out.append(parse_span(item, "breaks"))
        except BookingConfigError:
            log.warning("booking: ignoring a malformed break %r", item)
    return out


def plan_day(cat: Catalog, rules: Rules, place_id: int, service_id: int, day: dt.date) -> DayPlan:
    """The slots of one service at one place on one day, before anybody booked."""
    cal = calendar_day(day, rules)
    tz = rules.tz
    specials = tuple(
        sp
        for sp in cat.specials
        if sp.day == day and sp.place_id in (None, place_id) and sp.service_id in (None, service_id)
    )
    place, service = cat.places.get(place_id), cat.services.get(service_id)
    if place is None or service is None or not place.active or not service.active:
        return DayPlan(day, cal, (), specials)
    if any(sp.kind == "closed" for sp in specials):
        return DayPlan(day, cal, (), specials)
    regular = [s for s in cat.schedules if s.active and s.place_id == place_id and s.service_id == service_id]
    extras = [sp for sp in specials if sp.kind == "extra"]
    extra_capacity = sum(sp.extra_capacity for sp in extras if sp.start_time is None)
    slots: dict[dt.datetime, PlannedSlot] = {}

    def add(start: dt.time, end: dt.time, minutes: int, capacity: int, breaks: Iterable[Any]) -> None:
        for s, e in _session_slots(day, start, end, minutes, _breaks(breaks), tz):
            if capacity <= 0:
                continue
            if s not in slots or slots[s].capacity < capacity:
                slots[s] = PlannedSlot(place_id, service_id, s, e, capacity)

    opening = [sp for sp in extras if sp.start_time is not None and sp.end_time is not None]
    if opening:  # a special day with its own hours replaces the regular schedule that day
        default_capacity = max((s.capacity for s in regular), default=1)
        default_minutes = min((s.slot_minutes for s in regular), default=30)
        for sp in opening:
            assert sp.start_time is not None and sp.end_time is not None
            capacity = (sp.capacity if sp.capacity is not None else default_capacity) + sp.extra_capacity
            add(sp.start_time, sp.end_time, sp.slot_minutes or default_minutes, capacity, [])
    else:
        if cal.kind == "holiday":
            weekdays: set[int] = set()
        elif cal.kind == "adjusted_workday":
            weekdays = {rules.adjusted_workday_weekday, day.weekday()}
        else:  # a workday uses its own weekday; an ordinary weekend only what lists it explicitly
            weekdays = {day.weekday()}
        for sch in regular:
            if weekdays & {int(w) for w in sch.weekdays or []}:
                add(sch.start_time, sch.end_time, sch.slot_minutes, sch.capacity + extra_capacity, sch.breaks)
    return DayPlan(day, cal, tuple(slots[k] for k in sorted(slots)), specials)


# ================================================================ availability
@dataclass(frozen=True)
class FreeSlot:
    place_id: int
    service_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    taken: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken)


@dataclass(frozen=True)
class DayAvailability:
    plan: DayPlan
    slots: tuple[FreeSlot, ...]  # the slots that can still be booked (not too soon), full ones included

    @property
    def day(self) -> dt.date:
        return self.plan.day

    @property
    def free(self) -> int:
        return sum(s.free for s in self.slots)

    @property
    def free_slots(self) -> list[FreeSlot]:
        return [s for s in self.slots if s.free > 0]


def local_day(moment: dt.datetime, rules: Rules) -> dt.date:
    return moment.astimezone(rules.tz).date()


def day_bounds(day: dt.date, rules: Rules) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a local day, in UTC."""
    return _local(day, dt.time(0), rules.tz), _local(day + dt.timedelta(days=1), dt.time(0), rules.tz)


async def taken_counts(
    session: AsyncSession, place_id: int, service_id: int, start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, int]:
    rows = await session.execute(
        select(BookingSlot.starts_at, BookingSlot.taken).where(
            BookingSlot.place_id == place_id,
            BookingSlot.service_id == service_id,
            BookingSlot.starts_at >= start,
            BookingSlot.starts_at < end,
        )
    )
    return {s: int(t) for s, t in rows.all()}


async def availability(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    place_id: int,
    service_id: int,
    days: Sequence[dt.date],
    *,
    not_before: dt.datetime,
) -> list[DayAvailability]:
    """Free places per day; slots starting before ``not_before`` are left out."""
    if not days:
        return []
    taken = await taken_counts(
        session, place_id, service_id, day_bounds(min(days), rules)[0], day_bounds(max(days), rules)[1]
    )
    out = []
    for day in days:
        plan = plan_day(cat, rules, place_id, service_id, day)
        slots = tuple(
            FreeSlot(p.place_id, p.service_id, p.starts_at, p.ends_at, p.capacity, taken.get(p.starts_at, 0))
            for p in plan.slots
            if p.starts_at >= not_before
        )
        out.append(DayAvailability(plan, slots))
    return out


async def open_days(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    place_id: int,
    service_id: int,
    now: dt.datetime,
    *,
    count: int | None = None,
) -> list[DayAvailability]:
    """The next ``rules.days_ahead`` days on which the service is open at the place (full days included)."""
    count = count or rules.days_ahead
    today = local_day(now, rules)
    days = [today + dt.timedelta(days=i) for i in range(SEARCH_DAYS)]
    found = await availability(session, cat, rules, place_id, service_id, days, not_before=now + rules.min_lead)
    return [d for d in found if d.slots][:count]


async def next_free_slots(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    place_id: int,
    service_id: int,
    *,
    after: dt.datetime,
    now: dt.datetime,
    limit: int = 5,
) -> list[FreeSlot]:
    """The next free times from ``after`` on (the same day first, then the following open days)."""
    start_day = local_day(max(after, now), rules)
    days = [start_day + dt.timedelta(days=i) for i in range(SEARCH_DAYS)]
    found = await availability(
        session, cat, rules, place_id, service_id, days, not_before=max(after, now + rules.min_lead)
    )
    return [s for d in found for s in d.free_slots][:limit]


# ================================================================ booking
BookStatus = Literal["booked", "duplicate", "full", "gone", "limit"]


@dataclass
class BookOutcome:
    status: BookStatus
    booking: Booking | None = None
    alternatives: list[FreeSlot] = field(default_factory=list)
    upcoming: list[Booking] = field(default_factory=list)  # for "limit"
    replaced: Booking | None = None  # the booking a reschedule cancelled


def new_code() -> str:
    return str(100000 + secrets.randbelow(900000))


def reminder_times(
    starts_at: dt.datetime, now: dt.datetime, rules: Rules
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(the day before at 18:00 local, 2 hours before), each None when already past at booking time."""
    day_before = local_day(starts_at, rules) - dt.timedelta(days=1)
    eve: dt.datetime | None = _local(day_before, rules.reminder_eve_time, rules.tz)
    soon: dt.datetime | None = starts_at - rules.reminder_before
    if soon is not None and soon <= now:
        soon = None
    if eve is not None and (eve <= now or eve >= starts_at - rules.reminder_before):
        eve = None
    return eve, soon


async def upcoming_bookings(session: AsyncSession, openid: str, now: dt.datetime) -> list[Booking]:
    rows = await session.execute(
        select(Booking)
        .where(Booking.openid == openid, Booking.status.in_(UPCOMING_STATUSES), Booking.starts_at > now)
        .order_by(Booking.starts_at, Booking.id)
    )
    return list(rows.scalars())


async def booking_by_code(session: AsyncSession, code: str) -> Booking | None:
    return (await session.execute(select(Booking).where(Booking.code == code.strip()))).scalar_one_or_none()


async def _lock_villager(session: AsyncSession, openid: str) -> None:
    """Serialise one villager's bookings (the upcoming limit) on their row."""
    await session.execute(select(Villager.id).where(Villager.openid == openid).with_for_update())


async def book(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    *,
    place_id: int,
    service_id: int,
    starts_at: dt.datetime,
    request_key: str,
    now: dt.datetime,
    openid: str | None,
    name: str,
    phone: str | None = None,
    phone_consent_at: dt.datetime | None = None,
    source: str = "wechat",
    status: Literal["confirmed", "held"] = "confirmed",
    hold_until: dt.datetime | None = None,
    created_by: str | None = None,
    note: str = "",
    replaces: Booking | None = None,
    check_limit: bool = True,
    lead: dt.timedelta | None = None,
) -> BookOutcome:
    """Take one place in a slot, or say why not. Idempotent on ``request_key``.

    Runs in the caller's transaction. ``replaces`` (改约) is cancelled in the same transaction once
    the new place is taken. ``lead`` (default ``rules.min_lead``) is how soon before its start a
    slot can still be booked; staff booking by phone pass ``timedelta(0)``.
    """
    starts_at = starts_at.astimezone(dt.UTC)
    lead = rules.min_lead if lead is None else lead
    existing = (await session.execute(select(Booking).where(Booking.request_key == request_key))).scalar_one_or_none()
    if existing is not None:
        return BookOutcome("duplicate", existing)

    async def alternatives() -> list[FreeSlot]:
        return await next_free_slots(session, cat, rules, place_id, service_id, after=starts_at, now=now)

    plan = plan_day(cat, rules, place_id, service_id, local_day(starts_at, rules))
    planned = next((p for p in plan.slots if p.starts_at == starts_at), None)
    if planned is None or starts_at < now + lead:
        return BookOutcome("gone", alternatives=await alternatives())
    if openid is not None and check_limit:
        await _lock_villager(session, openid)
        upcoming = [b for b in await upcoming_bookings(session, openid, now) if replaces is None or b.id != replaces.id]
        if len(upcoming) >= rules.max_upcoming:
            return BookOutcome("limit", upcoming=upcoming)

    # the counter row: created from the plan if it is not there yet, then locked (ordered by id)
    await session.execute(
        _insert(session)(BookingSlot)
        .values(
            place_id=place_id,
            service_id=service_id,
            starts_at=starts_at,
            ends_at=planned.ends_at,
            capacity=planned.capacity,
            taken=0,
        )
        .on_conflict_do_nothing(index_elements=["place_id", "service_id", "starts_at"])
    )
    slot_id = (
        await session.execute(
            select(BookingSlot.id).where(
                BookingSlot.place_id == place_id,
                BookingSlot.service_id == service_id,
                BookingSlot.starts_at == starts_at,
            )
        )
    ).scalar_one()
    lock_ids = sorted({slot_id, replaces.slot_id} if replaces is not None else {slot_id})
    await session.execute(
        select(BookingSlot.id).where(BookingSlot.id.in_(lock_ids)).order_by(BookingSlot.id).with_for_update()
    )
    # the schedule is the truth for capacity (staff may have changed it since the row was made)
    await session.execute(
        update(BookingSlot)
        .where(BookingSlot.id == slot_id, BookingSlot.capacity != planned.capacity)
        .values(capacity=planned.capacity, ends_at=planned.ends_at)
        .execution_options(synchronize_session=False)
    )
    # a twin of this request may have committed while we waited for the lock
    existing = (await session.execute(select(Booking).where(Booking.request_key == request_key))).scalar_one_or_none()
    if existing is not None:
        return BookOutcome("duplicate", existing)
    took = (
        await session.execute(
            update(BookingSlot)
            .where(BookingSlot.id == slot_id, BookingSlot.taken < BookingSlot.capacity)
            .values(taken=BookingSlot.taken + 1)
            .returning(BookingSlot.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if took is None:
        return BookOutcome("full", alternatives=await alternatives())

    eve, soon = reminder_times(starts_at, now, rules) if status == "confirmed" else (None, None)
    values = {
        "request_key": request_key,
        "slot_id": slot_id,
        "place_id": place_id,
        "service_id": service_id,
        "starts_at": starts_at,
        "ends_at": planned.ends_at,
        "openid": openid,
        "name": name[:64],
        "phone": phone if phone and phone_consent_at else None,
        "phone_consent_at": phone_consent_at if phone else None,
        "status": status,
        "source": source,
        "hold_expires_at": hold_until if status == "held" else None,
        "remind_eve_at": eve,
        "remind_soon_at": soon,
        "created_at": now,
        "confirmed_at": now if status == "confirmed" else None,
        "created_by": created_by,
        "note": note,
        "rescheduled_from_id": replaces.id if replaces is not None else None,
    }
    booking_id: int | None = None
    for _ in range(8):  # a clash of the random 预约码 is retried with a new one
        booking_id = (
            await session.execute(
                _insert(session)(Booking)
                .values(code=new_code(), **values)
                .on_conflict_do_nothing()
                .returning(Booking.id)
            )
        ).scalar_one_or_none()
        if booking_id is not None:
            break
        twin = (await session.execute(select(Booking).where(Booking.request_key == request_key))).scalar_one_or_none()
        if twin is not None:  # not reachable while the slot lock is held; kept for safety
            await _release_place(session, slot_id)
            return BookOutcome("duplicate", twin)
    if booking_id is None:  # pragma: no cover - 8 clashes in a million codes
        raise RuntimeError("could not allocate a booking code")
    booking = await session.get(Booking, booking_id, populate_existing=True)
    assert booking is not None
    if openid is not None and status == "confirmed":  # booked that day after all: no longer waiting for it
        await session.execute(
            update(BookingWaitlist)
            .where(
                BookingWaitlist.openid == openid,
                BookingWaitlist.place_id == place_id,
                BookingWaitlist.service_id == service_id,
                BookingWaitlist.day == local_day(starts_at, rules),
                BookingWaitlist.status == "waiting",
            )
            .values(status="booked", booking_id=booking_id)
            .execution_options(synchronize_session=False)
        )
    outcome = BookOutcome("booked", booking)
    if replaces is not None:
        outcome.replaced = await _end_booking(
            session, replaces.id, now=now, by="villager", status="cancelled", note="改约"
        )
    return outcome


async def _release_place(session: AsyncSession, slot_id: int) -> None:
    await session.execute(
        update(BookingSlot)
        .where(BookingSlot.id == slot_id, BookingSlot.taken > 0)
        .values(taken=BookingSlot.taken - 1)
        .execution_options(synchronize_session=False)
    )


async def _end_booking(
    session: AsyncSession, booking_id: int, *, now: dt.datetime, by: str, status: str, note: str = ""
) -> Booking | None:
    """held/confirmed → cancelled/expired, freeing its place. None when it was not active any more."""
    ended = (
        await session.execute(
            update(Booking)
            .where(Booking.id == booking_id, Booking.status.in_(UPCOMING_STATUSES))
            .values(status=status, cancelled_at=now, cancelled_by=by[:64], hold_expires_at=None)
            .returning(Booking.slot_id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if ended is None:
        return None
    await _release_place(session, ended)
    booking = await session.get(Booking, booking_id, populate_existing=True)
    assert booking is not None
    if note:
        booking.note = (booking.note + "\n" + note).strip()
    # a held offer that ends closes its waiting-list entry
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.booking_id == booking_id, BookingWaitlist.status == "offered")
        .values(status="expired" if status == "expired" else "cancelled")
        .execution_options(synchronize_session=False)
    )
    return booking


@dataclass
class CancelOutcome:
    booking: Booking
    offered: Booking | None = None  # the place went to this villager on the waiting list


async def cancel_booking(
    session: AsyncSession,
    cat: Catalog,
    rules: Rules,
    texts: Texts,
    booking_id: int,
    *,
    now: dt.datetime,
    by: str,
    status: Literal["cancelled", "expired"] = "cancelled",
    reason: str = "",
    notify_villager: bool = False,
) -> CancelOutcome | None:
    """Cancel (or expire a held offer), free the place at once and offer it to the waiting list."""
    booking = await _end_booking(session, booking_id, now=now, by=by, status=status, note=reason)
    if booking is None:
        return None
    if notify_villager and booking.openid:
        await enqueue(
            session,
            kind="cs_text",
            openid=booking.openid,
            payload={
                "content": texts.get(
                    "booking_cancelled_by_staff",
                    summary=summary(cat, booking, rules),
                    reason=reason or "工作安排有变",
                )
            },
            idempotency_key=f"booking:{booking.id}:cancelled",
            source=f"booking:{booking.id}",
        )
    offered = await offer_place(session, cat, rules, texts, booking.slot_id, now=now)
    return CancelOutcome(booking, offered)


async def offer_place(
    session: AsyncSession, cat: Catalog, rules: Rules, texts: Texts, slot_id: int, *, now: dt.datetime
) -> Booking | None:
    """Hold a free place of this slot for the first villager waiting for its day; tell them via the outbox."""
    slot = await session.get(BookingSlot, slot_id, populate_existing=True)
    if slot is None or slot.taken >= slot.capacity:
        return None
    hold_until = min(now + dt.timedelta(minutes=rules.offer_hold_minutes), slot.starts_at - rules.min_lead)
    if hold_until - now < MIN_OFFER:  # too late to offer: the place is simply free to book
        return None
    waiting = (
        await session.execute(
            select(BookingWaitlist)
            .where(
                BookingWaitlist.place_id == slot.place_id,
                BookingWaitlist.service_id == slot.service_id,
                BookingWaitlist.day == local_day(slot.starts_at, rules),
                BookingWaitlist.status == "waiting",
            )
            .order_by(BookingWaitlist.created_at, BookingWaitlist.id)
            .limit(20)
        )
    ).scalars()
    for entry in waiting:
        if len(await upcoming_bookings(session, entry.openid, now)) >= rules.max_upcoming:
            continue  # booked elsewhere meanwhile: keeps their place in line for later
        outcome = await book(
            session,
            cat,
            rules,
            place_id=slot.place_id,
            service_id=slot.service_id,
            starts_at=slot.starts_at,
            request_key=f"offer:{entry.id}",
            now=now,
            openid=entry.openid,
            name=entry.name,
            phone=entry.phone,
            phone_consent_at=entry.phone_consent_at,
            source="waitlist",
            status="held",
            hold_until=hold_until,
            check_limit=False,
        )
        if outcome.status != "booked" or outcome.booking is None:
            return None
        held = outcome.booking
        entry.status, entry.offered_at, entry.booking_id = "offered", now, held.id
        await enqueue(
            session,
            kind="cs_text",
            openid=entry.openid,
            payload={
                "content": texts.get(
                    "booking_offer",
                    summary=summary(cat, held, rules),
                    until=fmt_time(hold_until, rules),
                    until_day=relative_day(local_day(hold_until, rules), local_day(now, rules)),
                )
            },
            idempotency_key=f"booking:{held.id}:offer",
            source=f"booking:{held.id}",
        )
        await _offer_state(session, entry.openid, held, hold_until, now)
        return held
    return None


async def _offer_state(session: AsyncSession, openid: str, held: Booking, until: dt.datetime, now: dt.datetime) -> None:
    """Put an idle villager in the 'offer' step, so a plain '1' accepts (never clobbers another step)."""
    await session.execute(
        _insert(session)(ConversationState)
        .values(openid=openid, state=None, data={}, context={}, updated_at=now)
        .on_conflict_do_nothing(index_elements=["openid"])
    )
    await session.execute(
        update(ConversationState)
        .where(
            ConversationState.openid == openid,
            or_(ConversationState.state.is_(None), ConversationState.expires_at <= now),
        )
        .values(state="booking.offer", data={"held": held.id}, expires_at=until)
        .execution_options(synchronize_session=False)
    )


async def accept_offer(session: AsyncSession, rules: Rules, openid: str, *, now: dt.datetime) -> Booking | None:
    """The villager said yes to a held place: it becomes a confirmed booking."""
    held = (
        await session.execute(
            select(Booking)
            .where(Booking.openid == openid, Booking.status == "held", Booking.hold_expires_at > now)
            .order_by(Booking.starts_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if held is None:
        return None
    eve, soon = reminder_times(held.starts_at, now, rules)
    done = (
        await session.execute(
            update(Booking)
            .where(Booking.id == held.id, Booking.status == "held")
            .values(
                status="confirmed",
                confirmed_at=now,
                hold_expires_at=None,
                remind_eve_at=eve,
                remind_soon_at=soon,
            )
            .returning(Booking.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if done is None:
        return None
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.booking_id == held.id)
        .values(status="booked")
        .execution_options(synchronize_session=False)
    )
    return await session.get(Booking, held.id, populate_existing=True)


async def held_offer(session: AsyncSession, openid: str, now: dt.datetime) -> Booking | None:
    return (
        await session.execute(
            select(Booking)
            .where(Booking.openid == openid, Booking.status == "held", Booking.hold_expires_at > now)
            .order_by(Booking.starts_at)
            .limit(1)
        )
    ).scalar_one_or_none()


async def join_waitlist(
    session: AsyncSession,
    *,
    openid: str,
    place_id: int,
    service_id: int,
    day: dt.date,
    name: str,
    phone: str | None,
    phone_consent_at: dt.datetime | None,
    now: dt.datetime,
) -> tuple[BookingWaitlist, int]:
    """Join (once) the line for a full day; returns the entry and the villager's place in line."""
    await _lock_villager(session, openid)
    entry = (
        await session.execute(
            select(BookingWaitlist).where(
                BookingWaitlist.openid == openid,
                BookingWaitlist.place_id == place_id,
                BookingWaitlist.service_id == service_id,
                BookingWaitlist.day == day,
                BookingWaitlist.status.in_(("waiting", "offered")),
            )
        )
    ).scalar_one_or_none()
    if entry is None:
        entry = BookingWaitlist(
            openid=openid,
            place_id=place_id,
            service_id=service_id,
            day=day,
            name=name[:64],
            phone=phone if phone and phone_consent_at else None,
            phone_consent_at=phone_consent_at if phone else None,
            status="waiting",
            created_at=now,
        )
        session.add(entry)
        await session.flush()
    ahead = await session.scalar(
        select(func.count())
        .select_from(BookingWaitlist)
        .where(
            BookingWaitlist.place_id == place_id,
            BookingWaitlist.service_id == service_id,
            BookingWaitlist.day == day,
            BookingWaitlist.status == "waiting",
            BookingWaitlist.id < entry.id,
        )
    )
    return entry, int(ahead or 0) + 1


async def waiting_entries(session: AsyncSession, openid: str, today: dt.date) -> list[BookingWaitlist]:
    rows = await session.execute(
        select(BookingWaitlist)
        .where(BookingWaitlist.openid == openid, BookingWaitlist.status == "waiting", BookingWaitlist.day >= today)
        .order_by(BookingWaitlist.day, BookingWaitlist.id)
    )
    return list(rows.scalars())


async def leave_waitlist(session: AsyncSession, entry_id: int) -> None:
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.id == entry_id, BookingWaitlist.status == "waiting")
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )


async def mark_attendance(
    session: AsyncSession,
    booking_id: int,
    status: Literal["checked_in", "no_show", "confirmed"],
    *,
    by: str,
    now: dt.datetime,
) -> Booking | None:
    """Staff mark a villager as come (checked_in), not come (no_show), or undo (confirmed)."""
    done = (
        await session.execute(
            update(Booking)
            .where(Booking.id == booking_id, Booking.status.in_(("confirmed", "checked_in", "no_show")))
            .values(status=status, checked_in_at=now if status == "checked_in" else None, marked_by=by[:64])
            .returning(Booking.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if done is None:
        return None
    return await session.get(Booking, booking_id, populate_existing=True)


async def erase_personal_data(session: AsyncSession, openid: str) -> int:
    """'删除我的信息': names and phone numbers on this villager's bookings and waiting-list entries go."""
    result = await session.execute(
        update(Booking)
        .where(Booking.openid == openid)
        .values(name="（已删除）", phone=None, phone_consent_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(BookingWaitlist)
        .where(BookingWaitlist.openid == openid)
        .values(name="（已删除）", phone=None, phone_consent_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def export_personal_data(session: AsyncSession, openid: str) -> dict[str, list[dict[str, Any]]]:
    """Everything booking keeps about a villager, for a privacy export (JSON-ready)."""
    bookings = (await session.execute(select(Booking).where(Booking.openid == openid).order_by(Booking.id))).scalars()
    waiting = (
        await session.execute(
            select(BookingWaitlist).where(BookingWaitlist.openid == openid).order_by(BookingWaitlist.id)
        )
    ).scalars()
    return {
        "bookings": [
            {
                "code": b.code,
                "starts_at": b.starts_at.isoformat(),
                "status": b.status,
                "name": b.name,
                "phone": b.phone,
                "phone_consent_at": b.phone_consent_at.isoformat() if b.phone_consent_at else None,
                "created_at": b.created_at.isoformat(),
            }
            for b in bookings
        ],
        "waiting_list": [
            {"day": e.day.isoformat(), "status": e.status, "name": e.name, "phone": e.phone} for e in waiting
        ],
    }


async def last_contact(session: AsyncSession, openid: str) -> tuple[str, str | None] | None:
    """The name (and phone, if it was given with consent and is still kept) of the villager's last booking."""
    row = (
        await session.execute(
            select(Booking.name, Booking.phone)
            .where(Booking.openid == openid, Booking.name != "", Booking.name != "（已删除）")
            .order_by(Booking.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return str(row[0]), row[1]


# ================================================================ the back-office's day and week
@dataclass
class SlotRow:
    """One slot of one service on the day view: its places and who booked them."""

    service: BookingService
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int  # 0 when the slot is no longer in the schedule (a closure added after booking)
    taken: int
    bookings: list[Booking] = field(default_factory=list)

    @property
    def planned(self) -> bool:
        return self.capacity > 0

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken)


class _Totals:
    """capacity / taken / free of a day, summed over its slots (``_parts``)."""

    @property
    def _parts(self) -> Sequence[SlotRow | WeekCell]:
        raise NotImplementedError

    @property
    def capacity(self) -> int:
        return sum(p.capacity for p in self._parts)

    @property
    def taken(self) -> int:
        return sum(p.taken for p in self._parts)

    @property
    def free(self) -> int:
        return sum(p.free for p in self._parts)


@dataclass
class DayOverview(_Totals):
    place: BookingPlace
    day: dt.date
    calendar: CalendarDay
    specials: list[BookingSpecialDay]
    rows: list[SlotRow]
    cancelled: list[Booking]

    @property
    def _parts(self) -> Sequence[SlotRow]:
        return self.rows

    @property
    def bookings(self) -> list[Booking]:
        return [b for r in self.rows for b in r.bookings]

    def count(self, status: str) -> int:
        return sum(1 for b in self.bookings if b.status == status)


async def day_overview(session: AsyncSession, cat: Catalog, rules: Rules, place_id: int, day: dt.date) -> DayOverview:
    """Every slot of every service at a place on a day, with capacity, places taken and the bookings."""
    place = cat.places[place_id]
    start, end = day_bounds(day, rules)
    booked = list(
        (
            await session.execute(
                select(Booking)
                .where(Booking.place_id == place_id, Booking.starts_at >= start, Booking.starts_at < end)
                .order_by(Booking.starts_at, Booking.id)
            )
        ).scalars()
    )
    taken_rows = (
        await session.execute(
            select(BookingSlot.service_id, BookingSlot.starts_at, BookingSlot.taken).where(
                BookingSlot.place_id == place_id, BookingSlot.starts_at >= start, BookingSlot.starts_at < end
            )
        )
    ).all()
    taken = {(sid, s): int(t) for sid, s, t in taken_rows}
    rows: dict[tuple[int, dt.datetime], SlotRow] = {}
    specials: dict[int, BookingSpecialDay] = {}
    for service in cat.services.values():
        plan = plan_day(cat, rules, place_id, service.id, day)
        specials.update({sp.id: sp for sp in plan.specials})
        for p in plan.slots:
            rows[(service.id, p.starts_at)] = SlotRow(
                service, p.starts_at, p.ends_at, p.capacity, taken.get((service.id, p.starts_at), 0)
            )
    cancelled = []
    for b in booked:
        if b.status not in OCCUPYING:
            cancelled.append(b)
            continue
        key = (b.service_id, b.starts_at)
        if key not in rows:  # booked before the schedule changed: shown so staff can call the villager
            gone = cat.services.get(b.service_id)
            if gone is None:
                continue
            rows[key] = SlotRow(gone, b.starts_at, b.ends_at, 0, taken.get(key, 0))
        rows[key].bookings.append(b)
    ordered = sorted(rows.values(), key=lambda r: (r.starts_at, r.service.sort_order, r.service.id))
    return DayOverview(
        place, day, calendar_day(day, rules), sorted(specials.values(), key=lambda s: s.id), ordered, cancelled
    )


@dataclass
class WeekCell:
    service: BookingService
    capacity: int
    taken: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.taken)


@dataclass
class WeekDay(_Totals):
    day: dt.date
    calendar: CalendarDay
    specials: list[BookingSpecialDay]
    cells: list[WeekCell]

    @property
    def _parts(self) -> Sequence[WeekCell]:
        return self.cells


async def week_overview(
    session: AsyncSession, cat: Catalog, rules: Rules, place_id: int, start: dt.date, days: int = 7
) -> list[WeekDay]:
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    out = [WeekDay(d, calendar_day(d, rules), [], []) for d in dates]
    for service in cat.services.values():
        found = await availability(
            session, cat, rules, place_id, service.id, dates, not_before=day_bounds(dates[0], rules)[0]
        )
        for week_day, avail in zip(out, found, strict=True):
            seen = {sp.id for sp in week_day.specials}
            week_day.specials += [sp for sp in avail.plan.specials if sp.id not in seen]
            if avail.slots:
                week_day.cells.append(
                    WeekCell(service, sum(s.capacity for s in avail.slots), sum(s.taken for s in avail.slots))
                )
    return out


EXPORT_HEADER = ("时间", "事项", "姓名", "手机", "预约码", "状态", "来源", "备注")
STATUS_NAMES = {
    "held": "候补保留中",
    "confirmed": "已预约",
    "checked_in": "已到",
    "no_show": "未到",
    "cancelled": "已取消",
    "expired": "已过期",
}
SOURCE_NAMES = {"wechat": "公众号", "staff": "工作人员代约", "waitlist": "候补"}


def export_rows(overview: DayOverview, rules: Rules) -> list[list[str]]:
    """The day's bookings as a table (header first) for CSV and XLSX; cancelled ones at the end."""
    rows = [list(EXPORT_HEADER)]
    for b in [*overview.bookings, *overview.cancelled]:
        service = next((r.service.name for r in overview.rows if r.service.id == b.service_id), "")
        rows.append(
            [
                f"{fmt_time(b.starts_at, rules)}-{fmt_time(b.ends_at, rules)}",
                service,
                b.name,
                b.phone or "",
                b.code,
                STATUS_NAMES.get(b.status, b.status),
                SOURCE_NAMES.get(b.source, b.source),
                b.note,
            ]
        )
    return rows


# ================================================================ formatting
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


# ================================================================ the periodic job
@dataclass
class TickStats:
    expired_holds: int = 0
    offers: int = 0
    eve_reminders: int = 0
    soon_reminders: int = 0
    skipped_reminders: int = 0
    phones_erased: int = 0
    waitlist_closed: int = 0


async def tick(ctx: JobContext) -> None:
    """Every minute: expire stale holds (offering the place on), queue due reminders, erase old phones."""
    await run_tick(ctx)


async def run_tick(ctx: JobContext, *, batch: int = 200) -> TickStats:
    now = ctx.now()
    config = load_config(ctx.settings.knowledge_dir)
    rules = config.rules
    texts = load_texts(ctx.settings.knowledge_dir)
    stats = TickStats()
    async with ctx.session_factory() as session, session.begin():
        if await session.scalar(select(BookingSeed.id).where(BookingSeed.id == 1)) is None:
            return stats  # booking never used: nothing to do
    today = local_day(now, rules)
    cat_end = today + dt.timedelta(days=SEARCH_DAYS)

    # 1. held offers that were not taken up in time: the place goes to the next in line
    async with ctx.session_factory() as session, session.begin():
        cat = await load_catalog(session, today, cat_end)
        stale = (
            await session.execute(
                select(Booking.id)
                .where(Booking.status == "held", Booking.hold_expires_at <= now)
                .order_by(Booking.hold_expires_at)
                .limit(batch)
            )
        ).scalars()
        for booking_id in list(stale):
            done = await cancel_booking(session, cat, rules, texts, booking_id, now=now, by="system", status="expired")
            if done is not None:
                stats.expired_holds += 1
                stats.offers += done.offered is not None

    # 2. places free on days somebody waits for (staff raised capacity, a missed offer …)
    async with ctx.session_factory() as session, session.begin():
        cat = await load_catalog(session, today, cat_end)
        lines = (
            await session.execute(
                select(BookingWaitlist.place_id, BookingWaitlist.service_id, BookingWaitlist.day)
                .where(BookingWaitlist.status == "waiting", BookingWaitlist.day >= today)
                .group_by(BookingWaitlist.place_id, BookingWaitlist.service_id, BookingWaitlist.day)
                .limit(batch)
            )
        ).all()
        for place_id, service_id, day in lines:
            (avail,) = await availability(
                session, cat, rules, place_id, service_id, [day], not_before=now + rules.min_lead
            )
            for free in avail.free_slots:
                slot_id = await _slot_id(session, cat, rules, free)
                if slot_id is None:
                    continue
                for _ in range(free.free):
                    if await offer_place(session, cat, rules, texts, slot_id, now=now) is None:
                        break
                    stats.offers += 1
        closed = await session.execute(
            update(BookingWaitlist)
            .where(BookingWaitlist.status == "waiting", BookingWaitlist.day < today)
            .values(status="expired")
            .execution_options(synchronize_session=False)
        )
        stats.waitlist_closed = int(closed.rowcount)  # type: ignore[attr-defined]

    # 3. reminders: the evening before and shortly before
    async with ctx.session_factory() as session, session.begin():
        cat = await load_catalog(session, today, cat_end)
        for which in ("eve", "soon"):
            due_col = Booking.remind_eve_at if which == "eve" else Booking.remind_soon_at
            sent_col = Booking.remind_eve_sent_at if which == "eve" else Booking.remind_soon_sent_at
            due = (
                await session.execute(
                    select(Booking)
                    .where(Booking.status == "confirmed", due_col <= now, sent_col.is_(None))
                    .order_by(due_col)
                    .limit(batch)
                )
            ).scalars()
            for booking in list(due):
                claimed = (
                    await session.execute(
                        update(Booking)
                        .where(Booking.id == booking.id, sent_col.is_(None), Booking.status == "confirmed")
                        .values({sent_col: now})
                        .returning(Booking.id)
                        .execution_options(synchronize_session=False)
                    )
                ).scalar_one_or_none()
                if claimed is None:
                    continue  # another worker took it
                # a reminder whose moment has passed (the worker was down) is not sent late
                too_late = booking.starts_at <= now or (
                    which == "eve" and now >= booking.starts_at - rules.reminder_before
                )
                if too_late or not booking.openid:
                    stats.skipped_reminders += 1
                    continue
                await enqueue(
                    session,
                    kind="cs_text",
                    openid=booking.openid,
                    payload={"content": reminder_text(cat, rules, texts, booking, which, now)},
                    idempotency_key=f"booking:{booking.id}:{which}",
                    source=f"booking:{booking.id}",
                )
                if which == "eve":
                    stats.eve_reminders += 1
                else:
                    stats.soon_reminders += 1

    # 4. phone numbers are kept only so long after the appointment
    async with ctx.session_factory() as session, session.begin():
        cutoff = now - dt.timedelta(days=rules.phone_retention_days)
        erased = await session.execute(
            update(Booking)
            .where(Booking.phone.is_not(None), Booking.ends_at < cutoff)
            .values(phone=None)
            .execution_options(synchronize_session=False)
        )
        stats.phones_erased += int(erased.rowcount)  # type: ignore[attr-defined]
        erased = await session.execute(
            update(BookingWaitlist)
            .where(BookingWaitlist.phone.is_not(None), BookingWaitlist.day < local_day(cutoff, rules))
            .values(phone=None)
            .execution_options(synchronize_session=False)
        )
        stats.phones_erased += int(erased.rowcount)  # type: ignore[attr-defined]
    if stats.expired_holds or stats.offers or stats.eve_reminders or stats.soon_reminders:
        log.info("booking tick: %s", stats)
    return stats


async def _slot_id(session: AsyncSession, cat: Catalog, rules: Rules, free: FreeSlot) -> int | None:
    """The counter row of a planned slot (created when missing)."""
    await session.execute(
        _insert(session)(BookingSlot)
        .values(
            place_id=free.place_id,
            service_id=free.service_id,
            starts_at=free.starts_at,
            ends_at=free.ends_at,
            capacity=free.capacity,
            taken=0,
        )
        .on_conflict_do_nothing(index_elements=["place_id", "service_id", "starts_at"])
    )
    slot_id: int | None = (
        await session.execute(
            select(BookingSlot.id).where(
                BookingSlot.place_id == free.place_id,
                BookingSlot.service_id == free.service_id,
                BookingSlot.starts_at == free.starts_at,
            )
        )
    ).scalar_one_or_none()
    if slot_id is not None:
        await session.execute(
            update(BookingSlot)
            .where(BookingSlot.id == slot_id, BookingSlot.capacity != free.capacity)
            .values(capacity=free.capacity)
            .execution_options(synchronize_session=False)
        )
    return slot_id


def reminder_text(cat: Catalog, rules: Rules, texts: Texts, booking: Booking, which: str, now: dt.datetime) -> str:
    service = cat.services.get(booking.service_id)
    return texts.get(
        "booking_reminder_eve" if which == "eve" else "booking_reminder_soon",
        day=relative_day(local_day(booking.starts_at, rules), local_day(now, rules)),
        time=fmt_time(booking.starts_at, rules),
        summary=summary(cat, booking, rules),
        bring=(service.bring if service and service.bring else "身份证"),
        code=booking.code,
    )
