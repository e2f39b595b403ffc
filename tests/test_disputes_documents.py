"""人民调解 documents from a case: the agreement DOCX written by `lawbot disputes agreement`, opened again
with python-docx, holds what 人民调解法第二十九条 asks for and the 30-day 司法确认 period; the
back-office prints every document on A4 and downloads the whole 卷宗."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from pathlib import Path
from typing import Any

from docx import Document

from tests import test_tickets_support as support
from tests.test_disputes_support import lawbot, migrate
from tests.test_tickets_support import add_staff

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

SITE = {"township": "观音寺乡", "county": "鲁山县", "court_name": "鲁山县人民法院"}
SIGNED = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


async def mediated_case(session: Any, now: dt.datetime = NOW) -> Any:
    from bot.services.disputes import cases

    case = await cases.create_case(
        session,
        site=SITE,
        village_id=2,
        found_on=dt.date(2026, 11, 2),
        source="来访",
        type="房屋宅基地纠纷",
        risk="中",
        summary="赵春花家与钱二家宅基地相邻，钱二翻建院墙时把界石向赵家挪了半米。",
        points="界石原来的位置；院墙是否拆除重建",
        parties=[
            cases.PartyIn("当事人", "赵春花", gender="女", ethnicity="汉", age=52, address="观音寺乡西竹园村3组",
                          phone="13800138000", phone_consent=True),
            cases.PartyIn("对方当事人", "钱二", gender="男", ethnicity="汉", age=47, address="观音寺乡西竹园村3组"),
        ],
        now=now,
    )  # fmt: skip
    case.responsibility = "钱二未经测量擅自移动界石，负主要责任"
    cases.record_agreement(
        session,
        case,
        kind="书面",
        terms="一、钱二于2026年12月10日前把界石恢复到原位置。\n二、赵春花不再要求赔偿。",
        method="村调委会到场见证，当面恢复界石",
        deadline="2026年12月10日前",
        agreement_on=SIGNED,
        now=now,
        staff=None,
    )
    return case


def _text(path_or_bytes: Path | bytes) -> str:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    doc = Document(source)
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        parts += [cell.text for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def test_the_agreement_docx_has_parties_facts_terms_and_the_30_day_deadline(database_url: str, tmp_path: Path) -> None:
    from bot.storage.db import create_engine, create_session_factory
    from bot.storage.models import Village

    migrate(database_url)

    async def prepare() -> str:
        engine = create_engine(database_url)
        async with create_session_factory(engine)() as session, session.begin():
            session.add(Village(id=2, name="西竹园村"))
            await session.flush()
            case = await mediated_case(session)
            case_no: str = case.case_no
        await engine.dispose()
        return case_no

    case_no = asyncio.run(prepare())
    assert case_no == "(2026)观调字第1号"
    out = tmp_path / "协议书.docx"
    result = lawbot(database_url, "disputes", "agreement", case_no, "--out", str(out))
    assert result.exit_code == 0, result.output

    text = _text(out)
    assert text.startswith("人民调解协议书") and f"编号：{case_no}" in text
    # 第二十九条（一）当事人的基本情况
    assert "当事人：赵春花，女，汉族，52岁，住观音寺乡西竹园村3组，联系电话13800138000" in text
    assert "对方当事人：钱二，男，汉族，47岁，住观音寺乡西竹园村3组" in text
    # （二）纠纷的主要事实、争议事项以及各方当事人的责任
    assert "钱二翻建院墙时把界石向赵家挪了半米" in text
    assert "争议事项：界石原来的位置" in text and "各方责任：钱二未经测量擅自移动界石" in text
    # （三）协议的内容，履行的方式、期限
    assert "一、钱二于2026年12月10日前把界石恢复到原位置。" in text and "二、赵春花不再要求赔偿。" in text
    assert "履行方式：村调委会到场见证" in text and "履行期限：2026年12月10日前" in text
    # 生效, and the 30 days to apply for 司法确认 (民事诉讼法第二百零五条)
    assert "人民调解员签名并加盖人民调解委员会印章之日起生效" in text
    assert "三十日内" in text and "第二百零五条" in text
    assert "本协议于2026年11月20日生效，申请应在2026年12月20日前提出（30日）" in text
    # signature and seal blocks
    assert "当事人（签名、盖章或按指印）" in text and "对方当事人（签名、盖章或按指印）" in text
    assert "人民调解员（签名）" in text and "观音寺乡西竹园村人民调解委员会（印章）" in text
    assert "本协议一式3份" in text

    missing = lawbot(database_url, "disputes", "agreement", "(2026)观调字第99号", "--out", str(tmp_path / "x.docx"))
    assert missing.exit_code != 0 and "没有这个案号" in missing.output


@support.sqlite_only
async def test_staff_print_each_document_and_download_the_case_file(client: Any, browsers: Any) -> None:
    from sqlalchemy import select

    from bot.keys import SERVICES
    from bot.storage.staff import AuditLog

    await add_staff(client, "zhang", "mediator", (2,), name="张调解员")
    async with client.app[SERVICES].session_factory() as session, session.begin():
        case = await mediated_case(session)
        case_id = case.id
    zhang = await browsers("zhang")
    status, page = await zhang.get(f"/admin/disputes/{case_id}")
    assert status == 200 and "2026年12月20日" in page and "司法确认" in page
    assert "138****8000" in page and "13800138000" not in page  # masked until asked for

    titles = {"application": "人民调解申请书", "agreement": "人民调解协议书", "confirmation": "司法确认申请书"}
    for key, title in titles.items():
        status, page = await zhang.get(f"/admin/disputes/{case_id}/documents/{key}")
        assert status == 200 and f"<h1>{title}</h1>" in page and "赵春花" in page, key
    status, page = await zhang.get(f"/admin/disputes/{case_id}/documents/confirmation")
    assert "鲁山县人民法院" in page or "人民法院" in page
    assert "2026年12月20日前" in page and "请求确认申请人于2026年11月20日" in page

    resp = await zhang.session.get(zhang.url(f"/admin/disputes/{case_id}/documents/dossier.docx"))
    assert resp.status == 200 and "wordprocessingml" in resp.headers["Content-Type"]
    text = _text(await resp.read())
    for title in ("人民调解卷宗", "人民调解申请书", "人民调解受理登记表", "人民调解记录", "人民调解协议书",
                  "人民调解口头协议登记表", "人民调解回访记录", "司法确认申请书"):  # fmt: skip
        assert title in text, title
    status, _ = await zhang.get(f"/admin/disputes/{case_id}/documents/nonsense")
    assert status == 404
    async with client.app[SERVICES].session_factory() as session:
        documents = (
            await session.execute(select(AuditLog.details).where(AuditLog.action == "dispute.document"))
        ).scalars()
        assert {d["document"] for d in documents} == {"application", "agreement", "confirmation", "dossier"}
