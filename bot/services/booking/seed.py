"""The first start: services, places, schedules and special days of ``booking.yaml`` copied into empty
tables, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking.config import BookingConfig, parse_span
from bot.services.booking.reservations import _insert
from bot.services.knowledge import fill
from bot.storage.booking import (
    BookingPlace,
    BookingSchedule,
    BookingSeed,
    BookingService,
    BookingSpecialDay,
)
from bot.storage.models import utcnow

log = logging.getLogger(__name__)


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
