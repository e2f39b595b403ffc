"""A fake WeChat Official Account API (aiohttp), for tests, benchmarks and ``lawbot serve --dev``.

It answers the endpoints :mod:`bot.wechat.api` uses with WeChat's JSON shapes and error codes,
validates access tokens (issued with an expiry; unknown → 40001, expired → 42001), records every
call, and can inject faults into the next N calls (sleep/timeout, an errcode such as -1, 45009,
45015 or 43004, HTTP 500, invalidating every token). The 48-hour window is not simulated; inject
45015 to test it.

Articles for mass sending: ``/cgi-bin/material/add_material`` (multipart ``media``) issues image
media_ids, ``/cgi-bin/draft/add`` issues draft media_ids (its ``thumb_media_id`` must be an issued
image), and mass sendall/send/preview accept ``mpnews`` only with an issued draft media_id (else 40007).
``GET /_fake/cover.png`` serves a small PNG (no token) to use as a cover URL (any other
``/_fake/…`` image path is a 404).

``create_fake_wechat_app(appid, secret)`` returns the application; its state is
``app[FAKE_WECHAT]`` (a :class:`FakeWeChat`). Mounted as a sub-app, paths are relative to the mount
point. JSON views for the dev simulator: ``GET /_fake/calls``, ``POST /_fake/reset``,
``GET|POST|DELETE /_fake/faults`` (``views_prefix=""``: at the mount point). Whom a message reaches,
and mass-send reports: :mod:`bot.devtools.fake_delivery`.

Run it alone: ``python -m bot.devtools.fake_wechat --port 8900``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aiohttp import web

from bot.devtools.fake_delivery import MassJob, delivered, start_job
from bot.settings import Settings

#: the development account (the same defaults as :class:`bot.settings.Settings`)
DEV_APPID: str = Settings.wechat_appid
DEV_SECRET: str = Settings.wechat_secret

FaultKind = Literal["sleep", "errcode", "http", "invalidate_token"]

#: a 1×1 PNG, returned by /cgi-bin/media/get
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

TOKEN_PATHS = frozenset({"/cgi-bin/stable_token", "/cgi-bin/token"})
SYSTEM_TAGS = {2: "星标组"}
MENU_TYPES = frozenset(
    {"click", "view", "miniprogram", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album"}
    | {"pic_weixin", "location_select", "media_id", "article_id", "article_view_limited"}
)
CS_MSGTYPES = frozenset(
    {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu", "miniprogrampage"}
)
MASS_MSGTYPES = frozenset({"text", "image", "voice", "mpvideo", "mpnews", "wxcard"})


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float
    errcode: int = 0
    status: int = 200
    #: the openids the accepted call's message reached (bot.devtools.fake_delivery)
    delivered_to: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fault:
    """Applies to the next ``count`` calls (of ``path`` if given; otherwise of any non-token endpoint).

    Faults form a queue: each call takes one use of the first fault that matches it.

    * ``sleep`` — wait ``seconds`` first (longer than the client timeout = a timeout), then answer.
    * ``errcode`` — answer ``{"errcode": errcode}``.
    * ``http`` — answer HTTP ``status`` with a text body.
    * ``invalidate_token`` — invalidate every issued token, so this call gets 40001.
    """

    kind: FaultKind
    count: int = 1
    errcode: int = -1
    errmsg: str = ""
    status: int = 500
    seconds: float = 0.0
    path: str | None = None

    def matches(self, path: str) -> bool:
        if self.path is None:
            return path not in TOKEN_PATHS
        return path == self.path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        kind = data.get("kind")
        if kind not in ("sleep", "errcode", "http", "invalidate_token"):
            raise ValueError("kind must be sleep, errcode, http or invalidate_token")
        return cls(
            kind=kind,
            count=int(data.get("count", 1)),
            errcode=int(data.get("errcode", -1)),
            errmsg=str(data.get("errmsg", "")),
            status=int(data.get("status", 500)),
            seconds=float(data.get("seconds", 0.0)),
            path=data.get("path") or None,
        )


class FakeError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


Handler = Callable[["FakeWeChat", web.Request, Any], Awaitable[dict[str, Any] | web.Response]]


@dataclass
class FakeWeChat:
    """The fake's state. Tests read ``calls`` and change the knobs directly."""

    appid: str = DEV_APPID
    secret: str = DEV_SECRET
    token_ttl: int = 7200
    #: keep at most this many calls (None: all); ``counts`` counts every call by path regardless
    record_limit: int | None = 10_000
    #: seconds every API call waits before answering (not the token endpoints; see token_latency)
    latency: float = 0.0
    token_latency: float = 0.0
    #: None: any non-empty template id is accepted
    templates: set[str] | None = None
    unsubscribed: set[str] = field(default_factory=set)
    mass_quota: int | None = None
    faults: list[Fault] = field(default_factory=list)
    #: who follows the account (a mass send to everyone reaches them); kept by reset()
    followers: set[str] = field(default_factory=set)
    #: called with every accepted call that delivered a message (``call.delivered_to``)
    listeners: list[Callable[[Call], None]] = field(default_factory=list)
    #: called with every accepted mass send (to report it back: MASSSENDJOBFINISH)
    on_mass_job: Callable[[MassJob], None] | None = None

    def __post_init__(self) -> None:
        self.calls: collections.deque[Call] = collections.deque(maxlen=self.record_limit)
        self.counts: collections.Counter[str] = collections.Counter()
        self.tokens: dict[str, float] = {}
        self.stable_token: str | None = None
        self.tags: dict[int, str] = dict(SYSTEM_TAGS)
        self.user_tags: dict[str, set[int]] = collections.defaultdict(set)
        self.menu: dict[str, Any] | None = None
        self.clientmsgids: dict[str, int] = {}
        self.template_client_msg_ids: dict[tuple[str, str], int] = {}
        #: permanent image materials (media_id → bytes) and drafts (media_id → articles)
        self.materials: dict[str, bytes] = {}
        self.drafts: dict[str, list[dict[str, Any]]] = {}
        #: accepted mass sends by msg_id, and mass messages per (openid, month)
        self.mass_jobs: dict[int, MassJob] = {}
        self.mass_received: collections.Counter[tuple[str, str]] = collections.Counter()
        self._next_id = 1000
        self._next_tag = 100
        self.clock_offset = 0.0

    # ------------------------------------------------------------ knobs for tests
    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (token expiry) forward."""
        self.clock_offset += seconds

    def add_fault(self, kind: FaultKind, count: int = 1, **kwargs: Any) -> Fault:
        fault = Fault(kind, count, **kwargs)
        self.faults.append(fault)
        return fault

    def invalidate_tokens(self) -> None:
        self.tokens.clear()
        self.stable_token = None

    def reset(self) -> None:
        """Forget calls, faults, tokens, tags, menu and mass records (keeps the configuration knobs, the
        followers and the listeners)."""
        self.faults.clear()
        self.unsubscribed.clear()
        self.__post_init__()

    def follow(self, openid: str) -> None:
        """Someone followed the account (what WeChat knows before it pushes ``subscribe``)."""
        self.followers.add(openid)
        self.unsubscribed.discard(openid)

    def unfollow(self, openid: str) -> None:
        self.followers.discard(openid)
        self.unsubscribed.add(openid)

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def successful(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path and c.errcode == 0 and c.status == 200]

    @property
    def token_fetches(self) -> int:
        return sum(self.counts[p] for p in TOKEN_PATHS)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------ tokens
    def issue_token(self, *, force: bool = False, stable: bool = True) -> tuple[str, int]:
        now = self.now()
        current = self.stable_token if stable else None
        if current is not None and not force:
            remaining = self.tokens.get(current, 0) - now
            if remaining > 300:  # WeChat hands out a new stable token only in the last 5 minutes
                return current, int(remaining)
        if force and current is not None:
            self.tokens.pop(current, None)
        token = f"FAKE_{secrets.token_urlsafe(18)}"
        self.tokens[token] = now + self.token_ttl
        if stable:
            self.stable_token = token
        return token, self.token_ttl

    def check_token(self, token: str | None) -> None:
        if not token:
            raise FakeError(41001, "access_token missing")
        expires = self.tokens.get(token)
        if expires is None:
            raise FakeError(40001, "invalid credential, access_token is invalid or not latest")
        if expires <= self.now():
            raise FakeError(42001, "access_token expired")

    # ------------------------------------------------------------ request handling
    def _take_fault(self, path: str) -> Fault | None:
        """Faults form a queue: a call takes (one use of) the first fault that matches it."""
        for fault in self.faults:
            if fault.matches(path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def handle(self, request: web.Request, path: str, handler: Handler) -> web.StreamResponse:
        query = dict(request.query)
        body: Any = None
        call = Call(request.method, path, query, None, self.now())
        self.counts[path] += 1
        self.calls.append(call)
        try:
            if request.method == "POST" and request.content_type.startswith("multipart/"):
                body = await _read_multipart(request)
                call.body = _describe_multipart(body)
            elif request.method == "POST":
                raw = await request.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                    call.body = body
                    raise FakeError(47001, "data format error") from None
                call.body = body
            delay = self.token_latency if path in TOKEN_PATHS else self.latency
            if delay:
                await asyncio.sleep(delay)
            fault = self._take_fault(path)
            if fault is None:
                pass
            elif fault.kind == "sleep":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "invalidate_token":
                self.invalidate_tokens()
            elif fault.kind == "http":
                call.status = fault.status
                return web.Response(status=fault.status, text=f"fake HTTP {fault.status}")
            else:
                raise FakeError(fault.errcode, fault.errmsg or f"fake fault {fault.errcode}")
            if path not in TOKEN_PATHS:
                self.check_token(query.get("access_token"))
            result = await handler(self, request, body)
        except FakeError as exc:
            call.errcode = exc.errcode
            result = {"errcode": exc.errcode, "errmsg": exc.errmsg}
        if isinstance(result, web.Response):
            return result
        call.errcode = int(result.get("errcode", 0) or 0)
        if call.errcode == 0:
            delivered(self, call, result)
        return web.json_response(result, dumps=lambda o: json.dumps(o, ensure_ascii=False))


# ---------------------------------------------------------------- endpoint logic
def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FakeError(44002, "empty post data")
    return body


def _openid(fake: FakeWeChat, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise FakeError(40003, "invalid openid")
    if value in fake.unsubscribed:
        raise FakeError(43004, "require subscribe")
    return value


async def _read_multipart(request: web.Request) -> dict[str, Any]:
    """A multipart form: field → str, or (filename, content_type, bytes) for a file."""
    fields: dict[str, Any] = {}
    try:
        form = await request.post()
    except ValueError:
        raise FakeError(47001, "data format error") from None
    for name, value in form.items():
        if isinstance(value, web.FileField):
            fields[name] = (value.filename, value.content_type, value.file.read())
        else:
            fields[name] = str(value)
    return fields


def _describe_multipart(fields: dict[str, Any]) -> dict[str, Any]:
    """What the call record keeps of a multipart form (files as name, type and size)."""
    return {
        k: {"filename": v[0], "content_type": v[1], "size": len(v[2])} if isinstance(v, tuple) else v
        for k, v in fields.items()
    }


def _msgtype(body: dict[str, Any], allowed: frozenset[str]) -> str:
    msgtype = body.get("msgtype")
    if msgtype not in allowed or not isinstance(body.get(msgtype), dict):
        raise FakeError(40008, "invalid message type")
    assert isinstance(msgtype, str)
    if msgtype == "text" and not body["text"].get("content"):
        raise FakeError(44003, "empty news data")
    return msgtype


def _check_mass_media(fake: FakeWeChat, body: dict[str, Any]) -> None:
    """An mpnews mass message must name a draft made by /cgi-bin/draft/add."""
    if body.get("msgtype") == "mpnews" and body["mpnews"].get("media_id") not in fake.drafts:
        raise FakeError(40007, "invalid media_id")


OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}


async def _stable_token(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    if data.get("grant_type") != "client_credential":
        raise FakeError(40002, "invalid grant_type")
    if data.get("appid") != fake.appid:
        raise FakeError(40013, "invalid appid")
    if data.get("secret") != fake.secret:
        raise FakeError(40125, "invalid appsecret")
    token, expires_in = fake.issue_token(force=bool(data.get("force_refresh")))
    return {"access_token": token, "expires_in": expires_in}


async def _token(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    q = request.query
    if q.get("grant_type") != "client_credential":
        raise FakeError(40002, "invalid grant_type")
    if q.get("appid") != fake.appid:
        raise FakeError(40013, "invalid appid")
    if q.get("secret") != fake.secret:
        raise FakeError(40125, "invalid appsecret")
    token, expires_in = fake.issue_token(stable=False)
    return {"access_token": token, "expires_in": expires_in}


async def _custom_send(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    _openid(fake, data.get("touser"))
    if _msgtype(data, CS_MSGTYPES) == "news":
        articles = data["news"].get("articles")
        if not isinstance(articles, list) or len(articles) != 1:
            raise FakeError(45008, "article size out of limit")
    return dict(OK)


def _template_data(data: dict[str, Any]) -> None:
    if not isinstance(data.get("data"), dict) or not all(
        isinstance(v, dict) and "value" in v for v in data["data"].values()
    ):
        raise FakeError(47003, "argument invalid! data.value invalid")


async def _template_send(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    openid = _openid(fake, data.get("touser"))
    template_id = data.get("template_id")
    if not template_id or (fake.templates is not None and template_id not in fake.templates):
        raise FakeError(40037, "invalid template_id")
    _template_data(data)
    client_msg_id = data.get("client_msg_id")
    if client_msg_id:  # WeChat sends one message per openid + client_msg_id
        key = (openid, str(client_msg_id))
        if key in fake.template_client_msg_ids:
            return {**OK, "msgid": fake.template_client_msg_ids[key]}
        fake.template_client_msg_ids[key] = msgid = fake._new_id()
        return {**OK, "msgid": msgid}
    return {**OK, "msgid": fake._new_id()}


async def _subscribe_send(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    _openid(fake, data.get("touser"))
    if not data.get("template_id"):
        raise FakeError(40037, "invalid template_id")
    _template_data(data)
    return dict(OK)


def _mass_common(fake: FakeWeChat, data: dict[str, Any]) -> dict[str, Any] | None:
    _msgtype(data, MASS_MSGTYPES)
    _check_mass_media(fake, data)
    clientmsgid = data.get("clientmsgid")
    if clientmsgid is not None:
        if len(str(clientmsgid)) > 64:
            raise FakeError(45067, "clientmsgid size out of limit")
        if clientmsgid in fake.clientmsgids:
            msg_id = fake.clientmsgids[clientmsgid]
            return {"errcode": 45065, "errmsg": "clientmsgid exist", "msg_id": msg_id}
    if fake.mass_quota is not None:
        if fake.mass_quota <= 0:
            raise FakeError(45028, "has no masssend quota")
        fake.mass_quota -= 1
    return None


def _mass_ok(fake: FakeWeChat, path: str, data: dict[str, Any]) -> dict[str, Any]:
    msg_id = fake._new_id()
    if data.get("clientmsgid") is not None:
        fake.clientmsgids[str(data["clientmsgid"])] = msg_id
    start_job(fake, msg_id, path, data)
    return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id, "msg_data_id": msg_id * 10}


async def _mass_sendall(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    filter_ = data.get("filter")
    if not isinstance(filter_, dict) or "group_id" in filter_ or "is_to_all" not in filter_:
        raise FakeError(40050, "invalid group id (use filter.is_to_all and filter.tag_id)")
    if not filter_["is_to_all"] and filter_.get("tag_id") not in fake.tags:
        raise FakeError(45159, "invalid tag id")
    duplicate = _mass_common(fake, data)
    return duplicate or _mass_ok(fake, "/cgi-bin/message/mass/sendall", data)


async def _mass_send(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    touser = data.get("touser")
    if not isinstance(touser, list) or not 2 <= len(touser) <= 10_000:
        raise FakeError(40130, "invalid openid list size, at least two openid")
    for openid in touser:
        if not isinstance(openid, str) or not openid:
            raise FakeError(40003, "invalid openid")
    duplicate = _mass_common(fake, data)
    return duplicate or _mass_ok(fake, "/cgi-bin/message/mass/send", data)


async def _mass_preview(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    data = _body(body)
    _openid(fake, data.get("touser"))
    _msgtype(data, MASS_MSGTYPES)
    _check_mass_media(fake, data)
    return {"errcode": 0, "errmsg": "preview success", "msg_id": fake._new_id()}


async def _tags_create(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    tag = _body(body).get("tag")
    name = tag.get("name") if isinstance(tag, dict) else None
    if not isinstance(name, str) or not name or name in fake.tags.values():
        raise FakeError(45157, "invalid tag name")
    if len(name.encode()) > 30:
        raise FakeError(45158, "tag name too long")
    if len(fake.tags) >= 100:
        raise FakeError(45056, "too many tags now, no need to add new")
    fake._next_tag += 1
    fake.tags[fake._next_tag] = name
    return {"tag": {"id": fake._next_tag, "name": name}}


async def _tags_get(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    counts = collections.Counter(t for tags in fake.user_tags.values() for t in tags)
    return {"tags": [{"id": i, "name": n, "count": counts[i]} for i, n in sorted(fake.tags.items())]}


def _tag_batch(fake: FakeWeChat, body: Any) -> tuple[int, list[str]]:
    data = _body(body)
    openids = data.get("openid_list")
    if not isinstance(openids, list) or not openids:
        raise FakeError(40003, "invalid openid")
    if len(openids) > 50:
        raise FakeError(40032, "invalid openid list size")
    tag_id = data.get("tagid")
    if tag_id not in fake.tags:
        raise FakeError(45159, "invalid tag id")
    for openid in openids:
        if not isinstance(openid, str) or not openid:
            raise FakeError(40003, "invalid openid")
    assert isinstance(tag_id, int)
    return tag_id, [str(o) for o in openids]


async def _tags_batchtagging(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    tag_id, openids = _tag_batch(fake, body)
    for openid in openids:
        if len(fake.user_tags[openid] | {tag_id}) > 20:
            raise FakeError(45059, "tag number of fans exceed limit")
    for openid in openids:
        fake.user_tags[openid].add(tag_id)
    return dict(OK)


async def _tags_batchuntagging(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    tag_id, openids = _tag_batch(fake, body)
    for openid in openids:
        fake.user_tags[openid].discard(tag_id)
    return dict(OK)


def _check_button(button: Any, *, top: bool) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("name"), str) or not button["name"]:
        raise FakeError(40018, "invalid button name size")
    if len(button["name"].encode()) > (16 if top else 60):
        raise FakeError(40018, "invalid button name size")
    subs = button.get("sub_button")
    if top and subs:
        if not isinstance(subs, list) or len(subs) > 5:
            raise FakeError(40023, "invalid sub button size")
        for sub in subs:
            _check_button(sub, top=False)
        return
    kind = button.get("type")
    if kind not in MENU_TYPES:
        raise FakeError(40017, "invalid button type")
    if kind == "view":
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url.encode()) > 1024:
            raise FakeError(
                40055 if top else 40054, "invalid button url domain" if top else "invalid sub button url domain"
            )
    elif kind == "click" or kind.startswith(("scancode", "pic_", "location")):
        key = button.get("key")
        if not isinstance(key, str) or not key or len(key.encode()) > 128:
            raise FakeError(40019, "invalid button key size")


async def _menu_create(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    buttons = _body(body).get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise FakeError(40016, "invalid button size")
    for button in buttons:
        _check_button(button, top=True)
    fake.menu = {"button": buttons}
    return dict(OK)


async def _menu_get(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    if fake.menu is None:
        raise FakeError(46003, "menu no exist")
    return {"menu": fake.menu}


async def _selfmenu_info(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    if fake.menu is None:
        return {"is_menu_open": 0, "selfmenu_info": {"button": []}}
    buttons = []
    for b in fake.menu["button"]:
        item = {k: v for k, v in b.items() if k != "sub_button"}
        if b.get("sub_button"):
            item["sub_button"] = {"list": list(b["sub_button"])}
        buttons.append(item)
    return {"is_menu_open": 1, "selfmenu_info": {"button": buttons}}


async def _user_info(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    openid = request.query.get("openid")
    if not openid:
        raise FakeError(40003, "invalid openid")
    if openid in fake.unsubscribed:
        return {"subscribe": 0, "openid": openid}
    return {
        "subscribe": 1,
        "openid": openid,
        "language": request.query.get("lang", "zh_CN"),
        "subscribe_time": 1_700_000_000,
        "remark": "",
        "groupid": 0,
        "tagid_list": sorted(fake.user_tags.get(openid, set())),
        "subscribe_scene": "ADD_SCENE_QR_CODE",
        "qr_scene": 0,
        "qr_scene_str": "",
    }


async def _media_get(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any] | web.Response:
    media_id = request.query.get("media_id", "")
    if not media_id or media_id.startswith("invalid"):
        raise FakeError(40007, "invalid media_id")
    return web.Response(
        body=PNG_1X1,
        content_type="image/png",
        headers={"Content-Disposition": f'attachment; filename="{media_id[:32]}.png"'},
    )


IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/bmp": ".bmp"}
IMAGE_MAX = 10 * 1024 * 1024


async def _add_material(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    if request.query.get("type") != "image":
        raise FakeError(40004, "invalid media type")
    media = body.get("media") if isinstance(body, dict) else None
    if not isinstance(media, tuple) or not media[2]:
        raise FakeError(41005, "media data missing")
    filename, _content_type, content = media
    suffix = "." + str(filename or "").rsplit(".", 1)[-1].lower() if "." in str(filename or "") else ""
    if suffix not in (*IMAGE_TYPES.values(), ".jpeg"):
        raise FakeError(40005, "invalid file type")
    if len(content) > IMAGE_MAX:
        raise FakeError(40009, "invalid image size")
    media_id = f"IMG_{secrets.token_urlsafe(12)}"
    fake.materials[media_id] = bytes(content)
    return {"media_id": media_id, "url": f"{request.url.origin()}/_fake/material/{media_id}", "item": []}


async def _draft_add(fake: FakeWeChat, request: web.Request, body: Any) -> dict[str, Any]:
    articles = _body(body).get("articles")
    if not isinstance(articles, list) or not articles or len(articles) > 8:
        raise FakeError(45008, "article size out of limit")
    for article in articles:
        if not isinstance(article, dict) or not article.get("title") or not article.get("content"):
            raise FakeError(44003, "empty news data")
        if article.get("thumb_media_id") not in fake.materials:
            raise FakeError(40007, "invalid media_id")
        if len(str(article.get("digest", ""))) > 120:
            raise FakeError(45004, "description size out of limit")
    media_id = f"DRAFT_{secrets.token_urlsafe(12)}"
    fake.drafts[media_id] = [dict(a) for a in articles]
    return {"media_id": media_id}


ENDPOINTS: dict[str, tuple[str, Handler]] = {
    "/cgi-bin/stable_token": ("POST", _stable_token),
    "/cgi-bin/token": ("GET", _token),
    "/cgi-bin/message/custom/send": ("POST", _custom_send),
    "/cgi-bin/message/template/send": ("POST", _template_send),
    "/cgi-bin/message/subscribe/bizsend": ("POST", _subscribe_send),
    "/cgi-bin/message/mass/sendall": ("POST", _mass_sendall),
    "/cgi-bin/message/mass/send": ("POST", _mass_send),
    "/cgi-bin/message/mass/preview": ("POST", _mass_preview),
    "/cgi-bin/tags/create": ("POST", _tags_create),
    "/cgi-bin/tags/get": ("GET", _tags_get),
    "/cgi-bin/tags/members/batchtagging": ("POST", _tags_batchtagging),
    "/cgi-bin/tags/members/batchuntagging": ("POST", _tags_batchuntagging),
    "/cgi-bin/menu/create": ("POST", _menu_create),
    "/cgi-bin/menu/get": ("GET", _menu_get),
    "/cgi-bin/get_current_selfmenu_info": ("GET", _selfmenu_info),
    "/cgi-bin/user/info": ("GET", _user_info),
    "/cgi-bin/media/get": ("GET", _media_get),
    "/cgi-bin/material/add_material": ("POST", _add_material),
    "/cgi-bin/draft/add": ("POST", _draft_add),
}

FAKE_WECHAT: web.AppKey[FakeWeChat] = web.AppKey("fake_wechat", FakeWeChat)


def _endpoint(path: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def view(request: web.Request) -> web.StreamResponse:
        return await request.config_dict[FAKE_WECHAT].handle(request, path, handler)

    return view


async def _view_calls(request: web.Request) -> web.Response:
    fake = request.config_dict[FAKE_WECHAT]
    path = request.query.get("path")
    since = float(request.query.get("since", "0") or 0)
    calls = [c.to_json() for c in fake.calls if (path is None or c.path == path) and c.at >= since]
    return web.json_response(
        {"calls": calls, "counts": dict(fake.counts)}, dumps=lambda o: json.dumps(o, ensure_ascii=False)
    )


async def _view_cover(request: web.Request) -> web.Response:
    """A small PNG anyone may fetch (a cover image URL for tests and the simulator)."""
    return web.Response(body=PNG_1X1, content_type="image/png")


async def _view_reset(request: web.Request) -> web.Response:
    request.config_dict[FAKE_WECHAT].reset()
    return web.json_response({"ok": True})


async def _view_faults(request: web.Request) -> web.Response:
    fake = request.config_dict[FAKE_WECHAT]
    if request.method == "POST":
        try:
            data = await request.json()
            items = data if isinstance(data, list) else [data]
            fake.faults.extend(Fault.from_json(item) for item in items)
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
    elif request.method == "DELETE":
        fake.faults.clear()
    return web.json_response({"faults": [asdict(f) for f in fake.faults]})


def create_fake_wechat_app(
    appid: str = DEV_APPID, secret: str = DEV_SECRET, *, state: FakeWeChat | None = None, views_prefix: str = "/_fake"
) -> web.Application:
    """The fake API as an aiohttp application; its state is ``app[FAKE_WECHAT]``. Its own JSON views are
    under ``views_prefix`` (``""`` when the application is itself mounted at ``/_fake``)."""
    app = web.Application()
    app[FAKE_WECHAT] = state if state is not None else FakeWeChat(appid, secret)
    for path, (method, handler) in ENDPOINTS.items():
        app.router.add_route(method, path, _endpoint(path, handler))
    app.router.add_get(f"{views_prefix}/calls", _view_calls)
    app.router.add_get(f"{views_prefix}/cover.png", _view_cover)
    app.router.add_post(f"{views_prefix}/reset", _view_reset)
    app.router.add_route("*", f"{views_prefix}/faults", _view_faults)
    return app


class FakeWeChatServer:
    """Serve the fake on a loopback port: ``async with FakeWeChatServer() as server: server.base_url``."""

    def __init__(self, fake: FakeWeChat | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake if fake is not None else FakeWeChat()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeWeChatServer:
        self._runner = web.AppRunner(create_fake_wechat_app(state=self.fake), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeWeChatServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake WeChat API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--appid", default=DEV_APPID)
    parser.add_argument("--secret", default=DEV_SECRET)
    parser.add_argument("--record-limit", type=int, default=10_000)
    args = parser.parse_args(argv)
    fake = FakeWeChat(args.appid, args.secret, record_limit=args.record_limit or None)
    web.run_app(create_fake_wechat_app(state=fake), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
