"""The monthly report as tables — the same sections as the page — for CSV (one file, sections one after
the other, as before) and XLSX (one sheet per section). Villager text (questions the bot could not
answer, campaign titles, village names) is data: a cell that starts like a formula stays text."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from bot.services.reports.build import MonthlyReport

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Section:
    title: str
    header: list[str]
    rows: list[list[Any]]


def _fmt(value: float | None) -> Any:
    return "" if value is None else value


def sections(r: MonthlyReport) -> list[Section]:
    t, b, k = r.tickets, r.bot, r.bookings
    return [
        Section(
            "总体",
            ["总体", "数量"],
            [
                ["工单数", t.total.total],
                ["已办结", t.total.done],
                ["未办结", t.total.open],
                ["紧急", t.total.urgent],
                ["升级（三长联动）", t.total.escalated],
                ["已首次答复", t.responded],
                ["按期首次答复", t.within_deadline],
                ["超期", t.overdue],
                ["首次答复平均小时", _fmt(t.mean_hours)],
                ["首次答复中位数小时", _fmt(t.total.median_hours)],
            ],
        ),
        Section(
            "按村",
            ["按村", "工单数", "未办结", "已办结", "紧急", "首次答复中位数小时", "评价数", "有帮助"],
            [[g.name, g.total, g.open, g.done, g.urgent, _fmt(g.median_hours), g.rated, g.helpful] for g in t.villages],
        ),
        Section("升级去向（三长联动）", ["升级去向（三长联动）", "次数"], [list(kv) for kv in t.escalations]),
        Section("按问题类别", ["按问题类别", "工单数"], [list(kv) for kv in t.topics]),
        Section("按状态", ["按状态", "工单数"], [list(kv) for kv in t.statuses]),
        Section("满意度", ["满意度", "人数"], [list(kv) for kv in t.satisfaction]),
        Section("首次答复用时", ["首次答复用时", "工单数"], [list(kv) for kv in t.response_times]),
        Section(
            "近12个月工单",
            ["月份", *t.trend.keys()],
            [[m, *(values[i] for values in t.trend.values())] for i, m in enumerate(t.trend_months)],
        ),
        Section(
            "机器人的工作",
            ["机器人的工作", "次数"],
            [
                ["村民提问", b.questions],
                ["直接回答", b.answered],
                ["列出几条让村民选", b.clarified],
                ["村民选后回答", b.picked],
                ["答不上（给出转人工等出路）", b.unanswered],
                ["回答的比例（%）", b.answered_share],
                ["转给工作人员（新工单）", t.from_chat],
                ["问候、感谢等", b.smalltalk],
            ],
        ),
        Section(
            "近12个月提问",
            ["月份", *b.trend.keys()],
            [[m.label, *(values[i] for values in b.trend.values())] for i, m in enumerate(r.trend_months)],
        ),
        Section("问得最多的类别", ["类别", "提问次数"], [list(kv) for kv in b.top_topics]),
        Section("回答最多的问题", ["问题", "回答次数"], [list(kv) for kv in b.top_questions]),
        Section(
            "答不上的问题",
            ["村民原话（示例）", "次数"],
            [["合计", b.gaps], *([text, n] for text, n in b.top_gaps)],
        ),
        Section(
            "预约",
            ["事项", "预约", "到了", "没来"],
            [[*row] for row in k.by_service] + [["合计", k.booked, k.came, k.no_show]],
        ),
        Section("预约状态", ["状态", "个数"], [list(kv) for kv in k.by_status]),
        Section(
            "普法活动",
            ["活动", "发送日期", "发给", "目标人数", "发送成功", "发送失败", "后续提醒人数"],
            [[c.title, c.sent_on, c.audience, c.target, c.sent, c.failed, c.follow_ups] for c in r.campaigns],
        ),
    ]


def safe_text(value: Any) -> Any:
    """A string that Excel would read as a formula gets a leading apostrophe (shown as text)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def to_csv(r: MonthlyReport, title: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_text(title), r.label])
    for section in sections(r):
        writer.writerow([])
        writer.writerow(section.header)
        writer.writerows([safe_text(v) for v in row] for row in section.rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # a BOM: Excel opens the Chinese correctly


def to_xlsx(r: MonthlyReport, title: str) -> bytes:
    """One sheet per section, the title above each table; text cells are always text, never formulas."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for section in sections(r):
        sheet = book.create_sheet(section.title[:31])
        sheet.append([f"{title} {r.label}"])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append(section.header)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for row in section.rows:
            sheet.append(row)
        for cells in sheet.iter_rows():
            for cell in cells:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # text, never a formula
        sheet.column_dimensions["A"].width = 28
        for letter in "BCDEFG":
            sheet.column_dimensions[letter].width = 12
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


__all__ = ["Section", "safe_text", "sections", "to_csv", "to_xlsx"]
