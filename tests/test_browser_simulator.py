"""The simulator in a real headless Chromium on a phone-sized screen (390×844), as ``make run`` serves it: a
villager subscribes and asks for a person, a mediator answers in the back-office, and the answer appears in
the villager's chat without the villager typing anything."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bot.settings import Settings
from tests.sim_support import dev_client, dev_settings, make_dev_client, run_worker
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_tickets_support import PASSWORD, Staffer, add_staff, all_tickets, cheap_hashing

__all__ = ["cheap_hashing", "dev_client", "dev_settings", "make_dev_client"]

#: set to a directory to keep screenshots (docs/screenshots/ holds the ones README shows)
SHOTS = os.environ.get("LAWBOT_SCREENSHOTS", "")
WIDTH, HEIGHT = 390, 844

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (Debian package: chromium)"),
]


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """One backend is enough here: the test is about the page."""
    return f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}"


async def inside_the_phone(page: Any, selector: str) -> bool:
    """The element is visible and lies wholly inside the phone frame and the screen."""
    box = await page.locator(selector).bounding_box()
    frame = await page.locator("#phone").bounding_box()
    return (
        box is not None
        and frame is not None
        and await page.locator(selector).is_visible()
        and box["x"] >= frame["x"]
        and box["y"] >= frame["y"]
        and box["x"] + box["width"] <= min(frame["x"] + frame["width"], WIDTH)
        and box["y"] + box["height"] <= min(frame["y"] + frame["height"], HEIGHT)
    )


async def test_a_staff_reply_appears_in_the_simulator_without_typing(dev_client: Any, dev_settings: Settings) -> None:
    from playwright.async_api import async_playwright, expect

    await add_staff(dev_client, "zhang", "mediator", (1,), name="张调解员")
    base = f"http://127.0.0.1:{dev_settings.port}"

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": WIDTH, "height": HEIGHT}, is_mobile=True, has_touch=True
            )
            page = await context.new_page()
            await page.goto(f"{base}/simulator")
            await page.locator("#sender option").nth(3).wait_for(state="attached")  # the villagers are listed
            # everything a newcomer needs is on the screen, inside the phone
            for selector in ("#follow", "#sender", "#scene", "#text", "#send", "#menu"):
                assert await inside_the_phone(page, selector), selector
            assert await page.evaluate("document.documentElement.scrollWidth") <= WIDTH
            assert await page.evaluate("document.documentElement.scrollHeight") <= HEIGHT
            assert await page.locator("#sender option:checked").inner_text() == "张大娘"

            async def say(text: str, expect: str) -> None:
                await page.fill("#text", text)
                await page.click("#send")
                await page.locator(".msg.bot", has_text=expect).last.wait_for()

            await page.select_option("#scene", "village_1")
            await page.click("#follow")
            await page.locator(".msg.bot", has_text="观音寺村").first.wait_for()
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/simulator_first_view.png")
            await say("转人工", "发生了什么事")
            await say("邻居把排水沟堵了，雨水全流进我家院子", "好了")
            await say("好了", "手机号")
            await say("跳过", "请核对")
            await say("1", "已提交")
            [ticket] = await all_tickets(dev_client)

            staffer = Staffer(dev_client)  # the mediator, on another device
            try:
                assert (await staffer.sign_in("zhang", PASSWORD))[0] == 200
                status, _ = await staffer.post(
                    f"/admin/tickets/{ticket.id}/reply", {"body": "您好，我明天上午去现场看看。"}
                )
                assert status == 200
            finally:
                await staffer.close()
            await run_worker(dev_client, dev_settings)  # make run's in-process worker sends it to "WeChat"

            reply = page.locator(".msg.bot[data-via=cs]", has_text="我明天上午去现场看看")
            await reply.wait_for(timeout=5000)  # the page polls every second; nobody typed
            assert "客服消息" in await reply.inner_text() and ticket.number in await reply.inner_text()
            assert await page.input_value("#text") == ""
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/simulator_staff_reply.png")

            # a reload keeps the chat; 往期普法 in the menu opens the archive of this server
            await page.reload()
            await page.locator(".msg.bot[data-via=cs]", has_text="我明天上午去现场看看").wait_for()
            await page.click("#menu .top-btn:has-text('普法活动')")
            async with page.expect_popup() as popup_info:
                await page.click("#menu a:has-text('往期普法')")
            popup = await popup_info.value
            await popup.wait_for_load_state()
            assert popup.url == f"{base}/campaigns"
            assert "404" not in await popup.title()

            # a new villager, by name, from the picker
            await page.select_option("#sender", "__new__")
            await page.fill("#newname", "赵四")
            await page.click("#addvillager")
            await expect(page.locator("#sender option:checked")).to_have_text("赵四")
            assert await page.locator(".msg.bot").count() == 0  # a fresh chat
        finally:
            await browser.close()
