"""Who may open what: every back-office route, every role, village A's staff against village B's tickets."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.admin import framework
from bot.keys import SERVICES
from bot.services import tickets as svc
from bot.storage.models import Villager, utcnow
from bot.storage.staff import StaffUser
from bot.storage.tickets import Ticket
from tests import test_tickets_support as support
from tests.test_tickets_support import Staffer, add_staff, sessions, thread

pytestmark = support.sqlite_only
browsers = support.browsers
cheap_hashing = support.cheap_hashing
fake_server = support.fake_server
settings = support.settings

ROLE_OF = {"chief": "admin", "m1": "mediator", "m2": "mediator", "v1": "volunteer", "l1": "leader"}


async def world(client: Any) -> dict[str, Any]:
    """Village 1: mediator m1, volunteer v1. Village 2: mediator m2. Tickets t1 (v1 village, m1), t2 (village 2),
    t3 (village 1, assigned to the volunteer)."""
    ids = {
        "chief": await add_staff(client, "chief", "admin"),
        "m1": await add_staff(client, "m1", "mediator", (1,)),
        "m2": await add_staff(client, "m2", "mediator", (2,)),
        "v1": await add_staff(client, "v1", "volunteer", (1,)),
        "l1": await add_staff(client, "l1", "leader", position="police_head"),
    }
    knowledge = client.app[SERVICES].knowledge
    app_settings = client.app[SERVICES].settings
    tickets: dict[str, int] = {}
    async with sessions(client)() as session, session.begin():
        for key, village, openid in (("t1", 1, "o_t1"), ("t2", 2, "o_t2"), ("t3", 1, "o_t3")):
            session.add(Villager(openid=openid, village_id=village))
            await session.flush()
            intake = svc.Intake(
                openid=openid,
                village_id=village,
                parts=[svc.Part("地界纠纷"), svc.Part("", None, {"type": "image", "media_id": f"pic_{key}"})],
                phone="13800138000",
            )
            ticket = await svc.create_ticket(session, knowledge, app_settings, intake, utcnow())
            tickets[key] = ticket.id
        t3 = await session.get(Ticket, tickets["t3"])
        v1 = await session.get(StaffUser, ids["v1"])
        chief = await session.get(StaffUser, ids["chief"])
        assert t3 is not None and v1 is not None and chief is not None
        svc.assign(session, t3, v1, chief, utcnow())
    media = {}
    for key, ticket_id in tickets.items():
        media[key] = next(m.id for m in await thread(client, ticket_id) if m.media)
    return {"staff": ids, "tickets": tickets, "media": media}


def path_for(client: Any, spec: framework.AdminRoute, w: dict[str, Any], ticket: str = "t1") -> str:
    resource = client.app.router[spec.name]
    params: dict[str, str] = {}
    for name in re.findall(r"\{(\w+)", spec.path):
        if name == "id" and spec.name.startswith("admin-ticket"):
            params[name] = str(w["tickets"][ticket])
        elif name == "id" and spec.name.startswith("admin-staff"):
            params[name] = str(w["staff"]["v1"])
        elif name == "message_id":
            params[name] = str(w["media"][ticket])
        elif name == "openid":
            params[name] = f"o_{ticket}"
        elif name == "doc":
            params[name] = "agreement"
        elif name == "fmt":
            params[name] = "csv" if spec.name.endswith("export") else ""
        else:
            params[name] = "1"
    return str(resource.url_for(**params))


async def call(browser: Staffer, spec: framework.AdminRoute, path: str) -> int:
    if spec.method == "GET":
        return (await browser.get_raw(path)).status
    status, _ = await browser.post(path, {})
    return status


@pytest.fixture
async def everyone(client: Any, browsers: Any) -> tuple[dict[str, Any], dict[str, Staffer]]:
    w = await world(client)
    return w, {name: await browsers(name) for name in ROLE_OF}


def routes(client: Any) -> list[framework.AdminRoute]:
    specs = list(client.app[framework.REGISTRY].routes.values())
    assert len(specs) >= 25
    return [s for s in specs if not s.public and s.name != "admin-logout"]


async def test_every_route_is_403_for_every_role_it_is_not_for(client: Any, everyone: Any) -> None:
    w, people = everyone
    checked = 0
    for spec in routes(client):
        for name, browser in people.items():
            if ROLE_OF[name] in spec.roles:
                continue
            status = await call(browser, spec, path_for(client, spec, w))
            assert status == 403, f"{name} ({ROLE_OF[name]}) got {status} on {spec.method} {spec.path}"
            checked += 1
    assert checked >= 40


async def test_every_route_needs_sign_in(client: Any, browsers: Any, everyone: Any) -> None:
    w, _people = everyone
    anonymous: Staffer = await browsers()
    await anonymous.get("/admin/sign-in")  # a CSRF token, so POSTs fail on sign-in, not on the token
    for spec in routes(client):
        path = path_for(client, spec, w)
        if spec.method == "GET":
            resp = await anonymous.get_raw(path)
            assert resp.status == 303 and resp.headers["Location"].startswith("/admin/sign-in"), spec.path
        else:
            status, _ = await anonymous.post(path, {})
            assert status == 401, f"{status} on POST {spec.path}"


TICKET_ROUTES = (
    "admin-ticket",
    "admin-ticket-media",
    "admin-ticket-deliveries",
    "admin-ticket-reply",
    "admin-ticket-note",
    "admin-ticket-assign",
    "admin-ticket-status",
    "admin-ticket-escalate",
    "admin-ticket-agreement",
)


@pytest.mark.parametrize(
    ("who", "ticket"),
    [
        ("m2", "t1"),  # another village's mediator
        ("m1", "t2"),
        ("v1", "t1"),  # a volunteer sees only the tickets assigned to them
        ("v1", "t2"),
        ("l1", "t1"),  # 三长联动 members see only tickets escalated to the 三长
    ],
)
async def test_village_a_staff_cannot_read_or_change_village_b_tickets(
    client: Any, everyone: Any, who: str, ticket: str
) -> None:
    w, people = everyone
    registry = client.app[framework.REGISTRY].routes
    for name in TICKET_ROUTES:
        spec = registry[name]
        status = await call(people[who], spec, path_for(client, spec, w, ticket))
        assert status == 403, f"{who} got {status} on {spec.method} {spec.path} of {ticket}"
    _, queue = await people[who].get("/admin/tickets")
    async with sessions(client)() as session:
        row = await session.get(Ticket, w["tickets"][ticket])
        assert row is not None
        number = row.number
    assert number not in queue
    _, page = await people[who].get("/admin/tickets/" + str(w["tickets"][ticket]))
    assert "地界纠纷" not in page  # nothing leaks on the 403 page


async def test_each_role_reaches_its_own_tickets(client: Any, everyone: Any) -> None:
    w, people = everyone
    for who, ticket in (("chief", "t2"), ("m1", "t1"), ("m1", "t3"), ("m2", "t2"), ("v1", "t3")):
        status, page = await people[who].get(f"/admin/tickets/{w['tickets'][ticket]}")
        assert status == 200 and "地界纠纷" in page, (who, ticket)
        resp = await people[who].get_raw(f"/admin/tickets/{w['tickets'][ticket]}/media/{w['media'][ticket]}")
        assert resp.status == 200, (who, ticket)
    # a mediator may hand a ticket only to their own village's staff
    status, _ = await people["m1"].post(
        f"/admin/tickets/{w['tickets']['t1']}/assign", {"assignee": str(w["staff"]["m2"])}
    )
    assert status == 403
    status, page = await people["m1"].post(
        f"/admin/tickets/{w['tickets']['t1']}/assign", {"assignee": str(w["staff"]["v1"])}
    )
    assert status == 200 and "已分派" in page
