"""Phone numbers a villager types into a message (security-2026-12 finding 17): masked for staff like the
consented one (in full for the assignee, or after an admin's audited reveal), never in the queue or the
knowledge gaps, and gone 180 days after the matter ends — from the ticket and from the raw pushes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from bot.services import retention
from bot.services import tickets as svc
from bot.services.jobs import JobContext
from bot.services.privacy import find_phones, mask_phones, remove_phones
from bot.storage.models import InboundMessage, JobMark, KnowledgeGap, OutboxMessage, utcnow
from bot.storage.staff import AuditLog
from bot.storage.tickets import CLOSED, Ticket, TicketMessage
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_tickets_support import Staffer, add_staff, all_tickets, sessions, thread

cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings
browsers = support.browsers

STORY = "邻居占了我的地，他电话 138 1234 5678，打过去不接"
SUPPLEMENT = "补充：他儿子的手机是１３９８７６５４３２１"


@pytest.mark.parametrize(
    ("text", "found", "masked"),
    [
        ("他电话13812345678", ["13812345678"], "他电话138****5678"),
        ("138 1234 5678 或 138-1234-5678", ["13812345678"] * 2, "138****5678 或 138****5678"),
        ("＋８６ １３９８７６５４３２１", ["13987654321"], "139****4321"),
        ("+8613812345678", ["13812345678"], "138****5678"),
        ("座机 0571-88886666", ["057188886666"], "座机 057*****6666"),
        ("欠我13800元，2026-12-06 13:05 说的", [], "欠我13800元，2026-12-06 13:05 说的"),
        ("身份证330102199001011234，订单2138123456789", [], "身份证330102199001011234，订单2138123456789"),
    ],
)
def test_one_rule_finds_and_masks_numbers_in_free_text(text: str, found: list[str], masked: str) -> None:
    assert find_phones(text) == found
    assert mask_phones(text) == masked
    assert all(digits not in remove_phones(text) for digits in found)
    assert "138****5678" not in remove_phones("电话：138****5678")  # a masked echo goes too


async def file_with_phones(client: Any, settings: Any, *, consent: str = "跳过") -> Ticket:
    me = Phone(client, settings, "o_typed_phone")
    await me.subscribe("village_1")
    await dialog(
        me, [("转人工", "发生了什么事"), (STORY, "好了"), ("好了", "手机号"), (consent, "请核对"), ("1", "已提交")]
    )
    assert "已补充" in await me.say(SUPPLEMENT)
    [ticket] = await all_tickets(client)
    return ticket


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_typed_numbers_are_masked_for_staff_like_the_consented_phone(client: Any, browsers: Any) -> None:
    settings = client.app[support.SERVICES].settings
    await add_staff(client, "chief", "admin")
    await add_staff(client, "zhang", "mediator", (1,))  # the assignee (the village's only mediator so far)
    ticket = await file_with_phones(client, settings)
    await add_staff(client, "li", "mediator", (1,))  # the same village, not the assignee
    page_of: dict[str, str] = {}
    for who in ("chief", "zhang", "li"):
        staffer: Staffer = await browsers(who)
        status, page_of[who] = await staffer.get(f"/admin/tickets/{ticket.id}")
        assert status == 200
        _, queue = await staffer.get("/admin/tickets")
        assert "13812345678" not in queue and "138 1234 5678" not in queue and "138****5678" in queue, who
        if who == "chief":
            chief = staffer
    # the assignee sees what the villager wrote; anyone else the masked numbers
    assert "138 1234 5678" in page_of["zhang"] and "１３９８７６５４３２１" in page_of["zhang"]
    for who in ("chief", "li"):
        page = page_of[who]
        assert "138 1234 5678" not in page and "１３９８７６５４３２１" not in page, who
        assert "138****5678" in page and "139****4321" in page, who
    assert "显示完整号码" in page_of["chief"] and "显示完整号码" not in page_of["li"]  # no consented phone, still
    # the admin's reveal shows them, and is audited
    _, revealed = await chief.get(f"/admin/tickets/{ticket.id}?show_phone=1")
    assert "138 1234 5678" in revealed
    _, page = await (await browsers("li")).get(f"/admin/tickets/{ticket.id}?show_phone=1")
    assert "138 1234 5678" not in page  # a mediator who is not the assignee cannot reveal
    async with sessions(client)() as session:
        views = list(
            (await session.execute(select(AuditLog.username).where(AuditLog.action == "ticket.phone_view"))).scalars()
        )
    assert sorted(views) == ["chief", "zhang"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_questions_kept_for_knowledge_review_lose_the_number(client: Any, browsers: Any) -> None:
    settings = client.app[support.SERVICES].settings
    await add_staff(client, "chief", "admin")
    me = Phone(client, settings, "o_asks")
    await me.say("拖拉机被隔壁开走了咋整，我电话13812345678")
    async with sessions(client)() as session:
        [gap] = list((await session.execute(select(KnowledgeGap))).scalars())
    assert "拖拉机" in gap.text and "13812345678" not in gap.text + gap.normalized
    _, page = await (await browsers("chief")).get("/admin/knowledge")
    assert "拖拉机" in page and "13812345678" not in page


async def test_typed_numbers_go_180_days_after_the_ticket_ends(
    client: Any, settings: Any, session_factory_of_client: Any
) -> None:
    factory = session_factory_of_client
    await add_staff(client, "zhang", "mediator", (1,))
    ticket = await file_with_phones(client, settings, consent="13600001111")
    now = utcnow()
    # a second ticket, ended less long ago: it keeps everything
    async with factory() as session, session.begin():
        recent = Ticket(
            number="2025-0099",
            status=CLOSED,
            closed_at=now - dt.timedelta(days=170),
            first_response_due_at=now,
            summary="另一件事，电话13711112222",
            contact_phone="13711112222",
        )
        session.add(recent)
        t = await session.get(Ticket, ticket.id)
        assert t is not None
        t.status, t.closed_at = CLOSED, now - dt.timedelta(days=181)
    await svc.tick(JobContext(settings=settings, session_factory=factory))
    [old, kept] = await all_tickets(client)
    assert old.contact_phone is None and old.phones_erased_at is not None
    texts = [old.summary, *(m.body for m in await thread(client, old.id))]
    assert not any(find_phones(t) for t in texts) and "[电话已删除]" in old.summary
    assert "邻居占了我的地" in old.summary  # the matter itself stays until the villager asks
    assert kept.contact_phone == "13711112222" and "13711112222" in kept.summary and kept.phones_erased_at is None


async def test_raw_pushes_and_outbox_payloads_lose_numbers_after_180_days(
    client: Any, settings: Any, session_factory_of_client: Any
) -> None:
    factory = session_factory_of_client
    await add_staff(client, "zhang", "mediator", (1,))
    await file_with_phones(client, settings, consent="13600001111")
    async with factory() as session:
        inbound = list((await session.execute(select(InboundMessage).order_by(InboundMessage.id))).scalars())
    assert any("138 1234 5678" in str(m.content) + str(m.payload) for m in inbound)
    assert any("136****1111" in str(m.reply) for m in inbound)  # the confirmation echoed the masked number
    half = inbound[len(inbound) // 2].id
    async with factory() as session, session.begin():  # the first half arrived 181 days ago
        for m in inbound:
            if m.id <= half:
                row = await session.get(InboundMessage, m.id)
                assert row is not None
                row.received_at = utcnow() - dt.timedelta(days=181)
        session.add(
            OutboxMessage(
                kind="cs_text",
                openid="o_typed_phone",
                payload={"content": "您留的电话13600001111已登记"},
                idempotency_key="old-reply",
                status="sent",
                created_at=utcnow() - dt.timedelta(days=200),
            )
        )
    for _ in range(2):  # a second run (or a second worker) changes nothing more
        await retention.tick(JobContext(settings=settings, session_factory=factory))
    async with factory() as session:
        after = {m.id: m for m in (await session.execute(select(InboundMessage))).scalars()}
        sent = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == "old-reply"))
        ).scalar_one()
        marks = {m.name: m.value for m in (await session.execute(select(JobMark))).scalars()}
        threads = list((await session.execute(select(TicketMessage.body))).scalars())
    for m in after.values():
        raw = str(m.content) + str(m.payload) + str(m.reply)
        if m.id <= half:
            assert not find_phones(raw) and "****" not in raw, raw
    younger = "".join(str(m.content) + str(m.payload) for i, m in after.items() if i > half)
    assert "１３９８７６５４３２１" in younger  # the 补充 came later: still within 180 days
    assert "13600001111" not in sent.payload["content"] and marks["phones:inbound"] == half
    assert any("138 1234 5678" in b for b in threads)  # the open ticket keeps its thread


@pytest.fixture
def session_factory_of_client(client: Any) -> Any:
    return sessions(client)
