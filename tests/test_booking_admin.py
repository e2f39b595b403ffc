"""预约 in the back-office: day and week views, check-in, cancelling, booking by phone, exports, schedule editing.

Villagers book through the chat first (frozen clock: Tue 2026-02-10 08:00 Shanghai); staff then work the
day in the back-office.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, select
from yarl import URL

from bot.admin import booking_views
from bot.keys import SERVICES
from bot.services import booking as svc
from bot.settings import Settings
from bot.storage.booking import BookingPlace, BookingSchedule
from bot.storage.staff import AuditLog, StaffUser, staff_villages
from tests.phone import Phone, dialog
from tests.test_booking_helpers import (
    SMALL_BOOKING_YAML,
    Clock,
    at,
    booking_client,
    booking_settings,
    bookings,
    clock,
    outbox,
    with_booking_router,
)

__all__ = ["booking_client", "booking_settings", "clock", "with_booking_router"]

ADMIN, MEDIATOR_1, MEDIATOR_2, VOLUNTEER = 1, 2, 3, 4
DAY = "2026-02-12"  # Thursday

STATION = "  - {code: station, name: 司法所公共法律服务站, address: 乡政府院内}\n"
VILLAGE_POINT = "  - {code: village-1, name: 观音寺村法律服务点, village: 1, address: 观音寺村村委会}\n"
VILLAGE_SCHEDULE = '  - {place: village-1, services: [consult], weekdays: [3], hours: ["14:30-15:30"], capacity: 1}\n'


@pytest.fixture
def booking_yaml() -> str:
    """The small township plus a service point in village 1 (Thursday afternoons, 法律咨询)."""
    assert STATION in SMALL_BOOKING_YAML
    text = SMALL_BOOKING_YAML.replace(STATION, STATION + VILLAGE_POINT)
    return text.replace("schedules:\n", "schedules:\n" + VILLAGE_SCHEDULE)


@pytest.fixture
async def office(booking_client: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app with staff: an admin, a mediator for village 1, one for village 2, a volunteer."""
    monkeypatch.setattr(booking_views, "utcnow", clock)
    settings = booking_client.app[SERVICES].settings
    async with booking_client.app[SERVICES].session_factory() as s, s.begin():
        await svc.ensure_seeded(s, svc.load_config(settings.knowledge_dir), {})
        for staff_id, name, role in (
            (ADMIN, "wang", "admin"),
            (MEDIATOR_1, "li", "mediator"),
            (MEDIATOR_2, "zhou", "mediator"),
            (VOLUNTEER, "zhao", "volunteer"),
        ):
            s.add(StaffUser(id=staff_id, username=name, display_name=name.upper(), password_hash="-", role=role))
        await s.flush()
        await s.execute(insert(staff_villages).values([(MEDIATOR_1, 1), (MEDIATOR_2, 2)]))
    return booking_client


def sign_in(client: Any, settings: Settings, staff_id: int) -> str:
    """A signed-in back-office session in the client's cookie jar; returns its CSRF token."""
    from bot.admin import framework as adm

    csrf = f"csrf-token-for-tests-{staff_id}-0123456789abcdef"
    data = {"uid": staff_id, "epoch": 0, "at": int(time.time()), "csrf": csrf}
    box = adm._fernet(settings.effective_secret_key)
    value = box.encrypt(json.dumps({"created": int(time.time()), "session": data}).encode()).decode()
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({adm.COOKIE_NAME: value}, response_url=URL(str(client.make_url("/admin"))))
    return csrf


async def get(client: Any, path: str, **query: Any) -> tuple[int, str]:
    resp = await client.get(path, params=query, allow_redirects=False)
    return resp.status, await resp.text()


async def post(client: Any, path: str, csrf: str, data: dict[str, Any] | list[tuple[str, str]] | None = None) -> Any:
    items = list(data.items()) if isinstance(data, dict) else list(data or [])
    return await client.post(path, data=[("_csrf", csrf), *items], allow_redirects=False)


async def place_id(client: Any, code: str) -> int:
    async with client.app[SERVICES].session_factory() as s:
        found = await s.scalar(select(BookingPlace.id).where(BookingPlace.code == code))
        assert found is not None
        return int(found)


async def villager_books(client: Any, settings: Settings, openid: str, contact: str, time_pick: str = "1") -> str:
    phone = Phone(client, settings, openid)
    await dialog(
        phone,
        [
            ("预约", "法律咨询"),
            ("1", "选地点"),
            ("1", "2月12日"),
            ("3", "9:00-9:30"),
            (time_pick, "姓名"),
            (contact, "确认"),
        ],
    )
    reply = await phone.say("1")
    assert "预约成功" in reply, reply
    return reply.split("预约码：")[1].split()[0]


