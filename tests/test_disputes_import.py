"""A village's Excel 台账 comes into lawbot: `lawbot disputes import FILE [--dry-run]` and the back-office upload.

A good file imports every row; a file with bad rows imports nothing and names every bad row; the
same file twice creates no duplicates; Excel date cells and text dates both work."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests import test_tickets_support as support
from tests.test_disputes_support import lawbot, listed, migrate, write_csv, write_xlsx
from tests.test_tickets_support import add_staff

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

D = dt.date
GOOD_ROWS = [
    [
        D(2026, 9, 3), "观音寺村", "张大山", "李小河", "邻里纠纷", "排水沟堵塞，雨水流进张家院子", "低", "已化解",
        "王调解员", D(2026, 9, 10), "李小河三日内疏通排水沟\n张大山不再追究损失", D(2026, 9, 10), "当面履行",
        D(2026, 9, 13),
    ],
    [
        D(2026, 9, 15), "西竹园", "赵春花、赵秋月", "钱二", "房屋宅基地", "宅基地边界石被挪动", "高", "调解中", "",
        None, None, None, None, None,
    ],
    [
        D(2026, 10, 8), "东竹园村", "孙老汉", "孙大牛", "婚姻家庭纠纷", "儿子不付赡养费", "中", "稳控中", "",
        None, None, None, None, None,
    ],
]  # fmt: skip


def test_a_good_excel_ledger_is_imported_once_and_a_second_import_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url)
    ledger = write_xlsx(tmp_path / "台账.xlsx", GOOD_ROWS)

    checked = lawbot(database_url, "disputes", "import", str(ledger), "--dry-run")
    assert checked.exit_code == 0, checked.output
    assert "可导入 3 条" in checked.output and "试运行" in checked.output
    assert listed(database_url) == []  # a dry run writes nothing

    first = lawbot(database_url, "disputes", "import", str(ledger))
    assert first.exit_code == 0, first.output
    assert "已导入 3 条" in first.output
    rows = listed(database_url)
    assert [r["case_no"] for r in rows] == ["(2026)观调字第1号", "(2026)观调字第2号", "(2026)观调字第3号"]
    assert set(rows[0]) == {
        "case_no", "village", "type", "status", "risk", "found_on", "resolved_on", "has_agreement"
    }  # fmt: skip
    assert rows[0] == {
        "case_no": "(2026)观调字第1号",
        "village": "观音寺村",
        "type": "邻里纠纷",
        "status": "已化解",
        "risk": "低",
        "found_on": "2026-09-03",
        "resolved_on": "2026-09-10",
        "has_agreement": True,
    }
    assert rows[1]["village"] == "西竹园村" and rows[1]["type"] == "房屋宅基地纠纷"  # short names are understood
    assert rows[1]["resolved_on"] is None and rows[1]["has_agreement"] is False

    again = lawbot(database_url, "disputes", "import", str(ledger))
    assert again.exit_code == 0, again.output
    assert "已导入 0 条" in again.output and "跳过 3 条" in again.output
    assert listed(database_url) == rows

    september = listed(database_url, "--month", "2026-09")
    assert [r["case_no"] for r in september] == ["(2026)观调字第1号", "(2026)观调字第2号"]
    assert [r["village"] for r in listed(database_url, "--village", "东竹园村")] == ["东竹园村"]


def test_a_csv_with_text_dates_imports_like_excel(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    text_rows = [
        ["2026/9/3", "观音寺村", "张大山", "李小河", "邻里纠纷", "排水沟堵塞", "低", "已化解", "", "2026年9月10日"],
        ["2026.9.15", "西竹园村", "赵春花", "钱二", "合同纠纷", "欠化肥款", "中", "调解中", "", ""],
        ["20261008", "东竹园村", "孙老汉", "孙大牛", "其他纠纷", "口角", "低", "排查中", "", ""],
    ]
    ledger = write_csv(tmp_path / "台账.csv", text_rows, header=(
        "登记日期", "村", "当事人", "对方当事人", "纠纷类型", "简要情况", "风险等级", "状态", "调解员", "化解日期"
    ))  # fmt: skip
    result = lawbot(database_url, "disputes", "import", str(ledger))
    assert result.exit_code == 0, result.output
    rows = listed(database_url)
    assert [(r["found_on"], r["resolved_on"]) for r in rows] == [
        ("2026-09-03", "2026-09-10"),
        ("2026-09-15", None),
        ("2026-10-08", None),
    ]


def test_a_file_with_bad_rows_imports_nothing_and_lists_every_bad_row(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    bad = [
        GOOD_ROWS[0],
        [D(2026, 9, 4), "月亮村", "张三", "李四", "邻里纠纷", "吵架", "低", "排查中", "", None],  # row 4
        [D(2026, 9, 5), "观音寺村", "", "李四", "打架纠纷", "吵架", "低", "排查中", "", None],  # row 5
        ["2026-13-01", "观音寺村", "王五", "赵六", "合同纠纷", "欠款", "低", "排查中", "", None],  # row 6
        [D(2026, 9, 6), "观音寺村", "王五", "赵六", "合同纠纷", "欠款", "很高", "已化解", "", None],  # row 7
        [],  # an empty row is not an error
        GOOD_ROWS[1],
    ]
    ledger = write_xlsx(tmp_path / "有错的台账.xlsx", bad)
    result = lawbot(database_url, "disputes", "import", str(ledger))
    assert result.exit_code != 0
    out = result.output
    assert "第4行：没有“月亮村”这个村" in out
    assert "第5行：缺当事人；纠纷类型“打架纠纷”不在统计分类里" in out
    assert "第6行：登记日期“2026-13-01”不是日期" in out
    assert "第7行：风险等级“很高”应为 低、中、高；缺化解日期" in out
    assert "第3行" not in out and "第9行" not in out  # the good rows are not listed
    assert "4 行有问题，什么都没有导入" in out
    assert listed(database_url) == []  # nothing at all, not even the good rows

    missing = write_csv(tmp_path / "缺列.csv", [["2026-09-01", "观音寺村"]], header=("登记日期", "村", "当事人"))
    result = lawbot(database_url, "disputes", "import", str(missing))
    assert result.exit_code != 0 and "表头缺少这些列：对方当事人、纠纷类型" in result.output
    old = tmp_path / "老台账.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    result = lawbot(database_url, "disputes", "import", str(old))
    assert result.exit_code != 0 and "另存为" in result.output


@support.sqlite_only
async def test_an_admin_uploads_a_ledger_in_the_back_office(client: Any, browsers: Any, tmp_path: Path) -> None:
    from sqlalchemy import select

    from bot.storage.disputes import DisputeCase
    from bot.storage.staff import AuditLog
    from tests.test_tickets_support import sessions

    await add_staff(client, "chief", "admin")
    chief = await browsers("chief")
    status, page = await chief.get("/admin/disputes/import")
    assert status == 200 and "登记日期" in page
    ledger = write_xlsx(tmp_path / "台账.xlsx", GOOD_ROWS).read_bytes()

    async def upload(dry_run: str) -> tuple[int, str]:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("_csrf", chief.csrf)
        form.add_field("dry_run", dry_run)
        form.add_field("file", ledger, filename="台账.xlsx")
        async with chief.session.post(chief.url("/admin/disputes/import"), data=form) as resp:
            text = await resp.text()
            chief._pick(text)
            return resp.status, text

    status, page = await upload("1")
    assert status == 200 and "检查通过：可导入 3 条" in page
    status, page = await upload("0")
    assert status == 200 and "已导入 3 条" in page and "(2026)观调字第3号" in page
    status, page = await upload("0")
    assert "已导入 0 条" in page and "3 条以前导入过" in page
    async with sessions(client)() as session:
        assert len((await session.execute(select(DisputeCase))).scalars().all()) == 3
        actions = list((await session.execute(select(AuditLog.action))).scalars())
    assert actions.count("disputes.import") == 2  # the import, and the second run that found nothing new
    assert "disputes.import_check" in actions


@pytest.mark.parametrize(
    ("text", "day"),
    [("2026-03-05", D(2026, 3, 5)), ("2026年3月5日", D(2026, 3, 5)), (46086, D(2026, 3, 5)), ("", None)],
)
def test_dates_as_offices_write_them(text: Any, day: dt.date | None) -> None:
    from bot.services.disputes.ledger import parse_date

    assert parse_date(text) == day
