"""Shared helpers for the dispute tests (no tests here): ledgers written as a village would keep
them (.xlsx with real date cells, .csv with text dates), the `lawbot` CLI, staff binding their WeChat."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tests.phone import Phone

HEADER = (
    "登记日期", "村", "当事人", "对方当事人", "纠纷类型", "简要情况", "风险等级", "状态", "调解员", "化解日期",
    "协议内容", "协议日期", "履行方式", "履行期限",
)  # fmt: skip


def write_xlsx(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER) -> Path:
    """An Excel ledger with a title row above the header; dates are real Excel date cells."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["观音寺乡矛盾纠纷排查台账"])
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    for line in sheet.iter_rows(min_row=3):
        for cell in line:
            if isinstance(cell.value, dt.date):
                cell.number_format = "yyyy/m/d"
    book.save(path)
    return path


def write_csv(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER) -> Path:
    """A CSV as Excel saves it (UTF-8 with BOM); dates are text."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def lawbot(database_url: str, *args: str, input: str | None = None) -> Result:
    from bot.cli import main

    env = {"LAWBOT_DATABASE_URL": database_url, "LAWBOT_ENV": "test", "LAWBOT_LOG_LEVEL": "WARNING"}
    return CliRunner().invoke(main, list(args), env=env, input=input)


def migrate(database_url: str) -> None:
    """A fresh database at the latest migration (PostgreSQL's test database is shared by a run)."""
    import asyncio

    from sqlalchemy import text

    from bot.storage.all import load_all
    from bot.storage.db import create_engine

    async def reset() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.run_sync(load_all().metadata.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        await engine.dispose()

    asyncio.run(reset())
    result = lawbot(database_url, "db", "upgrade")
    assert result.exit_code == 0, result.output


def listed(database_url: str, *args: str) -> list[dict[str, Any]]:
    result = lawbot(database_url, "disputes", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


async def bind_wechat(client: Any, staff_id: int, phone: Phone) -> None:
    """The staff member binds their own WeChat the way the back-office tells them to."""
    from bot.keys import SERVICES
    from bot.services.staff import binding_code

    async with client.app[SERVICES].session_factory() as session, session.begin():
        code = await binding_code(session, staff_id)
    assert "绑定" in await phone.say(f"预览绑定 {code}")
