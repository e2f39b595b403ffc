"""The month's tickets: per village, topic, status; first-response times; satisfaction; 三长联动 escalations;
and twelve months of trend. Every figure is one aggregate query (GROUP BY in the database)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.reports.period import Month, month_of
from bot.services.reports.sql import hours_between, medians
from bot.services.tickets import ESCALATION_TARGETS, SATISFACTION_NAMES
from bot.storage.models import UTCDateTime
from bot.storage.tickets import CLOSED, OPEN_STATUSES, RESOLVED, STATUSES, Ticket, TicketMessage

#: first-response time buckets: (upper bound in hours, name); tickets without a response are 未答复
RESPONSE_BUCKETS: tuple[tuple[float, str], ...] = (
    (1, "1小时内"),
    (4, "1–4小时"),
    (24, "4–24小时"),
    (72, "1–3天"),
    (float("inf"), "3天以上"),
)
NO_RESPONSE = "未答复"
NO_VILLAGE = "未选村"


@dataclass
class Counts:
    """Tickets of one village (or all of them, 合计)."""

    name: str
    total: int = 0
    open: int = 0
    done: int = 0
    urgent: int = 0
    escalated: int = 0
    rated: int = 0
    helpful: int = 0
    median_hours: float | None = None


@dataclass
class TicketFigures:
    total: Counts
    villages: list[Counts]
    topics: list[tuple[str, int]]
    statuses: list[tuple[str, int]]
    satisfaction: list[tuple[str, int]]
    responded: int
    within_deadline: int
    overdue: int
    mean_hours: float | None
    response_times: list[tuple[str, int]]
    escalations: list[tuple[str, int]]  # escalations made this month, per 三长联动 target (every target listed)
    from_chat: int  # tickets villagers filed through WeChat (转人工 and urgent messages)
    trend_months: list[str] = field(default_factory=list)
    trend: dict[str, list[int]] = field(default_factory=dict)  # 新工单 / 已办结 / 紧急 per month


def _n(cond: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _aggregates(now: dt.datetime) -> list[Any]:
    now_at = literal(now, UTCDateTime())
    return [
        func.count(),
        _n(Ticket.status.in_(OPEN_STATUSES)),
        _n(Ticket.status.in_((RESOLVED, CLOSED))),
        _n(Ticket.urgent.is_(True)),
        _n(Ticket.escalated_at.is_not(None)),
        _n(Ticket.satisfaction.is_not(None)),
        _n(Ticket.satisfaction == 1),
        _n(Ticket.first_response_at.is_not(None)),
        _n(Ticket.first_response_at <= Ticket.first_response_due_at),
        _n(
            Ticket.overdue_at.is_not(None)
            | (func.coalesce(Ticket.first_response_at, now_at) > Ticket.first_response_due_at)
        ),
        func.avg(hours_between(Ticket.created_at, Ticket.first_response_at)),
        _n(Ticket.source.in_(("wechat", "urgent"))),
    ]


def _counts(name: str, row: Sequence[Any]) -> Counts:
    return Counts(name, *(int(v or 0) for v in row[:7]))


async def _grouped(session: AsyncSession, column: Any, where: Sequence[Any]) -> list[tuple[Any, int]]:
    rows = await session.execute(select(column, func.count()).where(*where).group_by(column))
    return [(key, int(n)) for key, n in rows.all()]


def _buckets() -> Any:
    hours = hours_between(Ticket.created_at, Ticket.first_response_at)
    whens = [(hours < bound, literal(name, String())) for bound, name in RESPONSE_BUCKETS[:-1]]
    return case(
        (Ticket.first_response_at.is_(None), literal(NO_RESPONSE, String())), *whens, else_=RESPONSE_BUCKETS[-1][1]
    )


async def ticket_figures(
    session: AsyncSession,
    scope: ColumnElement[bool],
    month: Month,
    villages: dict[int, str],
    category: Callable[[Ticket], str],
    now: dt.datetime,
    trend: Sequence[Month],
) -> TicketFigures:
    """``villages``: the villages the reader may see (id → name), listed even without tickets; ``category``
    names what a ticket is about (``tickets.category_name``: a crisis is not an FAQ topic)."""
    where = [scope, Ticket.created_at >= month.start, Ticket.created_at < month.end]
    total_row = (await session.execute(select(*_aggregates(now)).where(*where))).one()
    village_rows = await session.execute(
        select(Ticket.village_id, *_aggregates(now)).where(*where).group_by(Ticket.village_id)
    )
    by_village = {row[0]: tuple(row[1:]) for row in village_rows.all()}
    hours = hours_between(Ticket.created_at, Ticket.first_response_at)
    village_medians = await medians(session, hours, where, Ticket.village_id)
    overall = await medians(session, hours, where)
    rows: list[Counts] = []
    for vid in [*villages, *(v for v in by_village if v not in villages)]:
        name = villages.get(vid, NO_VILLAGE) if vid is not None else NO_VILLAGE
        counts = _counts(name, by_village.get(vid, ()))
        counts.median_hours = _round(village_medians.get(vid))
        rows.append(counts)
    total = _counts("合计", total_row)
    total.median_hours = _round(overall.get(None))
    status_counts = dict(await _grouped(session, Ticket.status, where))
    satisfaction = dict(await _grouped(session, Ticket.satisfaction, [*where, Ticket.satisfaction.is_not(None)]))
    bucketed = select(_buckets().label("b")).where(*where).subquery()
    buckets = dict(await _grouped(session, bucketed.c.b, []))
    # every escalation made in the month, by target (a ticket escalated twice counts twice): its events
    escalations = (
        select(TicketMessage.details["target"].as_string().label("target"))
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .where(
            scope,
            TicketMessage.kind == "event",
            TicketMessage.details["event"].as_string() == "escalated",
            TicketMessage.created_at >= month.start,
            TicketMessage.created_at < month.end,
        )
        .subquery()
    )
    escalated = dict(await _grouped(session, escalations.c.target, []))
    kinds = await session.execute(
        select(Ticket.topic, Ticket.urgent, Ticket.urgent_kind, func.count())
        .where(*where)
        .group_by(Ticket.topic, Ticket.urgent, Ticket.urgent_kind)
    )
    categories: Counter[str] = Counter()
    for topic, urgent, urgent_kind, n in kinds.all():  # a row per topic × urgent kind: a few dozen
        categories[category(Ticket(topic=topic, urgent=bool(urgent), urgent_kind=urgent_kind))] += int(n)
    topics = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
    figures = TicketFigures(
        total=total,
        villages=rows,
        topics=topics,
        statuses=[(s, status_counts[s]) for s in STATUSES if status_counts.get(s)],
        satisfaction=[(name, satisfaction.get(score, 0)) for score, name in SATISFACTION_NAMES.items()],
        responded=int(total_row[7] or 0),
        within_deadline=int(total_row[8] or 0),
        overdue=int(total_row[9] or 0),
        mean_hours=_round(total_row[10]),
        response_times=[(name, buckets.get(name, 0)) for _bound, name in RESPONSE_BUCKETS]
        + [(NO_RESPONSE, buckets.get(NO_RESPONSE, 0))],
        escalations=[(name, escalated.get(key, 0)) for key, name in ESCALATION_TARGETS.items()],
        from_chat=int(total_row[11] or 0),
    )
    await _trend(session, scope, trend, figures)
    return figures


async def _trend(
    session: AsyncSession, scope: ColumnElement[bool], months: Sequence[Month], out: TicketFigures
) -> None:
    """New, urgent (by the month they came in) and resolved (by the month they were resolved) tickets."""
    first, last = months[0].start, months[-1].end
    created = (
        select(month_of(Ticket.created_at, months).label("m"), Ticket.urgent.label("u"))
        .where(scope, Ticket.created_at >= first, Ticket.created_at < last)
        .subquery()
    )
    resolved = (
        select(month_of(Ticket.resolved_at, months).label("m"))
        .where(scope, Ticket.resolved_at >= first, Ticket.resolved_at < last)
        .subquery()
    )
    new_rows = await session.execute(
        select(created.c.m, func.count(), func.sum(case((created.c.u.is_(True), 1), else_=0))).group_by(created.c.m)
    )
    new = {m: (int(n), int(u or 0)) for m, n, u in new_rows.all()}
    done = dict(await _grouped(session, resolved.c.m, []))
    labels = [m.label for m in months]
    out.trend_months = labels
    out.trend = {
        "新工单": [new.get(m, (0, 0))[0] for m in labels],
        "已解决": [int(done.get(m, 0)) for m in labels],
        "紧急": [new.get(m, (0, 0))[1] for m in labels],
    }


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


__all__ = ["NO_RESPONSE", "RESPONSE_BUCKETS", "Counts", "TicketFigures", "ticket_figures"]
