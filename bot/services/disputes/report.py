"""月排查、月报告: each village's monthly screening report (with 零报告), and the month's numbers.

For a month and each village:

* ``found`` — cases registered that month (found_on in the month);
* ``resolved`` — cases resolved that month (resolved_on in the month);
* ``open`` — cases found by the month's end and not 已化解 at the month's end;
* ``escalated`` — of those found by the month's end: 已上报, or in the 三长联动 queue, at the month's end;
* ``by_type`` — the cases found that month, per category (every category, zeros included);
* ``reported`` / ``zero_report`` — whether the village submitted that month's report, and if it was a 零报告.

States at a month's end are read from the timeline (:func:`timeline.state_on`). The same numbers feed
the township page, its XLSX/CSV export (one row per village, one column per category: the layout the
county office receives) and ``lawbot disputes report --json``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.disputes import timeline
from bot.services.disputes.cases import DisputeError
from bot.services.disputes.deadlines import month_of, parse_month, report_due_on, today
from bot.services.tickets import audit_row
from bot.storage.disputes import REPORTED, RESOLVED, TYPES, DisputeCase, DisputeReport
from bot.storage.models import Village
from bot.storage.staff import StaffUser

ZERO_WORDS = ("无", "没有", "零", "0", "本月无", "无纠纷", "没有纠纷")


@dataclass
class VillageRow:
    village_id: int
    village: str
    reported: bool = False
    zero_report: bool = False
    found: int = 0
    resolved: int = 0
    open: int = 0
    escalated: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TYPES, 0))
    submitted_at: dt.datetime | None = None
    via: str = ""
    late: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "village": self.village,
            "reported": self.reported,
            "zero_report": self.zero_report,
            "found": self.found,
            "resolved": self.resolved,
            "open": self.open,
            "escalated": self.escalated,
            "by_type": dict(self.by_type),
        }


@dataclass
class MonthReport:
    month: str
    due_on: dt.date
    villages: list[VillageRow]

    @property
    def totals(self) -> dict[str, Any]:
        return {
            "found": sum(v.found for v in self.villages),
            "resolved": sum(v.resolved for v in self.villages),
            "open": sum(v.open for v in self.villages),
            "escalated": sum(v.escalated for v in self.villages),
            "by_type": {t: sum(v.by_type[t] for v in self.villages) for t in TYPES},
        }

    @property
    def missing_reports(self) -> list[str]:
        return [v.village for v in self.villages if not v.reported]

    @property
    def late(self) -> list[str]:
        return [v.village for v in self.villages if v.late]

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "villages": [v.as_json() for v in self.villages],
            "totals": self.totals,
            "missing_reports": self.missing_reports,
        }


async def villages(session: AsyncSession, only: Sequence[int] | None = None) -> list[Village]:
    stmt = select(Village).where(Village.active.is_(True)).order_by(Village.id)
    if only is not None:
        stmt = stmt.where(Village.id.in_(list(only)))
    return list((await session.execute(stmt)).scalars())


async def month_report(
    session: AsyncSession, month: str, now: dt.datetime, *, report_day: int, village_ids: Sequence[int] | None = None
) -> MonthReport:
    """The month's numbers for every active village (or those in ``village_ids``)."""
    first, last = parse_month(month)
    rows = {v.id: VillageRow(v.id, v.name) for v in await villages(session, village_ids)}
    stmt = select(DisputeCase).where(DisputeCase.found_on <= last)
    if village_ids is not None:
        stmt = stmt.where(DisputeCase.village_id.in_(list(village_ids)))
    cases = list((await session.execute(stmt)).scalars())
    extra = {c.village_id for c in cases} - set(rows)
    if extra:  # an inactive village that still has cases keeps its row
        for v in (await session.execute(select(Village).where(Village.id.in_(extra)))).scalars():
            rows[v.id] = VillageRow(v.id, v.name)
    changes = await timeline.changes_of(session, [c.id for c in cases])
    for case in cases:
        row = rows[case.village_id]
        if first <= case.found_on <= last:
            row.found += 1
            row.by_type[case.type] = row.by_type.get(case.type, 0) + 1
        if case.resolved_on is not None and first <= case.resolved_on <= last:
            row.resolved += 1
        state = timeline.state_on(changes.get(case.id, []), last, case.status)
        if state.status != RESOLVED:
            row.open += 1
        if state.status == REPORTED or state.queued:
            row.escalated += 1
    due = report_due_on(month, report_day)
    for report in (await session.execute(select(DisputeReport).where(DisputeReport.month == month))).scalars():
        if report.village_id in rows:
            row = rows[report.village_id]
            row.reported, row.zero_report = True, report.zero
            row.submitted_at, row.via = report.submitted_at, report.via
    for row in rows.values():
        row.late = not row.reported and today(now) > due
    ordered = sorted(rows.values(), key=lambda r: r.village_id)
    return MonthReport(month, due, ordered)


