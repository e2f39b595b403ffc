"""`lawbot disputes …`: the dispute ledger from the command line. Output shapes are contracts:

* ``list --json`` → one object per case: case_no, village, type, status, risk, found_on, resolved_on,
  has_agreement (dates as YYYY-MM-DD in China time, resolved_on null while open);
* ``report --month YYYY-MM --json`` → {"month", "villages": [{"village", "reported", "zero_report",
  "found", "resolved", "open", "escalated", "by_type"}], "totals": {"found", "resolved", "open",
  "escalated", "by_type"}, "missing_reports": [...]} for every village.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")


def _settings() -> Any:
    from bot.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def site_values(knowledge_dir: str) -> dict[str, Any]:
    """site.yaml's values (township, villages, case word, court) without loading the whole knowledge."""
    import yaml

    path = Path(knowledge_dir) / "site.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


async def ensure_villages(session: Any, site: dict[str, Any]) -> None:
    """The villages of site.yaml exist (as `lawbot serve` makes them on start)."""
    from sqlalchemy import select

    from bot.storage.models import Village

    existing = set((await session.execute(select(Village.id))).scalars())
    for vid, name in (site.get("villages") or {}).items():
        if int(vid) not in existing:
            session.add(Village(id=int(vid), name=str(name)))
    await session.flush()


def _run(settings: Any, work: Callable[[Any, dict[str, Any]], Awaitable[T]]) -> T:
    """Run ``work(session, site)`` in one transaction on the configured database."""
    from bot.storage.all import load_all
    from bot.storage.db import create_engine, create_session_factory

    load_all()
    site = site_values(settings.knowledge_dir)

    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                await ensure_villages(session, site)
                return await work(session, site)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def disputes() -> None:
    """The grid's dispute ledger: import, list, monthly reports, agreements."""


@disputes.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="check the file and say what would be imported; change nothing")
def import_file(file: Path, dry_run: bool) -> None:
    """Import a village ledger (.xlsx or .csv). Any bad row: nothing is imported, every bad row is listed."""
    from bot.services.disputes.ledger import LedgerError, import_ledger
    from bot.storage.models import utcnow

    settings = _settings()
    data = file.read_bytes()
    try:
        outcome = _run(
            settings,
            lambda session, site: import_ledger(
                session, file.name, data, site=site, now=utcnow(), dry_run=dry_run, via="命令行"
            ),
        )
    except LedgerError as exc:
        raise _fail(exc) from exc
    if not outcome.ok:
        for problem in outcome.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{len(outcome.problems)} 行有问题，什么都没有导入。请改好后再导入。")
    if dry_run:
        click.echo(
            f"检查通过：可导入 {len(outcome.new_rows)} 条，已导入过 {len(outcome.already)} 条（试运行，没有写入）"
        )
        return
    click.echo(f"已导入 {len(outcome.created)} 条，已导入过跳过 {len(outcome.already)} 条")
    for case_no in outcome.created:
        click.echo(f"  {case_no}")


@disputes.command("list")
@click.option("--month", default=None, help="cases found in this month, YYYY-MM")
@click.option("--village", default=None, help="only this village (its name)")
@click.option("--json", "as_json", is_flag=True, help="a JSON array instead of a table")
def list_cases(month: str | None, village: str | None, as_json: bool) -> None:
    """case_no, village, type, status, risk, found_on, resolved_on, has_agreement — oldest first."""
    from sqlalchemy import select

    from bot.services.disputes.cases import DisputeError
    from bot.services.disputes.deadlines import MonthError, parse_month
    from bot.services.disputes.report import village_by_name
    from bot.storage.disputes import DisputeCase
    from bot.storage.models import Village

    async def work(session: Any, _site: dict[str, Any]) -> list[dict[str, Any]]:
        stmt = select(DisputeCase, Village.name).join(Village, Village.id == DisputeCase.village_id)
        if month:
            first, last = parse_month(month)
            stmt = stmt.where(DisputeCase.found_on >= first, DisputeCase.found_on <= last)
        if village:
            stmt = stmt.where(DisputeCase.village_id == (await village_by_name(session, village)).id)
        rows = (await session.execute(stmt.order_by(DisputeCase.found_on, DisputeCase.id))).all()
        return [
            {
                "case_no": c.case_no,
                "village": name,
                "type": c.type,
                "status": c.status,
                "risk": c.risk,
                "found_on": c.found_on.isoformat(),
                "resolved_on": c.resolved_on.isoformat() if c.resolved_on else None,
                "has_agreement": c.has_agreement,
            }
            for c, name in rows
        ]

    try:
        rows = _run(_settings(), work)
    except (DisputeError, MonthError) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("没有案件")
        return
    columns = ("case_no", "village", "type", "status", "risk", "found_on", "resolved_on", "has_agreement")
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join("" if row[c] is None else str(row[c]) for c in columns))


@disputes.command("submit-report")
@click.option("--village", required=True, help="the village's name")
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--zero", is_flag=True, help="a 零报告: no dispute was found this month")
def submit_report(village: str, month: str, zero: bool) -> None:
    """Submit a village's monthly screening report (月报告)."""
    from bot.services.disputes.cases import DisputeError
    from bot.services.disputes.deadlines import MonthError
    from bot.services.disputes.report import submit, village_by_name
    from bot.storage.models import utcnow

    async def work(session: Any, _site: dict[str, Any]) -> tuple[str, bool]:
        place = await village_by_name(session, village)
        _report, created = await submit(session, place, month, zero=zero, now=utcnow(), staff=None, via="命令行")
        return place.name, created

    try:
        name, created = _run(_settings(), work)
    except (DisputeError, MonthError) as exc:
        raise _fail(exc) from exc
    kind = "零报告" if zero else "月报告"
    click.echo(f"{name} {month} {kind}已{'提交' if created else '重新提交'}")


@disputes.command("report")
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
def month_report(month: str, as_json: bool) -> None:
    """The month's numbers for every village: reported, 零报告, found, resolved, open, escalated, by type."""
    from bot.services.disputes.deadlines import MonthError
    from bot.services.disputes.report import month_report as build
    from bot.services.disputes.report import table
    from bot.storage.models import utcnow

    settings = _settings()
    try:
        report = _run(
            settings,
            lambda session, _site: build(session, month, utcnow(), report_day=settings.dispute_report_day),
        )
    except MonthError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
        return
    for row in table(report):
        click.echo("\t".join(str(v) for v in row))


@disputes.command("agreement")
@click.argument("case_no")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="FILE.docx")
def agreement(case_no: str, out: Path) -> None:
    """Write the case's 人民调解协议书 as DOCX."""
    from sqlalchemy import select

    from bot.services.disputes.documents import agreement as build
    from bot.services.disputes.documents import case_file
    from bot.services.disputes.word import to_docx
    from bot.services.tickets import audit_row
    from bot.storage.disputes import DisputeCase
    from bot.storage.models import utcnow

    async def work(session: Any, site: dict[str, Any]) -> bytes | None:
        case = (await session.execute(select(DisputeCase).where(DisputeCase.case_no == case_no))).scalar_one_or_none()
        if case is None:
            return None
        session.add(
            audit_row(
                "dispute.document",
                utcnow(),
                object_type="dispute",
                object_id=case.id,
                details={"document": "agreement", "via": "cli"},
            )
        )
        return to_docx([build(await case_file(session, case, site))])

    data = _run(_settings(), work)
    if data is None:
        raise click.ClickException(f"没有这个案号：{case_no}")
    out.write_bytes(data)
    click.echo(f"已写出 {out}")
