"""/simulator: try the bot as a villager without a WeChat account (never mounted in production).

``views`` has the pages and the JSON API, ``phones`` the villagers and their chats, ``guard`` who may
drive it. :func:`setup_simulator` mounts it (``create_app`` calls it outside production).
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import SERVICES
from bot.simulator import views
from bot.simulator.phones import SAMPLES, SIM_PREFIX, Phones, is_sim_openid
from bot.simulator.views import SIM_PHONES
from bot.templating import setup_templates

__all__ = ["SAMPLES", "SIM_PHONES", "SIM_PREFIX", "Phones", "is_sim_openid", "setup_simulator"]


def setup_simulator(app: web.Application) -> None:
    """Mount the simulator and the start page ``/`` (refused in production)."""
    if app[SERVICES].settings.production:
        raise RuntimeError("the simulator is never mounted in production")
    setup_templates(app)
    app[SIM_PHONES] = Phones()
    app.on_startup.append(views.on_startup)
    app.router.add_get("/", views.start, name="start")
    app.router.add_get("/simulator", views.page, name="simulator")
    app.router.add_get("/simulator/sample.png", views.sample_picture, name="simulator-sample")
    app.router.add_post("/simulator/api/send", views.send, name="simulator-send")
    app.router.add_get("/simulator/api/chat", views.chat, name="simulator-chat")
    app.router.add_get("/simulator/api/villagers", views.villagers, name="simulator-villagers")
    app.router.add_post("/simulator/api/villagers", views.villagers)
