"""The booking router: the wizard's steps (one explicit state each) and the commands tried when no step is
in progress, in the order they are registered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, any_of, click, numbered, squash, text_in
from bot.services import booking as svc
from bot.storage.booking import Booking
from handlers.booking.env import (
    _ABORT,
    _BOOK,
    _CODE,
    _DECLINE,
    _FULLWIDTH,
    _LEAVE,
    _MINE,
    _RESCHEDULE,
    _YES,
    ACCEPT_OFFER_WORDS,
    BOOK_WORDS,
    CANCEL_PREFIX,
    DECLINE_WORDS,
    MAX_MISSES,
    MINE_WORDS,
    RESCHEDULE_WORDS,
    Env,
    _bad_number,
    _clear,
    _env,
    _unavailable,
    _word,
    parse_contact,
)
from handlers.booking.manage import (
    _ask_cancel,
    _do_cancel,
    _do_leave,
    _reschedule,
    accept,
    decline,
    show_mine,
    start_cancel,
    start_reschedule,
)
from handlers.booking.wizard import (
    _ask_contact,
    _chose_service,
    _confirm,
    _done,
    _pick_day,
    _show_confirm,
    _show_days,
    start_booking,
)

router = Router("booking")


def _pick(env: Env, w: dict[str, Any], options: list[Any]) -> tuple[Any | None, HandlerResult | None]:
    """The option the villager's number picks, or the reply to give instead."""
    n = numbered(env.ctx.text)
    if n is not None and 1 <= n <= len(options):
        return options[n - 1], None
    if int(w.get("miss", 0)) >= MAX_MISSES:  # not answering the step: let other features have the message
        _clear(env.ctx)
        return None, CONTINUE
    return None, _bad_number(env, w, len(options))


async def _step(env: Env, state: str, w: dict[str, Any]) -> HandlerResult:
    ctx = env.ctx
    word = _word(ctx)
    if state == "booking.service":
        services = [env.cat.services[i] for i in w.get("svcs", []) if i in env.cat.services]
        picked, reply = _pick(env, w, services)
        return reply if picked is None else await _chose_service(env, w, picked)
    if state == "booking.place":
        places = [env.cat.places[i] for i in w.get("places", []) if i in env.cat.places]
        picked, reply = _pick(env, w, places)
        if picked is None:
            return reply
        w["place"] = picked.id
        return await _show_days(env, w)
    if state == "booking.day":
        picked, reply = _pick(env, w, w.get("days", []))
        return reply if picked is None else await _pick_day(env, w, dt.date.fromisoformat(picked))
    if state == "booking.full":
        n = numbered(ctx.text)
        if n == 1:
            w["mode"] = "waitlist"
            return await _contact_or_confirm(env, w)
        if n == 2:
            return await _show_days(env, w)
        picked, reply = _pick(env, w, [1, 2])
        return reply
    if state == "booking.time":
        if numbered(ctx.text) == 0 or word == "0":
            return await _show_days(env, w)
        picked, reply = _pick(env, w, w.get("times", []))
        if picked is None:
            return reply
        w["start"] = picked
        return await _contact_or_confirm(env, w)
    if state == "booking.contact":
        return await _contact(env, w)
    if state == "booking.confirm":
        n = 1 if word in _YES else numbered(ctx.text)
        if n is None:
            if int(w.get("miss", 0)) >= MAX_MISSES:
                _clear(ctx)
                return CONTINUE
            return _bad_number(env, w, 2 if w.get("phone") and w.get("mode") == "new" else 1)
        return await _confirm(env, w, n)
    if state == "booking.done":
        booking = await env.session.get(Booking, int(w.get("b", 0)))
        if booking is not None and (word in _YES or numbered(ctx.text) == 1):
            return _done(env, booking, "booking_already_done")
        _clear(ctx)
        return CONTINUE
    if state == "booking.cancel":
        picked, reply = _pick(env, w, w.get("items", []))
        return reply if picked is None else await _ask_cancel(env, str(picked[0]), int(picked[1]))
    if state == "booking.cancel_confirm":
        n = 1 if word in _YES or word == squash("确认取消") else numbered(ctx.text)
        if n == 1:
            if w.get("kind") == "w":
                return await _do_leave(env, int(w["id"]))
            return await _do_cancel(env, int(w["id"]))
        if n == 2 or word in _DECLINE or word in {"不", "不取消", "不用"}:
            _clear(ctx)
            return env.say("booking_cancel_kept")
        picked, reply = _pick(env, w, [1, 2])
        return reply
    if state == "booking.resched":
        picked, reply = _pick(env, w, w.get("ids", []))
        if picked is None:
            return reply
        old = await env.session.get(Booking, int(picked))
        if old is None or old.status != "confirmed":
            _clear(ctx)
            return env.say("booking_mine_none")
        return await _reschedule(env, old)
    if state == "booking.offer":
        n = 1 if word in _YES else numbered(ctx.text)
        if n == 1:
            return await accept(ctx)
        if n == 2 or word in _DECLINE or word in _ABORT:
            return await decline(ctx)
        _clear(ctx)  # something else: the offer stays open (“确认预约” still takes it)
        return CONTINUE
    _clear(ctx)
    return CONTINUE


