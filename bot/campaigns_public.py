"""The public archive of sent campaign notices: ``/campaigns`` and ``/campaigns/{id}``.

No login (the menu's 往期普法 button opens it in WeChat's browser). Only campaigns that were sent
and marked for the archive are shown; every value is escaped by the templates' autoescape, and links
are rendered only when they are plain http(s) URLs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.keys import SERVICES
from bot.services import campaigns as service

log = logging.getLogger(__name__)

PAGE_SIZE = 20

TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("campaign_public_templates", jinja2.Environment)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        enable_async=False,
    )
    env.filters["china"] = lambda value, fmt="%Y-%m-%d": service.china_time(value).strftime(fmt) if value else ""
    env.tests["web_url"] = service.is_web_url
    return env


def _render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    services = request.app[SERVICES]
    site = services.texts.site
    html = (
        request.app[TEMPLATES]
        .get_template(name)
        .render(
            site_name=str(site.get("office_name") or "乡法通"),
            township=str(site.get("township") or ""),
            **context,
        )
    )
    # no-cache: a phone asks again every time (a campaign sent a minute ago must show up), but an
    # unchanged page costs only a 304 thanks to the ETag
    etag = hashlib.sha256(html.encode()).hexdigest()[:32]
    if status == 200 and any(e.value == etag for e in request.if_none_match or ()):
        response = web.Response(status=304)
    else:
        response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    response.etag = etag
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
    )
    return response


def _database_down_page(
    view: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """With the database down or hung, villagers get a plain page (503), not aiohttp's bare 500."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await view(request)
        except (SQLAlchemyError, OSError, TimeoutError):
            log.exception("campaign archive %s: database unavailable", request.path)
            response = _render(request, "campaigns/unavailable.html", status=503)
            response.headers["Cache-Control"] = "no-store"
            return response

    return wrapped


@_database_down_page
async def archive(request: web.Request) -> web.Response:
    try:
        page = max(1, min(int(request.query.get("page", "1")), 1000))
    except ValueError:
        page = 1
    async with request.app[SERVICES].session_factory() as session:
        items = await service.public_campaigns(session, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return _render(
        request,
        "campaigns/list.html",
        campaigns=[(c, service.excerpt(c)) for c in items[:PAGE_SIZE]],
        page=page,
        has_next=len(items) > PAGE_SIZE,
    )


@_database_down_page
async def detail(request: web.Request) -> web.Response:
    try:
        campaign_id = int(request.match_info["campaign_id"])
    except ValueError:
        campaign_id = 0
    async with request.app[SERVICES].session_factory() as session:
        campaign = await service.public_campaign(session, campaign_id) if campaign_id > 0 else None
    if campaign is None:
        return _render(request, "campaigns/missing.html", status=404)
    return _render(request, "campaigns/detail.html", c=campaign)


def setup_public(app: web.Application) -> None:
    """Add the archive routes (call from create_app)."""
    app[TEMPLATES] = _env()
    app.router.add_get("/campaigns", archive, name="campaigns-archive")
    app.router.add_get(r"/campaigns/{campaign_id:\d{1,9}}", detail, name="campaigns-public-detail")
