"""A villager in danger reaches a person at once (issue 13): one test per channel — the WeChat notice in
the fake API's calls, the back-office banner (endpoint and page), the escalation after the deadline with
frozen time, and the plain "who to call" reply when nobody can receive a notice."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from sqlalchemy import select, update

from bot.services import staff as staff_svc
from bot.services import tickets as svc
from bot.services.jobs import JobContext
from bot.settings import Settings
from bot.storage.models import Villager, utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import Ticket
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import CS_SEND, add_staff, all_tickets, deliver, sessions, thread

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

TEMPLATE_SEND = "/cgi-bin/message/template/send"
NOTIFIED = "已经通知了乡里值班的工作人员"
NOBODY = "现在没能马上通知到工作人员"


async def bind_wechat(client: Any, settings: Settings, browsers: Any, username: str, openid: str) -> Any:
    """The staff member gets a code on 我的账号 and sends it from their own WeChat; returns their browser."""
    staffer = await browsers(username)
    _, page = await staffer.post("/admin/account/wechat")
    code = re.search(r"绑定微信 (\d{6})", page)
    assert code, page
    assert "绑定好了" in await Phone(client, settings, openid).say(f"绑定微信 {code.group(1)}")
    return staffer


async def on_duty_every_day(client: Any, username: str) -> int:
    async with sessions(client)() as session, session.begin():
        person = (await session.execute(select(StaffUser).where(StaffUser.username == username))).scalar_one()
        await staff_svc.set_weekdays(session, [person.id] * 7)
        return person.id


async def alerts(staffer: Any, visible: bool = False) -> dict[str, Any]:
    status, body = await staffer.get("/admin/alerts" + ("?visible=1" if visible else ""))
    assert status == 200
    data: dict[str, Any] = json.loads(body)
    return data


# ------------------------------------------------------------------ WeChat: the mediator and the duty person
async def test_a_beaten_wife_is_told_staff_were_notified_because_their_wechat_got_the_notice(
    client: Any, settings: Settings, browsers: Any, fake_server: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    await add_staff(client, "li", "admin", name="李所长")
    await add_staff(client, "wang", "admin", name="王干事")  # not on duty today: not told at once
    await bind_wechat(client, settings, browsers, "zhang", "o_staff_zhang")
    await bind_wechat(client, settings, browsers, "li", "o_staff_li")
    await bind_wechat(client, settings, browsers, "wang", "o_staff_wang")
    li = await on_duty_every_day(client, "li")
    villager = Phone(client, settings, "o_beaten")
    await villager.subscribe("village_1")

    reply = await villager.say("我丈夫打我")

    assert reply.startswith("【紧急提醒】") and reply.index("110") < 40
    assert NOTIFIED in reply and NOBODY not in reply
    assert "家暴" in reply or "家庭暴力" in reply  # what to do about it follows the numbers
    [ticket] = await all_tickets(client)
    assert ticket.urgent and ticket.urgent_kind == "violence_now" and ticket.duty_staff_id == li
    assert ticket.first_response_due_at - ticket.created_at == dt.timedelta(minutes=30)  # not working hours
    assert ticket.alert_at is not None and ticket.alert_seen_at is None
    await deliver(client, settings)
    sent = {c.body["touser"]: c.body["text"]["content"] for c in fake_server.fake.calls_to(CS_SEND)}
    assert set(sent) >= {"o_staff_zhang", "o_staff_li"} and "o_staff_wang" not in sent
    for content in (sent["o_staff_zhang"], sent["o_staff_li"]):
        assert content.startswith("【乡法通·紧急】") and ticket.number in content and "正在遭受暴力" in content
        assert f"/admin/tickets/{ticket.id}" in content and "丈夫" not in content  # no villager details
    events = " ".join(m.body for m in await thread(client, ticket.id) if m.kind == "event")
    assert "值班：李所长" in events and "紧急提醒已发出" in events


async def test_a_second_urgent_message_joins_the_ticket_and_re_alerts_only_after_someone_opened_it(
    client: Any, settings: Settings, browsers: Any, fake_server: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    zhang = await bind_wechat(client, settings, browsers, "zhang", "o_staff_zhang")
    villager = Phone(client, settings, "o_again")
    await villager.subscribe("village_1")
    await villager.say("他又打我了")
    assert NOTIFIED in await villager.say("他拿着刀说要砍死我")  # the alert is still pending: no new notice
    [ticket] = await all_tickets(client)
    await deliver(client, settings)
    assert len(fake_server.fake.calls_to(CS_SEND)) == 1
    await zhang.get(f"/admin/tickets/{ticket.id}")  # opened: the alert ends
    await villager.say("他现在又在打我")
    await deliver(client, settings)
    assert len(fake_server.fake.calls_to(CS_SEND)) == 2  # a new alert, a new notice
    assert len(await all_tickets(client)) == 1


async def test_outside_the_48_hour_window_the_notice_is_a_template_message_when_one_is_configured(
    make_client: Any, settings: Settings, browsers: Any, fake_server: Any
) -> None:
    settings = settings.with_(wechat_staff_template_id="tpl_staff_alert")
    client = await make_client(settings)
    await add_staff(client, "zhang", "mediator", (1,))
    staffer = support.Staffer(client)
    try:
        await staffer.sign_in("zhang")
        _, page = await staffer.post("/admin/account/wechat")
        code = re.search(r"绑定微信 (\d{6})", page)
        assert code
        await Phone(client, settings, "o_staff_zhang").say(f"绑定微信 {code.group(1)}")
    finally:
        await staffer.close()
    async with sessions(client)() as session, session.begin():  # the staff member has not written for 3 days
        await session.execute(
            update(Villager)
            .where(Villager.openid == "o_staff_zhang")
            .values(last_inbound_at=utcnow() - dt.timedelta(days=3))
        )
    villager = Phone(client, settings, "o_far")
    await villager.subscribe("village_1")
    assert NOTIFIED in await villager.say("不想活了")
    await deliver(client, settings)
    [call] = fake_server.fake.calls_to(TEMPLATE_SEND)
    assert call.body["touser"] == "o_staff_zhang" and call.body["template_id"] == "tpl_staff_alert"
    assert call.body["data"]["first"]["value"] == "紧急求助，请马上处理"
    assert fake_server.fake.calls_to(CS_SEND) == []


# ------------------------------------------------------------------ nobody can receive it: who to call
async def test_when_nobody_can_receive_a_notice_the_villager_is_told_plainly_whom_to_call(
    client: Any, settings: Settings, browsers: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await add_staff(client, "li", "admin")
    staffer = await bind_wechat(client, settings, browsers, "zhang", "o_staff_zhang")
    async with sessions(client)() as session, session.begin():  # bound, but silent for 3 days; no template
        await session.execute(
            update(Villager)
            .where(Villager.openid == "o_staff_zhang")
            .values(last_inbound_at=utcnow() - dt.timedelta(days=3))
        )
        await session.execute(update(StaffUser).values(last_seen_at=None))  # and no back-office page open
    assert staffer is not None
    villager = Phone(client, settings, "o_alone")
    await villager.subscribe("village_1")
    reply = await villager.say("老公喝醉了正在打我")
    assert reply.startswith("【紧急提醒】") and "110" in reply
    assert NOBODY in reply and "请不要等" in reply and "0375-0000000" in reply
    assert "已通知" not in reply and "已经通知" not in reply
    [ticket] = await all_tickets(client)
    assert ticket.urgent and ticket.alert_at is not None  # still recorded and alerted for when staff look
    events = " ".join(m.body for m in await thread(client, ticket.id) if m.kind == "event")
    assert "没有人能马上收到微信通知" in events and "今天没有安排值班，通知全部乡管理员" in events


async def test_during_the_intake_urgent_words_file_an_urgent_ticket_and_say_whom_to_call(
    client: Any, settings: Settings
) -> None:
    phone = Phone(client, settings, "o_intake")
    await phone.say("转人工")
    reply = await phone.say("他说要杀了我")
    assert reply.startswith("【紧急提醒】") and "已登记为紧急情况" in reply and NOBODY in reply
    [ticket] = await all_tickets(client)
    assert ticket.urgent and ticket.urgent_kind == "threat_to_life"


# ------------------------------------------------------------------ suicide: warm, 12356, never an FAQ
async def test_words_about_ending_ones_life_get_a_warm_reply_with_12356_and_never_an_faq(
    client: Any, settings: Settings, browsers: Any
) -> None:
    await add_staff(client, "li", "admin", name="李所长")
    chief = await browsers("li")
    await alerts(chief, visible=True)  # 李所长 has a back-office page open
    for said in ("活着没意思，不想活了", "不想活了"):
        villager = Phone(client, settings, f"o_sad_{len(said)}")
        reply = await villager.say(said)
        first_lines = "\n".join(reply.splitlines()[:2])
        assert reply.startswith("【紧急提醒】") and "12356" in first_lines and "120" in first_lines
        assert "110" in first_lines and "关心您" in reply and NOTIFIED in reply
        for never in ("答不好", "依据", "1.", "网上", "退货", "转人工"):
            assert never not in reply, (said, never, reply)
    tickets = await all_tickets(client)
    assert [t.urgent_kind for t in tickets] == ["suicide", "suicide"] and {t.topic for t in tickets} == {None}
    _, page = await chief.get(f"/admin/tickets/{tickets[0].id}")
    assert "自杀风险（心理危机）" in page and "食品与商品消费" not in page
    assert "先保人平安" in page and "12356" in page and "插入" not in page  # no FAQ to paste in


# ------------------------------------------------------------------ the back-office: banner and sound
async def test_the_banner_shows_on_every_page_of_those_who_can_see_it_until_someone_opens_the_ticket(
    client: Any, settings: Settings, browsers: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    await add_staff(client, "zhao", "mediator", (2,), name="赵调解员")
    await add_staff(client, "li", "admin", name="李所长")
    zhang, zhao, li = await browsers("zhang"), await browsers("zhao"), await browsers("li")
    assert (await alerts(zhang, visible=True))["count"] == 0  # zhang's page is open (and visible)
    _, page = await zhang.get("/admin/account")
    assert 'id="alert-banner"' in page and 'data-count="0"' in page and "alerts.js" in page

    villager = Phone(client, settings, "o_banner")
    await villager.subscribe("village_1")
    reply = await villager.say("我丈夫打我")
    assert NOTIFIED in reply  # no WeChat bound anywhere: zhang's open page is the channel

    [ticket] = await all_tickets(client)
    data = await alerts(zhang)
    assert data["count"] == 1
    [item] = data["alerts"]
    assert item["number"] == ticket.number and item["village"] == "观音寺村" and item["kind"] == "正在发生的暴力"
    assert item["url"] == f"/admin/tickets/{ticket.id}"
    for path in ("/admin/account", "/admin/tickets", "/admin/report"):
        _, page = await li.get(path)
        banner = page.split('id="alert-banner"', 1)[1].split("</div>", 1)[0]
        assert 'data-count="1"' in banner and ticket.number in banner and " hidden" not in banner.split(">", 1)[0]
    assert (await alerts(zhao))["count"] == 0  # another village's mediator: not his to see

    status, _ = await zhang.get(f"/admin/tickets/{ticket.id}")
    assert status == 200
    assert (await alerts(zhang))["count"] == 0 and (await alerts(li))["count"] == 0
    [opened] = await all_tickets(client)
    assert opened.first_opened_at is not None and opened.alert_seen_at is not None
    async with sessions(client)() as session:
        zhang_id = (await session.execute(select(StaffUser.id).where(StaffUser.username == "zhang"))).scalar_one()
    assert opened.first_opened_by == zhang_id == opened.alert_seen_by
    _, page = await li.get(f"/admin/tickets/{ticket.id}")
    assert "首次查看" in page and "张调解员" in page


async def test_the_alarm_sound_is_shipped_and_is_what_the_generator_makes(client: Any) -> None:
    from bot.devtools.alert_sound import TARGET, wav_bytes

    assert TARGET.read_bytes() == wav_bytes()
    resp = await client.get("/admin/static/alert.wav")
    assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"
    script = await (await client.get("/admin/static/alerts.js")).text()
    assert "data-poll" in script and "textContent" in script and "innerHTML" not in script  # text only, no HTML


# ------------------------------------------------------------------ nobody opens it in time: every admin
async def test_an_urgent_alert_nobody_opens_within_30_minutes_goes_to_every_township_admin(
    client: Any, settings: Settings, browsers: Any, fake_server: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await add_staff(client, "li", "admin")
    await add_staff(client, "wang", "admin")
    await bind_wechat(client, settings, browsers, "li", "o_staff_li")
    await bind_wechat(client, settings, browsers, "wang", "o_staff_wang")
    await on_duty_every_day(client, "zhang")  # the mediator is on duty; the admins are not told at first
    villager = Phone(client, settings, "o_unseen")
    await villager.subscribe("village_1")
    await villager.say("孩子被打了，身上都是伤")
    [ticket] = await all_tickets(client)
    await deliver(client, settings)
    assert fake_server.fake.calls_to(CS_SEND) == []  # zhang has no WeChat bound; li and wang are not on duty

    def job_at(minutes: int) -> JobContext:
        return JobContext(settings, sessions(client), now=lambda: ticket.created_at + dt.timedelta(minutes=minutes))

    await svc.tick(job_at(29))
    await deliver(client, settings)
    assert fake_server.fake.calls_to(CS_SEND) == []
    await svc.tick(job_at(31))
    await svc.tick(job_at(32))  # once only
    await deliver(client, settings)
    sent = {c.body["touser"]: c.body["text"]["content"] for c in fake_server.fake.calls_to(CS_SEND)}
    assert set(sent) == {"o_staff_li", "o_staff_wang"} and len(fake_server.fake.calls_to(CS_SEND)) == 2
    assert all("30分钟内没有人打开" in c and ticket.number in c for c in sent.values())
    [late] = await all_tickets(client)
    assert late.alert_escalated_at is not None and late.overdue_at is not None and late.escalated_at is not None
    events = [m.body for m in await thread(client, ticket.id) if m.kind == "event"]
    assert any("30 分钟内没有人打开，已通知全部乡管理员（微信通知 2 人）" in e for e in events)
    li = await browsers("li")
    assert (await alerts(li))["alerts"][0]["escalated"] is True


async def test_the_urgent_deadline_follows_its_setting(make_client: Any, settings: Settings) -> None:
    client = await make_client(settings.with_(urgent_response_minutes=10))
    await Phone(client, settings, "o_ten").say("救命")
    [ticket] = await all_tickets(client)
    assert ticket.first_response_due_at - ticket.created_at == dt.timedelta(minutes=10)


# ------------------------------------------------------------------ the duty roster
async def test_the_judicial_office_keeps_the_duty_roster_and_everyone_sees_who_is_on_duty(
    client: Any, browsers: Any
) -> None:
    await add_staff(client, "li", "admin", name="李所长")
    await add_staff(client, "wang", "admin", name="王干事")
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    li = await browsers("li")
    _, page = await li.get("/admin/duty")
    assert "今天没有安排值班" in page and "李所长：没绑定微信" in page
    async with sessions(client)() as session:
        ids = {s.username: s.id for s in (await session.execute(select(StaffUser))).scalars()}
    week = {f"weekday_{i}": str(ids["wang"]) for i in range(7)}
    _, page = await li.post("/admin/duty/week", week)
    assert "每周值班已保存" in page and "今天值班：" in page and "王干事" in page
    today = staff_svc.local_day(utcnow())
    _, page = await li.post("/admin/duty/day", {"day": today.isoformat(), "staff": str(ids["zhang"])})
    assert f"{today.month}月{today.day}日的值班已安排" in page
    zhang = await browsers("zhang")
    _, queue = await zhang.get("/admin/tickets")
    assert "今天值班：<b>张调解员</b>" in queue and "就是您" in queue
    _, account = await zhang.get("/admin/account")
    assert "今天您值班" in account
    status, _ = await zhang.get("/admin/duty")
    assert status == 403  # the roster is the judicial office's
    async with sessions(client)() as session, session.begin():  # a deactivated person falls back to the weekday
        await session.execute(update(StaffUser).where(StaffUser.id == ids["zhang"]).values(active=False))
        duty = await staff_svc.on_duty(session, utcnow())
        assert duty is not None and duty.staff.username == "wang" and duty.source == "weekday"


# ------------------------------------------------------------------ 我的账号: binding from the profile page
async def test_staff_bind_their_wechat_from_their_own_account_page_and_wrong_codes_are_limited(
    client: Any, settings: Settings, browsers: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    zhang = await browsers("zhang")
    _, page = await zhang.get("/admin/tickets")
    assert "我的账号" in page and "改密码" not in page
    _, page = await zhang.get("/admin/account")
    assert "还没绑定微信" in page and "修改密码" in page
    _, page = await zhang.post("/admin/account/wechat")
    code = re.search(r"绑定微信 (\d{6})", page)
    assert code and "10分钟内有效" in page

    stranger = Phone(client, settings, "o_guesser")
    wrong = f"{(int(code.group(1)) + 1) % 1_000_000:06d}"
    for _ in range(staff_svc.MAX_BIND_FAILURES):
        assert "不对或已过期" in await stranger.say(f"绑定微信 {wrong}")
    assert "输错太多次" in await stranger.say(f"绑定微信 {code.group(1)}")  # even the right code, now
    _, page = await zhang.get("/admin/account")
    assert "还没绑定微信" in page

    phone = Phone(client, settings, "o_staff_zhang")
    assert "绑定好了" in await phone.say(f"绑定微信 {code.group(1)}")
    _, page = await zhang.get("/admin/account")
    assert "已绑定微信" in page and "马上" in page and "o_st…ang" in page
    assert "12333" in await phone.say("老板欠工资不给咋办")  # staff still get answers
    _, page = await zhang.post("/admin/account/wechat/unbind")
    assert "已解除绑定" in page and "还没绑定微信" in page
    assert "预览绑定" not in page  # the old word still works in chat, but the page says 绑定微信


async def test_the_old_password_page_leads_to_my_account_and_the_change_still_works(client: Any, browsers: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    zhang = await browsers("zhang")
    status, page = await zhang.get("/admin/password")
    assert status == 200 and "我的账号" in page and "修改密码" in page
    _, page = await zhang.post("/admin/password", {"current": "wrong", "password": "abcdefgh1", "confirm": "abcdefgh1"})
    assert "当前密码不对" in page and "我的微信" in page


# ------------------------------------------------------------------ bound staff are not villagers
async def test_bound_staff_are_not_asked_the_satisfaction_question(
    client: Any, settings: Settings, browsers: Any, fake_server: Any
) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await bind_wechat(client, settings, browsers, "zhang", "o_staff_zhang")
    phone = Phone(client, settings, "o_staff_zhang")
    await phone.subscribe("village_1")
    await dialog(
        phone, [("转人工", "发生"), ("试一下工单", "好了"), ("好了", "手机号"), ("跳过", "请核对"), ("1", "已提交")]
    )
    [ticket] = await all_tickets(client)
    async with sessions(client)() as session, session.begin():
        row = await session.get(Ticket, ticket.id)
        me = (await session.execute(select(StaffUser).where(StaffUser.username == "zhang"))).scalar_one()
        assert row is not None
        await svc.set_status(session, row, svc.RESOLVED, "", me, _texts(client), utcnow())
    [done] = await all_tickets(client)
    assert done.satisfaction_asked_at is None
    await deliver(client, settings)
    assert not any("有帮助" in c.body["text"]["content"] for c in fake_server.fake.calls_to(CS_SEND))


def _texts(client: Any) -> Any:
    from bot.keys import SERVICES

    return client.app[SERVICES].texts
