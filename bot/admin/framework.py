"""The back-office framework: views with role checks, sessions, CSRF, audit, layout, flash messages.

See bot/admin/README.md for how a feature adds a view. In short::

    from bot.admin import framework as adm

    def setup(app: web.Application) -> None:
        adm.add_view(app, "GET", "/admin/bookings", bookings, name="admin-bookings", roles=adm.STAFF)
        adm.add_nav(app, "预约", "admin-bookings", roles=adm.STAFF, order=40)

    async def bookings(request: web.Request) -> web.StreamResponse:
        user = adm.user(request)
        async with adm.db(request)() as session, session.begin():
            await adm.audit(session, request, "bookings.list")
        return await adm.render(request, "admin/bookings.html", {"rows": rows}, title="预约")
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import aiohttp_jinja2
import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography import fernet
from multidict import MultiDictProxy
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.keys import SERVICES
from bot.services.context import Services
from bot.services.tickets import audit_row, format_time
from bot.storage.db import SessionFactory
from bot.storage.models import utcnow
from bot.storage.staff import POSITION_NAMES, ROLE_NAMES, ROLES, StaffUser
from bot.wechat.api import WeChatClient

log = logging.getLogger(__name__)

PREFIX = "/admin"
STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE_NAME = "lawbot_admin"
SESSION_MAX_AGE = 12 * 3600  # seconds; a sign-in lasts at most a working day
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"

# Role sets for add_view(roles=...)
ALL: tuple[str, ...] = ROLES  # every signed-in staff member
STAFF: tuple[str, ...] = ("admin", "mediator")  # township admins and village mediators
ADMIN: tuple[str, ...] = ("admin",)  # township admins only
LEADERS: tuple[str, ...] = ("admin", "leader")  # the 三长联动 queue: township admins and 三长联动 members

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- the signed-in user
@dataclass(frozen=True)
class Staff:
    """The signed-in staff member, loaded fresh from the database on every request."""

    id: int
    username: str
    display_name: str
    role: str
    village_ids: tuple[int, ...]
    #: 三长联动 position ("" none): see bot.storage.staff.POSITION_NAMES
    position: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def label(self) -> str:
        return self.display_name or self.username

    @property
    def role_name(self) -> str:
        name = ROLE_NAMES.get(self.role, self.role)
        return f"{name}·{POSITION_NAMES[self.position]}" if self.position in POSITION_NAMES else name

    def can_see_village(self, village_id: int | None) -> bool:
        """Village-level data (reports, staff of a village): admins all, mediators their villages."""
        if self.is_admin:
            return True
        return self.role == "mediator" and village_id is not None and village_id in self.village_ids


# ---------------------------------------------------------------- the registry of views and menu items
@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str
    name: str
    roles: tuple[str, ...]
    public: bool = False


@dataclass(frozen=True)
class NavItem:
    title: str
    route: str
    roles: tuple[str, ...]
    order: int


@dataclass
class Registry:
    routes: dict[str, AdminRoute] = field(default_factory=dict)
    nav: list[NavItem] = field(default_factory=list)
    #: extra context for every page: fn(request, user) -> dict (e.g. badge counts)
    context_hooks: list[Callable[[web.Request, Staff], Awaitable[dict[str, Any]]]] = field(default_factory=list)


REGISTRY: web.AppKey[Registry] = web.AppKey("admin_registry", Registry)
STORAGE: web.AppKey[AdminCookieStorage] = web.AppKey("admin_session_storage")
WECHAT: web.AppKey[WeChatClient] = web.AppKey("admin_wechat", WeChatClient)
USER: web.RequestKey[Staff] = web.RequestKey("admin_user", Staff)
SESSION: web.RequestKey[aiohttp_session.Session] = web.RequestKey("admin_session", aiohttp_session.Session)


def add_view(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    *,
    name: str,
    roles: Sequence[str] = ADMIN,
    public: bool = False,
) -> None:
    """Register a back-office view under /admin. ``roles``: who may open it (others get 403).

    Every view is behind sign-in unless ``public``; every POST needs the CSRF token. Object-level
    checks (this village, this ticket) stay in the view: call :func:`forbid` when they fail.
    """
    if not path.startswith(PREFIX):
        raise ValueError(f"admin views live under {PREFIX}: {path}")
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    app[REGISTRY].routes[name] = AdminRoute(method.upper(), path, name, tuple(roles), public)
    app.router.add_route(method, path, handler, name=name)


def add_nav(app: web.Application, title: str, route: str, *, roles: Sequence[str] = ADMIN, order: int = 50) -> None:
    """A top-menu link to a named view, shown to ``roles``; ``order`` sorts the menu (tickets are 10)."""
    app[REGISTRY].nav.append(NavItem(title, route, tuple(roles), order))
    app[REGISTRY].nav.sort(key=lambda n: n.order)


def add_context_hook(app: web.Application, hook: Callable[[web.Request, Staff], Awaitable[dict[str, Any]]]) -> None:
    app[REGISTRY].context_hooks.append(hook)


# ---------------------------------------------------------------- request helpers
def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def db(request: web.Request) -> SessionFactory:
    """The session factory: ``async with adm.db(request)() as session, session.begin(): …``."""
    return request.app[SERVICES].session_factory


def wechat(request: web.Request) -> WeChatClient:
    """The WeChat API client of the back-office (media downloads)."""
    return request.app[WECHAT]


def user(request: web.Request) -> Staff:
    """The signed-in staff member (every non-public view has one)."""
    staff: Staff | None = request.get(USER)
    if staff is None:
        raise web.HTTPUnauthorized(text="请先登录")
    return staff


def maybe_user(request: web.Request) -> Staff | None:
    return request.get(USER)


def session_of(request: web.Request) -> aiohttp_session.Session:
    return request[SESSION]


def forbid(message: str = "您没有权限查看或修改这项内容。") -> NoReturn:
    raise web.HTTPForbidden(text=message)


def not_found(message: str = "没有找到。") -> NoReturn:
    raise web.HTTPNotFound(text=message)


def url(request: web.Request, name: str, *, query: Mapping[str, Any] | None = None, **parts: Any) -> str:
    """URL of a named route, e.g. ``url(request, "admin-ticket", id=3)``."""
    resource = request.app.router[name]
    built = str(resource.url_for(**{k: str(v) for k, v in parts.items()}))
    clean = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    return built + ("?" + urlencode(clean, doseq=True) if clean else "")


def redirect(request: web.Request, name: str, *, query: Mapping[str, Any] | None = None, **parts: Any) -> NoReturn:
    """303 to a named view (after a POST)."""
    raise web.HTTPSeeOther(url(request, name, query=query, **parts))


def flash(request: web.Request, text: str, level: str = "ok") -> None:
    """A one-time message on the next page: level ok | error | warn."""
    session = request[SESSION]
    session["flash"] = [*session.get("flash", []), [level, text]]


def client_ip(request: web.Request) -> str:
    """The client's address; behind nginx (LAWBOT_TRUST_PROXY) the last X-Forwarded-For hop."""
    if services(request).settings.trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return (request.remote or "")[:64]


