"""In a real headless Chromium on a 390×844 phone screen: a village mediator submits the month's
零报告 from the 月排查 page; the township page (charts, tables) fits the phone and prints on A4.

With LAWBOT_SCREENSHOTS=DIR the pages are saved there (README's docs/screenshots come from this)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.keys import SERVICES
from bot.services.disputes.ledger import import_ledger
from bot.services.disputes.report import current_month
from bot.settings import Settings
from bot.storage.models import utcnow
from tests import test_tickets_support as support
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from tests.test_disputes_report import LEDGER, SHORT
from tests.test_tickets_support import PASSWORD, add_staff

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent"),
]
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
PHONE = {"width": 390, "height": 844}


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}"


async def sign_in(page: Any, base: str, username: str) -> None:
    await page.goto(f"{base}/admin")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:has-text('登录')")
    await page.wait_for_url(f"{base}/admin/**")


async def test_a_mediator_submits_a_zero_report_from_a_phone(client: Any, settings: Settings) -> None:
    from playwright.async_api import async_playwright
    from sqlalchemy import select

    from bot.storage.disputes import DisputeReport

    await add_staff(client, "laozhuang", "mediator", (4,), name="老庄村调解员")
    await add_staff(client, "chief", "admin", name="司法所")
    data = ("\ufeff" + ",".join(SHORT) + "\n" + "\n".join(",".join(r) for r in LEDGER)).encode()
    site = client.app[SERVICES].knowledge.kb.site
    async with client.app[SERVICES].session_factory() as session, session.begin():
        assert (await import_ledger(session, "l.csv", data, site=site, now=utcnow())).ok
    base = str(client.make_url("")).rstrip("/")
    month = current_month(utcnow())
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            page = await context.new_page()
            await sign_in(page, base, "laozhuang")
            await page.click("nav >> text=月排查")
            await page.wait_for_url(f"{base}/admin/disputes/monthly")
            assert "老庄村" in await page.inner_text("#submit")
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            await page.click("button:has-text('本月排查：无（零报告）')")
            await page.wait_for_selector(".flash.ok")
            assert f"老庄村 {month} 零报告（本月排查：无）已提交" in await page.inner_text(".flash.ok")
            assert "已报零报告" in await page.inner_text("#submit")
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/disputes_mediator_phone.png", full_page=True)

            chief = await (await browser.new_context(viewport=PHONE, is_mobile=True)).new_page()
            await sign_in(chief, base, "chief")
            await chief.goto(f"{base}/admin/disputes/monthly?month=2026-10")
            assert await chief.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            widths = await chief.eval_on_selector_all("img.chart", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths == [440, 440, 440]  # the three charts loaded (data: images under the CSP)
            if SHOTS:
                wide = await (await browser.new_context(viewport={"width": 1100, "height": 900})).new_page()
                await sign_in(wide, base, "chief")
                await wide.goto(f"{base}/admin/disputes/monthly?month=2026-10")
                await wide.screenshot(path=f"{SHOTS}/disputes_township.png", full_page=True)
                await chief.screenshot(path=f"{SHOTS}/disputes_township_phone.png", full_page=True)
                await wide.pdf(path=f"{SHOTS}/disputes_township.pdf", format="A4")
        finally:
            await browser.close()
    async with client.app[SERVICES].session_factory() as session:
        [report] = (await session.execute(select(DisputeReport))).scalars().all()
    assert (report.village_id, report.month, report.zero, report.via) == (4, month, True, "后台")
