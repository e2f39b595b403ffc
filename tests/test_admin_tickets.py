"""A mediator's day in the back-office: the queue, the ticket, the reply reaching WeChat."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from sqlalchemy import select, update

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.settings import Settings
from bot.storage.models import Villager, utcnow
from bot.storage.staff import AuditLog
from bot.storage.tickets import Ticket
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import CS_SEND, add_staff, all_tickets, deliver, sessions, thread

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


async def villager_files(phone: Phone, what: str, village: str = "village_1") -> None:
    await phone.subscribe(village)
    await dialog(
        phone, [("转人工", "发生"), (what, "好了"), ("好了", "手机号"), ("13800138000", "请核对"), ("1", "已提交")]
    )


async def audit_actions(client: Any) -> list[str]:
    async with sessions(client)() as session:
        return list((await session.execute(select(AuditLog.action).order_by(AuditLog.id))).scalars())


async def test_a_mediator_answers_and_the_villager_receives_it_in_wechat(
    client: Any, phone: Phone, browsers: Any, settings: Settings, fake_server: FakeWeChatServer
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    await villager_files(phone, "邻居家的狗把我咬了，医药费谁出")
    [ticket] = await all_tickets(client)
    zhang = await browsers("zhang")

    status, page = await zhang.get("/admin/tickets")
    assert status == 200 and ticket.number in page and "邻居家的狗" in page and "观音寺村" in page
    status, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert status == 200 and "邻居家的狗把我咬了" in page
    assert "13800138000" in page  # the assigned mediator sees the number
    assert "问题类别（自动判断）" in page

    status, page = await zhang.post(f"/admin/tickets/{ticket.id}/reply", {"body": "您好，先去打狂犬疫苗，留好票据。"})
    assert status == 200 and "已发出" in page and "等待发送" in page
    await deliver(client, settings)
    [call] = fake_server.fake.calls_to(CS_SEND)
    assert call.body["touser"] == phone.openid
    assert "先去打狂犬疫苗" in call.body["text"]["content"] and ticket.number in call.body["text"]["content"]
    status, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert "已送达微信" in page
    [fresh] = await all_tickets(client)
    assert fresh.status == "已答复" and fresh.first_response_at is not None
    actions = await audit_actions(client)
    assert {"tickets.list", "ticket.view", "ticket.reply", "ticket.phone_view"} <= set(actions)


@support.sqlite_only
async def test_the_thread_shows_voice_text_pictures_and_escapes_villager_text(
    client: Any, phone: Phone, browsers: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await phone.subscribe("village_1")
    await phone.say("转人工")
    await phone.send(phone.signer.message(phone.openid, "image", PicUrl="http://127.0.0.1/x.png", MediaId="pic_1"))
    await phone.say("<script>alert(1)</script> 他家<b>占</b>我的地")
    await dialog(phone, [("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")])
    await phone.say("补充")
    await phone.voice("地界的石头被他挪了")
    [ticket] = await all_tickets(client)
    zhang = await browsers("zhang")
    status, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert status == 200
    assert "<script>alert(1)" not in page and "<b>占</b>" not in page
    assert html.escape("<script>alert(1)</script>") in page or "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "语音（微信识别的文字）" in page and "地界的石头被他挪了" in page
    image = next(m for m in await thread(client, ticket.id) if (m.media or {}).get("type") == "image")
    media_url = f"/admin/tickets/{ticket.id}/media/{image.id}"
    assert media_url in page
    resp = await zhang.get_raw(media_url)
    assert resp.status == 200 and resp.content_type == "image/png"
    assert (await resp.read()).startswith(b"\x89PNG")
    # the queue escapes it too
    status, page = await zhang.get("/admin/tickets")
    assert "<script>alert(1)" not in page
    assert "ticket.media_view" in await audit_actions(client)


@support.sqlite_only
async def test_undeliverable_replies_show_waiting_or_failed_with_the_reason(
    client: Any, phone: Phone, browsers: Any, settings: Settings, fake_server: FakeWeChatServer
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await villager_files(phone, "工钱没给")
    [ticket] = await all_tickets(client)
    zhang = await browsers("zhang")
    async with sessions(client)() as session, session.begin():
        await session.execute(update(Villager).values(last_inbound_at=utcnow() - dt.timedelta(hours=50)))
    await zhang.post(f"/admin/tickets/{ticket.id}/reply", {"body": "请带上欠条来司法所。"})
    await deliver(client, settings)
    _, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert "等村民下次发消息后送达" in page and "48小时" in page
    assert fake_server.fake.calls_to(CS_SEND) == []

    # the villager writes again: the held reply goes out
    await phone.say("我的咨询")
    await deliver(client, settings)
    assert len(fake_server.fake.successful(CS_SEND)) == 1

    fake_server.fake.add_fault("errcode", errcode=40003, errmsg="invalid openid", path=CS_SEND)
    await zhang.post(f"/admin/tickets/{ticket.id}/reply", {"body": "还有别的事吗？"})
    await deliver(client, settings)
    _, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert "发送失败" in page and ("40003" in page or "invalid openid" in page)


@support.sqlite_only
async def test_insert_faq_answer_notes_assign_escalate_status_and_the_statutory_clock(
    client: Any, phone: Phone, browsers: Any, settings: Settings
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    await add_staff(client, "xiao", "volunteer", (1,), name="小王")
    await add_staff(client, "chief", "admin", name="乡司法所")
    await villager_files(phone, "彩礼给了十万，订婚后女方悔婚，彩礼能要回来吗")
    [ticket] = await all_tickets(client)
    zhang = await browsers("zhang")
    _, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert "插入" in page
    insert_id = page.split("insert=", 1)[1].split("#", 1)[0].split("&", 1)[0]
    _, page = await zhang.get(f"/admin/tickets/{ticket.id}?insert={insert_id}")
    box = page.split("<textarea", 2)[1].split("</textarea>", 1)[0]
    assert "下一步" in box  # the answer is in the reply box, without the bot's disclaimer (issue 13)
    assert "不构成律师意见" not in box

    status, page = await zhang.post(f"/admin/tickets/{ticket.id}/note", {"body": "女方家说钱已经花了"})
    assert "备注已保存" in page and "女方家说钱已经花了" in page
    xiao_id = await browsers_staff_id(client, "xiao")
    status, page = await zhang.post(f"/admin/tickets/{ticket.id}/assign", {"assignee": str(xiao_id)})
    assert "已分派给小王" in page
    status, page = await zhang.post(f"/admin/tickets/{ticket.id}/status", {"status": "已转交", "reason": ""})
    assert "需要写明原因" in page
    status, page = await zhang.post(
        f"/admin/tickets/{ticket.id}/status", {"status": "调解中", "reason": "约了双方周五来"}
    )
    assert "状态已改为“调解中”" in page
    status, page = await zhang.post(
        f"/admin/tickets/{ticket.id}/escalate", {"target": "mediation_center", "reason": "双方情绪激动"}
    )
    assert "乡矛盾纠纷调解中心" in page
    signed = svc_today() - dt.timedelta(days=25)
    status, page = await zhang.post(f"/admin/tickets/{ticket.id}/agreement", {"signed_on": signed.isoformat()})
    assert "司法确认" in page and "还剩 5 天" in page

    # the volunteer now handles it, but cannot hand it on
    xiao = await browsers("xiao")
    status, _ = await xiao.get(f"/admin/tickets/{ticket.id}")
    assert status == 200
    status, _ = await xiao.post(f"/admin/tickets/{ticket.id}/assign", {"assignee": ""})
    assert status == 403
    # the phone is masked for everyone but the assignee; the admin may reveal it (audited)
    _, page = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert "13800138000" not in page and "138****8000" in page
    chief = await browsers("chief")
    _, page = await chief.get(f"/admin/tickets/{ticket.id}")
    assert "13800138000" not in page and "显示完整号码" in page
    _, page = await chief.get(f"/admin/tickets/{ticket.id}?show_phone=1")
    assert "13800138000" in page
    [fresh] = await all_tickets(client)
    assert fresh.escalated_to == "mediation_center" and fresh.status == "调解中" and fresh.priority == 1
    actions = await audit_actions(client)
    for action in ("ticket.note", "ticket.assign", "ticket.status", "ticket.escalate", "ticket.agreement"):
        assert action in actions


def svc_today() -> dt.date:
    from bot.services.tickets import local

    return local(utcnow()).date()


async def browsers_staff_id(client: Any, username: str) -> int:
    from tests.test_tickets_support import staff_row

    return (await staff_row(client, username)).id


async def test_the_queue_filters_counts_and_highlights_overdue(client: Any, browsers: Any, settings: Settings) -> None:
    await add_staff(client, "chief", "admin")
    await add_staff(client, "zhang", "mediator", (1,))
    for i, (village, what) in enumerate([("village_1", "工钱没给"), ("village_2", "邻居占地"), ("village_1", "彩礼")]):
        await villager_files(Phone(client, settings, f"o_q{i}"), what, village)
    urgent = Phone(client, settings, "o_urgent")
    await urgent.say("他要杀了我")
    async with sessions(client)() as session, session.begin():
        first = (await session.execute(select(Ticket).order_by(Ticket.id))).scalars().first()
        assert first is not None
        first.first_response_due_at = utcnow() - dt.timedelta(hours=1)
    chief = await browsers("chief")
    status, page = await chief.get("/admin/tickets")
    assert status == 200 and page.count('<li class="item') == 4
    assert '<li class="item overdue' in page and "超时" in page and "紧急" in page
    _, page = await chief.get("/admin/tickets?village=2")
    assert page.count('<li class="item') == 1 and "邻居占地" in page
    _, page = await chief.get("/admin/tickets?overdue=1")
    assert page.count('<li class="item') == 1 and "工钱没给" in page
    _, page = await chief.get("/admin/tickets?urgent=1")
    assert page.count('<li class="item') == 1 and "要杀了我" in page
    _, page = await chief.get("/admin/tickets?assignee=none")
    assert page.count('<li class="item') == 2  # village 2 has no mediator, the urgent one has no village
    _, page = await chief.get("/admin/tickets?status=已分派")
    assert page.count('<li class="item') == 2
    assert "已分派 <b>2</b>" in page
    zhang = await browsers("zhang")
    _, page = await zhang.get("/admin/tickets")
    assert page.count('<li class="item') == 2 and "邻居占地" not in page


async def test_two_staff_with_the_same_name_can_be_told_apart_in_the_assign_list(
    client: Any, phone: Phone, browsers: Any
) -> None:
    await add_staff(client, "wang1", "mediator", (1,), name="王调解员")
    await add_staff(client, "wang2", "mediator", (1,), name="王调解员")
    await add_staff(client, "li", "mediator", (1,), name="李调解员")
    await villager_files(phone, "邻居把墙砌到我家地里了")
    [ticket] = await all_tickets(client)
    _, page = await (await browsers("wang1")).get(f"/admin/tickets/{ticket.id}")
    options = page.split('name="assignee"', 1)[1].split("</select>", 1)[0]
    assert "王调解员（调解员，登录名 wang1）" in options and "王调解员（调解员，登录名 wang2）" in options
    assert "李调解员（调解员）" in options  # a name nobody shares stays short
