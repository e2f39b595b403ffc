"""Township admins manage staff accounts and villages."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from bot.admin import accounts
from bot.admin import framework as adm
from bot.admin.auth import hash_password
from bot.admin.passwords import password_problem
from bot.storage.models import Village, Villager
from bot.storage.staff import POSITION_NAMES, ROLE_NAMES, ROLES, StaffUser, staff_villages
from bot.storage.tickets import OPEN_STATUSES, Ticket


def _village_ids(data: Any) -> list[int]:
    return sorted({int(v) for v in data.getall("village", []) if isinstance(v, str) and v.isdigit()})


async def _all_villages(request: web.Request) -> list[Village]:
    async with adm.db(request)() as session:
        return list((await session.execute(select(Village).order_by(Village.id))).scalars())


# ---------------------------------------------------------------- staff
async def staff_list(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session, session.begin():
        people = list(
            (
                await session.execute(
                    select(StaffUser)
                    .options(selectinload(StaffUser.villages))
                    .order_by(StaffUser.active.desc(), StaffUser.role, StaffUser.username)
                )
            ).scalars()
        )
        await adm.audit(session, request, "staff.list", object_type="staff")
    return await adm.render(
        request,
        "admin/staff_list.html",
        {"people": people, "roles": ROLE_NAMES, "positions": POSITION_NAMES},
        title="人员",
    )


def _form_context(person: StaffUser | None, villages: list[Village], error: str = "", **values: Any) -> dict[str, Any]:
    chosen = values.get("village_ids", [v.id for v in person.villages] if person else [])
    return {
        "person": person,
        "villages": villages,
        "chosen": set(chosen),
        "roles": ROLE_NAMES,
        "positions": POSITION_NAMES,
        "position": values.get("position", person.position if person else ""),
        "error": error,
        "username": values.get("username", person.username if person else ""),
        "display_name": values.get("display_name", person.display_name if person else ""),
        "role": values.get("role", person.role if person else "mediator"),
        "active": values.get("active", person.active if person else True),
        "reviewer": values.get("reviewer", person.reviewer if person else False),
    }


async def staff_new_page(request: web.Request) -> web.StreamResponse:
    return await adm.render(
        request, "admin/staff_form.html", _form_context(None, await _all_villages(request)), title="新增人员"
    )


async def staff_create(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    values: dict[str, Any] = {
        "username": adm.field_text(data, "username", 64),
        "display_name": adm.field_text(data, "display_name", 64),
        "role": adm.field_text(data, "role", 16),
        "village_ids": _village_ids(data),
        "position": adm.field_text(data, "position", 32),
        "reviewer": data.get("reviewer") == "1",
    }
    password, confirm = str(data.get("password", "")), str(data.get("confirm", ""))
    problem = password_problem(
        password, confirm, role=values["role"], username=values["username"], display_name=values["display_name"]
    )
    if problem is None:
        try:
            async with adm.db(request)() as session, session.begin():
                staff = await accounts.create_staff(
                    session,
                    username=values["username"],
                    role=values["role"],
                    password_hash=await hash_password(password),
                    village_ids=values["village_ids"],
                    display_name=values["display_name"],
                    position=values["position"],
                    reviewer=values["reviewer"],
                )
                await adm.audit(
                    session,
                    request,
                    "staff.create",
                    object_type="staff",
                    object_id=staff.id,
                    details={
                        "username": staff.username,
                        "role": staff.role,
                        "villages": values["village_ids"],
                        "position": staff.position,
                        "reviewer": staff.reviewer,
                    },
                )
        except accounts.AccountError as exc:
            problem = str(exc)
    if problem:
        villages = await _all_villages(request)
        return await adm.render(
            request,
            "admin/staff_form.html",
            _form_context(None, villages, problem, **values),
            title="新增人员",
            status=400,
        )
    adm.flash(request, f"已新增 {values['username']}。")
    adm.redirect(request, "admin-staff")


async def _person(request: web.Request, session: Any) -> StaffUser:
    try:
        staff_id = int(request.match_info["id"])
    except ValueError:
        adm.not_found()
    person = await accounts.load(session, staff_id)
    if person is None:
        adm.not_found("没有这个人。")
    return person


async def staff_edit_page(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session, session.begin():
        person = await _person(request, session)
        await adm.audit(session, request, "staff.view", object_type="staff", object_id=person.id)
    return await adm.render(
        request, "admin/staff_form.html", _form_context(person, await _all_villages(request)), title=person.label
    )


async def staff_update(request: web.Request) -> web.StreamResponse:
    me = adm.user(request)
    data = await adm.form(request)
    role = adm.field_text(data, "role", 16)
    position = adm.field_text(data, "position", 32)
    village_ids = _village_ids(data)
    active = data.get("active") == "1"
    reviewer = data.get("reviewer") == "1"
    display_name = adm.field_text(data, "display_name", 64)
    password, confirm = str(data.get("password", "")), str(data.get("confirm", ""))
    problem: str | None = None
    username = ""
    try:
        async with adm.db(request)() as session, session.begin():
            person = await _person(request, session)
            username = person.username
            accounts.check_role(role, village_ids, position)
            accounts.check_reviewer(role, reviewer)
            if person.id == me.id and (role != "admin" or not active):
                raise accounts.AccountError("不能停用自己，也不能取消自己的管理员角色（请另一位管理员操作）。")
            if password and (
                problem := password_problem(
                    password, confirm, role=role, username=person.username, display_name=display_name
                )
            ):
                raise accounts.AccountError(problem)
            changes: dict[str, Any] = {}
            if person.role != role:
                changes["role"] = [person.role, role]
            if person.active != active:
                changes["active"] = [person.active, active]
            if person.position != position:
                changes["position"] = [person.position, position]
                person.position = position
            if person.reviewer != reviewer:
                changes["reviewer"] = [person.reviewer, reviewer]
            person.reviewer = reviewer
            before = sorted(v.id for v in person.villages)
            if before != village_ids:
                changes["villages"] = [before, village_ids]
            person.villages = await accounts.villages_by_id(session, village_ids)
            person.role = role
            person.display_name = display_name
            if (person.active and not active) or password:
                person.session_epoch += 1  # deactivated or password reset: their sessions end now
            person.active = active
            if password:
                person.password_hash = await hash_password(password)
                changes["password"] = "reset"  # noqa: S105 - a marker, not a password
            await adm.audit(session, request, "staff.update", object_type="staff", object_id=person.id, details=changes)
    except accounts.AccountError as exc:
        problem = str(exc)
    if problem:
        async with adm.db(request)() as session:
            person = await _person(request, session)
        values = {
            "role": role,
            "village_ids": village_ids,
            "active": active,
            "display_name": display_name,
            "position": position,
            "reviewer": reviewer,
        }
        context = _form_context(person, await _all_villages(request), problem, **values)
        return await adm.render(request, "admin/staff_form.html", context, title=person.label, status=400)
    adm.flash(request, f"已保存 {username}。")
    adm.redirect(request, "admin-staff")


# ---------------------------------------------------------------- villages
async def villages_page(request: web.Request) -> web.StreamResponse:
    async with adm.db(request)() as session:
        villages = list((await session.execute(select(Village).order_by(Village.id))).scalars())
        staff_counts: dict[int, int] = dict(
            (
                await session.execute(
                    select(staff_villages.c.village_id, func.count())
                    .join(StaffUser, StaffUser.id == staff_villages.c.staff_id)
                    .where(StaffUser.active.is_(True))
                    .group_by(staff_villages.c.village_id)
                )
            ).all()
        )
        open_counts: dict[int | None, int] = dict(
            (
                await session.execute(
                    select(Ticket.village_id, func.count())
                    .where(Ticket.status.in_(OPEN_STATUSES))
                    .group_by(Ticket.village_id)
                )
            ).all()
        )
        villager_counts: dict[int | None, int] = dict(
            (await session.execute(select(Villager.village_id, func.count()).group_by(Villager.village_id))).all()
        )
    return await adm.render(
        request,
        "admin/villages.html",
        {
            "villages": villages,
            "staff_counts": staff_counts,
            "open_counts": open_counts,
            "villager_counts": villager_counts,
            "next_id": max([v.id for v in villages], default=0) + 1,
        },
        title="村",
    )


async def village_create(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    raw_id, name = adm.field_text(data, "id", 6), adm.field_text(data, "name", 64)
    if not raw_id.isdigit() or not 1 <= int(raw_id) <= 9999 or not name:
        adm.flash(request, "请填写村的编号（1-9999）和名称。", "error")
        adm.redirect(request, "admin-villages")
    async with adm.db(request)() as session, session.begin():
        if await session.get(Village, int(raw_id)) is not None:
            adm.flash(request, f"编号 {raw_id} 已经有村了。", "error")
            adm.redirect(request, "admin-villages")
        session.add(Village(id=int(raw_id), name=name, active=True))
        await adm.audit(
            session, request, "village.create", object_type="village", object_id=raw_id, details={"name": name}
        )
    adm.flash(request, f"已新增 {name}（二维码场景值 village_{raw_id}）。")
    adm.redirect(request, "admin-villages")


async def village_update(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    name = adm.field_text(data, "name", 64)
    active = data.get("active") == "1"
    async with adm.db(request)() as session, session.begin():
        village = await session.get(Village, int(request.match_info["id"]))
        if village is None:
            adm.not_found("没有这个村。")
        if not name:
            adm.flash(request, "村名不能为空。", "error")
            adm.redirect(request, "admin-villages")
        changes = {"name": [village.name, name], "active": [village.active, active]}
        village.name, village.active = name, active
        await adm.audit(
            session, request, "village.update", object_type="village", object_id=village.id, details=changes
        )
    adm.flash(request, f"已保存 {name}。")
    adm.redirect(request, "admin-villages")


def setup(app: web.Application) -> None:
    adm.add_view(app, "GET", "/admin/staff", staff_list, name="admin-staff", roles=adm.ADMIN)
    adm.add_view(app, "GET", "/admin/staff/new", staff_new_page, name="admin-staff-new", roles=adm.ADMIN)
    adm.add_view(app, "POST", "/admin/staff/new", staff_create, name="admin-staff-create", roles=adm.ADMIN)
    adm.add_view(app, "GET", r"/admin/staff/{id:\d+}", staff_edit_page, name="admin-staff-edit", roles=adm.ADMIN)
    adm.add_view(app, "POST", r"/admin/staff/{id:\d+}", staff_update, name="admin-staff-update", roles=adm.ADMIN)
    adm.add_view(app, "GET", "/admin/villages", villages_page, name="admin-villages", roles=adm.ADMIN)
    adm.add_view(app, "POST", "/admin/villages", village_create, name="admin-village-create", roles=adm.ADMIN)
    adm.add_view(app, "POST", r"/admin/villages/{id:\d+}", village_update, name="admin-village-update", roles=adm.ADMIN)
    adm.add_nav(app, "人员", "admin-staff", roles=adm.ADMIN, order=60)
    adm.add_nav(app, "村", "admin-villages", roles=adm.ADMIN, order=70)


__all__ = ["ROLES", "setup"]
