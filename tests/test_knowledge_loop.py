"""Gaps become answers: a question the bot hands over is proposed from the knowledge page as a phrasing of
the right entry, the judicial office's lawyer publishes it, and every process answers it within seconds.

(The same loop across two real `lawbot serve` processes on PostgreSQL: tests/test_knowledge_live.py.)
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.keys import SERVICES
from bot.services.knowledge import KnowledgeHolder, sync
from bot.settings import DEFAULT_KNOWLEDGE_DIR, Settings
from bot.storage.knowledge import KnowledgeProposal, KnowledgeVersion
from bot.storage.staff import StaffUser
from tests import test_tickets_support as support
from tests.phone import Phone
from tests.test_tickets_support import Staffer, add_staff, sessions

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

QUESTION = "俺家的地让人给霸了咋整"  # the bot offers three choices; none is sure
RIGHT_ENTRY = "land-dispute-who"  # 地界、承包地有纠纷，该找谁解决？
RIGHT_TITLE = "地界、承包地有纠纷，该找谁解决？"
_FORM = re.compile(r'<form method="post" action="(?P<action>[^"]+)" class="inline">(?P<body>.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


def own_holder(shared: Any) -> KnowledgeHolder:
    """A holder of our own (the session's shared one must never see a published layer)."""
    return KnowledgeHolder(DEFAULT_KNOWLEDGE_DIR, shared.current)


async def make_reviewer(client: Any, username: str = "lawyer", name: str = "王律师") -> int:
    staff_id = await add_staff(client, username, "admin", name=name)
    async with sessions(client)() as session, session.begin():
        staff = await session.get(StaffUser, staff_id)
        assert staff is not None
        staff.reviewer = True
    return staff_id


def one_click_forms(page: str) -> list[dict[str, str]]:
    """The knowledge page's "加为…的问法" buttons: their action, hidden fields and the title on the button."""
    forms = []
    for match in _FORM.finditer(page):
        fields = {m["name"]: m["value"] for m in _HIDDEN.finditer(match["body"])}
        title = re.search(r'class="target">([^<（]+)（匹配度 [高中低]）<', match["body"])
        if "entry" in fields and title:
            forms.append({"action": match["action"], "title": title.group(1), **fields})
    return forms


async def wait_for_checks(browser: Staffer, path: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status, page = await browser.get(path)
        assert status == 200, page
        if "正在检查" not in page:
            return page
        assert time.monotonic() < deadline, "the checks never finished"
        await asyncio.sleep(0.3)


async def propose_from_the_knowledge_page(chief: Staffer, question: str, title: str) -> tuple[str, str]:
    """The admin opens 知识库, finds the villager's question and clicks the entry's title. Returns the proposal's
    page path and the knowledge page as seen."""
    status, page = await chief.get("/admin/knowledge")
    assert status == 200 and question in page
    # what staff get: titles and 匹配度 in words, never slugs (not even in a form) or raw scores
    assert RIGHT_ENTRY not in page and not re.search(r"0\.\d{2}", re.sub(r"<[^>]+>", "", page))
    forms = [f for f in one_click_forms(page) if f["text"] == question]
    assert title in [f["title"] for f in forms], [f["title"] for f in forms]
    chosen = next(f for f in forms if f["title"] == title)
    status, proposal_page = await chief.post(chosen["action"], {"text": chosen["text"], "entry": chosen["entry"]})
    assert status == 200 and "已提建议" in proposal_page, proposal_page[:2000]
    proposal_path = re.search(r"/admin/knowledge/proposals/\d+", str(proposal_page))
    async with sessions(chief.client)() as session:
        newest = select(KnowledgeProposal).order_by(KnowledgeProposal.id.desc())
        proposal = (await session.execute(newest)).scalars().first()
    assert proposal is not None and proposal.payload == {"text": question} and proposal.entry_id == RIGHT_ENTRY
    return (proposal_path.group(0) if proposal_path else f"/admin/knowledge/proposals/{proposal.id}"), page


@support.sqlite_only
async def test_a_question_the_bot_hands_over_becomes_an_answer_on_both_app_instances(
    aiohttp_client: Any, make_client: Any, settings: Settings, knowledge_holder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two app instances on one SQLite file (threads for SQLite: two connections in one process);
    # no push channel on SQLite without Redis: they follow the published version by polling
    monkeypatch.setenv("LAWBOT_SQLITE_THREADED", "1")
    first = await make_client(settings, knowledge=own_holder(knowledge_holder))
    second = await aiohttp_client(create_app(settings, knowledge=own_holder(knowledge_holder)))
    await add_staff(first, "chief", "admin", name="乡管理员")
    await make_reviewer(first)
    villager = Phone(first, settings, "o_land")
    other_villager = Phone(second, settings, "o_land_2")

    asked = await villager.say(QUESTION)
    assert "回复数字" in asked or "答不好" in asked or "1." in asked  # not an answer
    assert RIGHT_TITLE not in (await other_villager.say(QUESTION)).split("\n")[0]

    chief = Staffer(first)
    lawyer = Staffer(first)
    try:
        await chief.sign_in("chief")
        proposal_path, page = await propose_from_the_knowledge_page(chief, QUESTION, RIGHT_TITLE)
        assert "<td>2</td>" in page  # both villagers' questions, grouped

        # the checks and the quality before/after come without blocking anything
        page = await wait_for_checks(chief, proposal_path)
        assert "通过检查" in page and "首选答对" in page and QUESTION in page
        assert "发布</button>" not in page  # the chief is no reviewer: no publish button
        status, refused = await chief.post(proposal_path + "/approve", {})
        assert status == 403 and "法律审核" in refused
        async with sessions(first)() as session:
            assert (await session.execute(select(KnowledgeVersion))).scalars().all() == []

        # the judicial office's lawyer publishes it
        await lawyer.sign_in("lawyer")
        page = await wait_for_checks(lawyer, proposal_path)
        assert "发布</button>" in page
        stop = asyncio.Event()
        answered: list[str] = []

        async def keep_asking() -> None:  # villagers keep writing while the index is swapped
            talker = Phone(second, settings, "o_busy")
            while not stop.is_set():
                answered.append(await talker.say("借钱不还怎么办"))

        talk = asyncio.create_task(keep_asking())
        status, page = await lawyer.post(proposal_path + "/approve", {"note": "村民常这么说"})
        assert status == 200 and "已发布第 1 版" in page, page[:3000]
        published_at = time.monotonic()

        # this instance at once; the other within 5 seconds, with no restart
        assert first.app[SERVICES].knowledge_holder.version == 1
        while second.app[SERVICES].knowledge_holder.version != 1:
            assert time.monotonic() - published_at < 5.0, "the second instance did not pick up version 1 in 5 s"
            await asyncio.sleep(0.1)
        stop.set()
        await talk
        assert answered and all("借" in a for a in answered)  # nothing dropped during the swap
        for phone in (villager, other_villager):
            reply = await phone.say(QUESTION)
            assert "不构成律师意见" in reply and "调委会" in reply and "回复数字" not in reply, reply
        await lawyer.get("/admin/knowledge/versions")
        status, page = await lawyer.get("/admin/knowledge/versions")
        assert "第 1 版" in page and "王律师" in page and "村民常这么说" in page
    finally:
        await chief.close()
        await lawyer.close()


async def test_the_follower_picks_up_a_version_and_keeps_the_old_index_when_it_is_broken(
    make_client: Any, settings: Settings, knowledge_holder: Any
) -> None:
    holder = own_holder(knowledge_holder)
    client = await make_client(settings, knowledge=holder)
    phone = Phone(client, settings, "o_broken")
    factory = client.app[SERVICES].session_factory
    working = {"variants": {RIGHT_ENTRY: [QUESTION]}}
    async with factory() as session, session.begin():
        session.add(KnowledgeVersion(id=1, layer=working, action="approve", summary="一个问法", by_name="测试"))
    await sync.catch_up(holder, factory)
    assert holder.version == 1 and "调委会" in await phone.say(QUESTION)
    serving = holder.current

    # a version whose new entry cannot load (unknown topic, a stray brace): never replaces the working index
    broken = {**working, "entries": {"local-bad": {"id": "local-bad", "topic": "no.such", "question": "坏的{",
                                                   "answer": "x", "next_step": "找12348", "variants": [], "basis": []}}}
    async with factory() as session, session.begin():
        session.add(KnowledgeVersion(id=2, layer=broken, action="import", summary="坏的", by_name="测试"))
    await sync.catch_up(holder, factory)
    assert holder.current is serving and holder.version == 1 and holder.failed_version == 2
    assert any("第 2 版没有启用" in e and "没有这个类别" in e for e in holder.errors), holder.errors
    assert "调委会" in await phone.say(QUESTION)
    health = await (await client.get("/healthz")).json()
    assert health["knowledge_version"] == 1 and health["knowledge_errors"]
    await sync.catch_up(holder, factory)  # not retried over and over
    assert holder.failed_version == 2

    # the next good version is used again
    async with factory() as session, session.begin():
        session.add(KnowledgeVersion(id=3, layer={}, action="restore", summary="撤掉", by_name="测试"))
    await sync.catch_up(holder, factory)
    assert holder.version == 3 and not holder.errors and holder.current.layer.empty


async def test_a_push_channel_delivers_a_new_version_without_polling(
    settings: Settings, knowledge_holder: Any, make_client: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest
) -> None:
    """PostgreSQL: LISTEN/NOTIFY. SQLite: Redis pub/sub when LAWBOT_TEST_REDIS_URL is set (else skipped)."""
    if settings.database_url.startswith("sqlite"):
        redis_url: str = request.getfixturevalue("redis_url")
        settings = settings.with_(redis_url=redis_url)
        monkeypatch.setenv("LAWBOT_SQLITE_THREADED", "1")
    monkeypatch.setattr(sync, "POLL_SECONDS", 60.0)  # only a notification can make it in time
    monkeypatch.setattr(sync, "SAFETY_POLL_SECONDS", 60.0)
    first = await make_client(settings, knowledge=own_holder(knowledge_holder))
    second = await aiohttp_client(create_app(settings, knowledge=own_holder(knowledge_holder)))
    holder = second.app[SERVICES].knowledge_holder
    deadline = time.monotonic() + 10
    while not any(t.get_name() == "kb-follow" for t in second.app[SERVICES].background):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the subscription is up
    lawyer_id = await make_reviewer(first)
    services = first.app[SERVICES]
    from bot.services import knowledge as kn

    proposal = await kn.propose(services.session_factory, services.knowledge.kb, kind="variant", entry_id=RIGHT_ENTRY,
                                payload={"text": QUESTION}, by=None, by_name="测试")
    version = await kn.approve(services.session_factory, services.settings, services.knowledge_holder, proposal.id,
                               lawyer_id)
    start = time.monotonic()
    while holder.version != version.id:
        assert time.monotonic() - start < 5.0, "no notification arrived"
        await asyncio.sleep(0.05)
    assert "调委会" in await Phone(second, settings, "o_push").say(QUESTION)


def test_the_knowledge_page_shows_titles_never_slugs_or_scores(tmp_path: Path) -> None:
    template = (Path(__file__).resolve().parent.parent / "bot/templates/admin/knowledge.html").read_text("utf-8")
    assert "entry_id }}（" not in template and "c.score" not in template and "directory" not in template