def is_secure(request: web.Request) -> bool:
    if request.secure:
        return True
    return (
        services(request).settings.trust_proxy
        and request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"
    )


async def form(request: web.Request) -> MultiDictProxy[Any]:
    """The POSTed form (its CSRF token was already checked by the middleware)."""
    return await request.post()


#: dates staff may ask about or enter; outside them a date is a typo (or a probe), answered 400
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2099, 12, 31)
MAX_PAGE = 100_000


def in_calendar(day: dt.date) -> dt.date:
    """``day`` if it lies between :data:`FIRST_DAY` and :data:`LAST_DAY`, else 400."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise web.HTTPBadRequest(text=f"日期超出范围：只能是 {FIRST_DAY:%Y} 到 {LAST_DAY:%Y} 年之间。")
    return day


def field_text(data: Mapping[str, Any], name: str, max_len: int = 4000) -> str:
    value = data.get(name, "")
    return value.strip()[:max_len] if isinstance(value, str) else ""


async def audit(
    session: AsyncSession,
    request: web.Request,
    action: str,
    *,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Record a view of personal data or a change, by the signed-in user, in ``session``'s transaction."""
    staff = maybe_user(request)
    row = audit_row(
        action, utcnow(), object_type=object_type, object_id=object_id, details=details, ip=client_ip(request)
    )
    if staff is not None:
        row.staff_id = staff.id
        row.username = staff.username
    else:
        row.username = ""
    session.add(row)


