"""月报告: the monthly numbers the township reports (per village / topic / status, response times,
satisfaction, escalations by 三长联动 target), on a page and as CSV. Mediators see their own villages' numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy import select

from bot.admin import framework as adm
from bot.services import tickets as svc
from bot.storage.models import Village, utcnow
from bot.storage.tickets import CLOSED, OPEN_STATUSES, RESOLVED, STATUSES, Ticket, TicketMessage


def month_bounds(month: str, now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    """'2026-11' → (label, start, end) in China time; nonsense → the current month; a month outside
    the calendar staff use (framework.FIRST_DAY … LAST_DAY) → 400."""
    today = svc.local(now)
    try:
        year, mon = (int(p) for p in month.split("-", 1))
        first = dt.date(year, mon, 1)
    except ValueError:
        first = today.date().replace(day=1)
    adm.in_calendar(first)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    start = dt.datetime.combine(first, dt.time(), svc.CHINA_TZ)
    end = dt.datetime.combine(nxt, dt.time(), svc.CHINA_TZ)
    return f"{first:%Y-%m}", start, end


def recent_months(now: dt.datetime, count: int = 12) -> list[str]:
    first = svc.local(now).date().replace(day=1)
    months = []
    for _ in range(count):
        months.append(f"{first:%Y-%m}")
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return months


def _hours(t: Ticket) -> float | None:
    if t.first_response_at is None:
        return None
    return (t.first_response_at - t.created_at).total_seconds() / 3600


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


@dataclass
class Group:
    name: str
    total: int = 0
    open: int = 0
    done: int = 0
    urgent: int = 0
    hours: list[float] = field(default_factory=list)
    rated: int = 0
    helpful: int = 0

    def add(self, t: Ticket) -> None:
        self.total += 1
        self.open += t.status in OPEN_STATUSES
        self.done += t.status in (RESOLVED, CLOSED)
        self.urgent += t.urgent
        hours = _hours(t)
        if hours is not None:
            self.hours.append(hours)
        if t.satisfaction is not None:
            self.rated += 1
            self.helpful += t.satisfaction == 1

    @property
    def median_hours(self) -> float | None:
        return _median(self.hours)


@dataclass
class Report:
    month: str
    total: Group
    villages: list[Group]
    topics: list[tuple[str, int]]
    statuses: list[tuple[str, int]]
    responded: int
    within_deadline: int
    overdue: int
    escalated: int
    #: escalations made in the month, by target (乡里, 乡矛调中心, 派出所, 司法所, 人民法庭), every one counted
    escalations: list[tuple[str, int]]
    mean_hours: float | None
    satisfaction: dict[str, int]


async def build_report(request: web.Request, month: str) -> Report:
    staff = adm.user(request)
    label, start, end = month_bounds(month, utcnow())
    kb = adm.services(request).knowledge.kb
    async with adm.db(request)() as session:
        tickets = list(
            (
                await session.execute(
                    select(Ticket).where(
                        svc.visible_to(staff.role, staff.id, staff.village_ids, position=staff.position),
                        Ticket.created_at >= start,
                        Ticket.created_at < end,
                    )
                )
            ).scalars()
        )
        villages = {v.id: v.name for v in (await session.execute(select(Village).order_by(Village.id))).scalars()}
        events = (
            await session.execute(
                select(TicketMessage.details)
                .join(Ticket, Ticket.id == TicketMessage.ticket_id)
                .where(
                    svc.visible_to(staff.role, staff.id, staff.village_ids, position=staff.position),
                    TicketMessage.kind == "event",
                    TicketMessage.created_at >= start,
                    TicketMessage.created_at < end,
                )
            )
        ).scalars()
        targets: Counter[str] = Counter(
            str(d.get("target")) for d in events if d.get("event") == "escalated" and d.get("target")
        )
    total = Group("合计")
    groups: dict[int | None, Group] = {vid: Group(name) for vid, name in villages.items() if staff.can_see_village(vid)}
    topics: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    satisfaction: Counter[str] = Counter()
    responded = within = overdue = escalated = 0
    for t in tickets:
        total.add(t)
        groups.setdefault(t.village_id, Group(villages.get(t.village_id or 0, "未选村") if t.village_id else "未选村"))
        groups[t.village_id].add(t)
        topics[svc.category_name(kb, t)] += 1
        statuses[t.status] += 1
        if t.first_response_at is not None:
            responded += 1
            within += t.first_response_at <= t.first_response_due_at
        if t.overdue_at is not None or (t.first_response_at or utcnow()) > t.first_response_due_at:
            overdue += 1
        escalated += t.escalated_at is not None
        if t.satisfaction is not None:
            satisfaction[svc.SATISFACTION_NAMES.get(t.satisfaction, str(t.satisfaction))] += 1
    return Report(
        month=label,
        total=total,
        villages=[g for g in groups.values()],
        topics=topics.most_common(),
        statuses=[(s, statuses[s]) for s in STATUSES if statuses[s]],
        responded=responded,
        within_deadline=within,
        overdue=overdue,
        escalated=escalated,
        escalations=[(name, targets[key]) for key, name in svc.ESCALATION_TARGETS.items()],
        mean_hours=round(statistics.fmean(total.hours), 1) if total.hours else None,
        satisfaction={name: satisfaction[name] for name in svc.SATISFACTION_NAMES.values()},
    )


async def report_page(request: web.Request) -> web.StreamResponse:
    report = await build_report(request, request.query.get("month", ""))
    return await adm.render(
        request,
        "admin/report.html",
        {"r": report, "months": recent_months(utcnow())},
        title=f"月报告 {report.month}",
    )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value}"


async def report_csv(request: web.Request) -> web.StreamResponse:
    r = await build_report(request, request.query.get("month", ""))
    township = adm.services(request).knowledge.kb.site.get("township", "")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([f"{township}乡法通月报告", r.month])
    w.writerow([])
    w.writerow(["总体", "数量"])
    for name, value in (
        ("工单数", r.total.total),
        ("已办结", r.total.done),
        ("未办结", r.total.open),
        ("紧急", r.total.urgent),
        ("升级（三长联动）", r.escalated),
        ("已首次答复", r.responded),
        ("按期首次答复", r.within_deadline),
        ("超期", r.overdue),
        ("首次答复平均小时", _fmt(r.mean_hours)),
        ("首次答复中位数小时", _fmt(r.total.median_hours)),
    ):
        w.writerow([name, value])
    w.writerow([])
    w.writerow(["按村", "工单数", "未办结", "已办结", "紧急", "首次答复中位数小时", "评价数", "有帮助"])
    for g in r.villages:
        w.writerow([g.name, g.total, g.open, g.done, g.urgent, _fmt(g.median_hours), g.rated, g.helpful])
    w.writerow([])
    w.writerow(["升级去向（三长联动）", "次数"])
    w.writerows(r.escalations)
    w.writerow([])
    w.writerow(["按问题类别", "工单数"])
    w.writerows(r.topics)
    w.writerow([])
    w.writerow(["按状态", "工单数"])
    w.writerows(r.statuses)
    w.writerow([])
    w.writerow(["满意度", "人数"])
    w.writerows(r.satisfaction.items())
    async with adm.db(request)() as session, session.begin():
        await adm.audit(session, request, "report.export", object_type="report", object_id=r.month)
    body = "\ufeff" + out.getvalue()  # a BOM so Excel opens the Chinese correctly
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="lawbot-report-{r.month}.csv"'},
    )


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/report", report_page, name="admin-report", roles=adm.STAFF)
    adm.add_view(app, "GET", "/admin/report.csv", report_csv, name="admin-report-csv", roles=adm.STAFF)
    adm.add_nav(app, "月报告", "admin-report", roles=adm.STAFF, order=20)


__all__ = ["Report", "build_report", "setup"]
