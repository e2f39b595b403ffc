"""Sign-in, sign-out; argon2 hashes computed off the event loop; sign-in rate limits.

Failed sign-ins are audit rows (``auth.sign_in_failed``); the limits count them, so they hold across
every ``lawbot serve`` process: :data:`MAX_FAILURES_PER_USER` per IP + username and
:data:`MAX_FAILURES_PER_IP` per IP within :data:`FAILURE_WINDOW`.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from bot.admin import framework as adm
from bot.storage.models import utcnow
from bot.storage.staff import AuditLog, StaffUser

FAILURE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 20
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# verified against when the username is unknown, so both cases take the same time (made on first use)
_dummy: list[str] = []


def set_hasher(hasher: PasswordHasher) -> None:
    """Tests use cheap parameters; production keeps argon2-cffi's defaults (RFC 9106 low-memory)."""
    global _hasher
    _hasher = hasher
    _dummy.clear()


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash("lawbot-no-such-user"))
    return _dummy[0]


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    ok = await asyncio.to_thread(_verify, password_hash or _dummy_hash(), password)
    return ok and password_hash is not None


def password_problem(password: str, confirm: str | None = None) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少{MIN_PASSWORD_LENGTH}位。"
    if confirm is not None and password != confirm:
        return "两次输入的密码不一样。"
    return None


def _safe_next(target: str) -> str:
    """Only back-office paths: never an open redirect."""
    if target.startswith(adm.PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return adm.PREFIX + "/tickets"


async def _failures(request: web.Request, username: str) -> tuple[int, int]:
    since = utcnow() - FAILURE_WINDOW
    ip = adm.client_ip(request)
    async with adm.db(request)() as session:
        per_ip = (
            await session.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "auth.sign_in_failed", AuditLog.ip == ip, AuditLog.at >= since)
            )
        ).scalar_one()
        per_user = (
            await session.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.action == "auth.sign_in_failed",
                    AuditLog.ip == ip,
                    AuditLog.object_id == username,
                    AuditLog.at >= since,
                )
            )
        ).scalar_one()
    return int(per_user), int(per_ip)


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if adm.maybe_user(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next", "")))
    return await adm.render(
        request,
        "admin/sign_in.html",
        {"next": _safe_next(request.query.get("next", "")), "username": "", "error": ""},
        title="登录",
    )


async def sign_in(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    username = adm.field_text(data, "username", 64)
    password = data.get("password", "")
    password = password if isinstance(password, str) else ""
    target = _safe_next(adm.field_text(data, "next", 500))

    async def refuse(error: str, status: int) -> web.Response:
        return await adm.render(
            request,
            "admin/sign_in.html",
            {"next": target, "username": username, "error": error},
            title="登录",
            status=status,
        )

    per_user, per_ip = await _failures(request, username)
    if per_user >= MAX_FAILURES_PER_USER or per_ip >= MAX_FAILURES_PER_IP:
        async with adm.db(request)() as session, session.begin():
            await adm.audit(session, request, "auth.sign_in_blocked", object_type="staff", object_id=username)
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        return await refuse(f"尝试次数太多，请{minutes}分钟后再试。忘记密码请找乡管理员重设。", 429)
    async with adm.db(request)() as session:
        staff = (await session.execute(select(StaffUser).where(StaffUser.username == username))).scalar_one_or_none()
    ok = await verify_password(staff.password_hash if staff else None, password)
    if staff is None or not ok or not staff.active:
        async with adm.db(request)() as session, session.begin():
            await adm.audit(session, request, "auth.sign_in_failed", object_type="staff", object_id=username)
        return await refuse("用户名或密码不对。", 401)
    async with adm.db(request)() as session, session.begin():
        fresh = await session.get(StaffUser, staff.id)
        assert fresh is not None
        fresh.last_sign_in_at = utcnow()
        if _hasher.check_needs_rehash(fresh.password_hash):
            fresh.password_hash = await hash_password(password)
        adm.sign_in_session(request, fresh)
        request[adm.USER] = adm.Staff(fresh.id, fresh.username, fresh.display_name, fresh.role, ())
        await adm.audit(session, request, "auth.sign_in", object_type="staff", object_id=fresh.id)
    raise web.HTTPSeeOther(target)


async def sign_out(request: web.Request) -> web.StreamResponse:
    """Sign out — on every device: a copied cookie is worthless afterwards (sessions live in the cookie)."""
    me = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        staff = await session.get(StaffUser, me.id)
        if staff is not None:
            staff.session_epoch += 1
        await adm.audit(session, request, "auth.sign_out", object_type="staff", object_id=me.id)
    adm.session_of(request).invalidate()
    raise web.HTTPSeeOther(adm.url(request, "admin-login"))


async def home(request: web.Request) -> web.StreamResponse:
    if adm.user(request).role == "leader" and "admin-disputes-queue" in request.app.router:
        adm.redirect(request, "admin-disputes-queue")  # 三长联动 members start at their queue
    adm.redirect(request, "admin-tickets")


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/sign-in", sign_in_page, name="admin-login", public=True)
    adm.add_view(app, "POST", "/admin/sign-in", sign_in, name="admin-login-post", public=True)
    adm.add_view(app, "POST", "/admin/sign-out", sign_out, name="admin-logout", roles=adm.ALL)
    adm.add_view(app, "GET", "/admin", home, name="admin-home", roles=adm.ALL)
