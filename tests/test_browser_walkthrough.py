"""Issue 13's walk, end to end, in a real headless Chromium as ``make run`` serves it: a villager writes an
urgent message in the simulator → the duty mediator's open back-office page shows the alert within 5 seconds
and the fake WeChat API received the notice to the mediator's bound WeChat → the mediator answers from the
banner → the answer appears in the villager's chat in the simulator without the villager typing."""

from __future__ import annotations

import time
from typing import Any

from bot.devtools.dev_wechat import DEV_WECHAT
from bot.keys import SERVICES
from bot.services import staff as staff_svc
from bot.settings import Settings
from tests.phone import Phone
from tests.sim_support import dev_client, dev_settings, make_dev_client, run_worker
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_browser_simulator import database_url, pytestmark
from tests.test_browser_urgent import sign_in
from tests.test_tickets_support import CS_SEND, add_staff, all_tickets, cheap_hashing

__all__ = ["cheap_hashing", "database_url", "dev_client", "dev_settings", "make_dev_client", "pytestmark"]

PHONE = {"width": 390, "height": 844}
VILLAGER = "o_sim_zhang_dama"  # the simulator's first sample villager, 张大娘
STAFF_WECHAT = "o_sim_staff_zhang"


async def test_urgent_message_alert_answer_and_the_answer_in_the_villagers_chat(
    dev_client: Any, dev_settings: Settings
) -> None:
    from playwright.async_api import async_playwright

    # a mediator of 观音寺村, on duty every day, whose own WeChat is bound to the back-office
    zhang = await add_staff(dev_client, "zhang", "mediator", (1,), name="张调解员")
    sessions = dev_client.app[SERVICES].session_factory
    async with sessions() as session, session.begin():
        await staff_svc.set_weekdays(session, [zhang] * 7)
        code = await staff_svc.binding_code(session, zhang)
    assert "绑定好了" in await Phone(dev_client, dev_settings, STAFF_WECHAT).say(f"{staff_svc.BIND_WORD} {code}")
    base = f"http://127.0.0.1:{dev_settings.port}"

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            office = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
            await sign_in(office, base, "zhang")
            assert await office.is_hidden("#alert-banner")

            sim = await (await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)).new_page()
            await sim.goto(f"{base}/simulator")
            await sim.locator("#sender option").nth(3).wait_for(state="attached")
            await sim.select_option("#sender", VILLAGER)
            await sim.select_option("#scene", "village_1")
            await sim.click("#follow")
            await sim.locator(".msg.bot", has_text="观音寺村").first.wait_for()

            await sim.fill("#text", "我丈夫打我，现在还在打")
            await sim.click("#send")
            told = sim.locator(".msg.bot", has_text="已经通知了乡里值班的工作人员")
            await told.last.wait_for()
            told_at = time.monotonic()
            assert "110" in await told.last.inner_text()

            # the duty mediator's open page: the red banner within 5 seconds
            await office.wait_for_selector("#alert-banner:not([hidden])", timeout=5000)
            assert time.monotonic() - told_at <= 5.0
            [ticket] = await all_tickets(dev_client)
            assert ticket.number in await office.inner_text("#alert-banner")

            # and WeChat got the notice for the mediator's own WeChat
            await run_worker(dev_client, dev_settings)
            notices = [c for c in dev_client.app[DEV_WECHAT].successful(CS_SEND) if c.body["touser"] == STAFF_WECHAT]
            assert notices and ticket.number in notices[-1].body["text"]["content"]

            # the mediator opens the ticket from the banner and answers
            await office.click(f"#alert-banner >> text={ticket.number}")
            await office.wait_for_url(f"{base}/admin/tickets/{ticket.id}")
            await office.fill("textarea[name=body]", "您现在安全吗？我马上给您打电话，派出所也已经联系了。")
            await office.click("button:has-text('发送回复')")
            await office.wait_for_selector(".flash.ok")
            await run_worker(dev_client, dev_settings)  # make run's in-process worker

            # the answer appears in the villager's chat; nobody typed
            typed = await sim.input_value("#text")
            answer = sim.locator(".msg.bot[data-via=cs]", has_text="我马上给您打电话")
            await answer.wait_for(timeout=5000)
            assert await sim.input_value("#text") == typed == ""
        finally:
            await browser.close()
