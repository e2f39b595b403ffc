"""Booking a place: the wizard from “预约” to the confirmation (service, place, day, time, contact,
consent), a full day's waiting list, and the booking itself.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from bot.routing import Ctx, TextReply
from bot.services import booking as svc
from bot.services.privacy import mask_phone
from bot.storage.booking import Booking, BookingService
from handlers.booking.env import DONE_MINUTES, Env, _bad_number, _booking_line, _clear, _env, _numbered, _unavailable


async def start_booking(ctx: Ctx) -> TextReply:
    """“预约”, the BOOKING menu button and item 4 of the help menu: the first step of the wizard."""
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    upcoming = await svc.upcoming_bookings(env.session, env.openid, env.now)
    if len(upcoming) >= env.rules.max_upcoming:
        _clear(ctx)
        return env.say(
            "booking_limit",
            count=len(upcoming),
            max=env.rules.max_upcoming,
            items=_numbered([_booking_line(env, b) for b in upcoming]),
        )
    services = [s for s in env.cat.active_services() if env.cat.places_for(s.id)]
    if not services:
        return _unavailable(ctx)
    w: dict[str, Any] = {"t": secrets.token_hex(8), "mode": "new", "svcs": [s.id for s in services]}
    if len(services) == 1:
        return await _chose_service(env, w, services[0])
    prompt = env.texts.get("booking_pick_service", items=_numbered([s.name for s in services]))
    return env.step("booking.service", w, prompt)


async def _chose_service(env: Env, w: dict[str, Any], service: BookingService) -> TextReply:
    w["svc"] = service.id
    places = env.cat.places_for(service.id)
    village = env.ctx.villager.village_id
    if village is not None:  # the township's own places and the villager's village point
        mine = [p for p in places if p.village_id in (None, village)]
        places = mine or places
    if len(places) == 1:
        w["place"] = places[0].id
        return await _show_days(env, w)
    w["places"] = [p.id for p in places]
    prompt = env.texts.get(
        "booking_pick_place", service=service.name, items=_numbered([svc.place_label(p) for p in places])
    )
    return env.step("booking.place", w, prompt)


def _day_tag(day: svc.DayAvailability) -> str:
    tags = []
    for sp in day.plan.specials:
        if sp.kind == "extra" and sp.title:
            tags.append(sp.title)
    if day.plan.calendar.kind == "adjusted_workday":
        tags.append("调休上班")
    tag = f"【{'，'.join(tags)}】" if tags else ""
    return tag + (f"（空{day.free}个）" if day.free else "（约满，可排队）")


async def _show_days(env: Env, w: dict[str, Any]) -> TextReply:
    service, place = env.service(w), env.place(w)
    if service is None or place is None:
        return _unavailable(env.ctx)
    days = await svc.open_days(env.session, env.cat, env.rules, place.id, service.id, env.now)
    if w.get("mode") == "reschedule":  # moving a booking: only days with a free place
        days = [d for d in days if d.free]
    if not days:
        _clear(env.ctx)
        return env.say("booking_no_days", service=service.name, place=place.name)
    w["days"] = [d.day.isoformat() for d in days]
    w.pop("start", None)
    note = "\n" + env.texts.get("booking_waitlist_note") if any(d.free == 0 for d in days) else ""
    head = ""
    if w.get("mode") == "reschedule":
        note = ""
        head = env.texts.get("booking_reschedule_from", booking=w.get("old_line", "")) + "\n"
    prompt = head + env.texts.get(
        "booking_pick_day",
        service=service.name,
        place=place.name,
        items=_numbered([svc.fmt_day(d.day) + _day_tag(d) for d in days]),
        note=note,
    )
    return env.step("booking.day", w, prompt)


def _special_line(day: svc.DayAvailability) -> str:
    lines = []
    for sp in day.plan.specials:
        if sp.kind != "extra":
            continue
        text = sp.title or "特别安排"
        if sp.volunteers:
            text += f"，{sp.volunteers}值班"
        lines.append(f"（{text}）")
    return "".join(lines)


async def _pick_day(env: Env, w: dict[str, Any], day: dt.date) -> TextReply:
    service, place = env.service(w), env.place(w)
    if service is None or place is None:
        return _unavailable(env.ctx)
    (avail,) = await svc.availability(
        env.session, env.cat, env.rules, place.id, service.id, [day], not_before=env.now + env.rules.min_lead
    )
    w["day"] = day.isoformat()
    free = avail.free_slots
    if not free:
        return env.step("booking.full", w, env.texts.get("booking_day_full", day=svc.fmt_day(day)))
    w["times"] = [[s.starts_at.isoformat(), s.ends_at.isoformat()] for s in free]
    items = [
        f"{svc.fmt_time(s.starts_at, env.rules)}-{svc.fmt_time(s.ends_at, env.rules)}（剩{s.free}个）" for s in free
    ]
    prompt = env.texts.get(
        "booking_pick_time", day=svc.fmt_day(day), items=_numbered(items), special=_special_line(avail)
    )
    return env.step("booking.time", w, prompt)


def _alternatives(env: Env, w: dict[str, Any], slots: list[svc.FreeSlot]) -> str:
    w["times"] = [[s.starts_at.isoformat(), s.ends_at.isoformat()] for s in slots]
    return _numbered([svc.fmt_when(s.starts_at, s.ends_at, env.rules) + f"（剩{s.free}个）" for s in slots])


async def _ask_contact(env: Env, w: dict[str, Any]) -> TextReply:
    known = await svc.last_contact(env.session, env.openid)
    if known is not None:
        w["known"] = [known[0], known[1]]
        prompt = env.texts.get("booking_ask_contact_known", person=known[0], phone=mask_phone(known[1]))
    else:
        w.pop("known", None)
        prompt = env.texts.get("booking_ask_contact", retention_days=env.rules.phone_retention_days)
    return env.step("booking.contact", w, prompt)


def _phone_line(w: dict[str, Any]) -> str:
    return f"\n手机：{mask_phone(w.get('phone'))}" if w.get("phone") else ""


def _wizard_summary(env: Env, w: dict[str, Any]) -> str:
    service, place = env.service(w), env.place(w)
    start, end = (dt.datetime.fromisoformat(x) for x in w["start"])
    return "\n".join(
        (
            f"事项：{service.name if service else ''}",
            f"时间：{svc.fmt_when(start, end, env.rules)}",
            f"地点：{svc.place_label(place)}",
        )
    )


async def _show_confirm(env: Env, w: dict[str, Any]) -> TextReply:
    if w.get("mode") == "waitlist":
        service, place = env.service(w), env.place(w)
        prompt = env.texts.get(
            "booking_waitlist_confirm",
            service=service.name if service else "",
            place=place.name if place else "",
            day=svc.fmt_day(dt.date.fromisoformat(w["day"])),
            person=w["name"],
            phone_line=_phone_line(w),
        )
        return env.step("booking.confirm", w, prompt)
    if w.get("mode") == "reschedule":
        options = env.texts.get("booking_confirm_reschedule", old=w.get("old_short", ""))
    elif w.get("phone"):
        options = env.texts.get("booking_confirm_with_phone", retention_days=env.rules.phone_retention_days)
    else:
        options = env.texts.get("booking_confirm_without_phone")
    prompt = env.texts.get(
        "booking_confirm",
        summary=_wizard_summary(env, w),
        person=w["name"],
        phone_line=_phone_line(w),
        options=options,
    )
    return env.step("booking.confirm", w, prompt)


def _bring(env: Env, booking: Booking) -> str:
    service = env.cat.services.get(booking.service_id)
    return service.bring if service and service.bring else "身份证"


def _reminder_note(env: Env, booking: Booking) -> str:
    """When the villager will be reminded (nothing is promised that will not happen)."""
    parts = []
    if booking.remind_eve_at is not None:
        parts.append(f"前一天{svc.fmt_time(booking.remind_eve_at, env.rules)}")
    if booking.remind_soon_at is not None:
        minutes = env.rules.reminder_before_minutes
        parts.append(f"开始前{minutes // 60}小时" if minutes % 60 == 0 else f"开始前{minutes}分钟")
    return env.texts.get("booking_reminder_note", when="和".join(parts)) + "\n" if parts else ""


def _done(env: Env, booking: Booking, key: str = "booking_done", **extra: Any) -> TextReply:
    env.ctx.set_state("booking.done", {"b": booking.id}, ttl=dt.timedelta(minutes=DONE_MINUTES))
    return env.say(
        key,
        code=booking.code,
        summary=svc.summary(env.cat, booking, env.rules),
        bring=_bring(env, booking),
        reminders=_reminder_note(env, booking),
        **extra,
    )


async def _confirm(env: Env, w: dict[str, Any], n: int) -> TextReply:
    mode = w.get("mode")
    if mode == "waitlist":
        if n != 1:
            return _bad_number(env, w, 1)
        entry, position = await svc.join_waitlist(
            env.session,
            openid=env.openid,
            place_id=int(w["place"]),
            service_id=int(w["svc"]),
            day=dt.date.fromisoformat(w["day"]),
            name=w["name"],
            phone=w.get("phone"),
            phone_consent_at=env.now if w.get("phone") else None,
            now=env.now,
        )
        _clear(env.ctx)
        service, place = env.service(w), env.place(w)
        return env.say(
            "booking_waitlist_joined",
            service=service.name if service else "",
            place=place.name if place else "",
            day=svc.fmt_day(entry.day),
            position=position,
        )
    phone: str | None = w.get("phone")
    consent: dt.datetime | None = env.now if phone else None
    replaces: Booking | None = None
    if mode == "reschedule":
        if n != 1:
            return _bad_number(env, w, 1)
        replaces = await env.session.get(Booking, int(w["old"]))
        if replaces is None or replaces.status != "confirmed":
            _clear(env.ctx)
            return env.say("booking_cancel_not_found", code=replaces.code if replaces else "")
        consent = replaces.phone_consent_at if phone else None
    elif n == 2 and phone:
        phone, consent = None, None
    elif n != 1:
        return _bad_number(env, w, 2 if phone else 1)
    start = dt.datetime.fromisoformat(w["start"][0])
    outcome = await svc.book(
        env.session,
        env.cat,
        env.rules,
        place_id=int(w["place"]),
        service_id=int(w["svc"]),
        starts_at=start,
        request_key=f"wx:{env.openid}:{w['t']}",
        now=env.now,
        openid=env.openid,
        name=w["name"],
        phone=phone,
        phone_consent_at=consent,
        replaces=replaces,
    )
    if outcome.status in ("booked", "duplicate") and outcome.booking is not None:
        if outcome.status == "duplicate":
            return _done(env, outcome.booking, "booking_already_done")
        if outcome.replaced is not None:
            old = svc.fmt_when(outcome.replaced.starts_at, outcome.replaced.ends_at, env.rules)
            # the old place is free now: the first villager waiting for that day is offered it
            await svc.offer_place(env.session, env.cat, env.rules, env.texts, outcome.replaced.slot_id, now=env.now)
            return _done(env, outcome.booking, "booking_rescheduled", old=old)
        return _done(env, outcome.booking)
    if outcome.status == "limit":
        _clear(env.ctx)
        return env.say(
            "booking_limit",
            count=len(outcome.upcoming),
            max=env.rules.max_upcoming,
            items=_numbered([_booking_line(env, b) for b in outcome.upcoming]),
        )
    when = svc.fmt_when(start, dt.datetime.fromisoformat(w["start"][1]), env.rules)
    if not outcome.alternatives:
        _clear(env.ctx)
        return env.say("booking_full_no_alt", when=when)
    items = _alternatives(env, w, outcome.alternatives)
    key = "booking_full_now" if outcome.status == "full" else "booking_gone"
    return env.step("booking.time", w, env.texts.get(key, when=when, items=items))
