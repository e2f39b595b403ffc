"""Who may drive the simulator: only its own page, in the same browser, with JSON.

The simulator signs pushes with the account's Token (and AES key), so a request to its API is as good as
a push from WeChat for a simulator villager. Every POST must therefore

* be ``application/json`` (a cross-site form or ``text/plain`` POST is refused with 415 before anything
  is read: browsers send JSON cross-site only after a CORS preflight, which is never answered);
* carry the page's CSRF token in ``X-CSRF-Token``: an HMAC (``LAWBOT_SECRET_KEY``) of a random value the
  page's cookie holds (``HttpOnly``, ``SameSite=Strict``), so another site can neither read the token nor
  make the browser send the cookie;
* if the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), come from this very page.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from aiohttp import web

from bot.keys import SERVICES

COOKIE = "lawbot_sim"
HEADER = "X-CSRF-Token"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def _sign(request: web.Request, value: str) -> str:
    key = request.app[SERVICES].settings.effective_secret_key.encode()
    return hmac.new(key, f"simulator-csrf:{value}".encode(), hashlib.sha256).hexdigest()


def issue(request: web.Request, response: web.StreamResponse) -> str:
    """The page's CSRF token (setting the cookie it is bound to, if the browser has none yet)."""
    value = request.cookies.get(COOKIE, "")
    if not _COOKIE_VALUE.fullmatch(value):
        value = secrets.token_urlsafe(32)
        response.set_cookie(COOKIE, value, path="/simulator", httponly=True, samesite="Strict")
    return _sign(request, value)


def token_for_cookie(request: web.Request, value: str) -> str:
    """The token that goes with a cookie value (for tests that play the page)."""
    return _sign(request, value)


def check(request: web.Request) -> None:
    """Refuse anything but a same-origin JSON request from the simulator's page."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="模拟器只接受 application/json 请求。")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise web.HTTPForbidden(text="模拟器只接受来自它自己页面的请求。")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="模拟器只接受来自它自己页面的请求。")
    value = request.cookies.get(COOKIE, "")
    sent = request.headers.get(HEADER, "")
    if not _COOKIE_VALUE.fullmatch(value) or not hmac.compare_digest(sent, _sign(request, value)):
        raise web.HTTPForbidden(text="页面已过期，请刷新模拟器页面后再试。")
