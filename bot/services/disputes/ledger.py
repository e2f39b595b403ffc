"""Import of the villages' existing Excel 台账 (.xlsx, or .csv saved from Excel or WPS).

Columns are found by their Chinese header, in any order, on any of the first rows (a title row
above the header is fine): 登记日期, 村, 当事人, 对方当事人, 纠纷类型, 简要情况, 风险等级, 状态, 调解员,
化解日期; optional 协议内容, 协议日期, 履行方式, 履行期限. Dates may be real Excel date cells or text
(2026-03-05, 2026/3/5, 2026.3.5, 2026年3月5日, 20260305).

All or nothing: every row is checked first; if any row is bad nothing is imported and every bad row
is listed with its row number (as Excel shows it) and why. A row's identity (date, village, parties,
category, facts) is its ``import_key``: importing the same file again creates no duplicates.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.disputes import cases
from bot.services.disputes.deadlines import chinese_date, today
from bot.services.tickets import audit_row
from bot.storage.disputes import RESOLVED, RISKS, SIDES, STATUSES, TYPES, WRITTEN, DisputeCase
from bot.storage.models import Village
from bot.storage.staff import StaffUser

REQUIRED: tuple[str, ...] = (
    "登记日期",
    "村",
    "当事人",
    "对方当事人",
    "纠纷类型",
    "简要情况",
    "风险等级",
    "状态",
    "调解员",
    "化解日期",
)
OPTIONAL: tuple[str, ...] = ("协议内容", "协议日期", "履行方式", "履行期限")
HEADER_SEARCH_ROWS = 10
MAX_ROWS = 5000
_NAME_SPLIT = re.compile(r"[、，,；;/\n]+")
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
EXCEL_EPOCH = dt.date(1899, 12, 30)


class LedgerError(ValueError):
    """The file as a whole cannot be read (format, no header, missing columns)."""


@dataclass(frozen=True)
class RowProblem:
    row: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"第{self.row}行：{'；'.join(self.reasons)}"


@dataclass
class LedgerRow:
    row: int
    found_on: dt.date
    village: Village
    parties: list[str]
    others: list[str]
    type: str
    summary: str
    risk: str
    status: str
    mediator: str
    resolved_on: dt.date | None
    terms: str = ""
    agreement_on: dt.date | None = None
    method: str = ""
    deadline: str = ""

    @property
    def key(self) -> str:
        identity = "\x1f".join(
            [
                self.found_on.isoformat(),
                str(self.village.id),
                "、".join(sorted(self.parties)),
                "、".join(sorted(self.others)),
                self.type,
                " ".join(self.summary.split()),
            ]
        )
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()


@dataclass
class Outcome:
    rows: list[LedgerRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # row numbers imported before
    created: list[str] = field(default_factory=list)  # case numbers
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def new_rows(self) -> list[LedgerRow]:
        return [r for r in self.rows if r.row not in set(self.already)]


# ---------------------------------------------------------------- reading the file
def read_table(filename: str, data: bytes) -> list[tuple[int, list[Any]]]:
    """(row number, cell values) for every row of the first sheet / the CSV."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        return _read_xlsx(data)
    if name.endswith(".csv"):
        return _read_csv(data)
    if name.endswith(".xls") or name.endswith(".et"):
        raise LedgerError("这是旧版 Excel/WPS 文件：请在 Excel 或 WPS 里“另存为”.xlsx 再导入。")
    raise LedgerError("只能导入 .xlsx 或 .csv 文件。")


