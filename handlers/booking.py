"""预约 / 我的预约 / 取消预约 / 改约: booking the public legal service from chat.

The wizard, one explicit state per step (each step accepts “取消” and expires after
``rules.wizard_minutes``)::

    booking.service → booking.place (only when there is a choice) → booking.day
        → booking.time → booking.contact → booking.confirm → booking.done
    booking.day (a full day) → booking.full → booking.contact → booking.confirm (waiting list)

Contact and consent: a name is needed (staff call villagers by it); the phone number is
optional. The confirm step asks for consent explicitly (“1” = book and keep the phone number,
“2” = book without it), so a villager who does not want to leave a number still books. The
number is kept on the booking only and erased ``rules.phone_retention_days`` after it.

A re-sent “1” cannot book twice: the booking's request key is the wizard's token, and after the
booking the villager is in ``booking.done`` for a few minutes, where “1” only repeats the code.
The rules live in :mod:`bot.services.booking`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.routing import CONTINUE, Ctx, HandlerResult, Router, TextReply, any_of, click, numbered, squash, text_in
from bot.services import booking as svc
from bot.services.knowledge import Texts
from bot.services.privacy import mask_phone
from bot.storage.booking import Booking, BookingPlace, BookingService, BookingWaitlist

log = logging.getLogger(__name__)

router = Router("booking")

BOOK_WORDS = ("预约", "我要预约", "我想预约", "预约法律服务", "预约咨询", "预约服务", "约时间", "法律服务预约")
MINE_WORDS = ("我的预约", "查预约", "查看预约", "预约查询", "预约记录")
RESCHEDULE_WORDS = ("改约", "改预约", "改时间", "换时间", "改期", "换个时间", "改一下时间")
ABORT_WORDS = ("取消", "不约了", "算了", "退出", "不预约了", "结束", "不办了")
YES_WORDS = ("确认", "确定", "确认预约", "好", "好的", "是", "是的", "对", "要", "可以", "行", "嗯", "ok")
DECLINE_WORDS = ("不要了", "不要", "不用了", "放弃", "让给别人")
ACCEPT_OFFER_WORDS = ("确认预约", "我要这个位置", "要这个空位")
LEAVE_WORDS = ("帮助", "菜单", "转人工", "人工", "人工服务", "我的咨询")
CANCEL_PREFIX = "取消预约"
DONE_MINUTES = 10
MAX_MISSES = 2

_YES = {squash(w) for w in YES_WORDS}
_ABORT = {squash(w) for w in ABORT_WORDS}
_DECLINE = {squash(w) for w in DECLINE_WORDS}
_LEAVE = {squash(w) for w in LEAVE_WORDS}
_BOOK = {squash(w) for w in BOOK_WORDS}
_MINE = {squash(w) for w in MINE_WORDS}
_RESCHEDULE = {squash(w) for w in RESCHEDULE_WORDS}

_FULLWIDTH = str.maketrans("０１２３４５６７８９－", "0123456789-")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?\d{7,8})(?!\d)")
_NAME_NOISE = re.compile(r"我叫|我是|姓名|名字|手机号码|手机号|手机|电话号码|电话|号码|联系方式|是|：|:")
_CODE = re.compile(r"\d{6}")


# ------------------------------------------------------------------ parsing
def parse_contact(text: str) -> tuple[str | None, str | None]:
    """'张三 138 1234 5678' → ('张三', '13812345678'); either part may be missing."""
    text = text.translate(_FULLWIDTH)
    joined = re.sub(r"(?<=\d)[\s]+(?=\d)", "", text)
    phone = None
    match = _MOBILE.search(joined) or _LANDLINE.search(joined)
    if match:
        phone = match.group(1)
        joined = joined[: match.start()] + " " + joined[match.end() :]
    name = squash(_NAME_NOISE.sub(" ", joined))
    name = re.sub(r"\d", "", name)
    if not name or len(name) > 20:
        return None, phone
    return name, phone


def _word(ctx: Ctx) -> str:
    return squash(ctx.text) if ctx.msg.msg_type in ("text", "voice") else ""


# ------------------------------------------------------------------ per-message context
@dataclass
class Env:
    ctx: Ctx
    rules: svc.Rules
    cat: svc.Catalog

    @property
    def session(self) -> AsyncSession:
        return self.ctx.session

    @property
    def texts(self) -> Texts:
        return self.ctx.services.texts

    @property
    def openid(self) -> str:
        return self.ctx.msg.openid

    @property
    def now(self) -> dt.datetime:
        return self.ctx.now

    @property
    def today(self) -> dt.date:
        return svc.local_day(self.ctx.now, self.rules)

    def say(self, key: str, **values: Any) -> TextReply:
        return TextReply(self.texts.get(key, **values))

    def step(self, state: str, data: dict[str, Any], prompt: str) -> TextReply:
        """Go to a wizard step; the prompt is kept to repeat it after an answer that does not fit."""
        data = {**data, "prompt": prompt, "miss": 0}
        self.ctx.set_state(state, data, ttl=dt.timedelta(minutes=self.rules.wizard_minutes))
        return TextReply(prompt)

    def service(self, w: dict[str, Any]) -> BookingService | None:
        return self.cat.services.get(int(w.get("svc", 0)))

    def place(self, w: dict[str, Any]) -> BookingPlace | None:
        return self.cat.places.get(int(w.get("place", 0)))


async def _env(ctx: Ctx) -> Env | None:
    try:
        config = svc.load_config(ctx.services.settings.knowledge_dir)
    except svc.BookingConfigError:
        log.exception("booking: knowledge/booking.yaml is broken")
        return None
    await svc.ensure_seeded(ctx.session, config, ctx.services.texts.site)
    today = svc.local_day(ctx.now, config.rules)
    cat = await svc.load_catalog(ctx.session, today, today + dt.timedelta(days=svc.SEARCH_DAYS))
    return Env(ctx, config.rules, cat)


def _clear(ctx: Ctx) -> None:
    """End a booking step (never another feature's step)."""
    if (ctx.conv.state or "").startswith("booking."):
        ctx.clear_state()


def _unavailable(ctx: Ctx) -> TextReply:
    _clear(ctx)
    return TextReply(ctx.services.texts.get("booking_unavailable_now"))


def _numbered(items: list[str]) -> str:
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def _booking_line(env: Env, b: Booking) -> str:
    service = env.cat.services.get(b.service_id)
    place = env.cat.places.get(b.place_id)
    line = (
        f"{svc.fmt_when(b.starts_at, b.ends_at, env.rules)} {service.name if service else ''}"
        f"（{place.name if place else ''}）预约码 {b.code}"
    )
    if b.status == "held" and b.hold_expires_at is not None:
        line += f"\n   给您留着的空位，回复“确认预约”就约好了（{svc.fmt_time(b.hold_expires_at, env.rules)}前）"
    return line


def _waiting_line(env: Env, e: BookingWaitlist) -> str:
    service = env.cat.services.get(e.service_id)
    place = env.cat.places.get(e.place_id)
    return f"排队候补：{svc.fmt_day(e.day)} {service.name if service else ''}（{place.name if place else ''}）"


# ------------------------------------------------------------------ start
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
    if w.get("mode") == "reschedule":
        note = ""
    prompt = env.texts.get(
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
        options = env.texts.get("booking_confirm_reschedule")
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


# ------------------------------------------------------------------ my bookings, cancel, reschedule
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
    }
    return await _show_days(env, w)


# ------------------------------------------------------------------ waiting-list offers
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


# ------------------------------------------------------------------ the wizard's steps
def _bad_number(env: Env, w: dict[str, Any], n: int) -> TextReply:
    w["miss"] = int(w.get("miss", 0)) + 1
    env.ctx.set_state(env.ctx.state or "booking.service", w, ttl=dt.timedelta(minutes=env.rules.wizard_minutes))
    return env.say("booking_bad_number", n=n, prompt=w.get("prompt", ""))


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


# ------------------------------------------------------------------ commands (no step in progress)
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
