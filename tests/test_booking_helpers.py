"""Shared pieces of the booking tests (no tests here): a frozen clock, a small schedule, the app with booking.

Import what a module needs::

    from tests.test_booking_helpers import clock, booking_settings, booking_client, SHANGHAI, at
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from bot.services.booking.config import CONFIG_FILE
from bot.services.jobs import JobContext
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from bot.storage.booking import Booking
from bot.storage.models import OutboxMessage

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A small township: one place, two services, mornings only; easy to fill up in a test.
SMALL_BOOKING_YAML = """
rules:
  days_ahead: 7
  max_upcoming: 2
  min_lead_minutes: 60
  wizard_minutes: 30
  reminder_eve_time: "18:00"
  reminder_before_minutes: 120
  offer_hold_minutes: 120
  phone_retention_days: 180
services:
  - {code: consult, name: 法律咨询, bring: 身份证；借条、合同等材料。}
  - {code: legal_aid, name: 法律援助申请, bring: 身份证；经济困难证明（低保证等）；案件材料。}
places:
  - {code: station, name: 司法所公共法律服务站, address: 乡政府院内}
schedules:
  - {place: station, services: [consult], weekdays: [0, 1, 2, 3, 4], hours: ["09:00-11:00"], capacity: 2}
  - place: station
    services: [legal_aid]
    weekdays: [0, 1, 2, 3, 4]
    hours: ["09:00-10:00"]
    slot_minutes: 60
    capacity: 1
special_days: []
"""


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A Shanghai wall-clock moment, as the UTC instant the code stores."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Frozen time for chat handlers (Ctx.now comes from the pipeline's clock): Tue 2026-02-10 08:00 Shanghai."""
    c = Clock(at(2026, 2, 10, 8, 0))
    monkeypatch.setattr("bot.services.inbound.utcnow", c)
    return c


def knowledge_with(tmp_path: Path, booking_yaml: str) -> Path:
    """The shipped knowledge directory, with a different booking.yaml."""
    directory = tmp_path / "knowledge"
    directory.mkdir(exist_ok=True)
    for item in DEFAULT_KNOWLEDGE_DIR.iterdir():
        if item.name != CONFIG_FILE and not (directory / item.name).exists():
            (directory / item.name).symlink_to(item)
    (directory / CONFIG_FILE).write_text(booking_yaml, encoding="utf-8")
    return directory


@pytest.fixture
def booking_yaml() -> str:
    return SMALL_BOOKING_YAML


@pytest.fixture
def booking_settings(settings: Settings, tmp_path: Path, booking_yaml: str) -> Settings:
    return settings.with_(knowledge_dir=str(knowledge_with(tmp_path, booking_yaml)))


@pytest.fixture
def with_booking_router(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production routers, with booking just before help (where handlers/__init__.py will list it)."""
    import handlers
    from handlers import booking, help

    routers = list(handlers.ROUTERS)
    if booking.router not in routers:
        routers.insert(routers.index(help.router), booking.router)
    monkeypatch.setattr(handlers, "ROUTERS", tuple(routers))


@pytest.fixture
async def booking_client(make_client: Any, booking_settings: Settings, with_booking_router: None, clock: Clock) -> Any:
    return await make_client(booking_settings)


def job_context(client_or_factory: Any, settings: Settings, clock: Clock) -> JobContext:
    factory = (
        client_or_factory.app[SERVICES].session_factory if hasattr(client_or_factory, "app") else client_or_factory
    )
    return JobContext(settings=settings, session_factory=factory, now=clock)


async def bookings(client: Any) -> list[Booking]:
    async with client.app[SERVICES].session_factory() as session:
        return list((await session.execute(select(Booking).order_by(Booking.id))).scalars())


async def outbox(client: Any) -> list[OutboxMessage]:
    async with client.app[SERVICES].session_factory() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())
