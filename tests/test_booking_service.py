"""Booking rules below the chat: holidays and 调休, no overbooking under concurrency, reminders, seed, special days."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.services import booking as svc
from bot.services.booking.calendar import calendar_day
from bot.services.booking.config import load_texts, parse_config
from bot.services.booking.job import run_tick
from bot.services.booking.planning import plan_day
from bot.services.booking.reminders import reminder_times
from bot.services.booking.reservations import BookOutcome
from bot.services.jobs import JobContext
from bot.services.outbox import OutboxPolicy, OutboxWorker
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from bot.storage.booking import (
    Booking,
    BookingPlace,
    BookingSchedule,
    BookingService,
    BookingSlot,
    BookingSpecialDay,
    BookingWaitlist,
)
from bot.storage.db import create_engine, create_session_factory, is_postgres
from bot.storage.models import OutboxMessage, Villager, utcnow
from bot.wechat.api import WeChatClient
from bot.wechat.ratelimit import RateLimiter
from bot.wechat.token import DbTokenStore
from tests import wechat_fakes
from tests.test_booking_helpers import SMALL_BOOKING_YAML, Clock, at, knowledge_with

fake_server = wechat_fakes.fake_server

RULES = svc.Rules()
SMALL = parse_config(yaml.safe_load(SMALL_BOOKING_YAML))


@pytest.fixture
def kdir(tmp_path: Path) -> Path:
    return knowledge_with(tmp_path, SMALL_BOOKING_YAML)


@pytest.fixture
async def seeded(session_factory: Any) -> Any:
    async with session_factory() as s, s.begin():
        assert await svc.ensure_seeded(s, SMALL, {})
    return session_factory


def job(settings: Settings, kdir: Path, factory: Any, clock: Clock) -> JobContext:
    return JobContext(settings=settings.with_(knowledge_dir=str(kdir)), session_factory=factory, now=clock)


async def catalog(session: Any) -> svc.Catalog:
    return await svc.load_catalog(session)


async def ids(session: Any) -> tuple[int, int, int]:
    """(station, 法律咨询, 法律援助申请)"""
    place = await session.scalar(select(BookingPlace.id).where(BookingPlace.code == "station"))
    consult = await session.scalar(select(BookingService.id).where(BookingService.code == "consult"))
    aid = await session.scalar(select(BookingService.id).where(BookingService.code == "legal_aid"))
    return place, consult, aid


async def book_one(factory: Any, starts_at: dt.datetime, now: dt.datetime, key: str, **kw: Any) -> BookOutcome:
    async with factory() as s, s.begin():
        place, consult, _aid = await ids(s)
        kw.setdefault("service_id", consult)
        return await svc.book(
            s,
            await catalog(s),
            RULES,
            place_id=place,
            starts_at=starts_at,
            request_key=key,
            now=now,
            openid=kw.pop("openid", f"o-{key}"),
            name=kw.pop("name", "张三"),
            **kw,
        )


# ------------------------------------------------------------------ the calendar: 2026 Spring Festival
@pytest.mark.parametrize(
    ("day", "kind", "holiday"),
    [
        (dt.date(2026, 2, 13), "workday", None),  # Friday before
        (dt.date(2026, 2, 14), "adjusted_workday", "春节"),  # Saturday worked (调休)
        (dt.date(2026, 2, 15), "holiday", "春节"),
        (dt.date(2026, 2, 17), "holiday", "春节"),  # 除夕 is 02-16, 初一 02-17
        (dt.date(2026, 2, 23), "holiday", "春节"),  # a Monday, still off
        (dt.date(2026, 2, 24), "workday", None),
        (dt.date(2026, 2, 28), "adjusted_workday", "春节"),  # Saturday worked (调休)
        (dt.date(2026, 3, 1), "weekend", None),
        (dt.date(2026, 10, 1), "holiday", "国庆节"),
    ],
)
def test_calendar_follows_chinesecalendar(day: dt.date, kind: str, holiday: str | None) -> None:
    got = calendar_day(day, RULES)
    assert (got.kind, got.holiday, got.known) == (kind, holiday, True)


def test_years_without_data_fall_back_to_weekdays_and_fixed_holidays() -> None:
    assert svc.calendar_data_until() >= 2026
    year = svc.calendar_data_until() + 1
    new_year = calendar_day(dt.date(year, 1, 1), RULES)
    assert new_year.kind == "holiday" and not new_year.known
    monday = next(dt.date(year, 1, d) for d in range(2, 9) if dt.date(year, 1, d).weekday() == 0)
    assert calendar_day(monday, RULES).kind == "workday"
    assert calendar_day(monday + dt.timedelta(days=5), RULES).kind == "weekend"


def _bare_catalog() -> svc.Catalog:
    place = BookingPlace(id=1, code="station", name="站", address="", active=True)
    service = BookingService(id=1, code="consult", name="法律咨询", active=True)
    schedule = BookingSchedule(
        id=1,
        place_id=1,
        service_id=1,
        weekdays=[0, 1, 2, 3, 4],
        start_time=dt.time(9),
        end_time=dt.time(11),
        slot_minutes=30,
        capacity=2,
        breaks=["10:00-10:30"],
        active=True,
    )
    return svc.Catalog({1: service}, {1: place}, [schedule], [])


def test_no_slots_on_holidays_slots_on_adjusted_weekends() -> None:
    cat = _bare_catalog()
    plan = {d: plan_day(cat, RULES, 1, 1, dt.date(2026, 2, d)) for d in range(13, 29)}
    open_days = sorted(d for d, p in plan.items() if p.slots)
    assert open_days == [13, 14, 24, 25, 26, 27, 28]
    times = [svc.fmt_time(s.starts_at, RULES) for s in plan[14].slots]
    assert times == ["9:00", "9:30", "10:30"]  # the break 10:00-10:30 is left out
    assert plan[14].slots[0].starts_at == dt.datetime(2026, 2, 14, 1, 0, tzinfo=dt.UTC)  # stored in UTC


def test_special_days_close_add_places_and_open_extra_hours() -> None:
    cat = _bare_catalog()
    cat.specials = [
        BookingSpecialDay(id=1, day=dt.date(2026, 3, 2), kind="closed", place_id=1, service_id=None, title="停电"),
        BookingSpecialDay(
            id=2,
            day=dt.date(2026, 3, 3),
            kind="extra",
            place_id=None,
            service_id=1,
            title="法律咨询日",
            volunteers="王律师",
            extra_capacity=3,
        ),
        BookingSpecialDay(
            id=3,
            day=dt.date(2026, 3, 8),  # a Sunday: a 法律咨询日 on market day
            kind="extra",
            place_id=1,
            service_id=None,
            title="赶集日法律咨询",
            start_time=dt.time(8),
            end_time=dt.time(9),
            slot_minutes=20,
            capacity=4,
            extra_capacity=0,
        ),
    ]
    assert plan_day(cat, RULES, 1, 1, dt.date(2026, 3, 2)).slots == ()
    assert plan_day(cat, RULES, 1, 1, dt.date(2026, 3, 2)).closed_by is not None
    assert {s.capacity for s in plan_day(cat, RULES, 1, 1, dt.date(2026, 3, 3)).slots} == {5}
    sunday = plan_day(cat, RULES, 1, 1, dt.date(2026, 3, 8))
    assert [(svc.fmt_time(s.starts_at, RULES), s.capacity) for s in sunday.slots] == [
        ("8:00", 4),
        ("8:20", 4),
        ("8:40", 4),
    ]


def test_times_are_shown_in_shanghai() -> None:
    moment = dt.datetime(2026, 2, 12, 1, 0, tzinfo=dt.UTC)
    assert svc.fmt_when(moment, moment + dt.timedelta(minutes=30), RULES) == "2月12日 周四 9:00-9:30"
    assert svc.local_day(dt.datetime(2026, 2, 11, 16, 30, tzinfo=dt.UTC), RULES) == dt.date(2026, 2, 12)


# ------------------------------------------------------------------ no overbooking
async def test_fifty_at_once_on_three_places(database_url: str, seeded: Any) -> None:
    """50 villagers confirm the same slot (capacity 3) at the same moment: exactly 3 get it,
    the other 47 are told the next free times."""
    async with seeded() as s, s.begin():
        place, consult, _aid = await ids(s)
        sched = (await s.execute(select(BookingSchedule).where(BookingSchedule.service_id == consult))).scalar_one()
        sched.capacity = 3
    now, slot = at(2026, 2, 10, 8), at(2026, 2, 12, 9)
    pool = {"pool_size": 50, "max_overflow": 0} if database_url.startswith("postgresql") else {}
    engine = create_engine(database_url, **pool)
    factory = create_session_factory(engine)
    postgres = is_postgres(engine)
    ready = asyncio.Barrier(50) if postgres else None

    async def attempt(i: int) -> BookOutcome:
        async with factory() as s, s.begin():
            cat = await catalog(s)  # every transaction is open before anybody books (PostgreSQL)
            if ready is not None:
                await ready.wait()
            return await svc.book(
                s, cat, RULES, place_id=place, service_id=consult, starts_at=slot,
                request_key=f"villager-{i}", now=now, openid=f"o{i}", name=f"村民{i}",
            )  # fmt: skip

    try:
        outcomes = await asyncio.gather(*(attempt(i) for i in range(50)))
    finally:
        await engine.dispose()
    statuses = [o.status for o in outcomes]
    assert statuses.count("booked") == 3 and statuses.count("full") == 47
    for o in outcomes:
        if o.status == "full":
            assert [svc.fmt_time(a.starts_at, RULES) for a in o.alternatives[:2]] == ["9:30", "10:00"]
            assert o.alternatives[0].free == 3
    async with seeded() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 3
        taken = await s.scalar(select(BookingSlot.taken).where(BookingSlot.starts_at == slot))
        assert taken == 3


async def test_the_same_request_at_once_books_once(seeded: Any) -> None:
    now, slot = at(2026, 2, 10, 8), at(2026, 2, 12, 9)
    outcomes = await asyncio.gather(*(book_one(seeded, slot, now, "same-key", openid="o1") for _ in range(8)))
    assert sorted(o.status for o in outcomes) == ["booked"] + ["duplicate"] * 7
    assert len({o.booking.id for o in outcomes if o.booking}) == 1
    async with seeded() as s:
        assert await s.scalar(select(BookingSlot.taken)) == 1


async def test_upcoming_limit_holds_under_concurrency(seeded: Any) -> None:
    async with seeded() as s, s.begin():
        s.add(Villager(openid="o1"))
    now = at(2026, 2, 10, 8)
    starts = [at(2026, 2, 11, 9), at(2026, 2, 11, 9, 30), at(2026, 2, 11, 10), at(2026, 2, 12, 9), at(2026, 2, 12, 10)]
    outcomes = await asyncio.gather(*(book_one(seeded, t, now, f"k{i}", openid="o1") for i, t in enumerate(starts)))
    assert sorted(o.status for o in outcomes) == ["booked", "booked", "limit", "limit", "limit"]


async def test_too_soon_closed_or_unknown_times_are_gone(seeded: Any) -> None:
    now = at(2026, 2, 10, 8, 30)
    assert (await book_one(seeded, at(2026, 2, 10, 9), now, "soon")).status == "gone"  # within the hour
    assert (await book_one(seeded, at(2026, 2, 16, 9), now, "holiday")).status == "gone"
    assert (await book_one(seeded, at(2026, 2, 12, 9, 10), now, "odd")).status == "gone"
    # staff booking a caller in by phone may book up to the start
    staff = await book_one(seeded, at(2026, 2, 10, 9), now, "staff", openid=None, source="staff", lead=dt.timedelta(0))
    assert staff.status == "booked" and staff.booking is not None and staff.booking.openid is None


async def test_attendance_is_marked_on_the_booking_s_day_only(seeded: Any) -> None:
    """到了 only on the day itself (not the evening before, not the day after); 没来 once the time came."""
    outcome = await book_one(seeded, at(2026, 2, 12, 9), at(2026, 2, 10, 8), "attend")
    assert outcome.booking is not None
    booking_id = outcome.booking.id

    async def mark(status: Any, now: dt.datetime) -> str:
        async with seeded() as s, s.begin():
            try:
                done = await svc.mark_attendance(s, booking_id, status, by="wang", now=now, rules=RULES)
            except svc.AttendanceError as exc:
                return str(exc)
            return done.status if done else "none"

    assert await mark("checked_in", at(2026, 2, 11, 22)) == "这是2月12日 周四的预约，只能在当天登记“到了”。"
    assert await mark("no_show", at(2026, 2, 12, 8, 59)) == "预约时间还没到，不能登记“没来”。"
    assert await mark("checked_in", at(2026, 2, 12, 0, 5)) == "checked_in"  # just after midnight, local time
    assert await mark("confirmed", at(2026, 2, 13, 9)) == "confirmed"  # an undo is always allowed
    assert await mark("checked_in", at(2026, 2, 13, 9)) == "这是2月12日 周四的预约，只能在当天登记“到了”。"
    assert await mark("no_show", at(2026, 2, 13, 9)) == "no_show"


async def test_capacity_follows_the_schedule(seeded: Any) -> None:
    now, slot = at(2026, 2, 10, 8), at(2026, 2, 12, 9)
    assert (await book_one(seeded, slot, now, "a")).status == "booked"
    async with seeded() as s, s.begin():
        _place, consult, _aid = await ids(s)
        sched = (await s.execute(select(BookingSchedule).where(BookingSchedule.service_id == consult))).scalar_one()
        sched.capacity = 1  # staff lower it: the slot is full now
    assert (await book_one(seeded, slot, now, "b")).status == "full"
    async with seeded() as s, s.begin():
        sched = (await s.execute(select(BookingSchedule).where(BookingSchedule.service_id == consult))).scalar_one()
        sched.capacity = 3
    assert (await book_one(seeded, slot, now, "c")).status == "booked"


# ------------------------------------------------------------------ reminders, with frozen time
async def _outbox(factory: Any) -> list[OutboxMessage]:
    async with factory() as s:
        return list((await s.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def test_reminders_the_evening_before_and_two_hours_before(seeded: Any, kdir: Path, settings: Settings) -> None:
    clock = Clock(at(2026, 2, 10, 8))
    booked = await book_one(seeded, at(2026, 2, 12, 9), clock.now, "r", openid="o1")
    assert booked.booking is not None
    ctx = job(settings, kdir, seeded, clock)

    async def tick_at(moment: dt.datetime) -> list[str]:
        clock.set(moment)
        await svc.tick(ctx)
        return [m.idempotency_key for m in await _outbox(seeded)]

    assert await tick_at(at(2026, 2, 11, 17, 59)) == []
    key_eve = f"booking:{booked.booking.id}:eve"
    assert await tick_at(at(2026, 2, 11, 18, 0)) == [key_eve]
    assert await tick_at(at(2026, 2, 11, 18, 1)) == [key_eve]  # a second tick sends nothing again
    assert await tick_at(at(2026, 2, 12, 6, 59)) == [key_eve]
    key_soon = f"booking:{booked.booking.id}:soon"
    assert await tick_at(at(2026, 2, 12, 7, 0)) == [key_eve, key_soon]
    assert await tick_at(at(2026, 2, 12, 8, 0)) == [key_eve, key_soon]
    eve, soon = await _outbox(seeded)
    assert eve.kind == "cs_text" and eve.openid == "o1"
    assert "您明天9:00有预约" in eve.payload["content"] and "2月12日 周四 9:00-9:30" in eve.payload["content"]
    assert "借条、合同等材料" in eve.payload["content"] and booked.booking.code in eve.payload["content"]
    assert "您的预约9:00开始" in soon.payload["content"]


async def test_reminder_reaches_the_villagers_phone(
    seeded: Any, kdir: Path, settings: Settings, fake_server: FakeWeChatServer
) -> None:
    """Through the real outbox worker to the fake WeChat API: the customer-service message arrives."""
    settings = settings.with_(wechat_api_base=fake_server.base_url)
    async with seeded() as s, s.begin():
        s.add(Villager(openid="o1", last_inbound_at=utcnow()))  # wrote recently: inside the 48-hour window
    clock = Clock(at(2026, 2, 10, 8))
    booked = await book_one(seeded, at(2026, 2, 12, 9), clock.now, "r", openid="o1")
    assert booked.booking is not None
    clock.set(at(2026, 2, 11, 18, 0))
    await svc.tick(job(settings, kdir, seeded, clock))
    client = WeChatClient.from_settings(
        settings, token_store=DbTokenStore(seeded), rate_limiter=RateLimiter.disabled(), timeout=2.0
    )
    try:
        assert await OutboxWorker(settings, seeded, client, policy=OutboxPolicy(idle_sleep=0.01)).run_once() == 1
    finally:
        await client.close()
    (call,) = fake_server.fake.calls_to("/cgi-bin/message/custom/send")
    assert call.body["touser"] == "o1" and "【预约提醒】您明天9:00有预约" in call.body["text"]["content"]


async def test_no_reminder_for_cancelled_or_too_late(seeded: Any, kdir: Path, settings: Settings) -> None:
    clock = Clock(at(2026, 2, 10, 8))
    cancelled = await book_one(seeded, at(2026, 2, 12, 9), clock.now, "c", openid="o1")
    kept = await book_one(seeded, at(2026, 2, 12, 10), clock.now, "k", openid="o2")
    assert cancelled.booking is not None and kept.booking is not None
    texts = load_texts(kdir)
    async with seeded() as s, s.begin():
        done = await svc.cancel_booking(
            s, await catalog(s), RULES, texts, cancelled.booking.id, now=clock.now, by="villager"
        )
        assert done is not None
    # the worker was down all evening: at 8:30 the evening reminder is pointless, the 2-hour one is due
    clock.set(at(2026, 2, 12, 8, 30))
    stats = await run_tick(job(settings, kdir, seeded, clock))
    assert (stats.eve_reminders, stats.soon_reminders, stats.skipped_reminders) == (0, 1, 1)
    assert [(m.openid, m.idempotency_key) for m in await _outbox(seeded)] == [("o2", f"booking:{kept.booking.id}:soon")]


def test_reminder_times_skip_what_is_already_past() -> None:
    start = at(2026, 2, 12, 9)
    assert reminder_times(start, at(2026, 2, 10, 8), RULES) == (at(2026, 2, 11, 18), at(2026, 2, 12, 7))
    assert reminder_times(start, at(2026, 2, 11, 20), RULES) == (None, at(2026, 2, 12, 7))
    assert reminder_times(start, at(2026, 2, 12, 7, 30), RULES) == (None, None)
    # a Tuesday-after-the-holiday appointment is reminded the evening before, a holiday evening
    assert reminder_times(at(2026, 2, 24, 9), at(2026, 2, 13, 8), RULES)[0] == at(2026, 2, 23, 18)


# ------------------------------------------------------------------ waiting list through the job
async def test_tick_offers_places_that_became_free(seeded: Any, kdir: Path, settings: Settings) -> None:
    now = at(2026, 2, 10, 8)
    async with seeded() as s, s.begin():
        place, _consult, aid = await ids(s)
        s.add(BookingWaitlist(openid="o_wait", place_id=place, service_id=aid, day=dt.date(2026, 2, 12), name="李四"))
        s.add(BookingWaitlist(openid="o_old", place_id=place, service_id=aid, day=dt.date(2026, 2, 9), name="旧"))
    clock = Clock(now)
    stats = await run_tick(job(settings, kdir, seeded, clock))
    assert stats.offers == 1 and stats.waitlist_closed == 1
    (offer,) = await _outbox(seeded)
    assert offer.openid == "o_wait" and "有空位了" in offer.payload["content"]
    async with seeded() as s:
        held = (await s.execute(select(Booking))).scalar_one()
        assert held.status == "held" and held.hold_expires_at == now + dt.timedelta(minutes=120)


# ------------------------------------------------------------------ seed and configuration
async def test_seed_from_the_shipped_file_once(session_factory: Any) -> None:
    config = svc.load_config(DEFAULT_KNOWLEDGE_DIR)
    site = yaml.safe_load((DEFAULT_KNOWLEDGE_DIR / "site.yaml").read_text(encoding="utf-8"))
    async with session_factory() as s, s.begin():
        assert await svc.ensure_seeded(s, config, site)
    async with session_factory() as s, s.begin():
        assert not await svc.ensure_seeded(s, config, site)
        cat = await catalog(s)
    assert [x.name for x in cat.services.values()] == ["法律咨询", "法律援助申请", "人民调解", "调解协议司法确认咨询"]
    station = next(p for p in cat.places.values() if p.code == "station")
    assert station.name == "司法所公共法律服务站" and station.address == site["office_address"]
    assert len(cat.places) == 12 and {p.village_id for p in cat.places.values()} == {None, *range(1, 12)}
    legal_aid = next(x for x in cat.services.values() if x.code == "legal_aid")
    assert "经济困难证明" in legal_aid.bring
    # the township station takes every service on a 调休 Saturday and none in the holiday
    for service in cat.services.values():
        assert plan_day(cat, config.rules, station.id, service.id, dt.date(2026, 2, 14)).slots
        assert not plan_day(cat, config.rules, station.id, service.id, dt.date(2026, 2, 18)).slots


async def test_seeding_twice_at_once_seeds_once(session_factory: Any) -> None:
    async def seed() -> bool:
        async with session_factory() as s, s.begin():
            return await svc.ensure_seeded(s, SMALL, {})

    assert sorted(await asyncio.gather(seed(), seed(), seed())) == [False, False, True]
    async with session_factory() as s:
        assert await s.scalar(select(func.count()).select_from(BookingService)) == 2


def _schedule(**change: Any) -> dict[str, Any]:
    return {
        "schedules": [{"place": "station", "services": ["consult"], "weekdays": [0], "hours": ["9:00-10:00"]} | change]
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rules": {"days_ahead": 0}}, "days_ahead"),
        ({"rules": {"timezone": "Mars/Olympus"}}, "timezone"),
        (_schedule(place="nowhere"), "unknown place"),
        (_schedule(services=["divorce"]), "unknown service"),
        (_schedule(weekdays=[7]), "weekdays"),
        (_schedule(hours=["10:00-9:00"]), "ends before"),
        (_schedule(breaks=["lunch"]), "HH:MM"),
        ({"special_days": [{"day": "tomorrow", "kind": "closed"}]}, "date"),
    ],
)
def test_config_errors_are_explained(change: dict[str, Any], message: str) -> None:
    data = yaml.safe_load(SMALL_BOOKING_YAML)
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    with pytest.raises(svc.BookingConfigError, match=message):
        parse_config(data)


def test_shipped_config_is_valid() -> None:
    config = svc.load_config(DEFAULT_KNOWLEDGE_DIR)
    assert config.rules == svc.Rules()  # the documented defaults are the shipped ones
    assert svc.load_config(DEFAULT_KNOWLEDGE_DIR) is config  # cached until the file changes


async def test_export_and_erase_personal_data(seeded: Any) -> None:
    booked = await book_one(
        seeded, at(2026, 2, 12, 9), at(2026, 2, 10, 8), "e", openid="o1", phone="13812345678",
        phone_consent_at=at(2026, 2, 10, 8),
    )  # fmt: skip
    assert booked.booking is not None and booked.booking.phone == "13812345678"
    async with seeded() as s:
        exported = await svc.export_personal_data(s, "o1")
        assert exported["bookings"][0]["phone"] == "13812345678" and exported["waiting_list"] == []
    async with seeded() as s, s.begin():
        assert await svc.erase_personal_data(s, "o1") == 1
    async with seeded() as s:
        b = (await s.execute(select(Booking))).scalar_one()
        assert (b.name, b.phone, b.phone_consent_at) == ("（已删除）", None, None)


async def test_booking_the_day_you_wait_for_ends_the_wait(seeded: Any) -> None:
    async with seeded() as s, s.begin():
        place, consult, _aid = await ids(s)
        s.add(BookingWaitlist(openid="o1", place_id=place, service_id=consult, day=dt.date(2026, 2, 12), name="张三"))
    booked = await book_one(seeded, at(2026, 2, 12, 10), at(2026, 2, 10, 8), "direct", openid="o1")
    assert booked.status == "booked" and booked.booking is not None
    async with seeded() as s:
        entry = (await s.execute(select(BookingWaitlist))).scalar_one()
        assert (entry.status, entry.booking_id) == ("booked", booked.booking.id)
