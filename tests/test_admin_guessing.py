"""Guessing passwords (security review #3, #16): the limits hold against parallel guesses and against
guesses spread over many addresses, and an admin's password must be hard to guess.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.admin.auth import MAX_ATTEMPTS_PER_ACCOUNT, MAX_FAILURES_PER_USER
from bot.admin.passwords import password_problem
from bot.settings import Settings
from bot.storage.models import AttemptCounter
from bot.storage.staff import AuditLog
from tests import test_campaigns_chat
from tests import test_tickets_support as support
from tests.test_tickets_support import PASSWORD, Staffer, add_staff, sessions

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
browsers = support.browsers
app_client = test_campaigns_chat.app_client
session_factory = test_campaigns_chat.session_factory


@pytest.fixture
def settings(base_settings: Settings, database_url: str, fake_server: Any) -> Settings:
    # behind nginx: X-Forwarded-For names the address, so a test can play guessers at many addresses
    return base_settings.with_(database_url=database_url, wechat_api_base=fake_server.base_url, trust_proxy=True)


async def guess(client: Any, username: str, password: str, address: str) -> int:
    browser = Staffer(client)
    headers = {"X-Forwarded-For": address}
    try:
        async with browser.session.get(browser.url("/admin/sign-in"), headers=headers) as resp:
            browser._pick(await resp.text())
        form = {"_csrf": browser.csrf, "username": username, "password": password}
        async with browser.session.post(
            browser.url("/admin/sign-in"), data=form, headers=headers, allow_redirects=False
        ) as resp:
            return resp.status
    finally:
        await browser.close()


async def failed_sign_ins(client: Any) -> int:
    async with sessions(client)() as session:
        return int(
            (
                await session.execute(
                    select(func.count()).select_from(AuditLog).where(AuditLog.action == "auth.sign_in_failed")
                )
            ).scalar_one()
        )


async def test_forty_guesses_at_once_get_five_answers(client: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    statuses = await asyncio.gather(*(guess(client, "zhang", f"guess-{n}", "10.9.0.2") for n in range(40)))
    assert statuses.count(401) <= MAX_FAILURES_PER_USER, statuses
    assert statuses.count(429) >= 40 - MAX_FAILURES_PER_USER
    assert await failed_sign_ins(client) <= MAX_FAILURES_PER_USER
    assert await guess(client, "zhang", PASSWORD, "10.9.0.2") == 429  # even the right password waits now


async def test_guesses_from_many_addresses_are_limited_per_account(client: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    await add_staff(client, "li", "mediator", (1,))
    statuses = [await guess(client, "zhang", f"guess-{n}", f"10.9.1.{n}") for n in range(30)]
    assert statuses.count(401) == MAX_ATTEMPTS_PER_ACCOUNT
    assert set(statuses[MAX_ATTEMPTS_PER_ACCOUNT:]) == {429}
    assert await guess(client, "li", PASSWORD, "10.9.1.99") == 303  # other accounts are not locked out


async def test_the_right_password_clears_an_accounts_mistakes(client: Any) -> None:
    await add_staff(client, "zhang", "mediator", (1,))
    for n in range(MAX_FAILURES_PER_USER - 1):
        assert await guess(client, "zhang", f"typo-{n}", "10.9.2.1") == 401
    assert await guess(client, "zhang", PASSWORD, "10.9.2.1") == 303
    for n in range(MAX_FAILURES_PER_USER):  # a fresh run of mistakes is allowed again
        assert await guess(client, "zhang", f"typo-again-{n}", "10.9.2.1") == 401


async def test_with_redis_the_counts_live_in_redis(
    make_client: Any, settings: Settings, redis_url: str, tmp_path: Any
) -> None:
    import secrets

    settings = settings.with_(redis_url=redis_url)
    client = await make_client(settings)
    # a second `lawbot serve` process: only Redis is shared (its own database, so nothing else is)
    other = await make_client(settings.with_(database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite3'}"))
    name = "z" + secrets.token_hex(4)  # Redis outlives the test database: a name of its own
    for app in (client, other):
        await add_staff(app, name, "mediator", (1,))
    both = [client, other] * 20
    statuses = await asyncio.gather(*(guess(c, name, f"guess-{n}", "10.9.3.1") for n, c in enumerate(both)))
    assert statuses.count(401) <= MAX_FAILURES_PER_USER, statuses
    assert statuses.count(429) >= 40 - MAX_FAILURES_PER_USER, statuses
    async with sessions(client)() as session:
        assert not (await session.execute(select(AttemptCounter))).first()  # the table is not used


# ---------------------------------------------------------------- passwords
@pytest.mark.parametrize(
    ("password", "role", "problem"),
    [
        ("12345678", "admin", "12位"),
        ("123456789012", "admin", "太容易猜"),
        ("woaini131452", "admin", "太容易猜"),
        ("zhangsan-Qz7-2026", "admin", "用户名"),
        ("aaaaaaaaaaaa", "admin", "太容易猜"),
        ("qwertyuiop123", "admin", "常见"),
        ("1234567", "mediator", "8位"),
        ("5201314520", "volunteer", None),
        ("woaini1314", "volunteer", "常见"),
        ("zhangsan", "mediator", "用户名一样"),
        ("Lantern-Orchard-58!", "admin", None),
        ("pw-for-wang-1", "mediator", None),
    ],
)
def test_what_makes_a_password_too_weak(password: str, role: str, problem: str | None) -> None:
    found = password_problem(password, role=role, username="zhangsan")
    assert (found is None) if problem is None else (found is not None and problem in found), found


async def test_admin_create_user_refuses_a_weak_admin_password(engine: Any, database_url: str) -> None:
    from bot.cli import main

    env = {"LAWBOT_DATABASE_URL": database_url, "LAWBOT_ENV": "test"}
    runner = CliRunner()

    def run(*args: str, password: str) -> Any:
        return runner.invoke(main, ["admin", *args, "--password-stdin"], input=password + "\n", env=env)

    for weak in ("12345678", "password1234", "chief-Qz7-long-one"):
        result = await asyncio.to_thread(run, "create-user", "chief", "--role", "admin", password=weak)
        assert result.exit_code != 0, weak
    ok = await asyncio.to_thread(run, "create-user", "chief", "--role", "admin", password="Lantern-Orchard-58!")
    assert ok.exit_code == 0, ok.output
    reset = await asyncio.to_thread(run, "set-password", "chief", password="1234567890ab")
    assert reset.exit_code != 0 and "容易猜" in reset.output


async def test_the_staff_form_refuses_a_weak_admin_password(client: Any, browsers: Any) -> None:
    await add_staff(client, "chief", "admin")
    chief: Staffer = await browsers("chief")
    form = {
        "username": "deputy",
        "display_name": "副乡长",
        "role": "admin",
        "password": "12345678",
        "confirm": "12345678",
    }
    status, page = await chief.post("/admin/staff/new", form)
    assert status == 400 and "12位" in page
    strong = {**form, "password": "Lantern-Orchard-58!", "confirm": "Lantern-Orchard-58!"}
    status, page = await chief.post("/admin/staff/new", strong)
    assert status == 200 and "已新增 deputy" in page
    status, page = await chief.post(
        "/admin/password", {"current": PASSWORD, "password": "chief-password-1", "confirm": "chief-password-1"}
    )
    assert status == 400 and "用户名" in page


# ---------------------------------------------------------------- the campaign-preview binding code
async def test_a_wechat_account_gets_five_tries_at_a_binding_code_an_hour(app_client: Any, settings: Settings) -> None:
    from bot.services import staff as svc
    from bot.services.staff import MAX_BIND_FAILURES as BIND_ATTEMPTS
    from bot.storage.staff import StaffUser
    from tests.phone import Phone

    async with session_factory(app_client)() as s, s.begin():
        s.add(StaffUser(id=7, username="li", display_name="调解员李", password_hash="x", role="mediator"))
    async with session_factory(app_client)() as s, s.begin():
        code = await svc.binding_code(s, 7)
    guesser = Phone(app_client, settings, "o_guesser")
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c != code]
    for guess in wrong[:BIND_ATTEMPTS]:
        assert "不对或已过期" in await guesser.say(f"预览绑定 {guess}")
    assert "太多次" in await guesser.say(f"预览绑定 {code}")  # even the right code, from this account
    async with session_factory(app_client)() as s:
        assert await svc.staff_openid(s, 7) is None
    assert "绑定好了" in await Phone(app_client, settings, "o_staff_li").say(f"预览绑定 {code}")
