"""What every booking step shares: the words villagers use, reading a name and a phone number, and the
per-message context (:class:`Env`: rules, catalog, texts, going to a wizard step).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.routing import Ctx, TextReply, squash
from bot.services import booking as svc
from bot.services.knowledge import Texts
from bot.storage.booking import Booking, BookingPlace, BookingService, BookingWaitlist

log = logging.getLogger(__name__)


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


def _bad_number(env: Env, w: dict[str, Any], n: int) -> TextReply:
    w["miss"] = int(w.get("miss", 0)) + 1
    env.ctx.set_state(env.ctx.state or "booking.service", w, ttl=dt.timedelta(minutes=env.rules.wizard_minutes))
    return env.say("booking_bad_number" if n > 1 else "booking_bad_number_one", n=n, prompt=w.get("prompt", ""))
