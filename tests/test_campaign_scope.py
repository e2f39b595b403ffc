"""Campaign scope (security-2026-12 finding 4): a mediator sees and changes only the campaigns they drafted or
that go only to their villages; only admins see openid lists. Every campaign route of the app's router is
walked as a mediator of another village, so a route added later cannot escape the check."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from bot.admin import framework
from bot.services import campaigns as svc
from bot.services.campaigns import Actor, CampaignInput
from bot.storage.campaigns import Campaign
from tests import test_tickets_support as support
from tests.test_tickets_support import Staffer, add_staff, sessions

pytestmark = support.sqlite_only
browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

OPENIDS = ["o_villagerB_0002", "o_villagerB_0003"]
#: what each campaign is (title marker → drafter, audience)
CAMPAIGNS: dict[str, tuple[str, dict[str, Any]]] = {
    "乙村调解员草稿": ("m2", {"audience": "villages", "village_ids": [2]}),
    "乡里给乙村": ("chief", {"audience": "villages", "village_ids": [2]}),
    "乡里名单通知": ("chief", {"audience": "openids", "openids": OPENIDS}),
    "乡里全体通知": ("chief", {"audience": "all"}),
    "甲乙两村通知": ("chief", {"audience": "villages", "village_ids": [1, 2]}),
    "甲村调解员草稿": ("m1", {"audience": "villages", "village_ids": [1]}),
}
#: who may see which (by title marker); volunteers see none and are kept out of every route
VISIBLE = {
    "chief": set(CAMPAIGNS),
    "m1": {"甲村调解员草稿"},
    "m2": {"乙村调解员草稿", "乡里给乙村"},
}
ATTACK = {  # what medA sent in the probe: a new title, and the audience widened to every follower
    "title": "被甲村改了",
    "kind": "text",
    "text": "medA rewrote village B's notice",
    "audience": "all",
    "note": "退回",
    "back": "",
}


async def world(client: Any) -> tuple[dict[str, int], dict[str, int]]:
    staff = {
        "chief": await add_staff(client, "chief", "admin"),
        "m1": await add_staff(client, "m1", "mediator", (1,)),
        "m2": await add_staff(client, "m2", "mediator", (2,)),
        "v1": await add_staff(client, "v1", "volunteer", (1,)),
    }
    app_settings = client.app[support.SERVICES].settings
    roles = {"chief": "admin", "m1": "mediator", "m2": "mediator"}
    villages = {"chief": (), "m1": (1,), "m2": (2,)}
    ids: dict[str, int] = {}
    for marker, (who, audience) in CAMPAIGNS.items():
        actor = Actor(staff[who], who, roles[who], village_ids=villages[who])
        data = CampaignInput(title=marker, text=f"{marker}：普法通知", **audience)
        async with sessions(client)() as session, session.begin():
            ids[marker] = (await svc.create_campaign(session, actor, data, settings=app_settings)).id
    async with sessions(client)() as session, session.begin():  # one of them waits for approval
        await svc.submit(session, Actor(staff["chief"], "chief", "admin"), ids["乡里给乙村"])
    return staff, ids


async def snapshot(client: Any) -> dict[int, dict[str, Any]]:
    async with sessions(client)() as session:
        rows = (await session.execute(select(Campaign).order_by(Campaign.id))).scalars()
        return {c.id: {col.name: getattr(c, col.name) for col in Campaign.__table__.columns} for c in rows}


def campaign_routes(client: Any) -> list[framework.AdminRoute]:
    specs = [s for s in client.app[framework.REGISTRY].routes.values() if s.path.startswith("/admin/campaigns")]
    with_id = {s.name for s in specs if "{id" in s.path}
    known = {"admin-campaign", "admin-campaign-edit", "admin-campaign-update", "admin-campaign-submit"}
    known |= {"admin-campaign-preview", "admin-campaign-approve", "admin-campaign-send-back", "admin-campaign-cancel"}
    assert known <= with_id, "the campaign routes are not where this test looks for them"
    return specs


def path_of(client: Any, spec: framework.AdminRoute, campaign_id: int) -> str:
    params = {name: str(campaign_id) if name == "id" else "1" for name in re.findall(r"\{(\w+)", spec.path)}
    return str(client.app.router[spec.name].url_for(**params))


async def call(browser: Staffer, spec: framework.AdminRoute, path: str) -> tuple[int, str]:
    if spec.method == "GET":
        return await browser.get(path)
    return await browser.post(path, ATTACK)


@pytest.fixture
async def scene(client: Any, browsers: Any) -> tuple[dict[str, int], dict[str, Staffer]]:
    _staff, ids = await world(client)
    return ids, {name: await browsers(name) for name in ("chief", "m1", "m2", "v1")}


@pytest.mark.parametrize("who", ["m1", "m2"])
async def test_every_campaign_route_refuses_a_mediator_outside_their_campaigns(
    client: Any, scene: Any, who: str
) -> None:
    ids, people = scene
    me = people[who]
    before = await snapshot(client)
    foreign = [marker for marker in CAMPAIGNS if marker not in VISIBLE[who]]
    checked = 0
    for spec in campaign_routes(client):
        if "{id" not in spec.path:
            continue
        for marker in foreign:
            status, page = await call(me, spec, path_of(client, spec, ids[marker]))
            assert status in (403, 404), f"{who} got {status} on {spec.method} {spec.path} of {marker}"
            assert marker not in page and not any(o in page for o in OPENIDS), (spec.path, marker)
            checked += 1
    assert checked >= 8 * len(foreign)
    assert await snapshot(client) == before  # nothing edited, submitted, previewed or cancelled
    # the pages without an id (the list with every status filter, the form) show none of them either
    for spec in campaign_routes(client):
        if "{id" in spec.path or spec.method != "GET":
            continue
        for status_filter in ("", "all", *svc.STATUS_LABELS):
            status, page = await me.get(path_of(client, spec, 0) + f"?status={status_filter}")
            assert status in (200, 403), (spec.path, status)
            assert not any(marker in page for marker in foreign), (spec.path, status_filter)
            assert not any(o in page for o in OPENIDS)


async def test_each_one_reaches_their_own_and_only_admins_see_openid_lists(client: Any, scene: Any) -> None:
    ids, people = scene
    for who, visible in VISIBLE.items():
        _, listing = await people[who].get("/admin/campaigns")
        assert {m for m in CAMPAIGNS if m in listing} == visible, who
        for marker in visible:
            status, page = await people[who].get(f"/admin/campaigns/{ids[marker]}")
            assert status == 200 and marker in page, (who, marker)
    # the openid list is in the admin's form only; a mediator's form offers their villages, not a list
    _, form = await people["chief"].get(f"/admin/campaigns/{ids['乡里名单通知']}/edit")
    assert all(o in form for o in OPENIDS) and "微信编号名单" in form  # the label in Chinese (issue 13)
    _, form = await people["m2"].get("/admin/campaigns/new")
    assert "微信编号名单" not in form and 'value="openids"' not in form
    assert re.findall(r'name="village_ids" value="(\d+)"', form) == ["2"]
    # a mediator's own draft that an admin turned into an openid list: its list stays hidden
    async with sessions(client)() as session, session.begin():
        own = await session.get(Campaign, ids["乙村调解员草稿"])
        assert own is not None
        own.audience, own.village_ids, own.openids = "openids", [], OPENIDS
    status, page = await people["m2"].get(f"/admin/campaigns/{ids['乙村调解员草稿']}")
    assert status == 200 and not any(o in page for o in OPENIDS)
    status, page = await people["m2"].get(f"/admin/campaigns/{ids['乙村调解员草稿']}/edit")
    assert status == 403 and not any(o in page for o in OPENIDS)
    # volunteers: kept out as before
    assert (await people["v1"].get("/admin/campaigns"))[0] == 403


async def test_a_mediator_drafts_only_for_all_followers_or_their_own_villages(client: Any, scene: Any) -> None:
    ids, people = scene
    form = {"title": "甲村偷发乙村", "kind": "text", "text": "通知", "archive": "1"}
    before = await snapshot(client)
    for audience in (
        {"audience": "villages", "village_ids": "2"},
        {"audience": "openids", "openids": "\n".join(OPENIDS)},
    ):
        status, page = await people["m1"].post("/admin/campaigns/new", {**form, **audience})
        assert status == 400 and ("只能选择您负责的村" in page or "只有乡管理员" in page), page[-800:]
    assert await snapshot(client) == before
    # and cannot move their own draft to another village
    own = ids["甲村调解员草稿"]
    status, page = await people["m1"].post(
        f"/admin/campaigns/{own}/edit", {**form, "audience": "villages", "village_ids": "2"}
    )
    assert status == 400 and "只能选择您负责的村" in page
    status, _ = await people["m1"].post(
        f"/admin/campaigns/{own}/edit", {**form, "audience": "villages", "village_ids": "1"}
    )
    assert status == 200  # saved (the redirect followed)
    async with sessions(client)() as session:
        saved = await session.get(Campaign, own)
    assert saved is not None and saved.title == "甲村偷发乙村" and saved.village_ids == [1]
