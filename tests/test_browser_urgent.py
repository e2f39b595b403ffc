"""End to end in a real headless Chromium (issue 13): the duty mediator has a back-office page open on a
phone-sized screen; a villager writes that her husband is beating her; within 5 seconds the open page shows
the red banner and sounds the alarm, and the fake WeChat API receives the notice to the mediator's bound
WeChat; the mediator opens the ticket from the banner (the alert ends) and answers; the villager's WeChat
receives the answer."""

from __future__ import annotations

import re
import time
from typing import Any

from bot.devtools.fake_wechat import FakeWeChatServer
from bot.services import staff as staff_svc
from bot.settings import Settings
from tests import test_browser
from tests import test_tickets_support as support
from tests.phone import Phone
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from tests.test_tickets_support import CS_SEND, PASSWORD, add_staff, all_tickets, deliver, sessions

pytestmark = test_browser.pytestmark  # a real Chromium; skipped where it is absent
database_url = test_browser.database_url  # SQLite only: the test is about the page
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
PHONE_SIZE = {"width": 390, "height": 844}


async def sign_in(page: Any, base: str, username: str) -> None:
    await page.goto(f"{base}/admin")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:has-text('登录')")
    await page.wait_for_url(f"{base}/admin/tickets")


async def test_the_duty_mediators_open_page_alerts_within_5_seconds_and_wechat_gets_the_notice(
    client: Any, settings: Settings, fake_server: FakeWeChatServer
) -> None:
    from playwright.async_api import async_playwright

    staff_id = await add_staff(client, "zhang", "mediator", (1,), name="张调解员")
    async with sessions(client)() as session, session.begin():
        await staff_svc.set_weekdays(session, [staff_id] * 7)  # on duty every day
    villager = Phone(client, settings, "o_browser_beaten")
    await villager.subscribe("village_1")
    base = str(client.make_url("")).rstrip("/")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            page = await browser.new_page(viewport=PHONE_SIZE, is_mobile=True, has_touch=True)
            await sign_in(page, base, "zhang")

            # 我的账号: bind the WeChat with the code shown there
            await page.click("nav >> text=我的账号")
            assert "还没绑定微信" in await page.inner_text("#wechat")
            await page.click("button:has-text('绑定微信')")
            code = re.search(r"绑定微信 (\d{6})", await page.inner_text(".code"))
            assert code
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/account_code.png", full_page=True)
            assert "绑定好了" in await Phone(client, settings, "o_staff_zhang").say(f"绑定微信 {code.group(1)}")
            await page.reload()
            assert "已绑定微信" in await page.inner_text("#wechat")
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/account_bound.png", full_page=True)

            await page.click("nav >> text=工单")
            assert await page.is_hidden("#alert-banner")
            reply = await villager.say("我丈夫打我")
            told_at = time.monotonic()
            assert "已经通知了乡里值班的工作人员" in reply
            await page.wait_for_selector("#alert-banner:not([hidden])", timeout=5000)
            assert time.monotonic() - told_at <= 5.0
            [ticket] = await all_tickets(client)
            banner = await page.inner_text("#alert-banner")
            assert ticket.number in banner and "观音寺村" in banner and "正在发生的暴力" in banner
            await page.wait_for_function(
                "document.getElementById('alert-banner').dataset.soundState === 'playing'", timeout=5000
            )
            assert (await page.title()).startswith("【紧急】")
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/urgent_banner.png")

            await deliver(client, settings)
            [notice] = fake_server.fake.successful(CS_SEND)
            assert notice.body["touser"] == "o_staff_zhang" and ticket.number in notice.body["text"]["content"]

            await page.click(f"#alert-banner >> text={ticket.number}")
            await page.wait_for_url(f"{base}/admin/tickets/{ticket.id}")
            assert await page.is_hidden("#alert-banner")  # opened: the alert is over
            await page.fill("textarea[name=body]", "您现在安全吗？我马上给您打电话，派出所也已经联系了。")
            await page.click("button:has-text('发送回复')")
            await page.wait_for_selector(".flash.ok")
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/urgent_ticket.png", full_page=True)
                await add_staff(client, "li", "admin", name="李所长")
                admin = await browser.new_page(viewport=PHONE_SIZE, is_mobile=True, has_touch=True)
                await sign_in(admin, base, "li")
                await admin.goto(f"{base}/admin/duty")
                await admin.screenshot(path=f"{SHOTS}/duty.png", full_page=True)
        finally:
            await browser.close()

    await deliver(client, settings)
    to_villager = [c for c in fake_server.fake.successful(CS_SEND) if c.body["touser"] == "o_browser_beaten"]
    assert len(to_villager) == 1 and "我马上给您打电话" in to_villager[0].body["text"]["content"]