async def found_in_month(session: AsyncSession, village_id: int, month: str) -> int:
    first, last = parse_month(month)
    count = await session.scalar(
        select(func.count(DisputeCase.id)).where(
            DisputeCase.village_id == village_id, DisputeCase.found_on >= first, DisputeCase.found_on <= last
        )
    )
    return int(count or 0)


async def village_by_name(session: AsyncSession, name: str) -> Village:
    wanted = name.strip()
    found = (
        await session.execute(select(Village).where(or_(Village.name == wanted, Village.name == f"{wanted}村")))
    ).scalar_one_or_none()
    if found is None:
        raise DisputeError(f"没有叫“{wanted}”的村")
    return found


async def submit(
    session: AsyncSession,
    village: Village,
    month: str,
    *,
    zero: bool,
    now: dt.datetime,
    staff: StaffUser | None,
    via: str,
    note: str = "",
) -> tuple[DisputeReport, bool]:
    """Submit (or resubmit) a village's monthly report. Returns the report and whether it is new.

    A 零报告 says nothing was found: refused when the month already has cases. A report with
    cases needs them registered first."""
    first, _last = parse_month(month)
    if first > today(now):
        raise DisputeError(f"{month} 还没到，不能提前报。")
    found = await found_in_month(session, village.id, month)
    if zero and found:
        raise DisputeError(f"{village.name}{month}已登记 {found} 件纠纷，不能报“无”。请提交有纠纷的月报告。")
    if not zero and not found:
        raise DisputeError(
            f"{village.name}{month}还没有登记纠纷：没有发现纠纷请报“无”（零报告）；发现了纠纷请先登记再报。"
        )
    report = (
        await session.execute(
            select(DisputeReport).where(DisputeReport.village_id == village.id, DisputeReport.month == month)
        )
    ).scalar_one_or_none()
    created = report is None
    if report is None:
        report = DisputeReport(village_id=village.id, month=month)
        session.add(report)
    report.zero, report.note, report.via = zero, note.strip()[:500], via
    report.submitted_by_id = staff.id if staff is not None else None
    report.submitted_at = now
    session.add(
        audit_row(
            "dispute_report.submit",
            now,
            staff=staff,
            object_type="dispute_report",
            object_id=f"{village.id}:{month}",
            details={"zero": zero, "via": via, "found": found, "again": not created},
        )
    )
    return report, created


def current_month(now: dt.datetime) -> str:
    return month_of(today(now))


# ---------------------------------------------------------------- the county's layout
COLUMNS: tuple[str, ...] = ("村", "月报告", "排查发现", "化解", "未化解", "上报/三长联动", *TYPES)


def table(report: MonthReport) -> list[list[Any]]:
    """One row per village, one column per category, and a 合计 row."""

    def state(row: VillageRow) -> str:
        if row.zero_report:
            return "零报告"
        if row.reported:
            return "已报"
        return "逾期未报" if row.late else "未报"

    rows: list[list[Any]] = [list(COLUMNS)]
    for v in report.villages:
        rows.append([v.village, state(v), v.found, v.resolved, v.open, v.escalated, *(v.by_type[t] for t in TYPES)])
    t = report.totals
    reported = sum(v.reported for v in report.villages)
    rows.append(
        [
            "合计",
            f"{reported}/{len(report.villages)}",
            t["found"],
            t["resolved"],
            t["open"],
            t["escalated"],
            *(t["by_type"][k] for k in TYPES),
        ]
    )
    return rows


def to_csv(report: MonthReport, title: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title])
    writer.writerows(table(report))
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # a BOM: Excel opens the Chinese correctly


def to_xlsx(report: MonthReport, title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = report.month
    rows = table(report)
    sheet.append([title])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(COLUMNS))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    for row in rows:
        sheet.append(row)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, horizontal="center", vertical="center")
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 12
    for index in range(2, len(COLUMNS) + 1):
        sheet.column_dimensions[get_column_letter(index)].width = 9
    sheet.freeze_panes = "B3"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
