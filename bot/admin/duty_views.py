"""值班: the township duty roster the judicial office keeps — who is on duty each weekday, special dates
(holidays, swaps), who is on duty now and the next days, and whether alerts can reach them (a WeChat that
can receive notices, a back-office page open)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import framework as adm
from bot.services import staff as staff_svc
from bot.services import tickets
from bot.storage.models import utcnow
from bot.storage.staff import ROLE_NAMES, StaffUser

DAYS_AHEAD = 7


async def reach_of(session: AsyncSession, people: list[StaffUser], now: dt.datetime, template: bool) -> dict[int, str]:
    """How an urgent alert reaches each of ``people`` right now, in words."""
    channels = await staff_svc.channels(session, [p.id for p in people], now, template_ready=template)
    out: dict[int, str] = {}
    for p in people:
        bits = []
        openid_channel = channels.get(p.id)
        if openid_channel is None:
            bits.append("没绑定微信")
        elif openid_channel[1] is None:
            bits.append("微信超过48小时没给公众号发消息，暂时收不到")
        else:
            bits.append("微信能马上收到")
        if staff_svc.is_present(p, now):
            bits.append("正开着后台")
        out[p.id] = "，".join(bits)
    return out


async def duty_page(request: web.Request) -> web.StreamResponse:
    now = utcnow()
    today = staff_svc.local_day(now)
    settings = adm.services(request).settings
    async with adm.db(request)() as session:
        people = list(
            (
                await session.execute(
                    select(StaffUser)
                    .where(StaffUser.active.is_(True), StaffUser.role.in_(["admin", "mediator"]))
                    .order_by(StaffUser.role, StaffUser.id)
                )
            ).scalars()
        )
        roster = await staff_svc.roster(session, today)
        current, alerted = await staff_svc.duty_or_admins(session, now)
        upcoming: list[tuple[dt.date, staff_svc.OnDuty | None]] = []
        for i in range(1, DAYS_AHEAD + 1):
            day = today + dt.timedelta(days=i)
            noon = dt.datetime.combine(day, dt.time(12), tickets.CHINA_TZ)
            upcoming.append((day, await staff_svc.on_duty(session, noon)))
        reach = await reach_of(session, alerted, now, bool(settings.wechat_staff_template_id))
    context: dict[str, Any] = {
        "people": people,
        "roles": ROLE_NAMES,
        "roster": roster,
        "weekdays": list(enumerate(staff_svc.WEEKDAY_NAMES)),
        "duty_now": current,
        "alerted": alerted,
        "reach": reach,
        "upcoming": upcoming,
        "weekday_names": staff_svc.WEEKDAY_NAMES,
        "today": today,
        "minutes": settings.urgent_response_minutes,
    }
    return await adm.render(request, "admin/duty.html", context, title="值班")


def _staff_id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


async def save_week(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    chosen = [_staff_id(adm.field_text(data, f"weekday_{i}", 12)) for i in range(7)]
    try:
        async with adm.db(request)() as session, session.begin():
            await staff_svc.set_weekdays(session, chosen)
            await adm.audit(session, request, "duty.week", object_type="duty", details={"weekdays": chosen})
    except staff_svc.DutyError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-duty")
    adm.flash(request, "每周值班已保存。")
    adm.redirect(request, "admin-duty")


async def add_day(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    raw, who = adm.field_text(data, "day", 10), _staff_id(adm.field_text(data, "staff", 12))
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        adm.flash(request, "请选一个日期。", "error")
        adm.redirect(request, "admin-duty")
    if who is None:
        adm.flash(request, "请选值班的人。", "error")
        adm.redirect(request, "admin-duty")
    try:
        async with adm.db(request)() as session, session.begin():
            await staff_svc.set_day(session, day, who)
            await adm.audit(
                session, request, "duty.day", object_type="duty", details={"day": day.isoformat(), "staff": who}
            )
    except staff_svc.DutyError as exc:
        adm.flash(request, str(exc), "error")
        adm.redirect(request, "admin-duty")
    adm.flash(request, f"{day.month}月{day.day}日的值班已安排。")
    adm.redirect(request, "admin-duty")


async def remove_day(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session, session.begin():
        day = await staff_svc.clear_day(session, int(request.match_info["id"]))
        if day is None:
            adm.not_found("没有这个值班安排。")
        await adm.audit(session, request, "duty.day_remove", object_type="duty", details={"day": day.isoformat()})
    adm.flash(request, f"已取消{day.month}月{day.day}日的特别安排（按每周值班）。")
    adm.redirect(request, "admin-duty")


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/duty", duty_page, name="admin-duty", roles=adm.ADMIN)
    adm.add_view(app, "POST", "/admin/duty/week", save_week, name="admin-duty-week", roles=adm.ADMIN)
    adm.add_view(app, "POST", "/admin/duty/day", add_day, name="admin-duty-day", roles=adm.ADMIN)
    adm.add_view(
        app, "POST", r"/admin/duty/day/{id:\d+}/delete", remove_day, name="admin-duty-day-remove", roles=adm.ADMIN
    )
    adm.add_nav(app, "值班", "admin-duty", roles=adm.ADMIN, order=65)
