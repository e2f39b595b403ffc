"""我的预约, 取消预约 and 改约, and the villager's answer to a waiting-list offer."""

from __future__ import annotations

import secrets
from typing import Any

from bot.routing import CONTINUE, Ctx, HandlerResult, TextReply
from bot.services import booking as svc
from bot.storage.booking import Booking, BookingWaitlist
from handlers.booking.env import (
    _CODE,
    _FULLWIDTH,
    Env,
    _booking_line,
    _clear,
    _env,
    _numbered,
    _unavailable,
    _waiting_line,
)
from handlers.booking.wizard import _done, _show_days


async def show_mine(ctx: Ctx) -> TextReply:
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    bookings = await svc.upcoming_bookings(env.session, env.openid, env.now)
    waiting = await svc.waiting_entries(env.session, env.openid, env.today)
    if not bookings and not waiting:
        return env.say("booking_mine_none")
    lines = _numbered([_booking_line(env, b) for b in bookings])
    more = "\n".join(_waiting_line(env, e) for e in waiting)
    return env.say("booking_mine", items=lines or "（没有约好的）", waiting=("\n" + more) if more else "")


async def _cancel_items(env: Env) -> list[tuple[str, int, str]]:
    bookings = await svc.upcoming_bookings(env.session, env.openid, env.now)
    waiting = await svc.waiting_entries(env.session, env.openid, env.today)
    return [("b", b.id, _booking_line(env, b)) for b in bookings] + [
        ("w", e.id, _waiting_line(env, e)) for e in waiting
    ]


async def start_cancel(ctx: Ctx, arg: str = "") -> TextReply:
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    _clear(ctx)
    code_match = _CODE.search(arg.translate(_FULLWIDTH))
    if code_match:
        booking = await svc.booking_by_code(env.session, code_match.group(0))
        if (
            booking is None
            or booking.openid != env.openid
            or booking.status not in ("held", "confirmed")
            or booking.starts_at <= env.now
        ):
            return env.say("booking_cancel_not_found", code=code_match.group(0))
        return await _do_cancel(env, booking.id)
    items = await _cancel_items(env)
    if not items:
        return env.say("booking_mine_none")
    if len(items) == 1:
        return await _ask_cancel(env, items[0][0], items[0][1])
    prompt = env.texts.get("booking_cancel_pick", items=_numbered([label for _k, _i, label in items]))
    return env.step("booking.cancel", {"items": [[k, i] for k, i, _l in items]}, prompt)


async def _ask_cancel(env: Env, kind: str, item_id: int) -> TextReply:
    if kind == "w":
        entry = await env.session.get(BookingWaitlist, item_id)
        if entry is None:
            return env.say("booking_mine_none")
        prompt = env.texts.get("booking_cancel_confirm", code="（排队候补）", summary=_waiting_line(env, entry))
    else:
        booking = await env.session.get(Booking, item_id)
        if booking is None:
            return env.say("booking_mine_none")
        prompt = env.texts.get(
            "booking_cancel_confirm", code=booking.code, summary=svc.summary(env.cat, booking, env.rules)
        )
    return env.step("booking.cancel_confirm", {"kind": kind, "id": item_id}, prompt)


async def _do_cancel(env: Env, booking_id: int) -> TextReply:
    _clear(env.ctx)
    done = await svc.cancel_booking(env.session, env.cat, env.rules, env.texts, booking_id, now=env.now, by="villager")
    if done is None:
        booking = await env.session.get(Booking, booking_id)
        return env.say("booking_cancel_not_found", code=booking.code if booking else "")
    return env.say("booking_cancelled", summary=svc.summary(env.cat, done.booking, env.rules))


async def _do_leave(env: Env, entry_id: int) -> TextReply:
    _clear(env.ctx)
    entry = await env.session.get(BookingWaitlist, entry_id)
    await svc.leave_waitlist(env.session, entry_id)
    if entry is None:
        return env.say("booking_mine_none")
    service, place = env.cat.services.get(entry.service_id), env.cat.places.get(entry.place_id)
    return env.say(
        "booking_waitlist_left",
        service=service.name if service else "",
        place=place.name if place else "",
        day=svc.fmt_day(entry.day),
    )


async def start_reschedule(ctx: Ctx) -> TextReply:
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    _clear(ctx)
    bookings = [b for b in await svc.upcoming_bookings(env.session, env.openid, env.now) if b.status == "confirmed"]
    if not bookings:
        return env.say("booking_mine_none")
    if len(bookings) == 1:
        return await _reschedule(env, bookings[0])
    prompt = env.texts.get("booking_reschedule_pick", items=_numbered([_booking_line(env, b) for b in bookings]))
    return env.step("booking.resched", {"ids": [b.id for b in bookings]}, prompt)


async def _reschedule(env: Env, old: Booking) -> TextReply:
    w: dict[str, Any] = {
        "t": secrets.token_hex(8),
        "mode": "reschedule",
        "old": old.id,
        "svc": old.service_id,
        "place": old.place_id,
        "name": old.name,
        "phone": old.phone,
        # the booking being moved, named on every step (改约 must say which booking it changes)
        "old_line": _booking_line(env, old),
        "old_short": f"{svc.fmt_when(old.starts_at, old.ends_at, env.rules)}，预约码 {old.code}",
    }
    return await _show_days(env, w)


async def accept(ctx: Ctx) -> TextReply:
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    booking = await svc.accept_offer(env.session, env.rules, env.openid, now=env.now)
    if booking is None:
        _clear(ctx)
        return env.say("booking_offer_none")
    return _done(env, booking)


async def decline(ctx: Ctx) -> HandlerResult:
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    held = await svc.held_offer(env.session, env.openid, env.now)
    _clear(ctx)
    if held is None:
        return CONTINUE
    await svc.cancel_booking(env.session, env.cat, env.rules, env.texts, held.id, now=env.now, by="villager")
    return env.say("booking_offer_declined")
