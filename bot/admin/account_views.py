"""我的账号: every staff member's own page — who they are, their WeChat binding (get a 绑定微信 code to send
from their phone, see whether alerts can reach it now, unbind), their duty days, and the password change."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.admin import framework as adm
from bot.admin.auth import hash_password, verify_password
from bot.admin.passwords import password_problem
from bot.services import staff as staff_svc
from bot.storage.models import utcnow
from bot.storage.staff import DutyShift, StaffUser


async def _context(request: web.Request, error: str = "") -> dict[str, Any]:
    me = adm.user(request)
    now = utcnow()
    settings = adm.services(request).settings
    async with adm.db(request)() as session:
        person = await adm.load_staff(session, me.id)
        assert person is not None
        binding = await staff_svc.binding(session, me.id, now=now)
        duty = await staff_svc.on_duty(session, now)
        shifts = list((await session.execute(select(DutyShift).where(DutyShift.staff_id == me.id))).scalars())
    today = staff_svc.local_day(now)
    weekdays = [
        staff_svc.WEEKDAY_NAMES[s.weekday]
        for s in sorted(shifts, key=lambda s: s.weekday or 0)
        if s.weekday is not None
    ]
    days = sorted(s.day for s in shifts if s.day is not None and s.day >= today)
    return {
        "person": person,
        "binding": binding,
        "in_window": binding.in_window(now),
        "template_ready": bool(settings.wechat_staff_template_id),
        "masked_openid": _mask(binding.openid),
        "bind_word": staff_svc.BIND_WORD,
        "code_minutes": int(staff_svc.BIND_CODE_TTL.total_seconds() // 60),
        "on_duty_now": duty is not None and duty.staff.id == me.id,
        "duty_weekdays": weekdays,
        "duty_days": days,
        "error": error,
    }


def _mask(openid: str | None) -> str:
    if not openid:
        return ""
    return openid[:4] + "…" + openid[-3:] if len(openid) > 8 else "…"


async def account_page(request: web.Request) -> web.StreamResponse:
    return await adm.render(request, "admin/account.html", await _context(request), title="我的账号")


async def wechat_code(request: web.Request) -> web.StreamResponse:
    me = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        await staff_svc.binding_code(session, me.id)
        await adm.audit(session, request, "staff.wechat_bind_code", object_type="staff", object_id=me.id)
    adm.redirect(request, "admin-account")


async def wechat_unbind(request: web.Request) -> web.StreamResponse:
    me = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        await staff_svc.unbind(session, me.id)
        await adm.audit(session, request, "staff.wechat_unbind", object_type="staff", object_id=me.id)
    adm.flash(request, "已解除绑定：这个微信不会再收到工单提醒。")
    adm.redirect(request, "admin-account")


async def password_page(request: web.Request) -> web.StreamResponse:
    """The old 改密码 address: the form is on 我的账号 now."""
    adm.redirect(request, "admin-account")


async def change_password(request: web.Request) -> web.StreamResponse:
    me = adm.user(request)
    data = await adm.form(request)
    current = str(data.get("current", ""))
    new, confirm = str(data.get("password", "")), str(data.get("confirm", ""))
    problem = password_problem(new, confirm, role=me.role, username=me.username, display_name=me.display_name)
    async with adm.db(request)() as session, session.begin():
        staff = await session.get(StaffUser, me.id)
        assert staff is not None
        if not await verify_password(staff.password_hash, current):
            problem = "当前密码不对。"
        if problem is None:
            staff.password_hash = await hash_password(new)
            staff.session_epoch += 1  # other devices are signed out
            adm.sign_in_session(request, staff)
            await adm.audit(session, request, "staff.password_change", object_type="staff", object_id=staff.id)
    # (render only outside the transaction: SQLite has one pooled connection)
    if problem:
        return await adm.render(
            request, "admin/account.html", await _context(request, problem), title="我的账号", status=400
        )
    adm.flash(request, "密码已修改，其他设备上的登录已退出。")
    adm.redirect(request, "admin-account")


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/account", account_page, name="admin-account", roles=adm.ALL)
    adm.add_view(app, "POST", "/admin/account/wechat", wechat_code, name="admin-account-wechat", roles=adm.ALL)
    adm.add_view(
        app, "POST", "/admin/account/wechat/unbind", wechat_unbind, name="admin-account-wechat-unbind", roles=adm.ALL
    )
    adm.add_view(app, "GET", "/admin/password", password_page, name="admin-password", roles=adm.ALL)
    adm.add_view(app, "POST", "/admin/password", change_password, name="admin-password-post", roles=adm.ALL)