def _read_xlsx(data: bytes) -> list[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise LedgerError(f"打不开这个 Excel 文件：{exc}") from None
    try:
        sheet = book.worksheets[0]
        rows = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > MAX_ROWS + HEADER_SEARCH_ROWS:
                raise LedgerError(f"一次最多导入 {MAX_ROWS} 行，请分开导入。")
            rows.append((number, list(values)))
        return rows
    finally:
        book.close()


def _read_csv(data: bytes) -> list[tuple[int, list[Any]]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise LedgerError("读不出这个 CSV 文件的文字编码。")
    rows = [(n, list(r)) for n, r in enumerate(csv.reader(io.StringIO(text)), start=1)]
    if len(rows) > MAX_ROWS + HEADER_SEARCH_ROWS:
        raise LedgerError(f"一次最多导入 {MAX_ROWS} 行，请分开导入。")
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def find_columns(rows: Sequence[tuple[int, list[Any]]]) -> tuple[int, dict[str, int]]:
    """The header row's index in ``rows`` and column name → position."""
    for index, (_number, values) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        names = [_text(v).replace(" ", "").replace("\u3000", "") for v in values]
        if "登记日期" in names and "当事人" in names:
            columns = {name: names.index(name) for name in (*REQUIRED, *OPTIONAL) if name in names}
            missing = [name for name in REQUIRED if name not in columns]
            if missing:
                raise LedgerError(f"表头缺少这些列：{'、'.join(missing)}")
            return index, columns
    raise LedgerError(f"前 {HEADER_SEARCH_ROWS} 行里找不到表头（要有“登记日期”“当事人”等列）。")


def parse_date(value: Any) -> dt.date | None:
    """A date cell, an Excel serial number or a text date; None when empty; ValueError when not a date."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 20000 <= value <= 80000:  # a date cell formatted as a number: days since 1899-12-30
            return EXCEL_EPOCH + dt.timedelta(days=int(value))
        text = _text(value)
    else:
        text = str(value).strip()
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month, day = (int(g) for g in match.groups())
            return dt.date(year, month, day)  # raises ValueError for 2026-02-30
    raise ValueError(text)


def split_names(value: Any) -> list[str]:
    return [n.strip()[:64] for n in _NAME_SPLIT.split(_text(value)) if n.strip()]


def _category(value: str) -> str | None:
    value = value.replace(" ", "")
    if value in TYPES:
        return value
    return value + "纠纷" if value + "纠纷" in TYPES else None


# ---------------------------------------------------------------- checking every row
class _Cells:
    """One row's cells by column name, and the reasons it is bad."""

    def __init__(self, values: list[Any], columns: Mapping[str, int], latest: dt.date) -> None:
        self.values, self.columns, self.latest = values, columns, latest
        self.reasons: list[str] = []

    def __call__(self, name: str) -> Any:
        index = self.columns.get(name)
        return self.values[index] if index is not None and index < len(self.values) else None

    def text(self, name: str) -> str:
        return _text(self(name))

    @property
    def empty(self) -> bool:
        return all(self.text(name) == "" for name in self.columns)

    def date(self, name: str, *, required: bool = False) -> dt.date | None:
        try:
            day = parse_date(self(name))
        except ValueError:
            self.reasons.append(f"{name}“{self.text(name)}”不是日期")
            return None
        if day is None and required:
            self.reasons.append(f"缺{name}")
        if day is not None and day > self.latest:
            self.reasons.append(f"{name}{chinese_date(day)}还没到")
        return day


def _check_row(number: int, c: _Cells, by_name: Mapping[str, Village]) -> LedgerRow | RowProblem:
    reasons = c.reasons
    found_on = c.date("登记日期", required=True)
    village_name = c.text("村")
    village = by_name.get(village_name) or by_name.get(village_name.removesuffix("村"))
    if village is None:
        reasons.append(f"没有“{village_name}”这个村" if village_name else "缺村名")
    parties, others = split_names(c("当事人")), split_names(c("对方当事人"))
    if not parties:
        reasons.append("缺当事人")
    if not others:
        reasons.append("缺对方当事人")
    raw_type = c.text("纠纷类型")
    category = _category(raw_type)
    if category is None:
        reasons.append(f"纠纷类型“{raw_type}”不在统计分类里" if raw_type else "缺纠纷类型")
    summary = c.text("简要情况")
    if not summary:
        reasons.append("缺简要情况")
    risk = c.text("风险等级").removesuffix("风险")
    if risk not in RISKS:
        reasons.append(f"风险等级“{risk}”应为 低、中、高" if risk else "缺风险等级")
    status = c.text("状态")
    if status not in STATUSES:
        reasons.append(f"状态“{status}”应为 {'、'.join(STATUSES)}" if status else "缺状态")
    resolved_on = c.date("化解日期", required=status == RESOLVED)
    if resolved_on is not None and status in STATUSES and status != RESOLVED:
        reasons.append(f"有化解日期但状态是“{status}”")
    if resolved_on and found_on and resolved_on < found_on:
        reasons.append("化解日期早于登记日期")
    terms = c.text("协议内容")
    agreement_on = c.date("协议日期")
    if agreement_on is not None and not terms:
        reasons.append("有协议日期但没有协议内容")
    if agreement_on and found_on and agreement_on < found_on:
        reasons.append("协议日期早于登记日期")
    raw_deadline = c("履行期限")
    if isinstance(raw_deadline, dt.datetime):
        raw_deadline = raw_deadline.date()
    deadline = chinese_date(raw_deadline) if isinstance(raw_deadline, dt.date) else _text(raw_deadline)
    if reasons or found_on is None or village is None or category is None:
        return RowProblem(number, tuple(reasons))
    return LedgerRow(
        row=number,
        found_on=found_on,
        village=village,
        parties=parties,
        others=others,
        type=category,
        summary=summary,
        risk=risk,
        status=status,
        mediator=c.text("调解员")[:64],
        resolved_on=resolved_on,
        terms=terms,
        agreement_on=agreement_on,
        method=c.text("履行方式"),
        deadline=deadline[:64],
    )


def check(rows: Sequence[tuple[int, list[Any]]], villages: Sequence[Village], now: dt.datetime) -> Outcome:
    """Every row checked: good rows, and every bad one with its reasons."""
    header_index, columns = find_columns(rows)
    by_name: dict[str, Village] = {}
    for v in villages:
        by_name[v.name] = v
        by_name.setdefault(v.name.removesuffix("村"), v)
    outcome = Outcome()
    seen: dict[str, int] = {}
    latest = today(now)
    for number, values in rows[header_index + 1 :]:
        cells = _Cells(values, columns, latest)
        if cells.empty:
            continue
        result = _check_row(number, cells, by_name)
        if isinstance(result, RowProblem):
            outcome.problems.append(result)
        elif result.key in seen:
            outcome.problems.append(RowProblem(number, (f"与第{seen[result.key]}行重复",)))
        else:
            seen[result.key] = number
            outcome.rows.append(result)
    return outcome


# ---------------------------------------------------------------- importing
async def _mediators(session: AsyncSession, names: set[str]) -> dict[str, StaffUser]:
    if not names:
        return {}
    rows = await session.execute(
        select(StaffUser).where(
            StaffUser.active.is_(True), or_(StaffUser.display_name.in_(names), StaffUser.username.in_(names))
        )
    )
    found: dict[str, StaffUser] = {}
    for staff in rows.scalars():
        for name in (staff.display_name, staff.username):
            if name in names:
                found.setdefault(name, staff)
    return found


async def import_ledger(
    session: AsyncSession,
    filename: str,
    data: bytes,
    *,
    site: Mapping[str, Any],
    now: dt.datetime,
    staff: StaffUser | None = None,
    dry_run: bool = False,
    via: str = "后台",
) -> Outcome:
    """Check the file; unless ``dry_run`` or a row is bad, register every new row as a case."""
    villages = list((await session.execute(select(Village).order_by(Village.id))).scalars())
    outcome = check(read_table(filename, data), villages, now)
    outcome.dry_run = dry_run
    if outcome.rows:
        keys = [r.key for r in outcome.rows]
        existing = set(
            (await session.execute(select(DisputeCase.import_key).where(DisputeCase.import_key.in_(keys)))).scalars()
        )
        outcome.already = [r.row for r in outcome.rows if r.key in existing]
    if not outcome.ok or dry_run:
        return outcome
    mediators = await _mediators(session, {r.mediator for r in outcome.new_rows if r.mediator})
    for row in sorted(outcome.new_rows, key=lambda r: (r.found_on, r.row)):
        mediator = mediators.get(row.mediator)
        parties = [cases.PartyIn(SIDES[0], n) for n in row.parties] + [cases.PartyIn(SIDES[1], n) for n in row.others]
        case = await cases.create_case(
            session,
            site=site,
            village_id=row.village.id,
            found_on=row.found_on,
            source="排查",
            type=row.type,
            risk=row.risk,
            status=row.status,
            summary=row.summary,
            parties=parties,
            now=now,
            mediator_id=mediator.id if mediator is not None else None,
            mediator_name=mediator.label if mediator is not None else row.mediator,
            recorded_by=staff,
            import_key=row.key,
            history=True,
            resolved_on=row.resolved_on,
        )
        if row.terms:
            cases.record_agreement(
                session,
                case,
                kind=WRITTEN,
                terms=row.terms,
                method=row.method,
                deadline=row.deadline,
                agreement_on=row.agreement_on,
                now=now,
                staff=staff,
            )
        outcome.created.append(case.case_no)
    session.add(
        audit_row(
            "disputes.import",
            now,
            staff=staff,
            object_type="dispute",
            object_id=filename[:64],
            details={"via": via, "created": len(outcome.created), "already": len(outcome.already)},
        )
    )
    return outcome
