"""Sign-in, sign-out; argon2 hashes computed off the event loop; sign-in rate limits.

Every sign-in attempt is counted *before* the password is checked, atomically and in a store
every ``lawbot serve`` process shares (``services.attempts``: a database row, or Redis INCR), so
parallel guesses cannot slip past the count: within :data:`FAILURE_WINDOW` at most
:data:`MAX_FAILURES_PER_USER` attempts per address + account, :data:`MAX_ATTEMPTS_PER_ACCOUNT`
per account from anywhere, and :data:`MAX_FAILURES_PER_IP` per address. The right password clears
the account's count and gives its attempt back to the address. Failed sign-ins are also audit rows
(``auth.sign_in_failed``). Passwords must pass :func:`bot.admin.passwords.password_problem`.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from bot.admin import framework as adm
from bot.admin.passwords import password_problem
from bot.storage.models import utcnow
from bot.storage.staff import StaffUser

FAILURE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5  # per address + account
MAX_ATTEMPTS_PER_ACCOUNT = 10  # per account, whatever the address (guesses spread over many addresses)
MAX_FAILURES_PER_IP = 20  # per address, whatever the account

__all__ = ["password_problem"]

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


def _safe_next(target: str) -> str:
    """Only back-office paths: never an open redirect."""
    if target.startswith(adm.PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return adm.PREFIX + "/tickets"


def _attempt_keys(request: web.Request, username: str) -> tuple[str, str, str]:
    """(address + account, account, address) counter keys of a sign-in attempt."""
    ip = adm.client_ip(request)
    account = username.casefold()
    return f"signin:ip-acct:{ip}:{account}", f"signin:acct:{account}", f"signin:ip:{ip}"


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

    keys = _attempt_keys(request, username)
    attempts = adm.services(request).attempts
    here, anywhere, from_ip = await attempts.hit(keys, FAILURE_WINDOW)
    if here > MAX_FAILURES_PER_USER or anywhere > MAX_ATTEMPTS_PER_ACCOUNT or from_ip > MAX_FAILURES_PER_IP:
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
    await attempts.clear(keys[:2])
    await attempts.refund(keys[2:])
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
