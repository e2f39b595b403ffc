"""What villagers used besides the chat in a month: bookings of the public legal service (and who did not
come), and the reach of the campaigns sent (WeChat's own counts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.booking import STATUS_NAMES
from bot.services.campaigns import AUDIENCE_LABELS
from bot.services.reports.period import Month
from bot.storage.booking import Booking, BookingPlace, BookingService
from bot.storage.campaigns import Campaign

#: bookings that were (or still are) a place on the day: the ones that can come or not come
KEPT = ("confirmed", "checked_in", "no_show")


@dataclass
class Bookings:
    by_status: list[tuple[str, int]] = field(default_factory=list)
    #: (service, booked, came, did not come)
    by_service: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def booked(self) -> int:
        return sum(row[1] for row in self.by_service)

    @property
    def came(self) -> int:
        return sum(row[2] for row in self.by_service)

    @property
    def no_show(self) -> int:
        return sum(row[3] for row in self.by_service)

    @property
    def no_show_share(self) -> int:
        """Per cent of the bookings marked 到/没到 that did not come."""
        marked = self.came + self.no_show
        return round(100 * self.no_show / marked) if marked else 0


@dataclass(frozen=True)
class CampaignReach:
    title: str
    sent_on: str  # 12月4日
    audience: str
    target: int  # WeChat's count of followers aimed at
    sent: int
    failed: int
    follow_ups: int


async def bookings(session: AsyncSession, village_ids: Sequence[int] | None, month: Month) -> Bookings:
    """Bookings for days of the month (by the time booked), at the places the reader may see."""
    where = [Booking.starts_at >= month.start, Booking.starts_at < month.end]
    if village_ids is not None:
        where.append(
            Booking.place_id.in_(select(BookingPlace.id).where(BookingPlace.village_id.in_(list(village_ids))))
        )
    statuses = dict(
        (await session.execute(select(Booking.status, func.count()).where(*where).group_by(Booking.status))).all()
    )
    rows = await session.execute(
        select(
            BookingService.name,
            func.count(),
            func.sum(case((Booking.status == "checked_in", 1), else_=0)),
            func.sum(case((Booking.status == "no_show", 1), else_=0)),
        )
        .join(BookingService, BookingService.id == Booking.service_id)
        .where(*where, Booking.status.in_(KEPT))
        .group_by(BookingService.name)
        .order_by(func.count().desc(), BookingService.name)
    )
    return Bookings(
        by_status=[(name, int(statuses[code])) for code, name in STATUS_NAMES.items() if statuses.get(code)],
        by_service=[(str(name), int(n), int(came or 0), int(missed or 0)) for name, n, came, missed in rows.all()],
    )


async def campaign_reach(
    session: AsyncSession, village_ids: Sequence[int] | None, month: Month, village_names: dict[int, str]
) -> list[CampaignReach]:
    """Campaigns sent in the month (a handful: the quota is four a month); a mediator sees those sent to
    everyone or to one of their villages."""
    sent = (
        await session.execute(
            select(Campaign)
            .where(Campaign.sent_at >= month.start, Campaign.sent_at < month.end)
            .order_by(Campaign.sent_at)
        )
    ).scalars()
    out = []
    for c in sent:
        ids = [int(v) for v in c.village_ids or []]
        if village_ids is not None and c.audience != "all" and not set(ids) & set(village_ids):
            continue
        audience = AUDIENCE_LABELS.get(c.audience, "")
        if c.audience == "villages":
            audience = "、".join(village_names.get(v, "") for v in ids)
        local = c.sent_at.astimezone(month.start.tzinfo) if c.sent_at else None
        out.append(
            CampaignReach(
                title=c.title,
                sent_on=f"{local.month}月{local.day}日" if local else "",
                audience=audience,
                target=c.filter_count or c.total_count,
                sent=c.sent_count,
                failed=c.error_count,
                follow_ups=c.follow_up_count,
            )
        )
    return out


__all__ = ["Bookings", "CampaignReach", "bookings", "campaign_reach"]
