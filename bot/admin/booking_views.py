"""预约 in the back-office: day and week views per place, check-in / no-show, cancelling, booking callers
by phone, CSV / XLSX export of a day (township admins and village mediators); services, places,
schedules and special days (admins only).

Who sees what: admins every place; a mediator the service points of their villages. Names are
shown on the day view, phone numbers only masked there: the booking's own page and the exports
show them in full, and every one of those views is audited.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin import framework as adm
from bot.services import booking as svc
from bot.services.privacy import mask_phone
from bot.storage.booking import (
    SPECIAL_DAY_KINDS,
    Booking,
    BookingPlace,
    BookingSchedule,
    BookingService,
    BookingSpecialDay,
)
from bot.storage.models import Village, utcnow

_Row = TypeVar("_Row", BookingService, BookingPlace)

WEEKDAYS = tuple(enumerate(svc.WEEKDAY_NAMES))  # (0, "一") … (6, "日")
KIND_NAMES = {"closed": "暂停（不能约）", "extra": "加开 / 法律咨询日"}
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
Attendance = Literal["checked_in", "no_show", "confirmed"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------- helpers
def _now() -> dt.datetime:
    return utcnow()


def _rules(request: web.Request) -> svc.Rules:
    return svc.load_config(adm.services(request).settings.knowledge_dir).rules


async def _catalog(request: web.Request, session: AsyncSession) -> svc.Catalog:
    services = adm.services(request)
    config = svc.load_config(services.settings.knowledge_dir)
    await svc.ensure_seeded(session, config, services.texts.site)
    return await svc.load_catalog(session)


def _visible_places(user: adm.Staff, cat: svc.Catalog) -> list[BookingPlace]:
    """Admins: every place. Mediators: the service points of their villages."""
    return [p for p in cat.places.values() if user.can_see_village(p.village_id)]


def _pick_place(request: web.Request, places: Sequence[BookingPlace]) -> BookingPlace | None:
    wanted = request.query.get("place", "")
    for p in places:
        if str(p.id) == wanted:
            return p
    if wanted:
        adm.forbid("您不能查看这个地点的预约。")
    return next((p for p in places if p.active), places[0] if places else None)


def _pick_day(request: web.Request, rules: svc.Rules, name: str = "day") -> dt.date:
    raw = request.query.get(name, "")
    try:
        return adm.in_calendar(dt.date.fromisoformat(raw)) if raw else svc.local_day(_now(), rules)
    except ValueError:
        return svc.local_day(_now(), rules)


async def _booking_for(request: web.Request, session: AsyncSession, cat: svc.Catalog) -> Booking:
    """The booking of the URL, if the signed-in user may see its place."""
    booking = await session.get(Booking, int(request.match_info["id"]))
    if booking is None:
        adm.not_found("没有这个预约。")
    if booking.place_id not in {p.id for p in _visible_places(adm.user(request), cat)}:
        adm.forbid("您不能查看这个地点的预约。")
    return booking


def _calendar_warning(rules: svc.Rules) -> str:
    """Told to staff when booking runs into a year chinesecalendar has no holidays for yet."""
    today = svc.local_day(_now(), rules)
    last = svc.calendar_data_until()
    if (today + dt.timedelta(days=svc.SEARCH_DAYS)).year <= last:
        return ""
    return (
        f"节假日数据只到{last}年。{last + 1}年的法定节假日和调休上班日还不知道："
        "请在“时间表”的特殊日期里手动添加（放假日加“暂停”，调休上班的周末加“加开”），或请技术人员更新节假日数据。"
    )


def _day_links(day: dt.date) -> dict[str, str]:
    return {
        "prev": (day - dt.timedelta(days=1)).isoformat(),
        "next": (day + dt.timedelta(days=1)).isoformat(),
        "week_prev": (day - dt.timedelta(days=7)).isoformat(),
        "week_next": (day + dt.timedelta(days=7)).isoformat(),
    }


def _common(rules: svc.Rules) -> dict[str, Any]:
    return {
        "fmt_day": svc.fmt_day,
        "fmt_time": lambda moment: svc.fmt_time(moment, rules),
        "fmt_when": lambda a, b: svc.fmt_when(a, b, rules),
        "mask": mask_phone,
        "status_names": svc.STATUS_NAMES,
        "source_names": svc.SOURCE_NAMES,
        "calendar_warning": _calendar_warning(rules),
    }


def _checkbox(data: Mapping[str, Any], name: str) -> bool:
    return data.get(name) in ("1", "on", "true")


def _int(data: Mapping[str, Any], name: str, default: int, *, minimum: int = 0, maximum: int = 10_000) -> int:
    try:
        value = int(str(data.get(name, default)).strip() or default)
    except ValueError as exc:
        raise ValueError(f"{name} 要填整数") from exc
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} 要在 {minimum} 到 {maximum} 之间")
    return value


# ---------------------------------------------------------------- the day and the week
async def day_page(request: web.Request) -> web.StreamResponse:
    rules = _rules(request)
    user = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        places = _visible_places(user, cat)
        place = _pick_place(request, places)
        day = _pick_day(request, rules)
        overview = await svc.day_overview(session, cat, rules, place.id, day) if place else None
        if overview is not None:
            await adm.audit(
                session, request, "booking.day", object_type="booking_place", object_id=place.id if place else "",
                details={"day": day.isoformat()},
            )  # fmt: skip
    return await adm.render(
        request,
        "admin/booking/day.html",
        {
            "places": places,
            "place": place,
            "day": day,
            "o": overview,
            "links": _day_links(day),
            "today": svc.local_day(_now(), rules),
            "now": _now(),
            **_common(rules),
        },
        title=f"预约 {svc.fmt_day(day)}",
    )


async def week_page(request: web.Request) -> web.StreamResponse:
    rules = _rules(request)
    user = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        places = _visible_places(user, cat)
        place = _pick_place(request, places)
        start = _pick_day(request, rules, "start")
        week = await svc.week_overview(session, cat, rules, place.id, start) if place else []
    return await adm.render(
        request,
        "admin/booking/week.html",
        {"places": places, "place": place, "start": start, "week": week, "links": _day_links(start), **_common(rules)},
        title="预约 一周",
    )


async def detail_page(request: web.Request) -> web.StreamResponse:
    rules = _rules(request)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        booking = await _booking_for(request, session, cat)
        previous = await session.get(Booking, booking.rescheduled_from_id) if booking.rescheduled_from_id else None
        await adm.audit(session, request, "booking.view", object_type="booking", object_id=booking.id)
    return await adm.render(
        request,
        "admin/booking/detail.html",
        {
            "b": booking,
            "service": cat.services.get(booking.service_id),
            "place": cat.places.get(booking.place_id),
            "previous": previous,
            "upcoming": booking.starts_at > _now(),
            "day": svc.local_day(booking.starts_at, rules),
            **_common(rules),
        },
        title=f"预约 {booking.code}",
    )


# ---------------------------------------------------------------- check-in, no-show, cancel
async def attendance(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    status = adm.field_text(data, "status", 16)
    if status not in ("checked_in", "no_show", "confirmed"):
        raise web.HTTPBadRequest(text="状态不对。")
    user = adm.user(request)
    rules = _rules(request)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        booking = await _booking_for(request, session, cat)
        try:
            done = await svc.mark_attendance(
                session, booking.id, cast(Attendance, status), by=user.username, now=_now(), rules=rules
            )
        except svc.AttendanceError as exc:  # 到了 on another day, 没来 before the time
            adm.flash(request, str(exc), "error")
        else:
            if done is None:
                adm.flash(request, "这个预约已经取消，不能登记。", "error")
            else:
                await adm.audit(session, request, f"booking.{status}", object_type="booking", object_id=booking.id)
                adm.flash(request, f"{booking.name}：{svc.STATUS_NAMES[status]}")
        day = svc.local_day(booking.starts_at, rules)
    adm.redirect(request, "admin-bookings", query={"place": booking.place_id, "day": day.isoformat()})


async def cancel(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    reason = adm.field_text(data, "reason", 200)
    notify = _checkbox(data, "notify")
    user = adm.user(request)
    rules = _rules(request)
    texts = adm.services(request).texts
    async with adm.db(request)() as session, session.begin():
        cat = await svc.load_catalog(session)
        booking = await _booking_for(request, session, cat)
        done = await svc.cancel_booking(
            session, cat, rules, texts, booking.id, now=_now(), by=f"staff:{user.username}", reason=reason,
            notify_villager=notify,
        )  # fmt: skip
        if done is None:
            adm.flash(request, "这个预约已经不在了（取消过或已过期）。", "warn")
        else:
            await adm.audit(
                session, request, "booking.cancel", object_type="booking", object_id=booking.id,
                details={"reason": reason, "notified": notify and bool(booking.openid)},
            )  # fmt: skip
            note = "，已通过公众号告诉村民" if notify and booking.openid else ""
            if done.offered is not None:
                note += "；空出的位置已留给排队的村民"
            adm.flash(request, f"已取消 {booking.name} 的预约（{booking.code}）{note}。")
        day = svc.local_day(booking.starts_at, rules)
    adm.redirect(request, "admin-bookings", query={"place": booking.place_id, "day": day.isoformat()})


# ---------------------------------------------------------------- booking a caller in by phone
async def _free_options(
    session: AsyncSession, cat: svc.Catalog, rules: svc.Rules, place_id: int, day: dt.date
) -> list[tuple[str, str]]:
    """(value, label) of every free slot of every service at the place that day (from now on)."""
    options = []
    for service in cat.active_services():
        (avail,) = await svc.availability(session, cat, rules, place_id, service.id, [day], not_before=_now())
        for s in avail.free_slots:
            label = (
                f"{service.name} {svc.fmt_time(s.starts_at, rules)}-{svc.fmt_time(s.ends_at, rules)}（剩{s.free}个）"
            )
            options.append((f"{service.id}|{s.starts_at.isoformat()}", label))
    return options


async def new_page(
    request: web.Request, *, errors: Sequence[str] = (), values: Mapping[str, Any] | None = None
) -> web.StreamResponse:
    rules = _rules(request)
    user = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        places = [p for p in _visible_places(user, cat) if p.active]
        place = _pick_place(request, places)
        day = _pick_day(request, rules)
        options = await _free_options(session, cat, rules, place.id, day) if place else []
    return await adm.render(
        request,
        "admin/booking/new.html",
        {
            "places": places,
            "place": place,
            "day": day,
            "options": options,
            "errors": list(errors),
            "v": {"slot": "", "name": "", "phone": "", "consent": False, "note": "", **(values or {})},
            "token": secrets.token_hex(12),
            "retention_days": rules.phone_retention_days,
            **_common(rules),
        },
        title="代村民预约",
        status=400 if errors else 200,
    )


async def new_post(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    user = adm.user(request)
    rules = _rules(request)
    slot, name, note = (
        adm.field_text(data, "slot", 80),
        adm.field_text(data, "name", 64),
        adm.field_text(data, "note", 500),
    )
    phone = re.sub(r"\s", "", adm.field_text(data, "phone", 32))
    consent = _checkbox(data, "consent")
    values: dict[str, Any] = {"slot": slot, "name": name, "phone": phone, "consent": consent, "note": note}
    token = adm.field_text(data, "token", 64) or secrets.token_hex(12)
    errors = []
    if not name:
        errors.append("请填村民的姓名。")
    if phone and not _PHONE.match(phone):
        errors.append("手机号不对：11位手机号，或带区号的座机。")
    if phone and not consent:
        errors.append("要保存手机号，须先问村民同意（勾选“村民同意”）；不同意就不填手机号。")
    service_id, _sep, start_raw = slot.partition("|")
    try:
        starts_at = dt.datetime.fromisoformat(start_raw)
        adm.in_calendar(starts_at.date())
        service_id_int = int(service_id)
    except ValueError:
        errors.append("请选一个时间。")
        starts_at, service_id_int = _now(), 0
    if errors:
        return await new_page(request, errors=errors, values=values)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        places = {p.id: p for p in _visible_places(user, cat)}
        place_id = int(request.query.get("place", "0") or 0)
        if place_id not in places:
            adm.forbid("您不能在这个地点登记预约。")
        outcome = await svc.book(
            session, cat, rules, place_id=place_id, service_id=service_id_int, starts_at=starts_at,
            request_key=f"staff:{token}", now=_now(), openid=None, name=name, phone=phone or None,
            phone_consent_at=_now() if phone else None, source="staff", created_by=user.username,
            note=note, check_limit=False, lead=dt.timedelta(0),
        )  # fmt: skip
        if outcome.status == "booked" and outcome.booking is not None:
            await adm.audit(session, request, "booking.create", object_type="booking", object_id=outcome.booking.id)
    if outcome.status == "duplicate" and outcome.booking is not None:
        adm.flash(request, f"这次预约已经登记过了，预约码 {outcome.booking.code}。", "warn")
    elif outcome.status == "booked" and outcome.booking is not None:
        adm.flash(request, f"已为 {outcome.booking.name} 预约，预约码 {outcome.booking.code}（请告诉村民）。")
    else:
        reason = "这个时间刚被约满了" if outcome.status == "full" else "这个时间不能约了"
        return await new_page(request, errors=[f"{reason}，请换一个时间。"], values=values)
    day = svc.local_day(starts_at, rules)
    adm.redirect(request, "admin-bookings", query={"place": place_id, "day": day.isoformat()})


# ---------------------------------------------------------------- export a day
async def _export(request: web.Request) -> tuple[svc.DayOverview, list[list[str]], str]:
    rules = _rules(request)
    user = adm.user(request)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        place = _pick_place(request, _visible_places(user, cat))
        if place is None:
            adm.not_found("没有可以导出的地点。")
        day = _pick_day(request, rules)
        overview = await svc.day_overview(session, cat, rules, place.id, day)
        await adm.audit(
            session, request, "booking.export", object_type="booking_place", object_id=place.id,
            details={"day": day.isoformat(), "format": request.path.rsplit(".", 1)[-1]},
        )  # fmt: skip
    rows = [[_safe_cell(v) for v in row] for row in svc.export_rows(overview, rules)]
    return overview, rows, f"bookings-{place.code}-{day.isoformat()}"


def _safe_cell(value: str) -> str:
    """Villager text is data: a name like '=HYPERLINK(…)' must not become a formula in Excel."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


