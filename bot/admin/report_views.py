"""月报告: the month at a glance for the township head — tickets per village, topic, response time and
satisfaction, 三长联动 escalations, twelve months of trend, the bot's own work (questions answered, topics
asked, what it could not answer), bookings and no-shows, campaign reach — with charts (server-side SVG,
``bot.admin.charts``), printable on A4 one section a page, and exported as CSV or XLSX with the same
sections. Mediators see their own villages' numbers. The numbers: ``bot.services.reports``."""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web

from bot.admin import charts
from bot.admin import framework as adm
from bot.services import reports
from bot.services import tickets as svc
from bot.storage.models import utcnow


async def _report(request: web.Request) -> reports.MonthlyReport:
    staff = adm.user(request)
    scope = reports.Scope(
        svc.visible_to(staff.role, staff.id, staff.village_ids, position=staff.position),
        None if staff.is_admin else tuple(staff.village_ids),
    )
    kb = adm.services(request).knowledge.kb
    first = adm.in_calendar(reports.first_day(request.query.get("month", ""), utcnow()))  # outside the calendar: 400
    async with adm.db(request)() as session:
        return await reports.build(session, scope, f"{first:%Y-%m}", kb, utcnow())


def _values(pairs: list[tuple[str, int]]) -> tuple[list[str], list[float]]:
    return [k for k, _ in pairs], [float(v) for _, v in pairs]


def report_charts(r: reports.MonthlyReport) -> dict[str, charts.Chart]:
    """The page's charts by section; each sits beside a table with the same numbers."""
    t, b, k = r.tickets, r.bot, r.bookings
    villages = [g.name for g in t.villages]
    months = [m.short for m in r.trend_months]
    topics, topic_counts = _values(t.topics[:10])
    asked, asked_counts = _values(b.top_topics)
    waits, wait_counts = _values(t.response_times)
    rated, rated_counts = _values(t.satisfaction)
    targets, target_counts = _values(t.escalations)
    services = [row[0] for row in k.by_service]
    return {
        "villages": charts.stacked_bar(
            f"{r.label} 各村工单",
            villages,
            {"已办结": [float(g.done) for g in t.villages], "未办结": [float(g.open) for g in t.villages]},
        ),
        "topics": charts.bar(f"{r.label} 工单的问题类别", topics, topic_counts, series="工单"),
        "response": charts.bar(f"{r.label} 首次答复用时", waits, wait_counts, series="工单"),
        "satisfaction": charts.bar(f"{r.label} 村民评价", rated, rated_counts, series="人数"),
        "escalations": charts.bar(f"{r.label} 三长联动升级", targets, target_counts, series="工单"),
        "trend": charts.line("近12个月 工单", months, {k: [float(v) for v in vs] for k, vs in t.trend.items()}),
        "bot_trend": charts.line("近12个月 村民提问", months, {k: [float(v) for v in vs] for k, vs in b.trend.items()}),
        "bot": charts.bar(
            f"{r.label} 机器人的回答",
            ["直接回答", "选后回答", "让村民选", "答不上", "转工作人员"],
            [float(b.answered), float(b.picked), float(b.clarified), float(b.unanswered), float(t.from_chat)],
            series="次数",
        ),
        "asked": charts.bar(f"{r.label} 问得最多的类别", asked, asked_counts, series="提问"),
        "bookings": charts.stacked_bar(
            f"{r.label} 预约",
            services,
            {
                "到了": [float(row[2]) for row in k.by_service],
                "没来": [float(row[3]) for row in k.by_service],
                "未登记": [float(row[1] - row[2] - row[3]) for row in k.by_service],
            },
        ),
    }


async def report_page(request: web.Request) -> web.StreamResponse:
    r = await _report(request)
    visuals = await asyncio.to_thread(report_charts, r)
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "report.view", object_type="report", object_id=r.label)
    return await adm.render(
        request,
        "admin/report.html",
        {
            "r": r,
            "t": r.tickets,
            "b": r.bot,
            "k": r.bookings,
            "charts": visuals,
            "months": reports.recent_months(utcnow()),
        },
        title=f"月报告 {r.label}",
    )


async def _export(request: web.Request, fmt: Literal["csv", "xlsx"]) -> web.StreamResponse:
    r = await _report(request)
    township = adm.services(request).knowledge.kb.site.get("township", "")
    title = f"{township}乡法通月报告"
    async with adm.db(request)() as session, session.begin():
        await adm.audit(
            session, request, "report.export", object_type="report", object_id=r.label, details={"format": fmt}
        )
    if fmt == "xlsx":
        body = await asyncio.to_thread(reports.to_xlsx, r, title)
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return web.Response(
            body=body,
            content_type=kind,
            headers={"Content-Disposition": f'attachment; filename="lawbot-report-{r.label}.xlsx"'},
        )
    return web.Response(
        body=reports.to_csv(r, title),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="lawbot-report-{r.label}.csv"'},
    )


async def report_csv(request: web.Request) -> web.StreamResponse:
    return await _export(request, "csv")


async def report_xlsx(request: web.Request) -> web.StreamResponse:
    return await _export(request, "xlsx")


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/report", report_page, name="admin-report", roles=adm.STAFF)
    adm.add_view(app, "GET", "/admin/report.csv", report_csv, name="admin-report-csv", roles=adm.STAFF)
    adm.add_view(app, "GET", "/admin/report.xlsx", report_xlsx, name="admin-report-xlsx", roles=adm.STAFF)
    adm.add_nav(app, "月报告", "admin-report", roles=adm.STAFF, order=20)


__all__ = ["report_charts", "setup"]
