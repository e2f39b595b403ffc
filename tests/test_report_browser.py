"""The monthly report in a real headless Chromium, on a year of data: on a 1280-px desktop and a 390×844
phone the charts load whole, nothing is cut at the right edge (the menu wraps, every item visible),
village names stay on one line, and printing gives an A4 page per section.

With LAWBOT_SCREENSHOTS=DIR the pages are saved there (README's docs/screenshots come from this)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bot.keys import SERVICES
from tests import test_tickets_support as support
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from tests.test_disputes_browser import sign_in
from tests.test_report import LAST
from tests.test_report_support import fill_year
from tests.test_tickets_support import add_staff

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (Debian package: chromium)"),
]
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

#: [right edge of the widest element, nav items past the right edge, charts not fully loaded or cut,
#:  village cells on more than one line]
LAYOUT = """(width) => {
  const right = Math.max(...[...document.querySelectorAll('body *')]
      .filter(e => !e.closest('.scroll')).map(e => e.getBoundingClientRect().right));
  const nav = [...document.querySelectorAll('.nav a, .nav button')]
      .filter(e => e.getBoundingClientRect().right > width + 0.5).map(e => e.textContent.trim());
  const charts = [...document.querySelectorAll('img.chart')]
      .filter(i => !i.complete || i.naturalWidth === 0 || i.getBoundingClientRect().right > width + 0.5)
      .map(i => i.alt.slice(0, 20));
  const wrapped = [...document.querySelectorAll('.table.villages tbody td:first-child')]
      .filter(td => {
        const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length > 1;
      })
      .map(td => td.textContent);
  return [right, nav, charts, wrapped];
}"""


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'lawbot.sqlite3'}"


async def test_the_report_fits_a_desktop_and_a_phone_and_prints(client: Any) -> None:
    from playwright.async_api import async_playwright

    services = client.app[SERVICES]
    await fill_year(services.session_factory, services.knowledge.kb, LAST, tickets=1500, questions=4000)
    await add_staff(client, "chief", "admin", name="乡司法所")
    base = str(client.make_url("")).rstrip("/")
    url = f"{base}/admin/report?month={LAST.label}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, viewport, mobile in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
                context = await browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
                page = await context.new_page()
                await sign_in(page, base, "chief")
                await page.goto(url)
                await page.wait_for_load_state("load")
                width = viewport["width"]
                assert await page.evaluate("document.documentElement.scrollWidth") <= width, name
                right, nav, charts, wrapped = await page.evaluate(LAYOUT, width)
                assert right <= width + 0.5, (name, right)
                assert nav == [], f"{name}: menu items cut at the right edge: {nav}"
                assert charts == [], f"{name}: charts not loaded or cut: {charts}"
                assert wrapped == [], f"{name}: village names wrap: {wrapped}"
                assert await page.eval_on_selector_all("img.chart", "imgs => imgs.length") == 10
                if SHOTS:
                    await page.screenshot(path=f"{SHOTS}/report_{name}.png", full_page=True)
                if name == "desktop":
                    await page.emulate_media(media="print")
                    assert await page.eval_on_selector(".nav", "n => getComputedStyle(n).display") == "none"
                    breaks = await page.eval_on_selector_all(
                        "section.page", "s => s.map(e => getComputedStyle(e).breakAfter)"
                    )
                    assert breaks == ["page", "page", "page", "page", "auto"]
                    pdf = await page.pdf(format="A4", print_background=True)
                    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
                    assert pages >= 5, pages  # one section a page (a long section may take two)
                    if SHOTS:
                        with open(f"{SHOTS}/report.pdf", "wb") as out:
                            out.write(pdf)
                await context.close()
        finally:
            await browser.close()