# ---------------------------------------------------------------- rendering
async def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    title: str = "",
    status: int = 200,
) -> web.Response:
    """Render ``template`` inside the layout with the common context:

    ``user`` (or None), ``nav`` (menu items for the user's role), ``csrf_token``, ``flashes``,
    ``url(name, **parts)``, ``static(path)``, ``title``, ``current`` (route name), plus hooks' keys.
    """
    staff = maybe_user(request)
    registry = request.app[REGISTRY]
    session = request.get(SESSION)
    flashes: list[list[str]] = []
    if session is not None:
        flashes = list(session.pop("flash", []))
    route = request.match_info.route
    base: dict[str, Any] = {
        "user": staff,
        "nav": [n for n in registry.nav if staff is not None and staff.role in n.roles],
        "csrf_token": csrf_token(request) if session is not None else "",
        "csrf_field": CSRF_FIELD,
        "flashes": flashes,
        "url": lambda name, query=None, **parts: url(request, name, query=query, **parts),
        "static": lambda path: f"{PREFIX}/static/{path}",
        "title": title,
        "current": route.name if route is not None else None,
        "badges": {},
    }
    if staff is not None:
        for hook in registry.context_hooks:
            base.update(await hook(request, staff))
    response: web.Response = aiohttp_jinja2.render_template(
        template, request, {**base, **(context or {})}, status=status
    )
    return response


# ---------------------------------------------------------------- sessions and CSRF
def _fernet(secret_key: str) -> fernet.Fernet:
    digest = hashlib.sha256(b"lawbot-admin-session\x00" + secret_key.encode()).digest()
    return fernet.Fernet(base64.urlsafe_b64encode(digest))


class AdminCookieStorage(EncryptedCookieStorage):
    """Encrypted cookie (HttpOnly, SameSite=Lax, path /admin), Secure when the request came over TLS."""

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
    ) -> None:
        await super().save_session(request, response, session)
        morsel = response.cookies.get(self.cookie_name)
        if morsel is not None and morsel.value and is_secure(request):
            morsel["secure"] = True


def csrf_token(request: web.Request) -> str:
    session = request[SESSION]
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def _check_csrf(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        forwarded_host = request.headers.get("X-Forwarded-Host", "") if services(request).settings.trust_proxy else ""
        if host not in {request.host, forwarded_host}:
            raise web.HTTPForbidden(text="来源不对，已拒绝。请从后台页面提交。")
    expected = request[SESSION].get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise web.HTTPForbidden(text="页面已过期（安全校验没通过）。请返回、刷新页面后再提交一次。")


async def load_staff(session: AsyncSession, staff_id: int) -> StaffUser | None:
    return (
        await session.execute(
            select(StaffUser).options(selectinload(StaffUser.villages)).where(StaffUser.id == staff_id)
        )
    ).scalar_one_or_none()


def identity(staff: StaffUser) -> Staff:
    return Staff(
        staff.id, staff.username, staff.display_name, staff.role, tuple(v.id for v in staff.villages), staff.position
    )


async def _load_user(request: web.Request) -> None:
    session = request[SESSION]
    uid = session.get("uid")
    if not isinstance(uid, int):
        return
    signed_in_at = session.get("at")
    if not isinstance(signed_in_at, int | float) or time.time() - signed_in_at > SESSION_MAX_AGE:
        session.clear()
        return
    async with db(request)() as s:
        staff = await load_staff(s, uid)
    if staff is None or not staff.active or staff.session_epoch != session.get("epoch"):
        session.clear()  # deactivated, password reset, or deleted: every old session ends
        return
    request[USER] = identity(staff)


def sign_in_session(request: web.Request, staff: StaffUser) -> None:
    """A fresh session for the signed-in user (a new CSRF token too: no session fixation)."""
    session = request[SESSION]
    session.clear()
    session["uid"] = staff.id
    session["epoch"] = staff.session_epoch
    session["at"] = int(time.time())
    session["csrf"] = secrets.token_urlsafe(32)


#: an id in a path above this is no row of ours (ids are 32-bit integers): 404 before any query
MAX_ID = 2**31 - 1
#: what a database that is down, hung or refusing looks like to a view
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, TimeoutError)
DATABASE_DOWN = "数据库暂时连不上，请过几分钟再试。着急的事请直接打电话。（已记录，管理员会处理）"
CRASHED = "系统出了点问题，这一步没有完成。请返回重试；一直不行请联系乡管理员。（已记录）"

ERROR_TITLES = {
    400: "请求有误",
    403: "没有权限",
    404: "没有找到",
    405: "不支持的操作",
    413: "内容太大",
    429: "太频繁了",
    500: "出错了",
    503: "暂时无法使用",
}


