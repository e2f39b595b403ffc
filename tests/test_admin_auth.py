"""Signing in and out of the back-office: cookies, rate limits, CSRF, sessions that end."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from yarl import URL

from bot.admin import framework
from bot.settings import Settings
from bot.storage.staff import AuditLog
from tests import test_tickets_support as support
from tests.test_tickets_support import PASSWORD, Staffer, add_staff, sessions

pytestmark = support.sqlite_only
browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


async def test_sign_in_sets_a_private_cookie_and_sign_out_ends_it(client: Any, browsers: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    zhang: Staffer = await browsers()
    await zhang.get("/admin/sign-in")
    async with zhang.session.post(
        zhang.url("/admin/sign-in"),
        data={"username": "zhang", "password": PASSWORD, "_csrf": zhang.csrf},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/admin/tickets"
        cookie = resp.cookies[framework.COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/admin"
    assert not cookie["secure"]  # plain http in tests; see the TLS test below
    stolen = cookie.value
    status, page = await zhang.get("/admin/tickets")
    assert status == 200 and "张调解员" in page
    status, page = await zhang.post("/admin/sign-out")
    assert status == 200 and "登录" in page
    # the old cookie is worthless now, even replayed
    thief = Staffer(client)
    thief.session.cookie_jar.update_cookies({framework.COOKIE_NAME: stolen}, response_url=client.make_url("/admin"))
    resp = await thief.get_raw("/admin/tickets")
    assert resp.status == 303 and resp.headers["Location"].startswith("/admin/sign-in")
    await thief.close()


async def test_the_cookie_is_secure_behind_tls(make_client: Any, settings: Settings) -> None:
    client = await make_client(settings.with_(trust_proxy=True))
    resp = await client.get("/admin/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert resp.status == 200
    assert resp.cookies[framework.COOKIE_NAME]["secure"]


async def test_wrong_passwords_are_refused_then_rate_limited_per_ip_and_username(client: Any, browsers: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await add_staff(client, "li", "mediator", (1,))
    guesser: Staffer = await browsers()
    for _ in range(5):
        status, page = await guesser.sign_in("zhang", "wrong-password")
        assert status == 401 and "用户名或密码不对" in page
    status, page = await guesser.sign_in("zhang")  # even the right password now waits
    assert status == 429 and "15分钟" in page
    status, page = await guesser.sign_in("li")  # another account from the same place still works
    assert status == 200 and "退出" in page
    status, page = await (await browsers()).sign_in("nobody", "whatever-1")
    assert status == 401  # an unknown user looks the same as a wrong password
    async with sessions(client)() as session:
        failed = (
            await session.execute(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "auth.sign_in_failed")
            )
        ).scalar_one()
    assert failed == 6


async def test_every_form_needs_the_csrf_token(client: Any, browsers: Any) -> None:
    await add_staff(client, "chief", "admin")
    chief: Staffer = await browsers("chief")
    status, page = await chief.post("/admin/villages", {"id": "20", "name": "新村"}, csrf=False)
    assert status == 403 and "安全校验" in page
    status, _ = await chief.post("/admin/villages", {"id": "20", "name": "新村", "_csrf": "forged"}, csrf=False)
    assert status == 403
    async with chief.session.post(
        chief.url("/admin/villages"),
        data={"id": "20", "name": "新村", "_csrf": chief.csrf},
        headers={"Origin": "http://evil.example"},
    ) as resp:
        assert resp.status == 403
    status, page = await chief.post("/admin/villages", {"id": "20", "name": "新村"})
    assert status == 200 and "已新增 新村" in page
    # sign-in itself is protected too (login CSRF)
    stranger: Staffer = await browsers()
    status, _ = await stranger.post("/admin/sign-in", {"username": "chief", "password": PASSWORD}, csrf=False)
    assert status == 403


async def test_anonymous_visitors_are_sent_to_sign_in_and_back(client: Any, browsers: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    visitor: Staffer = await browsers()
    resp = await visitor.get_raw("/admin/report?month=2026-01")
    location = URL(resp.headers["Location"])
    assert resp.status == 303 and location.path == "/admin/sign-in"
    assert location.query["next"] == "/admin/report?month=2026-01"
    await visitor.get(resp.headers["Location"])
    async with visitor.session.post(
        visitor.url("/admin/sign-in"),
        data={"username": "zhang", "password": PASSWORD, "next": "/admin/report?month=2026-01", "_csrf": visitor.csrf},
        allow_redirects=False,
    ) as signed_in:
        assert signed_in.headers["Location"] == "/admin/report?month=2026-01"
    # no open redirect
    other: Staffer = await browsers()
    await other.get("/admin/sign-in")
    async with other.session.post(
        other.url("/admin/sign-in"),
        data={"username": "zhang", "password": PASSWORD, "next": "//evil.example/x", "_csrf": other.csrf},
        allow_redirects=False,
    ) as signed_in:
        assert signed_in.headers["Location"] == "/admin/tickets"


async def test_signed_out_nothing_says_which_back_office_pages_exist(client: Any, browsers: Any) -> None:
    """A visitor who is not signed in learns nothing from the status: a page that exists and one that
    does not both lead to the sign-in (no enumeration of routes such as a case's documents)."""
    visitor: Staffer = await browsers()
    for path in ("/admin/disputes/1/documents/agreement.docx", "/admin/no-such-page", "/admin/disputes/1/x/y"):
        resp = await visitor.get_raw(path)
        assert resp.status == 303, path
        assert URL(resp.headers["Location"]).path == "/admin/sign-in"


async def test_pages_carry_security_headers(client: Any, browsers: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    zhang: Staffer = await browsers("zhang")
    resp = await zhang.get_raw("/admin/tickets")
    assert resp.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    css = await zhang.get_raw("/admin/static/admin.css")
    assert css.status == 200 and "max-width" in (await css.text())


async def test_deactivating_or_resetting_a_password_ends_sessions(client: Any, browsers: Any) -> None:
    await add_staff(client, "chief", "admin")
    zhang_id = await add_staff(client, "zhang", "mediator", (1,))
    chief: Staffer = await browsers("chief")
    zhang: Staffer = await browsers("zhang")
    edit = {"role": "mediator", "village": "1", "display_name": "张调解员", "active": "1"}
    status, _ = await chief.post(f"/admin/staff/{zhang_id}", edit)
    assert status == 200
    assert (await zhang.get_raw("/admin/tickets")).status == 200  # an ordinary edit keeps them signed in
    await chief.post(f"/admin/staff/{zhang_id}", {**edit, "active": ""})  # "账号可用" unticked
    assert (await zhang.get_raw("/admin/tickets")).status == 303
    status, _ = await zhang.sign_in("zhang")
    assert status == 401


async def test_changing_my_password(client: Any, browsers: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    zhang: Staffer = await browsers("zhang")
    status, page = await zhang.post(
        "/admin/password", {"current": "wrong", "password": "new-password-1", "confirm": "new-password-1"}
    )
    assert status == 400 and "当前密码不对" in page
    status, page = await zhang.post(
        "/admin/password", {"current": PASSWORD, "password": "new-password-1", "confirm": "new-password-1"}
    )
    assert status == 200 and "密码已修改" in page
    other = Staffer(client)
    status, _ = await other.sign_in("zhang", "new-password-1")
    assert status == 200
    await other.close()
