"""月报告 for a fixture month (October 2026): a normal report, a 零报告, villages that did not report,
cases found earlier and still open, a case changed after the month — `lawbot disputes report --json`,
`submit-report`, and the township page's XLSX in the county's layout."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from bot.storage.disputes import TYPES
from tests import test_tickets_support as support
from tests.test_disputes_support import lawbot, listed, migrate, write_csv
from tests.test_tickets_support import add_staff

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

SHORT = ("登记日期", "村", "当事人", "对方当事人", "纠纷类型", "简要情况", "风险等级", "状态", "调解员", "化解日期")
LEDGER = [
    ["2026-09-20", "观音寺村", "甲", "乙", "邻里纠纷", "A 九月发现，十月化解", "低", "已化解", "", "2026-10-05"],
    ["2026-10-03", "观音寺村", "丙", "丁", "婚姻家庭纠纷", "B 十月发现，调解中", "中", "调解中", "", ""],
    ["2026-10-10", "观音寺村", "戊", "己", "房屋宅基地纠纷", "C 十月发现，高风险", "高", "调解中", "", ""],
    ["2026-10-12", "西竹园村", "庚", "辛", "合同纠纷", "D 十月发现，已上报", "低", "已上报", "", ""],
    ["2026-10-20", "西竹园村", "壬", "癸", "劳动争议纠纷", "E 十月发现十月化解", "低", "已化解", "", "2026-10-25"],
    ["2026-11-02", "西竹园村", "子", "丑", "其他纠纷", "F 十一月才发现", "低", "排查中", "", ""],
    ["2026-08-15", "东竹园村", "寅", "卯", "山林土地纠纷", "G 八月发现，稳控中", "中", "稳控中", "", ""],
]
ZERO_TYPES = dict.fromkeys(TYPES, 0)


def by_type(**counts: int) -> dict[str, int]:
    return {**ZERO_TYPES, **{f"{k}纠纷": v for k, v in counts.items()}}


def october(database_url: str, tmp_path: Path) -> dict[str, Any]:
    migrate(database_url)
    result = lawbot(database_url, "disputes", "import", str(write_csv(tmp_path / "l.csv", LEDGER, header=SHORT)))
    assert result.exit_code == 0, result.output
    ok = lawbot(database_url, "disputes", "submit-report", "--village", "观音寺村", "--month", "2026-10")
    assert ok.exit_code == 0 and "观音寺村 2026-10 月报告已提交" in ok.output, ok.output
    zero = lawbot(database_url, "disputes", "submit-report", "--village", "东竹园", "--month", "2026-10", "--zero")
    assert zero.exit_code == 0 and "零报告已提交" in zero.output, zero.output
    report = lawbot(database_url, "disputes", "report", "--month", "2026-10", "--json")
    assert report.exit_code == 0, report.output
    data: dict[str, Any] = json.loads(report.output)
    return data


def test_the_months_numbers_with_a_zero_report_and_missing_villages(database_url: str, tmp_path: Path) -> None:
    data = october(database_url, tmp_path)
    assert set(data) == {"month", "villages", "totals", "missing_reports"}
    assert data["month"] == "2026-10"
    villages = {v["village"]: v for v in data["villages"]}
    assert len(villages) == 11  # every village, reported or not
    for row in data["villages"]:
        assert set(row) == {"village", "reported", "zero_report", "found", "resolved", "open", "escalated", "by_type"}
    assert villages["观音寺村"] == {
        "village": "观音寺村",
        "reported": True,
        "zero_report": False,
        "found": 2,  # B, C
        "resolved": 1,  # A, found in September
        "open": 2,  # B, C
        "escalated": 1,  # C: 高 risk → 三长联动
        "by_type": by_type(婚姻家庭=1, 房屋宅基地=1),
    }
    assert villages["西竹园村"] == {
        "village": "西竹园村",
        "reported": False,  # a missing village
        "zero_report": False,
        "found": 2,  # D, E (F is November's)
        "resolved": 1,  # E
        "open": 1,  # D
        "escalated": 1,  # D: 已上报
        "by_type": by_type(合同=1, 劳动争议=1),
    }
    assert villages["东竹园村"] == {
        "village": "东竹园村",
        "reported": True,
        "zero_report": True,  # nothing found in October …
        "found": 0,
        "resolved": 0,
        "open": 1,  # … but G, found in August, is still open
        "escalated": 1,  # and 稳控中, in the 三长联动 queue
        "by_type": by_type(),
    }
    assert villages["老庄村"] == {
        "village": "老庄村",
        "reported": False,
        "zero_report": False,
        "found": 0,
        "resolved": 0,
        "open": 0,
        "escalated": 0,
        "by_type": by_type(),
    }
    assert data["totals"] == {
        "found": 4,
        "resolved": 2,
        "open": 4,
        "escalated": 3,
        "by_type": by_type(婚姻家庭=1, 房屋宅基地=1, 合同=1, 劳动争议=1),
    }
    assert data["missing_reports"] == [v for v in villages if v not in ("观音寺村", "东竹园村")]
    assert "西竹园村" in data["missing_reports"] and len(data["missing_reports"]) == 9

    table = lawbot(database_url, "disputes", "report", "--month", "2026-10")
    assert table.exit_code == 0 and table.output.splitlines()[0].startswith("村\t月报告\t排查发现")


def test_a_report_that_contradicts_the_ledger_is_refused(database_url: str, tmp_path: Path) -> None:
    october(database_url, tmp_path)
    zero = lawbot(database_url, "disputes", "submit-report", "--village", "观音寺村", "--month", "2026-10", "--zero")
    assert zero.exit_code != 0 and "已登记 2 件纠纷，不能报“无”" in zero.output
    empty = lawbot(database_url, "disputes", "submit-report", "--village", "老庄村", "--month", "2026-10")
    assert empty.exit_code != 0 and "还没有登记纠纷" in empty.output
    nowhere = lawbot(database_url, "disputes", "submit-report", "--village", "月亮村", "--month", "2026-10", "--zero")
    assert nowhere.exit_code != 0 and "没有叫“月亮村”的村" in nowhere.output
    future = lawbot(database_url, "disputes", "submit-report", "--village", "老庄村", "--month", "2099-01", "--zero")
    assert future.exit_code != 0 and "还没到" in future.output
    bad = lawbot(database_url, "disputes", "report", "--month", "2026-13", "--json")
    assert bad.exit_code != 0 and "2026-03" in bad.output


def test_a_change_after_the_month_does_not_rewrite_the_months_numbers(database_url: str, tmp_path: Path) -> None:
    """D (已上报) is resolved in December: October still counts it open and escalated; December does not."""
    from sqlalchemy import select

    from bot.services.disputes import set_status
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.disputes import DisputeCase
    from bot.storage.models import utcnow

    before = october(database_url, tmp_path)

    async def resolve_d() -> None:
        engine = create_engine(database_url)
        async with create_session_factory(engine)() as session, session.begin():
            case = (
                await session.execute(select(DisputeCase).where(DisputeCase.summary.startswith("D ")))
            ).scalar_one()
            await set_status(session, case, "已化解", utcnow())
        await engine.dispose()

    asyncio.run(resolve_d())
    after = json.loads(lawbot(database_url, "disputes", "report", "--month", "2026-10", "--json").output)
    assert after == before
    [d] = [r for r in listed(database_url, "--village", "西竹园村") if r["found_on"] == "2026-10-12"]
    assert d["status"] == "已化解" and d["resolved_on"] is not None


@support.sqlite_only
async def test_the_township_page_and_its_county_export(client: Any, browsers: Any) -> None:
    from openpyxl import load_workbook

    from bot.keys import SERVICES
    from bot.services.disputes.ledger import import_ledger
    from bot.storage.models import utcnow
    from bot.storage.staff import AuditLog

    await add_staff(client, "chief", "admin")
    await add_staff(client, "m1", "mediator", (1,))
    data = ("\ufeff" + ",".join(SHORT) + "\n" + "\n".join(",".join(r) for r in LEDGER)).encode()
    site = client.app[SERVICES].knowledge.kb.site
    async with client.app[SERVICES].session_factory() as session, session.begin():
        outcome = await import_ledger(session, "l.csv", data, site=site, now=utcnow())
        assert outcome.ok and len(outcome.created) == 7
    chief = await browsers("chief")
    status, page = await chief.get("/admin/disputes/monthly?month=2026-10")
    assert status == 200
    assert "逾期未报" in page and "西竹园村" in page  # October's due day has passed
    assert page.count('<img class="chart" src="data:image/svg+xml;base64,') == 3
    assert "<script>" not in page.replace('<script src="/admin/static/print.js"></script>', "")

    resp = await chief.session.get(chief.url("/admin/disputes/monthly.xlsx?month=2026-10"))
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert "观音寺乡" in str(rows[0][0]) and "2026-10" in str(rows[0][0])
    assert rows[1][:6] == ("村", "月报告", "排查发现", "化解", "未化解", "上报/三长联动")
    assert list(rows[1][6:]) == list(TYPES)  # one column per category
    assert len(rows) == 2 + 11 + 1  # title, header, one row per village, 合计
    assert rows[2][0] == "观音寺村" and rows[2][2:6] == (2, 1, 2, 1)
    assert rows[-1][0] == "合计" and rows[-1][2:6] == (4, 2, 4, 3)
    csv_resp = await chief.session.get(chief.url("/admin/disputes/monthly.csv?month=2026-10"))
    assert "观音寺村" in (await csv_resp.read()).decode("utf-8-sig")

    # a mediator sees their own village's row, submits for it, not for another
    m1 = await browsers("m1")
    status, page = await m1.get("/admin/disputes/monthly?month=2026-10")
    assert status == 200 and "观音寺村" in page and "西竹园村" not in page
    status, page = await m1.post("/admin/disputes/monthly", {"month": "2026-10", "village": "2", "zero": "1"})
    assert status == 403
    status, page = await m1.post("/admin/disputes/monthly", {"month": "2026-10", "village": "1", "zero": "0"})
    assert status == 200 and "月报告已提交" in page
    async with client.app[SERVICES].session_factory() as session:
        from sqlalchemy import select

        actions = set((await session.execute(select(AuditLog.action))).scalars())
    assert {"disputes.monthly", "disputes.export", "dispute_report.submit"} <= actions
