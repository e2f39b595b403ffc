"""The back-office (乡法通后台): server-rendered, phone-first pages under /admin.

``setup_admin(app)`` installs the framework (sessions, CSRF, roles, audit, layout — see
bot/admin/README.md) and the core views, then every feature view module listed in
:data:`FEATURE_VIEW_MODULES` that exists (each exposes ``setup(app)``).
Nothing heavy is imported until ``setup_admin`` runs: `lawbot` commands stay fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

CORE_VIEW_MODULES: tuple[str, ...] = (
    "bot.admin.auth",
    "bot.admin.account_views",
    "bot.admin.alert_views",
    "bot.admin.duty_views",
    "bot.admin.tickets_views",
    "bot.admin.report_views",
    "bot.admin.knowledge_views",
    "bot.admin.knowledge_review_views",
    "bot.admin.staff_views",
    "bot.admin.villager_views",
)
#: views other features add on top of the framework; a module that does not exist yet is skipped
FEATURE_VIEW_MODULES: tuple[str, ...] = (
    "bot.admin.booking_views",
    "bot.admin.campaign_views",
    "bot.admin.dispute_views",
)


def setup_admin(app: web.Application) -> None:
    """Mount the back-office on ``app`` (call once, from create_app, after SERVICES is set)."""
    from bot.admin import framework

    framework.setup(app)
    for name in CORE_VIEW_MODULES:
        importlib.import_module(name).setup(app)
    for name in FEATURE_VIEW_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).setup(app)


__all__ = ["CORE_VIEW_MODULES", "FEATURE_VIEW_MODULES", "setup_admin"]