def _add_headers(response: web.StreamResponse) -> None:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP)


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /admin: session, CSRF on every unsafe method, the signed-in user, role checks, error pages."""
    if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
        return await handler(request)
    if request.path.startswith(PREFIX + "/static/"):
        return await handler(request)
    # aiohttp_session's own middleware would run on every request (and uses str request keys): the
    # back-office loads and saves its cookie session itself, for /admin only.
    storage = request.app[STORAGE]
    session = await storage.load_session(request)
    request[SESSION] = session
    try:
        for value in request.match_info.values():
            if value.isdigit() and int(value) > MAX_ID:
                raise web.HTTPNotFound(text="没有找到。")
        if request.method not in SAFE_METHODS:
            await _check_csrf(request)
        await _load_user(request)
        route_name = request.match_info.route.name
        known = request.match_info.http_exception is None
        if not known and request.get(USER) is None and request.method in SAFE_METHODS:
            # signed out, nothing under /admin says whether a page exists: every path leads to the sign-in
            raise web.HTTPSeeOther(url(request, "admin-login", query={"next": request.path_qs}))
        if known:
            spec = request.app[REGISTRY].routes.get(route_name or "")
            roles, public = (spec.roles, spec.public) if spec is not None else (ADMIN, False)
            if not public:
                staff = request.get(USER)
                if staff is None:
                    if request.method in SAFE_METHODS:
                        raise web.HTTPSeeOther(url(request, "admin-login", query={"next": request.path_qs}))
                    raise web.HTTPUnauthorized(text="登录已过期，请重新登录。")
                if staff.role not in roles:
                    raise web.HTTPForbidden(text="您的账号没有权限打开这个页面。")
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            _add_headers(exc)
            await _save(storage, request, exc, session)
            raise
        response = await _error_page(request, exc)
    except DATABASE_ERRORS:
        log.exception("back-office %s %s: database unavailable", request.method, request.path)
        response = await _error_page(request, web.HTTPServiceUnavailable(text=DATABASE_DOWN), bare=True)
    except Exception:
        log.exception("back-office %s %s failed", request.method, request.path)
        response = await _error_page(request, web.HTTPInternalServerError(text=CRASHED), bare=True)
    _add_headers(response)
    if isinstance(response, web.Response):
        await _save(storage, request, response, session)
    return response


async def _save(
    storage: AdminCookieStorage, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
) -> None:
    if session._changed and not response.prepared:
        await storage.save_session(request, response, session)


async def _error_page(request: web.Request, exc: web.HTTPException, *, bare: bool = False) -> web.Response:
    """The error in the back-office's layout. ``bare``: without the signed-in user's menu and badges
    (which need the database)."""
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else ERROR_TITLES.get(exc.status, "")
    if exc.status == 401:
        message = "登录已过期，请重新登录。"
    if bare:
        request.pop(USER, None)
    try:
        return await render(
            request,
            "admin/error.html",
            {"status": exc.status, "message": message},
            title=ERROR_TITLES.get(exc.status, "出错了"),
            status=exc.status,
        )
    except Exception:  # the error page itself must not fail
        log.exception("admin error page failed")
        return web.Response(status=exc.status, text=message)


# ---------------------------------------------------------------- setup
def _wechat_ctx(app: web.Application) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from bot.wechat.token import token_store_for

        services = app[SERVICES]
        store = token_store_for(services.settings, services.session_factory)
        client = WeChatClient.from_settings(services.settings, token_store=store)
        app[WECHAT] = client
        yield
        await client.close()
        await store.close()

    return ctx


def setup(app: web.Application) -> None:
    """Templates, encrypted cookie sessions, the middleware, static files and the WeChat client."""
    from bot.templating import setup_templates

    setup_templates(app)
    env = aiohttp_jinja2.get_env(app)
    env.filters.setdefault("when", format_time)
    app[REGISTRY] = Registry()
    settings = app[SERVICES].settings
    storage = AdminCookieStorage(
        _fernet(settings.effective_secret_key),
        cookie_name=COOKIE_NAME,
        path=PREFIX,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="Lax",
    )
    app[STORAGE] = storage
    app.middlewares.append(admin_middleware)
    app.router.add_static(PREFIX + "/static/", STATIC_DIR, name="admin-static", append_version=False)
    app.cleanup_ctx.append(_wechat_ctx(app))
