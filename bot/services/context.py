"""What handlers and views share: settings, database sessions, knowledge, background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.knowledge import Knowledge, KnowledgeHolder, Texts
from bot.settings import Settings
from bot.storage.db import SessionFactory

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    session_factory: SessionFactory
    knowledge_holder: KnowledgeHolder
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.session_factory.kw["bind"]
        return engine

    @property
    def knowledge(self) -> Knowledge:
        return self.knowledge_holder.current

    @property
    def texts(self) -> Texts:
        return self.knowledge_holder.current.texts

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference so it is not garbage-collected."""
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
