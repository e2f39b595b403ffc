"""三长联动 that does something (issue 13, deliverable 2): escalating a ticket to 派出所 / 乡矛调中心 / 司法所 /
人民法庭 tells the accounts holding that position (WeChat notice, back-office banner), puts the ticket in
their queue where they open and answer it, and the monthly report counts escalations by target."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from bot.services import tickets as svc
from bot.settings import Settings
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import CS_SEND, add_staff, all_tickets, deliver, thread

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


async def file(client: Any, settings: Settings, openid: str, what: str, village: str = "village_1") -> int:
    phone = Phone(client, settings, openid)
    await phone.subscribe(village)
    await dialog(phone, [("转人工", "发生"), (what, "好了"), ("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")])
    return (await all_tickets(client))[-1].id


async def bind(client: Any, settings: Settings, staffer: Any, openid: str) -> None:
    _, page = await staffer.post("/admin/account/wechat")
    code = re.search(r"绑定微信 (\d{6})", page)
    assert code
    assert "绑定好了" in await Phone(client, settings, openid).say(f"绑定微信 {code.group(1)}")


async def banner(staffer: Any) -> list[dict[str, Any]]:
    _, body = await staffer.get("/admin/alerts")
    items: list[dict[str, Any]] = json.loads(body)["alerts"]
    return items


async def test_escalating_to_the_police_tells_its_head_who_opens_and_answers_it_from_their_queue(
    client: Any, settings: Settings, browsers: Any, fake_server: Any
) -> None:
    await add_staff(client, "li", "admin", name="李所长")
    await add_staff(client, "zhou", "leader", name="周所长", position="police_head")
    await add_staff(client, "wu", "leader", name="吴庭长", position="court")
    await add_staff(client, "chen", "mediator", (2,), name="陈组长", position="centre_head")
    ticket_id = await file(client, settings, "o_wage", "老板拒不支付医药费，双方冲突可能升级")
    li, zhou, wu, chen = [await browsers(n) for n in ("li", "zhou", "wu", "chen")]
    await bind(client, settings, zhou, "o_staff_zhou")
    status, _ = await zhou.get(f"/admin/tickets/{ticket_id}")
    assert status == 403  # not escalated yet: not theirs

    _, page = await li.get(f"/admin/tickets/{ticket_id}")
    assert '<option value="court">人民法庭</option>' in page  # the fourth target
    _, page = await li.post(f"/admin/tickets/{ticket_id}/escalate", {"target": "police", "reason": "双方冲突可能升级"})
    assert "已升级到派出所（三长联动）" in page and "已通知周所长（微信 1 人）" in page

    await deliver(client, settings)
    [notice] = [c for c in fake_server.fake.calls_to(CS_SEND) if c.body["touser"] == "o_staff_zhou"]
    ticket = (await all_tickets(client))[-1]
    assert "已升级到派出所" in notice.body["text"]["content"] and ticket.number in notice.body["text"]["content"]
    assert "医药费" not in notice.body["text"]["content"]  # no villager details
    [item] = await banner(zhou)
    assert item["number"] == ticket.number and item["kind"] == "升级到派出所（三长联动）" and item["urgent"] is False
    assert await banner(wu) == [] and await banner(chen) == []  # the court and the mediation centre: not theirs
    _, queue = await zhou.get("/admin/tickets")
    assert ticket.number in queue
    _, leaders_queue = await zhou.get("/admin/disputes/queue")
    assert ticket.number in leaders_queue and "升级到派出所" in leaders_queue

    _, page = await zhou.get(f"/admin/tickets/{ticket_id}")
    assert "回复村民" in page
    assert await banner(zhou) == []  # opened: the escalation alert ends
    _, page = await zhou.post(f"/admin/tickets/{ticket_id}/reply", {"body": "派出所已安排民警明天上午到厂里协调。"})
    assert "已发出" in page
    await deliver(client, settings)
    [to_villager] = [c for c in fake_server.fake.calls_to(CS_SEND) if c.body["touser"] == "o_wage"]
    assert "派出所已安排民警" in to_villager.body["text"]["content"]
    events = " ".join(m.body for m in await thread(client, ticket_id) if m.kind == "event")
    assert "已通知派出所：周所长" in events and "周所长打开了升级到派出所的工单" in events


async def test_a_mediator_holding_a_position_sees_the_tickets_escalated_to_it(
    client: Any, settings: Settings, browsers: Any
) -> None:
    await add_staff(client, "li", "admin")
    await add_staff(client, "chen", "mediator", (2,), name="陈组长", position="centre_head")
    ticket_id = await file(client, settings, "o_land", "两家为地界吵了三年", village="village_1")
    chen = await browsers("chen")
    assert (await chen.get(f"/admin/tickets/{ticket_id}"))[0] == 403  # village 1 is not his
    li = await browsers("li")
    await li.post(f"/admin/tickets/{ticket_id}/escalate", {"target": "mediation_center", "reason": "多次调解不成"})
    [item] = await banner(chen)
    assert item["kind"] == "升级到乡矛盾纠纷调解中心（三长联动）"
    assert (await chen.get(f"/admin/tickets/{ticket_id}"))[0] == 200


async def test_escalating_to_a_target_nobody_holds_says_so(client: Any, settings: Settings, browsers: Any) -> None:
    await add_staff(client, "li", "admin")
    ticket_id = await file(client, settings, "o_nobody", "借钱不还还打人")
    li = await browsers("li")
    _, page = await li.post(f"/admin/tickets/{ticket_id}/escalate", {"target": "court", "reason": "要起诉"})
    assert "已升级到人民法庭（三长联动）" in page and "还没有账号担任人民法庭的负责人" in page


async def test_the_monthly_report_counts_escalations_by_target(client: Any, settings: Settings, browsers: Any) -> None:
    await add_staff(client, "li", "admin")
    ids = [await file(client, settings, f"o_rep_{i}", f"第{i}件事，邻居打起来了") for i in range(3)]
    li = await browsers("li")
    for ticket_id, target in zip(ids, ("police", "police", "court"), strict=True):
        await li.post(f"/admin/tickets/{ticket_id}/escalate", {"target": target, "reason": "需要联动"})
    _, page = await li.get("/admin/report")
    table = page.split("升级去向（三长联动）", 1)[1].split("</table>", 1)[0]
    assert "<td>派出所</td><td>2</td>" in table and "<td>人民法庭</td><td>1</td>" in table
    assert "<td>司法所</td><td>0</td>" in table
    resp = await li.get("/admin/report.csv")
    rows = list(csv.reader(io.StringIO(resp[1].lstrip("\ufeff"))))
    start = rows.index(["升级去向（三长联动）", "次数"])
    assert dict(rows[start + 1 : start + 1 + len(svc.ESCALATION_TARGETS)]) == {
        "乡里（司法所值班）": "0",
        "乡矛盾纠纷调解中心": "0",
        "派出所": "2",
        "司法所": "0",
        "人民法庭": "1",
    }