async def _contact_or_confirm(env: Env, w: dict[str, Any]) -> TextReply:
    if w.get("name"):
        return await _show_confirm(env, w)
    return await _ask_contact(env, w)


async def _contact(env: Env, w: dict[str, Any]) -> TextReply:
    known = w.get("known")
    if known and (numbered(env.ctx.text) == 1 or _word(env.ctx) in _YES):
        w["name"], w["phone"] = known[0], known[1]
        return await _show_confirm(env, w)
    name, phone = parse_contact(env.ctx.text)
    if phone:
        w["phone"] = phone
    if not name:
        if phone or w.get("phone"):
            return env.step("booking.contact", w, env.texts.get("booking_ask_name"))
        return _bad_contact(env, w)
    w["name"] = name
    return await _show_confirm(env, w)


def _bad_contact(env: Env, w: dict[str, Any]) -> TextReply:
    w["miss"] = int(w.get("miss", 0)) + 1
    env.ctx.set_state("booking.contact", w, ttl=dt.timedelta(minutes=env.rules.wizard_minutes))
    return TextReply(str(w.get("prompt", "")))


@router.state("booking.")
async def wizard(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    state = ctx.state or ""
    w = dict(ctx.conv.data or {})
    word = _word(ctx)
    msg = ctx.msg
    if msg.is_event:
        if msg.event == "click" and msg.event_key == "BOOKING":
            return await start_booking(ctx)
        if msg.event == "click" and msg.event_key == "MY_BOOKINGS":
            _clear(ctx)
            return await show_mine(ctx)
        if msg.event == "click":
            _clear(ctx)
        return CONTINUE
    if msg.msg_type not in ("text", "voice") or not word:
        return CONTINUE  # a picture or an empty voice: the media handler answers, the step stays
    if state == "booking.offer" and (word in _ABORT or word in _DECLINE):
        return await decline(ctx)
    if word in _ABORT:
        _clear(ctx)
        return TextReply(ctx.services.texts.get("booking_aborted"))
    if word in _BOOK:
        return await start_booking(ctx)
    if word in _MINE:
        _clear(ctx)
        return await show_mine(ctx)
    cancel_command = _cancel_command(ctx)
    if cancel_command is not None:
        return await start_cancel(ctx, str(cancel_command["arg"]))
    if word in _RESCHEDULE:
        return await start_reschedule(ctx)
    if word in _LEAVE:
        _clear(ctx)
        return CONTINUE
    if word == squash("确认预约") and state not in ("booking.confirm", "booking.done", "booking.offer"):
        return await accept(ctx)
    env = await _env(ctx)
    if env is None:
        return _unavailable(ctx)
    return await _step(env, state, w)


def _expired(ctx: Ctx) -> bool:
    return ctx.state_expired and (ctx.conv.state or "").startswith("booking.")


@router.on(_expired)
async def expired(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    """A step left unanswered too long: say so if the message was an answer to it, else carry on."""
    state = ctx.conv.state or ""
    _clear(ctx)
    word = _word(ctx)
    answer_like = word in _YES or word in _ABORT or numbered(ctx.text) is not None
    if state == "booking.done" or not answer_like or ctx.msg.is_event:
        return CONTINUE
    if state == "booking.offer":
        if word == squash("确认预约"):
            return CONTINUE  # the command handler below answers it
        return TextReply(ctx.services.texts.get("booking_offer_none"))
    try:
        minutes = svc.load_config(ctx.services.settings.knowledge_dir).rules.wizard_minutes
    except svc.BookingConfigError:
        minutes = svc.Rules.wizard_minutes
    return TextReply(ctx.services.texts.get("booking_expired", minutes=minutes))


@router.on(any_of(text_in(*BOOK_WORDS), click("BOOKING")))
async def booking(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return await start_booking(ctx)


@router.on(any_of(text_in(*MINE_WORDS), click("MY_BOOKINGS")))
async def my_bookings(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return await show_mine(ctx)


def _cancel_command(ctx: Ctx) -> dict[str, Any] | None:
    if ctx.msg.msg_type not in ("text", "voice"):
        return None
    text = ctx.text.translate(_FULLWIDTH)
    if text.startswith(CANCEL_PREFIX):
        return {"arg": text[len(CANCEL_PREFIX) :]}
    if text.startswith("取消") and _CODE.fullmatch(squash(text[2:])):  # “取消 382915”
        return {"arg": text[2:]}
    return None


@router.on(_cancel_command)
async def cancel(ctx: Ctx, data: dict[str, Any]) -> HandlerResult:
    return await start_cancel(ctx, str(data.get("arg", "")))


@router.on(text_in(*RESCHEDULE_WORDS))
async def reschedule(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return await start_reschedule(ctx)


@router.on(text_in(*ACCEPT_OFFER_WORDS))
async def accept_offer(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    return await accept(ctx)


@router.on(text_in(*DECLINE_WORDS))
async def decline_offer(ctx: Ctx, _data: dict[str, Any]) -> HandlerResult:
    """“不要了” answers a held offer; without one, the message goes on to the other features."""
    return await decline(ctx)
