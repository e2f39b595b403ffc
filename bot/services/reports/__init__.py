"""The township's monthly report (月报告): tickets, the bot's own work, bookings and campaigns, for the
back-office page (with charts), its CSV and XLSX, and any other caller.

* ``period`` — months in China time, the month picker, a portable month bucket for trends;
* ``sql`` — hours between timestamps and medians, on SQLite and PostgreSQL alike;
* ``tickets`` — the month's tickets per village, topic, status, response time, satisfaction, escalation;
* ``botwork`` — questions answered / offered a list / not answered, top topics, knowledge gaps;
* ``outreach`` — bookings and no-shows, campaign reach;
* ``build`` — :func:`build` puts one month together for a :class:`Scope` (whose villages);
* ``export`` — the same sections as CSV and XLSX.

Every figure is aggregated in the database (GROUP BY, window functions): a year of data is never loaded.
"""

from __future__ import annotations

from bot.services.reports.botwork import BotWork
from bot.services.reports.build import MonthlyReport, Scope, build
from bot.services.reports.export import Section, safe_text, sections, to_csv, to_xlsx
from bot.services.reports.outreach import Bookings, CampaignReach
from bot.services.reports.period import Month, first_day, month_bounds, months_up_to, recent_months
from bot.services.reports.tickets import NO_RESPONSE, RESPONSE_BUCKETS, Counts, TicketFigures

__all__ = [
    "NO_RESPONSE",
    "RESPONSE_BUCKETS",
    "Bookings",
    "BotWork",
    "CampaignReach",
    "Counts",
    "Month",
    "MonthlyReport",
    "Scope",
    "Section",
    "TicketFigures",
    "build",
    "first_day",
    "month_bounds",
    "months_up_to",
    "recent_months",
    "safe_text",
    "sections",
    "to_csv",
    "to_xlsx",
]
