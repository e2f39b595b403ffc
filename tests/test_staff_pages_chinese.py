"""Staff pages speak plain Chinese: a crawler signs in as each kind of staff member, follows every link of
the back-office (with a year of data, tickets worked on, a dispute, a campaign, bookings, knowledge gaps
and an audit trail behind it) and fails on any Latin word in the visible text — English status codes,
FAQ slugs, openids, server paths, file names — and on any page that does not open.

The few Latin words staff do see are product names (Excel, CSV, Word, WPS), the paper size A4, the QR
code scene villagers' WeChat needs (village_3), and what staff typed themselves: their sign-in names.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from lxml import html as lxml_html
from sqlalchemy import select

from bot.keys import SERVICES
from bot.services import reports
from bot.services import tickets as svc
from bot.storage.booking import Booking
from bot.storage.models import Villager, utcnow
from tests import test_tickets_support as support
from tests.phone import Phone
from tests.test_campaigns_admin import FORM as CAMPAIGN_FORM
from tests.test_report_support import fill_year
from tests.test_tickets_support import Staffer, add_staff, all_tickets

browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

PRODUCT_NAMES = {"Excel", "CSV", "Word", "WPS", "A4"}
USERNAMES = ("chief", "wangtj", "lisz", "zhaomb", "nobody")  # "nobody": typed at a failed sign-in
ALLOWED = re.compile(r"^(village_\d+)$")
SCORE = re.compile(r"[（(]0\.\d{2,}[）)]|把握 \d+%")
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9_.@\-]*")
#: downloads, pictures and the like: not pages to read
SKIP = re.compile(r"(\.(csv|xlsx|docx|json|pdf|png)$)|/export|/media/|/static/|/sign-out|/logout")
PER_KIND = 3  # pages of one kind (same path shape and query keys) to open
MAX_PAGES = 400
#: pages each crawl must reach (so a broken menu cannot make the check pass by finding nothing)
EXPECTED = {
    "chief": {
        "/admin/tickets/N", "/admin/report", "/admin/bookings", "/admin/bookings/N", "/admin/bookings/week",
        "/admin/bookings/new", "/admin/bookings/settings", "/admin/knowledge", "/admin/campaigns",
        "/admin/campaigns/N", "/admin/campaigns/new", "/admin/disputes", "/admin/disputes/N",
        "/admin/disputes/monthly", "/admin/disputes/queue", "/admin/staff", "/admin/staff/N", "/admin/villages",
        "/admin/villagers", "/admin/villagers/N", "/admin/audit", "/admin/account", "/admin/duty",
    },
    "wangtj": {"/admin/tickets/N", "/admin/report", "/admin/bookings", "/admin/campaigns", "/admin/disputes/N"},
    "lisz": {"/admin/tickets/N", "/admin/disputes/queue", "/admin/disputes/N"},
    "zhaomb": {"/admin/tickets", "/admin/account"},
}  # fmt: skip


def visible_text(page: str) -> str:
    """What a staff member reads: the text, and the words in placeholders, titles, alt texts and buttons."""
    tree = lxml_html.fromstring(page)
    for node in tree.xpath("//script | //style | //head"):
        node.getparent().remove(node)
    words = [tree.text_content()]
    for attribute in ("placeholder", "title", "alt", "aria-label"):
        words += tree.xpath(f"//@{attribute}")
    words += tree.xpath("//input[@type='submit' or @type='button']/@value")
    return "\n".join(str(w) for w in words)


def latin_words(text: str) -> list[str]:
    """The Latin words staff would read, and raw matcher scores such as （0.8191）."""
    words = [w for w in LATIN.findall(text) if w not in PRODUCT_NAMES and w not in USERNAMES and not ALLOWED.match(w)]
    return words + SCORE.findall(text)


def _kind(url: str) -> str:
    parts = urlsplit(url)
    return re.sub(r"\d+", "N", parts.path) + "?" + ",".join(sorted(k for k, _ in parse_qsl(parts.query)))


async def crawl(staffer: Staffer, start: list[str]) -> tuple[dict[str, list[str]], set[str]]:
    """Every back-office page reachable by links from ``start`` → the Latin words on it (pages that did not
    open are reported with their status); and the kinds of page opened."""
    seen: set[str] = set()
    kinds: dict[str, int] = {}
    queue = list(start)
    found: dict[str, list[str]] = {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        status, page = await staffer.get(url)
        if status != 200:
            found[url] = [f"HTTP {status}"]
            continue
        words = latin_words(visible_text(page))
        if words:
            found[url] = sorted(set(words))
        for href in lxml_html.fromstring(page).xpath("//a/@href"):
            target = urljoin(url, str(href)).split("#", 1)[0]
            if not target.startswith("/admin") or SKIP.search(urlsplit(target).path) or target in seen:
                continue
            kind = _kind(target)
            if kinds.get(kind, 0) >= PER_KIND:
                continue
            kinds[kind] = kinds.get(kind, 0) + 1
            queue.append(target)
    assert len(seen) < MAX_PAGES, "the crawl did not end"
    return found, {_kind(url).split("?")[0] for url in seen}


async def _a_township_at_work(client: Any, settings: Any, browsers: Any) -> None:
    services = client.app[SERVICES]
    await add_staff(client, "chief", "admin", name="乡司法所张三")
    await add_staff(client, "wangtj", "mediator", (1, 2), name="王调解员")
    await add_staff(client, "lisz", "leader", position="police_head", name="李所长")
    await add_staff(client, "zhaomb", "volunteer", (1,), name="赵明白人")
    month = reports.month_bounds("", utcnow())
    await fill_year(
        services.session_factory,
        services.knowledge.kb,
        month,
        tickets=150,
        questions=500,
        bookings=80,
        villagers_per_village=3,
        formulas=False,
    )
    villager = Phone(client, settings, "o_crawl_zhang")
    await villager.subscribe("village_1")
    # an answer, a short list, a question the bot cannot answer, an urgent message (a ticket at once):
    # what each gets is other tests' business, here they only fill the pages
    for said in ("俺家宅基地被邻居占了咋整", "打工的事", "明天天气咋样", "邻居王二要打我，说要弄死我"):
        await villager.say(said)
    await Phone(client, settings, "o_crawl_li").subscribe("village_2")
    await Phone(client, settings, "o_crawl_li").say("老公打我怎么办")
    tickets = [t for t in await all_tickets(client) if t.openid in ("o_crawl_zhang", "o_crawl_li")]
    chief: Staffer = await browsers("chief")
    first = tickets[0].id
    await chief.post(f"/admin/tickets/{first}/reply", {"body": "您好，我们明天去现场看看。"})
    await chief.post(f"/admin/tickets/{first}/note", {"body": "双方都在家"})
    await chief.post(f"/admin/tickets/{first}/escalate", {"target": "police", "reason": "双方要动手"})
    await chief.post(f"/admin/tickets/{first}/status", {"status": "调解中", "reason": "约了周五"})
    await chief.post(
        "/admin/disputes/new",
        {
            "village": "1",
            "found_on": utcnow().date().isoformat(),
            "source": "排查",
            "parties": "张大娘",
            "others": "王二",
            "type": "邻里纠纷",
            "risk": "高",
            "summary": "宅基地边界吵架",
        },
    )
    await chief.post("/admin/campaigns/new", CAMPAIGN_FORM)
    await chief.post("/admin/villages/1", {"name": "观音寺村", "active": "1"})
    await chief.post("/admin/sign-in", {"username": "nobody", "password": "wrong-password"})


@support.sqlite_only
async def test_every_staff_page_is_in_plain_chinese(client: Any, settings: Any, browsers: Any) -> None:
    await _a_township_at_work(client, settings, browsers)
    searches = [f"/admin/villagers?q={q}" for q in ("观音寺村", "13800000001", "138****0003", "张三")]
    async with client.app[SERVICES].session_factory() as session:
        booked = (await session.execute(select(Booking).order_by(Booking.starts_at.desc()).limit(1))).scalar_one()
    searches.append(f"/admin/bookings?place={booked.place_id}&day={svc.local(booked.starts_at).date().isoformat()}")
    for username in ("chief", "wangtj", "lisz", "zhaomb"):
        staffer: Staffer = await browsers(username)
        extra = [*searches, "/admin/knowledge?days=90", "/admin/audit?action=ticket"] if username == "chief" else []
        found, opened = await crawl(staffer, ["/admin", *extra])
        assert not found, f"{username} sees English words, codes or broken pages: {found}"
        assert EXPECTED[username] <= opened, (username, sorted(EXPECTED[username] - opened))


@support.sqlite_only
async def test_the_ticket_page_names_the_villager(client: Any, settings: Any, browsers: Any) -> None:
    """Not 'o_si…ama': the name the villager gave (here on a booking), how many tickets they have, and a
    link to their page for the admin."""
    await add_staff(client, "chief", "admin", name="乡司法所张三")
    phone = Phone(client, settings, "o_sim_zhang_dama")
    await phone.subscribe("village_1")
    await phone.say("邻居王二要打我，说要弄死我")
    await phone.say("老公打我怎么办")
    async with client.app[SERVICES].session_factory() as session, session.begin():
        villager = (await session.execute(select(Villager).where(Villager.openid == "o_sim_zhang_dama"))).scalar_one()
        villager.display_name = "张大娘"
    [ticket, *_] = await all_tickets(client)
    chief: Staffer = await browsers("chief")
    _, page = await chief.get(f"/admin/tickets/{ticket.id}")
    assert "<dt>村民</dt><dd>张大娘" in page and f'href="/admin/villagers/{villager.id}"' in page
    # neither the openid nor its masked form (o_si…ama); "ama" alone also occurs in FAQ slugs (…-damage)
    assert "o_si" not in page and "…ama" not in page and "zhang_dama" not in page


def test_the_checker_catches_what_the_walkthrough_saw() -> None:
    """The 2026-12 walkthrough's examples fail the check; plain Chinese and allowed words pass."""
    for bad in (
        "dibao-cancelled-or-denied（0.8191）",
        "staff.list",
        "村民 o_si…ama",
        "数字来自微信的群发结果通知（MASSSENDJOBFINISH）",
        "指定 openid 名单",
        "目录 /tmp/ux/repo/knowledge",
        "宅基地申请（0.4566）",
        "建房与采光（把握 30%）",
        "在 knowledge/booking.yaml 里改",
    ):
        assert latin_words(visible_text(f"<html><body><p>{bad}</p></body></html>")), bad
    assert latin_words(visible_text('<input placeholder="工单编号或 openid">')) == ["openid"]
    fine = "<p>导出 Excel · 导出 CSV · 二维码场景值 village_12 · 张三 138****5678 · 2026-0002 · 匹配度 高</p>"
    assert latin_words(visible_text(f"<html><body>{fine}</body></html>")) == []