async def audit_actions(client: Any) -> list[str]:
    async with client.app[SERVICES].session_factory() as s:
        return [a.action for a in (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()]


# ------------------------------------------------------------------ the day
async def test_day_view_shows_bookings_capacity_and_free_places(office: Any, booking_settings: Settings) -> None:
    code = await villager_books(office, booking_settings, "o_zhang", "张三 13812345678")
    await villager_books(office, booking_settings, "o_li", "李四")
    sign_in(office, booking_settings, ADMIN)
    status, page = await get(office, "/admin/bookings", place=await place_id(office, "station"), day=DAY)
    assert status == 200 and "2月12日 周四" in page
    # the day's bookings come first (name, service, time, status); the slots are folded away below them
    bookings_part, slots_part = page.split("各时间段和空位")
    assert "这天的预约（2 个）" in bookings_part and code in bookings_part
    assert re.search(r"9:00-9:30</b>\s*<span>法律咨询</span>\s*<span class=\"tag\">已预约</span>", bookings_part)
    assert "<b>张三</b>" in bookings_part and "<b>李四</b>" in bookings_part
    # Thursday's list seen on Tuesday: no 到了 yet
    assert "到了没到，当天再登记" in bookings_part and 'value="checked_in"' not in bookings_part
    assert "<details" in bookings_part[-300:]  # folded
    assert "<td>9:00-9:30</td><td>法律咨询</td><td>2/2</td><td>0</td>" in slots_part
    assert "<td>0/2</td><td>2</td>" in slots_part
    assert "138****5678" in page and "13812345678" not in page  # masked on the list
    assert re.search(r"可约 <b>9</b>.*已约 <b>2</b>.*空位 <b>7</b>", page, re.S)  # 4×2 法律咨询 + 1 法律援助申请
    assert "booking.day" in await audit_actions(office)


async def test_week_view_knows_the_spring_festival(office: Any, booking_settings: Settings) -> None:
    await villager_books(office, booking_settings, "o_zhang", "张三")
    sign_in(office, booking_settings, ADMIN)
    status, page = await get(office, "/admin/bookings/week", place=await place_id(office, "station"), start=DAY)
    assert status == 200
    rows = page.split("<tbody>")[1].split("<tr>")
    thursday = next(r for r in rows if "2月12日 周四" in r)
    assert "9 / 1 / <b>8</b>" in thursday  # 8 法律咨询 + 1 法律援助申请 places, one taken
    saturday = next(r for r in rows if "2月14日 周六" in r)
    assert "调休上班" in saturday and "9 / 0 / <b>9</b>" in saturday
    sunday = next(r for r in rows if "2月15日 周日" in r)
    assert "春节放假" in sunday and "不开放" in sunday


async def test_check_in_no_show_and_undo(office: Any, booking_settings: Settings, clock: Clock) -> None:
    await villager_books(office, booking_settings, "o_zhang", "张三")
    (booking,) = await bookings(office)
    csrf = sign_in(office, booking_settings, ADMIN)
    path = f"/admin/bookings/{booking.id}/attendance"
    assert (await post(office, path, csrf, {"status": "checked_in"})).status == 303
    assert (await bookings(office))[0].status == "confirmed"  # two days early: refused
    clock.advance(days=2, hours=1)  # Thursday 9:00
    assert (await post(office, path, csrf, {"status": "checked_in"})).status == 303
    assert (await bookings(office))[0].status == "checked_in"
    assert (await post(office, path, csrf, {"status": "confirmed"})).status == 303
    assert (await post(office, path, csrf, {"status": "no_show"})).status == 303
    (marked,) = await bookings(office)
    assert marked.status == "no_show" and marked.marked_by == "wang"
    assert (await post(office, path, csrf, {"status": "gone"})).status == 400
    actions = await audit_actions(office)
    assert "booking.checked_in" in actions and "booking.no_show" in actions


async def test_check_in_only_on_the_booking_s_own_day(office: Any, booking_settings: Settings, clock: Clock) -> None:
    await villager_books(office, booking_settings, "o_li", "李建国")  # Thursday 2026-02-12 9:00
    (booking,) = await bookings(office)
    csrf = sign_in(office, booking_settings, ADMIN)
    path, station = f"/admin/bookings/{booking.id}/attendance", await place_id(office, "station")

    async def mark(status: str) -> str:
        resp = await post(office, path, csrf, {"status": status})
        assert resp.status == 303
        return (await get(office, resp.headers["Location"]))[1]

    clock.set(at(2026, 2, 11, 21, 0))  # the evening before: less than 12 hours, but another day
    assert "这是2月12日 周四的预约，只能在当天登记“到了”。" in await mark("checked_in")
    assert "预约时间还没到，不能登记“没来”。" in await mark("no_show")
    assert (await bookings(office))[0].status == "confirmed"
    _, page = await get(office, "/admin/bookings", place=station, day=DAY)
    assert 'value="checked_in"' not in page and 'value="no_show"' not in page and "当天再登记" in page

    clock.set(at(2026, 2, 12, 8, 40))  # the day, before the time: 到了 yes, 没来 not yet
    _, page = await get(office, "/admin/bookings", place=station, day=DAY)
    assert 'value="checked_in"' in page and 'value="no_show"' not in page
    assert "李建国：已到" in await mark("checked_in")
    assert "李建国：已预约" in await mark("confirmed")  # undone

    clock.set(at(2026, 2, 13, 10, 0))  # the next day: no 到了 any more; 没来 can still be caught up on
    assert "只能在当天登记“到了”" in await mark("checked_in")
    assert "李建国：未到" in await mark("no_show")
    assert (await bookings(office))[0].status == "no_show"


async def test_staff_cancel_tells_the_villager_and_offers_the_place(office: Any, booking_settings: Settings) -> None:
    aid = Phone(office, booking_settings, "o_first")
    await dialog(aid, [("预约", "法律咨询"), ("2", "选哪天"), ("2", "2月11日"), ("1", "姓名"), ("张三", "确认")])
    assert "预约成功" in await aid.say("1")
    waiting = Phone(office, booking_settings, "o_waiting")
    await dialog(
        waiting,
        [("预约", "法律咨询"), ("2", "约满"), ("2", "已经约满"), ("1", "姓名"), ("李四", "确认排队"), ("1", "排队")],
    )
    (booking,) = await bookings(office)
    csrf = sign_in(office, booking_settings, ADMIN)
    status, page = await get(office, f"/admin/bookings/{booking.id}")
    assert status == 200 and "取消这个预约" in page
    resp = await post(office, f"/admin/bookings/{booking.id}/cancel", csrf, {"reason": "当天停电", "notify": "1"})
    assert resp.status == 303
    status, page = await get(office, resp.headers["Location"])
    assert "已取消 张三 的预约" in page and "已通过公众号告诉村民" in page and "留给排队的村民" in page
    messages = {m.openid: m.payload["content"] for m in await outbox(office)}
    assert "被工作人员取消了（当天停电）" in messages["o_first"]
    assert "有空位了" in messages["o_waiting"]
    assert [b.status for b in await bookings(office)] == ["cancelled", "held"]
    assert (await bookings(office))[0].cancelled_by == "staff:wang"
    assert "预约成功" in await waiting.say("确认预约")
    assert [b.status for b in await bookings(office)] == ["cancelled", "confirmed"]


# ------------------------------------------------------------------ booking a caller in by phone
async def test_booking_a_caller_by_phone(office: Any, booking_settings: Settings) -> None:
    csrf = sign_in(office, booking_settings, ADMIN)
    station = await place_id(office, "station")
    status, page = await get(office, "/admin/bookings/new", place=station, day=DAY)
    assert status == 200 and "法律咨询 9:00-9:30（剩2个）" in page and "法律援助申请 9:00-10:00（剩1个）" in page
    slot = re.search(r'<option value="([^"]+)"[^>]*>法律援助申请 9:00-10:00', page)
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert slot and token
    form = {"slot": slot.group(1), "name": "王大爷", "phone": "13700001111", "token": token.group(1)}
    path = f"/admin/bookings/new?place={station}&day={DAY}"
    resp = await post(office, path, csrf, form)
    assert resp.status == 400 and "须先问村民同意" in await resp.text()
    resp = await post(office, path, csrf, {**form, "consent": "1"})
    assert resp.status == 303
    _status, day_page = await get(office, resp.headers["Location"])
    (booking,) = await bookings(office)
    assert f"已为 王大爷 预约，预约码 {booking.code}" in day_page
    assert (booking.source, booking.created_by, booking.openid, booking.phone) == ("staff", "wang", None, "13700001111")
    again = await post(office, path, csrf, {**form, "consent": "1"})  # the form sent twice
    assert again.status == 303 and len(await bookings(office)) == 1
    _status, day_page = await get(office, again.headers["Location"])
    assert "已经登记过了" in day_page
    # the slot is full now: another caller for the same time is refused with the reason
    resp = await post(office, path, csrf, {**form, "token": "other", "name": "赵六", "phone": ""})
    assert resp.status == 400 and "刚被约满了" in await resp.text()


# ------------------------------------------------------------------ exports
async def test_export_a_day_as_csv_and_xlsx(office: Any, booking_settings: Settings) -> None:
    await villager_books(office, booking_settings, "o_zhang", "张三 13812345678")
    await villager_books(office, booking_settings, "o_evil", "=HYPERLINK(1)")  # villager text is data
    sign_in(office, booking_settings, ADMIN)
    station = await place_id(office, "station")
    resp = await office.get("/admin/bookings/export.csv", params={"place": station, "day": DAY})
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["时间", "事项", "姓名", "手机", "预约码", "状态", "来源", "备注"]
    assert rows[1][:4] == ["9:00-9:30", "法律咨询", "张三", "13812345678"]
    assert rows[2][2].startswith("'=")  # never a formula
    resp = await office.get("/admin/bookings/export.xlsx", params={"place": station, "day": DAY})
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet["C2"].value == "张三" and sheet["D2"].value == "13812345678"
    assert sheet["C3"].data_type == "s"
    assert (await audit_actions(office)).count("booking.export") == 2


# ------------------------------------------------------------------ who sees what
async def test_mediators_see_their_village_point_only(office: Any, booking_settings: Settings) -> None:
    await villager_books(office, booking_settings, "o_zhang", "张三")
    (station_booking,) = await bookings(office)
    village_point = await place_id(office, "village-1")
    sign_in(office, booking_settings, MEDIATOR_1)
    status, page = await get(office, "/admin/bookings", day=DAY)
    assert status == 200 and "观音寺村法律服务点" in page and "张三" not in page
    assert "14:30-15:00" in page
    assert (await get(office, "/admin/bookings", place=await place_id(office, "station")))[0] == 403
    assert (await get(office, f"/admin/bookings/{station_booking.id}"))[0] == 403
    assert (await get(office, "/admin/bookings/settings"))[0] == 403
    sign_in(office, booking_settings, MEDIATOR_2)
    status, page = await get(office, "/admin/bookings", place=village_point)
    assert status == 403
    status, page = await get(office, "/admin/bookings")
    assert status == 200 and "没有您可以查看的预约地点" in page
    sign_in(office, booking_settings, VOLUNTEER)
    assert (await get(office, "/admin/bookings"))[0] == 403


async def test_booking_page_shows_the_full_phone_and_is_audited(office: Any, booking_settings: Settings) -> None:
    await villager_books(office, booking_settings, "o_zhang", "张三 13812345678")
    (booking,) = await bookings(office)
    sign_in(office, booking_settings, ADMIN)
    status, page = await get(office, f"/admin/bookings/{booking.id}")
    assert status == 200 and 'href="tel:13812345678"' in page and "2月12日 周四 9:00-9:30" in page
    assert "booking.view" in await audit_actions(office)


# ------------------------------------------------------------------ schedule and special days (admins)
async def test_admin_changes_capacity_and_villagers_see_it(office: Any, booking_settings: Settings) -> None:
    csrf = sign_in(office, booking_settings, ADMIN)
    status, page = await get(office, "/admin/bookings/settings")
    assert status == 200 and "每周时间" in page and "特殊日期" in page
    async with office.app[SERVICES].session_factory() as s:
        schedule = (
            await s.execute(select(BookingSchedule).where(BookingSchedule.capacity == 2))
        ).scalar_one()  # 法律咨询 at the station
    form = [
        ("weekdays", "0"), ("weekdays", "1"), ("weekdays", "2"), ("weekdays", "3"),
        ("start_time", "09:00"), ("end_time", "10:00"), ("slot_minutes", "30"), ("capacity", "5"),
        ("breaks", ""), ("active", "1"),
    ]  # fmt: skip
    assert (await post(office, f"/admin/bookings/schedules/{schedule.id}", csrf, form)).status == 303
    phone = Phone(office, booking_settings, "o_zhang")
    replies = await dialog(
        phone, [("预约", "法律咨询"), ("1", "选地点"), ("1", "2月10日 周二（空10个）"), ("3", "2月12日 周四")]
    )
    assert "2月13日 周五" not in replies[2]  # Friday was taken out of the schedule
    assert "1. 9:00-9:30（剩5个）" in replies[3] and "10:00-10:30" not in replies[3]
    bad = [("weekdays", "0"), ("start_time", "10:00"), ("end_time", "09:00"), ("capacity", "1")]
    resp = await post(office, f"/admin/bookings/schedules/{schedule.id}", csrf, bad)
    _status, page = await get(office, resp.headers["Location"])
    assert "时间表没保存" in page
    assert "booking.schedule.save" in await audit_actions(office)


async def test_consultation_day_and_closure(office: Any, booking_settings: Settings) -> None:
    await villager_books(office, booking_settings, "o_zhang", "张三")
    csrf = sign_in(office, booking_settings, ADMIN)
    resp = await post(
        office, "/admin/bookings/specials", csrf,
        {"day": "2026-02-13", "kind": "extra", "title": "法律咨询日", "volunteers": "王律师", "extra_capacity": "3"},
    )  # fmt: skip
    assert resp.status == 303
    resp = await post(office, "/admin/bookings/specials", csrf, {"day": DAY, "kind": "closed", "title": "停电"})
    _status, page = await get(office, resp.headers["Location"])
    assert "已有1个预约" in page  # staff are told whom to call
    phone = Phone(office, booking_settings, "o_li")
    replies = await dialog(
        phone,
        [("预约", "法律咨询"), ("1", "选地点"), ("1", "2月13日 周五【法律咨询日】（空20个）"), ("3", "王律师值班")],
    )
    assert "2月12日" not in replies[2]  # closed
    assert "1. 9:00-9:30（剩5个）" in replies[3]
    _status, day_page = await get(office, "/admin/bookings", place=await place_id(office, "station"), day=DAY)
    assert re.search(r"这个时间已不开放，请联系这位村民.*<b>张三</b>", day_page, re.S)
    mediator_csrf = sign_in(office, booking_settings, MEDIATOR_1)
    assert (await post(office, "/admin/bookings/specials", mediator_csrf, {"day": DAY, "kind": "closed"})).status == 403


async def test_admin_deletes_a_special_day_and_a_schedule_and_it_is_audited(
    office: Any, booking_settings: Settings
) -> None:
    from bot.storage.booking import BookingSpecialDay

    csrf = sign_in(office, booking_settings, ADMIN)
    await post(office, "/admin/bookings/specials", csrf, {"day": DAY, "kind": "closed", "title": "停电"})
    async with office.app[SERVICES].session_factory() as s:
        special = (await s.execute(select(BookingSpecialDay))).scalar_one()
        schedule = (await s.execute(select(BookingSchedule).where(BookingSchedule.capacity == 2))).scalar_one()
    resp = await post(office, f"/admin/bookings/specials/{special.id}/delete", csrf, {})
    _status, page = await get(office, resp.headers["Location"])
    assert "已删除这个特殊日期" in page
    resp = await post(office, f"/admin/bookings/schedules/{schedule.id}/delete", csrf, {})
    _status, page = await get(office, resp.headers["Location"])
    assert "已删除这段时间" in page
    assert (await post(office, f"/admin/bookings/schedules/{schedule.id}/delete", csrf, {})).status == 404
    async with office.app[SERVICES].session_factory() as s:
        assert (await s.execute(select(BookingSpecialDay))).first() is None
        assert await s.get(BookingSchedule, schedule.id) is None
    actions = await audit_actions(office)
    assert "booking.special.delete" in actions and "booking.schedule.delete" in actions


async def test_admin_adds_and_renames_a_service_and_a_place(office: Any, booking_settings: Settings) -> None:
    from bot.storage.booking import BookingService

    csrf = sign_in(office, booking_settings, ADMIN)
    assert (await post(office, "/admin/bookings/services", csrf, {"name": "遗嘱咨询", "bring": "身份证"})).status == 303
    assert (
        await post(office, "/admin/bookings/places", csrf, {"name": "西竹园村服务点", "village_id": "2"})
    ).status == 303
    async with office.app[SERVICES].session_factory() as s:
        service = (await s.execute(select(BookingService).where(BookingService.name == "遗嘱咨询"))).scalar_one()
        place = (await s.execute(select(BookingPlace).where(BookingPlace.name == "西竹园村服务点"))).scalar_one()
    assert service.active and service.bring == "身份证" and place.village_id == 2
    await post(office, f"/admin/bookings/services/{service.id}", csrf, {"name": "遗嘱与继承咨询", "active": "1"})
    async with office.app[SERVICES].session_factory() as s:
        renamed = await s.get(BookingService, service.id)
    assert renamed is not None and renamed.name == "遗嘱与继承咨询"
    assert (await post(office, "/admin/bookings/places/99999", csrf, {"name": "不存在"})).status == 404
    assert "booking.service.save" in await audit_actions(office)
