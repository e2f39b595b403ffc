"""The Jinja2 environment of the server's HTML pages (bot/templates/), set up once per application."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web


def setup_templates(app: web.Application) -> None:
    """aiohttp_jinja2 over bot/templates: autoescaped, and a missing variable is an error."""
    if aiohttp_jinja2.APP_KEY in app:
        return
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("bot", "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        undefined=jinja2.StrictUndefined,
    )
