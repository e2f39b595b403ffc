"""删除我的信息 (security-2026-12 finding 2), structurally: a villager who does everything the account offers
asks for their data to be deleted; then EVERY table of the schema (``Base.metadata``, not a hand list) and
every text/JSON cell in it is searched for their openid, their words, their phone numbers and their name.
And the back-office export holds everything erasure removes (export ⊇ erase)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.keys import SERVICES
from bot.services import campaigns as campaigns_svc
from bot.services import staff as staff_svc
from bot.services import tickets as svc
from bot.services.campaigns import Actor, CampaignInput
from bot.services.outbox import OutboxPolicy
from bot.storage.all import load_all
from bot.storage.booking import Booking
from bot.storage.campaigns import Campaign
from bot.storage.models import Villager
from bot.storage.staff import StaffUser
from bot.storage.tickets import RESOLVED, Ticket
from tests import test_tickets_support as support
from tests.phone import Phone, dialog
from tests.test_booking_helpers import (
    Clock,
    booking_client,
    booking_settings,
    booking_yaml,
    clock,
    job_context,
    with_booking_router,
)
from tests.test_tickets_support import Staffer, add_staff, sessions

__all__ = ["booking_client", "booking_settings", "booking_yaml", "clock", "with_booking_router"]
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings


@pytest.fixture
async def browsers(booking_client: Any) -> AsyncIterator[Any]:
    """Staff browsers on the booking app (tests.test_tickets_support.browsers is bound to the plain app)."""
    opened: list[Staffer] = []

    async def open_as(username: str) -> Staffer:
        staffer = Staffer(booking_client)
        opened.append(staffer)
        status, text = await staffer.sign_in(username)
        assert status == 200 and "退出" in text, text[:300]
        return staffer

    yield open_as
    for staffer in opened:
        await staffer.close()


OPENID = "oVillagerDoesEverything_0001"  # 28 characters, like a real one
NEIGHBOUR = "oNeighbourOnTheSameList_0002"
STORY = "邻居占了我的宅基地，他的电话13512340987"
SUPPLEMENT = "他老婆的电话是13987654321"
#: what must not survive anywhere: their words, their numbers (also masked), their name, their picture
MARKERS = (
    "邻居占了我的宅基地",
    "他老婆的电话",
    "车停在路边被人划了",
    "上个月十号砌的墙",
    "关于宅基地的事",
    "13512340987",
    "135****0987",
    "13987654321",
    "139****4321",
    "13600001111",
    "136****1111",
    "13700001234",
    "137****1234",
    "赵秘密",
    "pic_everything_1",
    "everything.png",
)
UNTAG = "/cgi-bin/tags/members/batchuntagging"
WIDE_WINDOW = dt.timedelta(days=3650)


async def deliver(client: Any, settings: Any) -> None:
    """The outbox worker until the queue is empty. The chat's clock is frozen in February 2026 (the booking
    calendar), so the 48-hour window is opened wide: every message goes out at once."""
    await support.deliver(client, settings, OutboxPolicy(backoff_base=0.01, idle_sleep=0.01, window=WIDE_WINDOW))


# ---------------------------------------------------------------- the whole database, cell by cell
def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from leaves(v)


async def cells(client: Any) -> dict[tuple[str, tuple[Any, ...], str], Any]:
    """Every text and JSON cell of every table: (table, primary key, column) → value."""
    found: dict[tuple[str, tuple[Any, ...], str], Any] = {}
    async with sessions(client)() as session:
        for table in load_all().metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings().all():
                key = tuple(row[c.name] for c in table.primary_key.columns)
                for column in table.columns:
                    value = row[column.name]
                    if isinstance(value, str | dict | list):
                        found[(table.name, key, column.name)] = value
    return found


def holding(found: dict[tuple[str, tuple[Any, ...], str], Any], needles: tuple[str, ...]) -> list[str]:
    """Where any needle occurs: 'table.column #pk: needle'."""
    hits = []
    for (table, key, column), value in found.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        hits += [f"{table}.{column} #{key}: {n}" for n in needles if n in text]
    return hits


# ---------------------------------------------------------------- a villager who does everything
async def everything(client: Any, settings: Any, clock: Clock, browsers: Any) -> dict[str, Any]:
    factory = client.app[SERVICES].session_factory
    texts = client.app[SERVICES].texts
    chief_id = await add_staff(client, "chief", "admin")
    await add_staff(client, "zhang", "mediator", (1,))
    me = Phone(client, settings, OPENID)
    # subscribes through the village QR code, asks the FAQ, and something it cannot answer
    await me.subscribe("village_1")
    await me.say("欠钱不还怎么办")
    # a ticket, with a phone number in the story, the consented phone, 补充 with another number, a picture
    await dialog(
        me,
        [("转人工", "您刚才问的是"), (STORY, "好了"), ("好了", "手机号"), ("13600001111", "请核对"), ("1", "已提交")],
    )
    assert "已补充" in await me.say(f"补充：{SUPPLEMENT}")
    await me.say("补充")
    got = await me.send(
        me.signer.message(OPENID, "image", PicUrl="http://127.0.0.1/everything.png", MediaId="pic_everything_1")
    )
    assert "已补充" in got.content
    async with factory() as session, session.begin():
        ticket = (await session.execute(select(Ticket))).scalar_one()
        zhang = (await session.execute(select(StaffUser).where(StaffUser.username == "zhang"))).scalar_one()
        await svc.staff_reply(session, ticket, zhang, "关于宅基地的事，我们明天去看看", texts, clock())
    await deliver(client, settings)
    assert "已转给" in await me.say("上个月十号砌的墙")
    chief: Staffer = await browsers("chief")
    status, page = await chief.get(f"/admin/tickets/{ticket.id}?show_phone=1")
    assert status == 200 and "13512340987" in page  # an audited reveal
    async with factory() as session, session.begin():
        ticket = (await session.execute(select(Ticket))).scalar_one()
        zhang = (await session.execute(select(StaffUser).where(StaffUser.username == "zhang"))).scalar_one()
        await svc.set_status(session, ticket, RESOLVED, "已协调", zhang, texts, clock())
    await deliver(client, settings)
    assert "谢谢您的评价" in await me.say("1")
    assert "1." in await me.say("车停在路边被人划了咋整")  # not sure: three choices, and a knowledge gap
    # a booking, and a place on the waiting list of a full day
    await dialog(
        me,
        [("预约", "法律咨询"), ("1", "2月12日"), ("3", "9:00"), ("1", "姓名和手机号"), ("赵秘密 13700001234", "确认")],
    )
    assert "预约成功" in await me.say("1")
    first = Phone(client, settings, "o_first_in_line")
    await dialog(first, [("预约", "法律援助"), ("2", "选哪天"), ("2", "9:00-10:00"), ("1", "姓名"), ("张三", "确认")])
    assert "预约成功" in await first.say("1")
    await dialog(me, [("预约", "法律援助"), ("2", "约满，可排队"), ("2", "排队候补"), ("1", "上次")])
    assert "排队候补" in await me.say("1")
    assert "已经帮您排队候补" in await me.say("1")
    # the village's WeChat tag (synced while this WeChat is still only a villager's: bound staff get no tags)
    await campaigns_svc.tick(job_context(client, settings, clock))
    await deliver(client, settings)
    # the chief's own WeChat is this one (previews go to it); a campaign to a list naming them, a follow-up
    async with factory() as session, session.begin():
        code = await staff_svc.binding_code(session, chief_id)
    assert "绑定好了" in await me.say(f"{staff_svc.BIND_WORD} {code}")
    admin = Actor(chief_id, "chief", "admin", openid=OPENID)
    data = CampaignInput(
        title="宪法宣传周",
        text="12月4日是国家宪法日。",
        audience="openids",
        openids=[OPENID, NEIGHBOUR],
        follow_up_text="周六上午村委会有法律咨询。",
    )
    async with factory() as session, session.begin():
        campaign_id = (await campaigns_svc.create_campaign(session, admin, data, settings=settings)).id
        await campaigns_svc.request_preview(session, admin, campaign_id, now=clock())
    await deliver(client, settings)
    async with factory() as session, session.begin():
        await campaigns_svc.approve(session, admin, campaign_id, settings=settings, now=clock())
    ctx = job_context(client, settings, clock)
    await campaigns_svc.tick(ctx)  # the village tag, and the campaign into the outbox
    await deliver(client, settings)
    await campaigns_svc.tick(ctx)
    await campaigns_svc.tick(ctx)  # follow-ups
    await deliver(client, settings)
    await me.say("我的咨询")
    before = await cells(client)
    assert holding(before, (OPENID,)) and holding(before, MARKERS), "the scenario left nothing to erase"
    for table in ("village_tag_members", "booking_waitlist", "knowledge_gaps", "campaign_previews"):
        assert any(t == table for t, _k, _c in before), f"the villager never reached {table}"
    return {"ticket_id": ticket.id, "campaign_id": campaign_id, "chief": chief}


async def anonymous_statistics_stay(client: Any, ticket_id: int, campaign_id: int) -> None:
    async with sessions(client)() as session:
        ticket = await session.get(Ticket, ticket_id)
        bookings = list((await session.execute(select(Booking).order_by(Booking.id))).scalars())
        campaign = await session.get(Campaign, campaign_id)
    assert ticket is not None and (ticket.status, ticket.village_id, ticket.satisfaction) == (RESOLVED, 1, 1)
    assert ticket.topic is not None and ticket.anonymised_at is not None
    mine = [b for b in bookings if b.name == "（已删除）"]
    assert len(mine) == 1 and mine[0].status == "cancelled" and mine[0].openid is None  # not yet come: cancelled
    assert [b.name for b in bookings if b.name != "（已删除）"] == ["张三"]  # nobody else is touched
    assert campaign is not None and campaign.status == "sent" and campaign.openids == [NEIGHBOUR]


# ---------------------------------------------------------------- the tests
async def test_delete_my_information_leaves_nothing_of_the_villager_in_any_table(
    booking_client: Any, booking_settings: Any, clock: Clock, browsers: Any, fake_server: Any
) -> None:
    client, settings = booking_client, booking_settings
    scene = await everything(client, settings, clock, browsers)
    me = Phone(client, settings, OPENID)
    assert "确认删除" in await me.say("删除我的信息")
    assert "已删除您的个人信息" in await me.say("确认删除")
    after = await cells(client)
    assert holding(after, MARKERS) == []
    # the one thing still naming the openid: the instruction that takes them out of their village tag
    assert {hit.split(" #")[0] for hit in holding(after, (OPENID, OPENID[-12:]))} == {"outbox.payload"}
    await deliver(client, settings)
    untagged = [c.body for c in fake_server.fake.successful(UNTAG)]
    assert [b["openid_list"] for b in untagged] == [[OPENID]]
    await campaigns_svc.tick(job_context(client, settings, clock))
    after = await cells(client)
    assert holding(after, (OPENID, OPENID[-12:], *MARKERS)) == []
    await anonymous_statistics_stay(client, scene["ticket_id"], scene["campaign_id"])
    # the villager can go on using the account: a fresh start, nothing of before
    assert "还没有" in await me.say("我的咨询")


async def test_the_export_holds_everything_erasure_removes(
    booking_client: Any, booking_settings: Any, clock: Clock, browsers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, settings = booking_client, booking_settings
    monkeypatch.setattr("bot.admin.villager_views.utcnow", clock)  # the back-office on the chat's clock
    scene = await everything(client, settings, clock, browsers)
    chief: Staffer = scene["chief"]
    async with client.app[SERVICES].session_factory() as session:  # staff reach a villager by id, not openid
        villager_id = (await session.execute(select(Villager.id).where(Villager.openid == OPENID))).scalar_one()
    resp = await chief.get_raw(f"/admin/villagers/{villager_id}/export")
    assert resp.status == 200
    exported = set(leaves(json.loads(await resp.read())))
    before = await cells(client)
    status, page = await chief.post(f"/admin/villagers/{villager_id}/forget", {"confirm": "1"})
    assert status == 200 and "已删除该村民的个人信息" in page
    after = await cells(client)
    assert holding(after, MARKERS) == []
    missing = []
    for key, old in before.items():
        removed = set(leaves(old)) - set(leaves(after.get(key)))
        missing += [
            f"{key[0]}.{key[2]} #{key[1]}: {leaf[:60]!r}"
            for leaf in sorted(removed)
            if leaf not in exported and not any(leaf in e for e in exported)
        ]
    assert missing == [], "erased but not in the export:\n" + "\n".join(missing)
    await anonymous_statistics_stay(client, scene["ticket_id"], scene["campaign_id"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_sweep_reaches_tables_nobody_wrote_erasure_code_for(
    booking_client: Any, booking_settings: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature that forgot its hook: every row still carrying the openid goes anyway (the booking here)."""
    client = booking_client
    me = Phone(client, booking_settings, OPENID)
    await me.subscribe("village_2")
    await me.say("欠钱不还怎么办")
    await dialog(
        me,
        [("预约", "法律咨询"), ("1", "2月12日"), ("3", "9:00"), ("1", "姓名和手机号"), ("赵秘密 13700001234", "确认")],
    )
    assert "预约成功" in await me.say("1")
    monkeypatch.setattr(svc.privacy, "PRIVACY_MODULES", ())  # no feature hook at all
    async with sessions(client)() as session, session.begin():
        await svc.forget_villager(session, OPENID, clock())
    assert holding(await cells(client), (OPENID, *MARKERS)) == []
    async with sessions(client)() as session:
        assert list((await session.execute(select(Booking))).scalars()) == []  # nobody kept it: deleted
