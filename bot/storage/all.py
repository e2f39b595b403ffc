"""Import every model module so Base.metadata knows every table (migrations, create_all)."""

from __future__ import annotations

import importlib
import importlib.util

from bot.storage.models import Base

# Feature modules keep their models beside the core ones; each imports Base from models.
FEATURE_MODULES = (
    "bot.storage.tickets",
    "bot.storage.booking",
    "bot.storage.campaigns",
    "bot.storage.staff",
    "bot.storage.disputes",
    "bot.storage.knowledge",
)


def load_all() -> type[Base]:
    for name in FEATURE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return Base
