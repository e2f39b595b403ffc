"""Router / Dispatcher: first matching handler wins; handlers RETURN replies.

A handler is a cheap, pure ``check(ctx)`` (returns False/None to pass, True or a dict of
extracted data to take the message) and an async ``handle(ctx, data)`` returning a
:data:`Reply`, ``None`` (answer WeChat with ``success``) or :data:`CONTINUE` (let the next
handler have it). Handlers bound to a conversation state are tried before all others.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from bot.wechat.messages import Incoming
from bot.wechat.xml import Article

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.services.context import Services
    from bot.storage.models import ConversationState, Villager


@dataclass(frozen=True, slots=True)
class TextReply:
    content: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "text", "content": self.content}


@dataclass(frozen=True, slots=True)
class NewsReply:
    articles: tuple[Article, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "news",
            "articles": [
                {"title": a.title, "description": a.description, "url": a.url, "picurl": a.picurl}
                for a in self.articles
            ],
        }


Reply = TextReply | NewsReply


def reply_from_json(data: dict[str, Any] | None) -> Reply | None:
    if not data or data.get("type") == "none":
        return None
    if data.get("type") == "news":
        return NewsReply(tuple(Article(**a) for a in data.get("articles", [])))
    return TextReply(str(data.get("content", "")))


class _Continue:
    def __repr__(self) -> str:
        return "CONTINUE"


CONTINUE: Final = _Continue()
HandlerResult = Reply | None | _Continue

STATE_TTL = dt.timedelta(minutes=30)


@dataclass
class Ctx:
    """Everything a handler may use for one push. The session's transaction commits after the handler."""

    msg: Incoming
    session: AsyncSession
    villager: Villager
    conv: ConversationState
    services: Services
    inbound_id: int
    now: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)
    #: Core writes to run at the end of this push's transaction (see :meth:`write`)
    writes: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    #: the villager's data was erased (删除我的信息): the pipeline must not write their villager row or chat
    #: state back for this push
    forgotten: bool = False
    #: what the bot made of a question (answer | picked | clarify | handoff | smalltalk), its topic and FAQ
    #: entry: stored with the push for the monthly report (see :meth:`record_outcome`)
    outcome: tuple[str, str | None, str | None] | None = None

    def record_outcome(self, outcome: str, topic: str | None = None, entry_id: str | None = None) -> None:
        """Keep what the bot made of this message on its stored push (the first call wins)."""
        if self.outcome is None:
            self.outcome = (outcome, topic, entry_id)

    def write(self, statement: Any, params: dict[str, Any]) -> None:
        """Run a Core insert/update at the end of this push's transaction, together with the
        pipeline's own writes: cheaper than an ORM object for a row nothing reads back."""
        self.writes.append((statement, params))

    @property
    def text(self) -> str:
        return self.msg.content.strip()

    @property
    def state(self) -> str | None:
        conv = self.conv
        if conv.state and conv.expires_at is not None and conv.expires_at <= self.now:
            return None
        return conv.state

    @property
    def state_expired(self) -> bool:
        conv = self.conv
        return bool(conv.state and conv.expires_at is not None and conv.expires_at <= self.now)

    def set_state(self, state: str, data: dict[str, Any] | None = None, *, ttl: dt.timedelta = STATE_TTL) -> None:
        self.conv.state = state
        self.conv.data = dict(data or {})
        self.conv.expires_at = self.now + ttl

    def clear_state(self) -> None:
        self.conv.state = None
        self.conv.data = {}
        self.conv.expires_at = None

    def remember(self, **values: Any) -> None:
        """Keep chat context (last answer, last suggestions) for the next message."""
        self.conv.context = {**(self.conv.context or {}), **values}


Check = Callable[[Ctx], "bool | dict[str, Any] | None"]
Handle = Callable[[Ctx, dict[str, Any]], Awaitable[HandlerResult]]


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    check: Check
    handle: Handle
    stateful: bool = False


class Router:
    """One feature's handlers, in the order they were declared."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: list[Handler] = []

    def on(self, check: Check, *, stateful: bool = False, name: str | None = None) -> Callable[[Handle], Handle]:
        def register(fn: Handle) -> Handle:
            self.handlers.append(Handler(f"{self.name}.{name or fn.__name__}", check, fn, stateful))
            return fn

        return register

    def state(self, prefix: str) -> Callable[[Handle], Handle]:
        """A handler for villagers in a wizard state starting with ``prefix``."""
        return self.on(in_state(prefix), stateful=True)


class Dispatcher:
    def __init__(self, routers: Iterable[Router]) -> None:
        handlers = [h for r in routers for h in r.handlers]
        # conversation state first, then everything else in the declared order
        self.handlers = [h for h in handlers if h.stateful] + [h for h in handlers if not h.stateful]

    async def dispatch(self, ctx: Ctx) -> tuple[str, Reply | None]:
        for handler in self.handlers:
            data = handler.check(ctx)
            if not data:
                continue
            result = await handler.handle(ctx, data if isinstance(data, dict) else {})
            if isinstance(result, _Continue):
                continue
            return handler.name, result
        return "none", None


# ------------------------------------------------------------------ filters
_PUNCT = re.compile(r"[\s\u3000,，。.!！?？~～、;；:：\"“”'‘’()（）\[\]【】<>《》…·]+")


def squash(text: str) -> str:
    """Lower-case, drop spaces and punctuation: '转 人工！' -> '转人工'."""
    return _PUNCT.sub("", text).lower()


def text_in(*words: str) -> Check:
    wanted = {squash(w) for w in words}

    def check(ctx: Ctx) -> bool:
        return ctx.msg.msg_type in ("text", "voice") and squash(ctx.text) in wanted

    return check


def text_prefix(*prefixes: str) -> Check:
    """Text starting with a command word; the rest is passed as data['arg']."""

    def check(ctx: Ctx) -> dict[str, Any] | None:
        if ctx.msg.msg_type not in ("text", "voice"):
            return None
        text = ctx.text
        for p in prefixes:
            if text.startswith(p):
                return {"arg": text[len(p) :].strip(" ：:，,")}
        return None

    return check


def event(*names: str) -> Check:
    wanted = set(names)

    def check(ctx: Ctx) -> bool:
        return ctx.msg.event in wanted

    return check


def click(*keys: str) -> Check:
    wanted = set(keys)

    def check(ctx: Ctx) -> bool:
        return ctx.msg.event == "click" and ctx.msg.event_key in wanted

    return check


def msg_type(*types: str) -> Check:
    wanted = set(types)

    def check(ctx: Ctx) -> bool:
        return ctx.msg.msg_type in wanted

    return check


def in_state(prefix: str) -> Check:
    def check(ctx: Ctx) -> bool:
        state = ctx.state
        return state is not None and state.startswith(prefix)

    return check


def any_of(*checks: Check) -> Check:
    def check(ctx: Ctx) -> bool | dict[str, Any] | None:
        for c in checks:
            result = c(ctx)
            if result:
                return result
        return None

    return check


def always(_ctx: Ctx) -> bool:
    return True


def numbered(text: str) -> int | None:
    """'1', '１', '第2个', '3号' -> the number the villager picked."""
    s = squash(text).translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    s = s.removeprefix("第").removesuffix("个").removesuffix("号").removesuffix("条")
    cn = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
    if s.isdigit() and len(s) <= 2:
        return int(s)
    if len(s) == 1 and s in cn:
        return cn[s]
    return None


MsgKind = Literal["text", "voice", "image", "video", "shortvideo", "location", "link", "event"]
