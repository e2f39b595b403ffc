"""The month's report, put together: tickets, the bot's own work, bookings and campaigns, for the villages
the reader may see."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.knowledge import KnowledgeBase
from bot.services.reports.botwork import BotWork, bot_work
from bot.services.reports.outreach import Bookings, CampaignReach, bookings, campaign_reach
from bot.services.reports.period import Month, month_bounds, months_up_to
from bot.services.reports.tickets import TicketFigures, ticket_figures
from bot.services.tickets import category_name
from bot.storage.models import Village


@dataclass(frozen=True)
class Scope:
    """Whose numbers: ``tickets`` is the reader's ticket filter (``tickets.visible_to``); ``village_ids``
    None is the whole township, else the reader's villages (a mediator)."""

    tickets: ColumnElement[bool]
    village_ids: tuple[int, ...] | None


@dataclass
class MonthlyReport:
    month: Month
    villages: dict[int, str]
    tickets: TicketFigures
    bot: BotWork
    bookings: Bookings
    campaigns: list[CampaignReach]
    trend_months: list[Month]

    @property
    def label(self) -> str:
        return self.month.label


async def build(session: AsyncSession, scope: Scope, month: str, kb: KnowledgeBase, now: dt.datetime) -> MonthlyReport:
    """The report for ``month`` ('2026-11'; anything else: this month)."""
    bounds = month_bounds(month, now)
    trend = months_up_to(bounds, 12)
    all_villages = dict((await session.execute(select(Village.id, Village.name).order_by(Village.id))).all())
    mine = _visible(all_villages, scope.village_ids)

    def entry_title(entry_id: str) -> str | None:
        entry = kb.by_id.get(entry_id)
        return kb.fill(entry.question) if entry is not None else None

    return MonthlyReport(
        month=bounds,
        villages=mine,
        tickets=await ticket_figures(
            session, scope.tickets, bounds, mine, lambda t: category_name(kb, t), now, trend
        ),
        bot=await bot_work(session, scope.village_ids, bounds, kb.topic_name, entry_title, trend),
        bookings=await bookings(session, scope.village_ids, bounds),
        campaigns=await campaign_reach(session, scope.village_ids, bounds, all_villages),
        trend_months=trend,
    )


def _visible(villages: dict[int, str], ids: Sequence[int] | None) -> dict[int, str]:
    return dict(villages) if ids is None else {v: n for v, n in villages.items() if v in ids}


__all__ = ["MonthlyReport", "Scope", "build"]
