"""End to end in a real headless Chromium: a mediator signs in on a phone-sized screen, answers a
villager's ticket, and the fake WeChat API receives the customer-service message."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.settings import Settings
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import CS_SEND, PASSWORD, add_staff, all_tickets, deliver

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: set to a directory to keep screenshots of the pages at phone width (for reviewing the layout)
SHOTS = os.environ.get("LAWBOT_SCREENSHOTS", "")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (Debian package: chromium)"),
]

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """One backend is enough here: the browser test is about the page, not the database."""
    return f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}"


async def test_a_mediator_answers_from_a_phone_browser_and_wechat_receives_it(
    client: Any, settings: Settings, fake_server: FakeWeChatServer
) -> None:
    from playwright.async_api import async_playwright

    await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    villager = Phone(client, settings, "o_browser_villager")
    await villager.subscribe("village_1")
    await dialog(
        villager,
        [
            ("转人工", "发生了什么事"),
            ("<script>alert(1)</script>邻居把排水沟堵了，雨水全流进我家院子", "好了"),
            ("好了", "手机号"),
            ("跳过", "请核对"),
            ("1", "已提交"),
        ],
    )
    [ticket] = await all_tickets(client)
    base = str(client.make_url("")).rstrip("/")
    dialogs: list[str] = []

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.goto(f"{base}/admin")
            assert "/admin/sign-in" in page.url
            await page.fill("input[name=username]", "zhang")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button:has-text('登录')")
            await page.wait_for_url(f"{base}/admin/tickets")
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/queue.png", full_page=True)

            await page.click(f"text={ticket.number}")
            await page.wait_for_url(f"{base}/admin/tickets/{ticket.id}")
            said = await page.inner_text(".msg.villager .body")
            assert said.startswith("<script>alert(1)</script>邻居把排水沟堵了")  # shown as text, never run
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375

            await page.fill("textarea[name=body]", "您好，我明天上午去现场看看，请在家等我。")
            await page.click("button:has-text('发送回复')")
            await page.wait_for_selector(".flash.ok")
            assert "已发出" in await page.inner_text(".flash.ok")
            assert "等待发送" in await page.inner_text(".msg.reply .delivery")

            # the state follows the reply on its way without a reload (a reload would lose a half-typed reply)
            await page.fill("textarea[name=body]", "还没写完的下一句")
            await deliver(client, settings)
            await page.locator(".msg.reply .delivery", has_text="已送达微信").wait_for(timeout=5000)
            assert await page.input_value("textarea[name=body]") == "还没写完的下一句"
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/ticket.png", full_page=True)
                for path, name in (("/admin/report", "report"), ("/admin/sign-in", "sign_in")):
                    await page.goto(f"{base}{path}")
                    await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)
        finally:
            await browser.close()

    [call] = fake_server.fake.successful(CS_SEND)
    assert call.body["touser"] == "o_browser_villager"
    assert "我明天上午去现场看看" in call.body["text"]["content"]
    assert dialogs == []  # the villager's script never ran