async def export_csv(request: web.Request) -> web.StreamResponse:
    _overview, rows, name = await _export(request)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return web.Response(
        body=("\ufeff" + buffer.getvalue()).encode("utf-8"),  # the BOM makes Excel read UTF-8 Chinese
        content_type="text/csv",
        charset="utf-8",
        headers=_attachment(name + ".csv"),
    )


def _xlsx(rows: list[list[str]], title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31]
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows():
        for cell in cells:
            cell.data_type = "s"  # text, never a formula
    for column, width in zip("ABCDEFGH", (13, 18, 10, 14, 9, 10, 12, 30), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def export_xlsx(request: web.Request) -> web.StreamResponse:
    overview, rows, name = await _export(request)
    body = await asyncio.to_thread(_xlsx, rows, f"{overview.day.isoformat()} {overview.place.name}")
    return web.Response(
        body=body,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=_attachment(name + ".xlsx"),
    )


# ---------------------------------------------------------------- services, places, schedules, special days (admins)
async def settings_page(request: web.Request) -> web.StreamResponse:
    rules = _rules(request)
    today = svc.local_day(_now(), rules)
    async with adm.db(request)() as session, session.begin():
        cat = await _catalog(request, session)
        specials = list(
            (
                await session.execute(
                    select(BookingSpecialDay)
                    .where(BookingSpecialDay.day >= today - dt.timedelta(days=7))
                    .order_by(BookingSpecialDay.day, BookingSpecialDay.id)
                )
            ).scalars()
        )
        villages = list((await session.execute(select(Village).order_by(Village.id))).scalars())
    schedules_by_place: dict[int, list[BookingSchedule]] = {}
    for sch in cat.schedules:
        schedules_by_place.setdefault(sch.place_id, []).append(sch)
    return await adm.render(
        request,
        "admin/booking/settings.html",
        {
            "services": list(cat.services.values()),
            "places": list(cat.places.values()),
            "schedules_by_place": schedules_by_place,
            "specials": specials,
            "villages": villages,
            "weekdays": WEEKDAYS,
            "kinds": KIND_NAMES,
            "today": today,
            "hhmm": lambda t: t.strftime("%H:%M") if t else "",
            "rules": rules,
            **_common(rules),
        },
        title="预约时间表",
    )


def _back(request: web.Request, anchor: str = "") -> web.HTTPSeeOther:
    return web.HTTPSeeOther(adm.url(request, "admin-booking-settings") + anchor)


async def _existing_or_new(session: AsyncSession, model: type[_Row], raw_id: str | None, code: str, name: str) -> _Row:
    """The row the URL names (404 if gone), or a new one when the URL names none."""
    if raw_id is None:
        row = model(code=code, name=name)
        session.add(row)
        return row
    found = await session.get(model, int(raw_id))
    if found is None:
        adm.not_found()
    return found


async def service_save(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    name = adm.field_text(data, "name", 64)
    if not name:
        adm.flash(request, "事项名称不能空。", "error")
        raise _back(request, "#services")
    async with adm.db(request)() as session, session.begin():
        raw_id = request.match_info.get("id")
        service = await _existing_or_new(session, BookingService, raw_id, f"svc-{secrets.token_hex(4)}", name)
        service.name = name
        service.description = adm.field_text(data, "description", 500)
        service.bring = adm.field_text(data, "bring", 500)
        service.active = _checkbox(data, "active") or raw_id is None
        try:
            service.sort_order = _int(data, "sort_order", service.sort_order or 0, maximum=999)
        except ValueError as exc:
            adm.flash(request, str(exc), "error")
        await session.flush()
        await adm.audit(
            session, request, "booking.service.save", object_type="booking_service", object_id=service.id,
            details={"name": name, "active": service.active},
        )  # fmt: skip
    adm.flash(request, f"已保存：{name}")
    raise _back(request, "#services")


async def place_save(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    name = adm.field_text(data, "name", 64)
    if not name:
        adm.flash(request, "地点名称不能空。", "error")
        raise _back(request, "#places")
    village_raw = adm.field_text(data, "village_id", 8)
    async with adm.db(request)() as session, session.begin():
        raw_id = request.match_info.get("id")
        place = await _existing_or_new(session, BookingPlace, raw_id, f"place-{secrets.token_hex(4)}", name)
        place.name = name
        place.address = adm.field_text(data, "address", 200)
        place.village_id = int(village_raw) if village_raw.isdigit() else None
        place.active = _checkbox(data, "active") or raw_id is None
        await session.flush()
        await adm.audit(
            session, request, "booking.place.save", object_type="booking_place", object_id=place.id,
            details={"name": name, "active": place.active},
        )  # fmt: skip
    adm.flash(request, f"已保存：{name}")
    raise _back(request, "#places")


def _schedule_values(data: Mapping[str, Any], weekdays: list[str]) -> dict[str, Any]:
    days = sorted({int(d) for d in weekdays if d.isdigit() and 0 <= int(d) <= 6})
    if not days:
        raise ValueError("至少选一个星期几。")
    start = svc.parse_hhmm(adm.field_text(data, "start_time", 5), "开始时间")
    end = svc.parse_hhmm(adm.field_text(data, "end_time", 5), "结束时间")
    if end <= start:
        raise ValueError("结束时间要晚于开始时间。")
    breaks = [b.strip() for b in re.split(r"[,，、\s]+", adm.field_text(data, "breaks", 200)) if b.strip()]
    for b in breaks:
        svc.parse_span(b, "休息时间")
    return {
        "weekdays": days,
        "start_time": start,
        "end_time": end,
        "slot_minutes": _int(data, "slot_minutes", 30, minimum=5, maximum=480),
        "capacity": _int(data, "capacity", 1, minimum=0, maximum=200),
        "breaks": breaks,
        "active": _checkbox(data, "active"),
    }


async def schedule_save(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    try:
        values = _schedule_values(data, [str(d) for d in data.getall("weekdays", [])])
    except (ValueError, svc.BookingConfigError) as exc:
        adm.flash(request, f"时间表没保存：{exc}", "error")
        raise _back(request, "#schedules") from exc
    async with adm.db(request)() as session, session.begin():
        raw_id = request.match_info.get("id")
        if raw_id is None:
            try:
                place_id, service_id = _int(data, "place_id", 0, minimum=1), _int(data, "service_id", 0, minimum=1)
            except ValueError as exc:
                adm.flash(request, "请选地点和事项。", "error")
                raise _back(request, "#schedules") from exc
            if (
                await session.get(BookingPlace, place_id) is None
                or await session.get(BookingService, service_id) is None
            ):
                adm.not_found()
            schedule = BookingSchedule(place_id=place_id, service_id=service_id, **{**values, "active": True})
            session.add(schedule)
        else:
            found = await session.get(BookingSchedule, int(raw_id))
            if found is None:
                adm.not_found()
            schedule = found
            for key, value in values.items():
                setattr(schedule, key, value)
        await session.flush()
        await adm.audit(
            session, request, "booking.schedule.save", object_type="booking_schedule", object_id=schedule.id,
            details={k: str(v) for k, v in values.items()},
        )  # fmt: skip
    adm.flash(request, "时间表已保存，村民马上能按新时间预约（已约好的不受影响）。")
    raise _back(request, "#schedules")


async def _delete_row(
    request: web.Request,
    model: type[BookingSchedule] | type[BookingSpecialDay],
    object_type: str,
    action: str,
    done: str,
    anchor: str,
) -> web.StreamResponse:
    """Delete one schedule or special-day row by the URL's id, audited, then back to its section."""
    async with adm.db(request)() as session, session.begin():
        row: BookingSchedule | BookingSpecialDay | None = await session.get(model, int(request.match_info["id"]))
        if row is None:
            adm.not_found()
        await session.delete(row)
        await adm.audit(session, request, action, object_type=object_type, object_id=row.id)
    adm.flash(request, done)
    raise _back(request, anchor)


async def schedule_delete(request: web.Request) -> web.StreamResponse:
    return await _delete_row(
        request,
        BookingSchedule,
        "booking_schedule",
        "booking.schedule.delete",
        "已删除这段时间（已约好的预约还在，请在日视图里查看）。",
        "#schedules",
    )


async def special_create(request: web.Request) -> web.StreamResponse:
    data = await adm.form(request)
    rules = _rules(request)
    try:
        day = adm.in_calendar(dt.date.fromisoformat(adm.field_text(data, "day", 10)))
        kind = adm.field_text(data, "kind", 16)
        if kind not in SPECIAL_DAY_KINDS:
            raise ValueError("请选类型。")
        start_raw, end_raw = adm.field_text(data, "start_time", 5), adm.field_text(data, "end_time", 5)
        start = svc.parse_hhmm(start_raw, "开始时间") if start_raw else None
        end = svc.parse_hhmm(end_raw, "结束时间") if end_raw else None
        if (start is None) != (end is None) or (start and end and end <= start):
            raise ValueError("开始和结束时间要一起填，结束要晚于开始。")
        place_raw, service_raw = adm.field_text(data, "place_id", 8), adm.field_text(data, "service_id", 8)
        special = BookingSpecialDay(
            day=day,
            kind=kind,
            place_id=int(place_raw) if place_raw.isdigit() else None,
            service_id=int(service_raw) if service_raw.isdigit() else None,
            title=adm.field_text(data, "title", 64),
            note=adm.field_text(data, "note", 500),
            volunteers=adm.field_text(data, "volunteers", 300),
            start_time=start,
            end_time=end,
            slot_minutes=_int(data, "slot_minutes", 30, minimum=5, maximum=480) if start else None,
            capacity=_int(data, "capacity", 1, minimum=0, maximum=200) if start and data.get("capacity") else None,
            extra_capacity=_int(data, "extra_capacity", 0, maximum=200),
            created_at=_now(),
            created_by=adm.user(request).username,
        )
    except (ValueError, svc.BookingConfigError) as exc:
        adm.flash(request, f"特殊日期没保存：{exc}", "error")
        raise _back(request, "#specials") from exc
    async with adm.db(request)() as session, session.begin():
        session.add(special)
        await session.flush()
        await adm.audit(
            session, request, "booking.special.create", object_type="booking_special_day", object_id=special.id,
            details={"day": day.isoformat(), "kind": kind, "title": special.title},
        )  # fmt: skip
        affected = 0
        if kind == "closed":
            start_utc, end_utc = svc.day_bounds(day, rules)
            q = (
                select(func.count())
                .select_from(Booking)
                .where(
                    Booking.status.in_(("held", "confirmed")),
                    Booking.starts_at >= start_utc,
                    Booking.starts_at < end_utc,
                )
            )
            if special.place_id is not None:
                q = q.where(Booking.place_id == special.place_id)
            if special.service_id is not None:
                q = q.where(Booking.service_id == special.service_id)
            affected = int(await session.scalar(q) or 0)
    if affected:
        adm.flash(
            request,
            f"已添加。注意：{svc.fmt_day(day)}已有{affected}个预约，请在日视图里联系村民改约或取消。",
            "warn",
        )
    else:
        adm.flash(request, f"已添加：{svc.fmt_day(day)} {KIND_NAMES[kind]}")
    raise _back(request, "#specials")


async def special_delete(request: web.Request) -> web.StreamResponse:
    return await _delete_row(
        request, BookingSpecialDay, "booking_special_day", "booking.special.delete", "已删除这个特殊日期。", "#specials"
    )


# ---------------------------------------------------------------- setup
def setup(app: web.Application) -> None:
    staff, admin = adm.STAFF, adm.ADMIN
    n = r"{id:\d+}"
    adm.add_view(app, "GET", "/admin/bookings", day_page, name="admin-bookings", roles=staff)
    adm.add_view(app, "GET", "/admin/bookings/week", week_page, name="admin-booking-week", roles=staff)
    adm.add_view(app, "GET", "/admin/bookings/export.csv", export_csv, name="admin-booking-csv", roles=staff)
    adm.add_view(app, "GET", "/admin/bookings/export.xlsx", export_xlsx, name="admin-booking-xlsx", roles=staff)
    adm.add_view(app, "GET", "/admin/bookings/new", new_page, name="admin-booking-new", roles=staff)
    adm.add_view(app, "POST", "/admin/bookings/new", new_post, name="admin-booking-create", roles=staff)
    adm.add_view(app, "GET", f"/admin/bookings/{n}", detail_page, name="admin-booking", roles=staff)
    adm.add_view(
        app, "POST", f"/admin/bookings/{n}/attendance", attendance, name="admin-booking-attendance", roles=staff
    )
    adm.add_view(app, "POST", f"/admin/bookings/{n}/cancel", cancel, name="admin-booking-cancel", roles=staff)
    adm.add_view(app, "GET", "/admin/bookings/settings", settings_page, name="admin-booking-settings", roles=admin)
    adm.add_view(app, "POST", "/admin/bookings/services", service_save, name="admin-booking-service-new", roles=admin)
    adm.add_view(app, "POST", f"/admin/bookings/services/{n}", service_save, name="admin-booking-service", roles=admin)
    adm.add_view(app, "POST", "/admin/bookings/places", place_save, name="admin-booking-place-new", roles=admin)
    adm.add_view(app, "POST", f"/admin/bookings/places/{n}", place_save, name="admin-booking-place", roles=admin)
    adm.add_view(
        app, "POST", "/admin/bookings/schedules", schedule_save, name="admin-booking-schedule-new", roles=admin
    )
    adm.add_view(
        app, "POST", f"/admin/bookings/schedules/{n}", schedule_save, name="admin-booking-schedule", roles=admin
    )
    adm.add_view(
        app, "POST", f"/admin/bookings/schedules/{n}/delete", schedule_delete,
        name="admin-booking-schedule-delete", roles=admin,
    )  # fmt: skip
    adm.add_view(app, "POST", "/admin/bookings/specials", special_create, name="admin-booking-special-new", roles=admin)
    adm.add_view(
        app, "POST", f"/admin/bookings/specials/{n}/delete", special_delete,
        name="admin-booking-special-delete", roles=admin,
    )  # fmt: skip
    adm.add_nav(app, "预约", "admin-bookings", roles=staff, order=30)
    adm.add_nav(app, "时间表", "admin-booking-settings", roles=admin, order=31)
