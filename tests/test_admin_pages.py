"""The township admin's pages: staff, villages, knowledge, the monthly report, privacy requests, the audit trail."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.keys import SERVICES
from bot.services import tickets as svc
from bot.services.knowledge import KnowledgeHolder
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from bot.storage.models import KnowledgeGap, Village, Villager, utcnow
from bot.storage.tickets import RESOLVED, Ticket
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import Staffer, add_staff, all_tickets, sessions, staff_row

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


@support.sqlite_only
async def test_admin_adds_a_mediator_who_can_then_sign_in(client: Any, browsers: Any) -> None:
    chief_id = await add_staff(client, "chief", "admin", name="乡司法所")
    chief: Staffer = await browsers("chief")
    status, page = await chief.get("/admin/staff/new")
    assert status == 200 and "东竹园村" in page
    status, page = await chief.post(
        "/admin/staff/new",
        {
            "username": "wang",
            "display_name": "王调解员",
            "role": "mediator",
            "village": ["3", "4"],
            "password": "pw-for-wang-1",
            "confirm": "pw-for-wang-1",
            "active": "1",
        },
    )
    assert status == 200 and "已新增 wang" in page and "王调解员" in page
    wang = await staff_row(client, "wang")
    assert wang.role == "mediator"
    status, page = await chief.post(
        "/admin/staff/new",
        {
            "username": "wang",
            "role": "mediator",
            "village": "3",
            "password": "pw-for-wang-1",
            "confirm": "pw-for-wang-1",
        },
    )
    assert status == 400 and "已经有人用了" in page
    status, page = await chief.post(
        "/admin/staff/new",
        {"username": "zhao", "role": "mediator", "password": "pw-for-zhao-1", "confirm": "pw-for-zhao-1"},
    )
    assert status == 400 and "至少要负责一个村" in page
    status, page = await chief.post(f"/admin/staff/{chief_id}", {"role": "mediator", "village": "1", "active": "1"})
    assert status == 400 and "不能停用自己" in page
    new_browser: Staffer = await browsers()
    status, page = await new_browser.sign_in("wang", "pw-for-wang-1")
    assert status == 200 and "王调解员" in page


@support.sqlite_only
async def test_admin_renames_and_adds_villages(client: Any, browsers: Any) -> None:
    await add_staff(client, "chief", "admin")
    chief: Staffer = await browsers("chief")
    status, page = await chief.get("/admin/villages")
    assert status == 200 and "龙潭村" in page and "village_11" in page  # each village's QR scene
    status, page = await chief.post("/admin/villages/11", {"name": "龙潭新村", "active": "1"})
    assert "已保存 龙潭新村" in page
    status, page = await chief.post("/admin/villages", {"id": "12", "name": "河口村"})
    assert "已新增 河口村" in page and "village_12" in page
    status, page = await chief.post("/admin/villages", {"id": "12", "name": "又一个"})
    assert "已经有村了" in page
    async with sessions(client)() as session:
        names = {v.id: v.name for v in (await session.execute(select(Village))).scalars()}
    assert names[11] == "龙潭新村" and names[12] == "河口村"


def _broken_knowledge(tmp_path: Path) -> Path:
    directory = tmp_path / "knowledge"
    directory.mkdir()
    for item in DEFAULT_KNOWLEDGE_DIR.iterdir():
        if item.name != "texts.yaml":
            (directory / item.name).symlink_to(item)
    (directory / "texts.yaml").write_text("welcome: [这里少了右括号\n", encoding="utf-8")
    return directory


@support.sqlite_only
async def test_knowledge_page_shows_the_gaps_and_reloads(
    make_client: Any, settings: Settings, knowledge_holder: Any, browsers: Any, tmp_path: Path
) -> None:
    holder = KnowledgeHolder(_broken_knowledge(tmp_path), knowledge_holder.current)
    client = await make_client(settings, knowledge=holder)
    await add_staff(client, "chief", "admin")
    phone = Phone(client, settings)
    for _ in range(2):
        await phone.say("今天天气咋样")
    chief = Staffer(client)
    try:
        await chief.sign_in("chief")
        status, page = await chief.get("/admin/knowledge")
        assert status == 200 and "今天天气咋样" in page and "<td>2</td>" in page
        # the nearest FAQ entry by its question and a 匹配度 in words: no slug, no score, no server path
        nearest = knowledge_holder.current.match("今天天气咋样").candidates[0]
        question = knowledge_holder.current.kb.fill(nearest.entry.question)
        assert f"{question}（匹配度 低）" in page and "答不上" in page
        assert nearest.entry.id not in page and f"{nearest.score:.4f}" not in page and "handoff" not in page
        assert str(DEFAULT_KNOWLEDGE_DIR) not in page and str(tmp_path) not in page
        status, page = await chief.post("/admin/knowledge/reload")
        assert "没有加载，仍在用旧的版本" in page and "flow sequence" in page
        assert client.app[SERVICES].knowledge is knowledge_holder.current  # still serving
        holder.directory = DEFAULT_KNOWLEDGE_DIR
        status, page = await chief.post("/admin/knowledge/reload")
        assert "已重新加载知识库" in page
    finally:
        await chief.close()
    async with sessions(client)() as session:
        assert len((await session.execute(select(KnowledgeGap))).scalars().all()) == 2


async def _month_of_work(client: Any, settings: Settings) -> None:
    """Three tickets this month: two in village 1 (one answered fast and rated helpful), one in village 2."""
    for i, (village, what) in enumerate(
        [("village_1", "工钱没给"), ("village_1", "彩礼能退吗"), ("village_2", "邻居占地")]
    ):
        phone = Phone(client, settings, f"o_rep{i}")
        await phone.subscribe(village)
        await dialog(
            phone, [("转人工", "发生"), (what, "好了"), ("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")]
        )
    async with sessions(client)() as session, session.begin():
        first = (await session.execute(select(Ticket).order_by(Ticket.id))).scalars().first()
        assert first is not None
        first.first_response_at = first.created_at + dt.timedelta(hours=2)
        first.status = RESOLVED
        first.satisfaction = 1


async def test_the_monthly_report_and_its_csv(client: Any, browsers: Any, settings: Settings) -> None:
    await add_staff(client, "chief", "admin")
    await add_staff(client, "m1", "mediator", (1,))
    await _month_of_work(client, settings)
    month = svc.local(utcnow()).strftime("%Y-%m")
    chief: Staffer = await browsers("chief")
    status, page = await chief.get(f"/admin/report?month={month}")
    assert status == 200 and f"月报告 {month}" in page
    assert "<b>3</b>工单" in page and "<b>1</b>已办结" in page and "<b>1/1</b>按期首次答复" in page
    resp = await chief.get_raw(f"/admin/report.csv?month={month}")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert ["工单数", "3"] in rows
    village_rows = {r[0]: r for r in rows if r and r[0] in ("观音寺村", "西竹园村")}
    assert village_rows["观音寺村"][1:4] == ["2", "1", "1"] and village_rows["观音寺村"][6:8] == ["1", "1"]
    assert village_rows["西竹园村"][1] == "1"
    assert ["有帮助", "1"] in rows
    # a mediator's report covers their own village only
    m1: Staffer = await browsers("m1")
    _, page = await m1.get(f"/admin/report?month={month}")
    assert "<b>2</b>工单" in page and "西竹园村" not in page


async def test_a_villager_s_data_is_exported_and_deleted_on_request(
    client: Any, browsers: Any, settings: Settings
) -> None:
    await add_staff(client, "chief", "admin")
    phone = Phone(client, settings, "o_private")
    await phone.subscribe("village_1")
    await dialog(
        phone,
        [("转人工", "发生"), ("离婚后孩子归谁", "好了"), ("好了", "手机号"), ("13700001111", "核对"), ("1", "已提交")],
    )
    [ticket] = await all_tickets(client)
    chief: Staffer = await browsers("chief")
    async with sessions(client)() as session:
        villager_id = (await session.execute(select(Villager.id).where(Villager.openid == "o_private"))).scalar_one()
    # staff find the villager by the ticket number, the phone (full, masked, last digits) or the village —
    # and see them by village and masked phone, never by the WeChat openid
    for query in (ticket.number, "13700001111", "137****1111", "1111", "观音寺"):
        status, page = await chief.get("/admin/villagers", params={"q": query})
        assert status == 200 and f"/admin/villagers/{villager_id}?" in page and "137****1111" in page, query
        assert "o_private" not in page
    status, page = await chief.get("/admin/villagers", params={"q": "o_private"})
    assert "没有找到" in page  # not by openid
    status, page = await chief.get(f"/admin/villagers/{villager_id}")
    assert status == 200 and "观音寺村" in page and ticket.number in page and "o_private" not in page
    resp = await chief.get_raw(f"/admin/villagers/{villager_id}/export")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    data = json.loads(await resp.read())
    assert data["openid"] == "o_private" and data["tickets"][0]["contact_phone"] == "13700001111"
    assert any(m["content"] == "离婚后孩子归谁" for m in data["messages_received"])
    if importlib.util.find_spec("bot.services.booking") is not None:
        assert data["booking"] == {"bookings": [], "waiting_list": []}  # other features join the export
    status, page = await chief.post(f"/admin/villagers/{villager_id}/forget", {})
    assert "请先勾选" in page
    status, page = await chief.post(f"/admin/villagers/{villager_id}/forget", {"confirm": "1"})
    assert "已删除该村民的个人信息，1 个工单已匿名" in page
    [gone] = await all_tickets(client)
    assert gone.openid is None and gone.contact_phone is None
    async with sessions(client)() as session:
        villager = (await session.execute(select(Villager).where(Villager.openid == "o_private"))).scalar_one_or_none()
    assert villager is None  # the villager row (and its village) is gone with the rest
    status, page = await chief.get("/admin/audit?action=villager")
    assert "导出村民的全部数据" in page and "删除村民的个人信息" in page and "查找村民" in page
    assert "villager." not in page and "o_private" not in page and "137" not in page


@support.sqlite_only
async def test_audit_trail_lists_who_did_what(client: Any, browsers: Any) -> None:
    await add_staff(client, "chief", "admin", name="乡司法所张三")
    chief: Staffer = await browsers("chief")
    await chief.post("/admin/villages/1", {"name": "观音寺村", "active": "1"})
    status, page = await chief.get("/admin/audit")
    # in words: who by name, the action, the object by its name (behaviour changed by issue 13: no codes)
    assert status == 200 and "<td>乡司法所张三</td><td>修改村</td><td>村 观音寺村</td>" in page
    assert "<td>登录</td><td>人员 乡司法所张三</td>" in page and "village.update" not in page
    _, page = await chief.get("/admin/audit?who=nobody")
    assert "没有记录" in page
