"""What handlers and views share: settings, database sessions, knowledge, background tasks."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.knowledge import Knowledge, KnowledgeHolder, Texts
from bot.settings import Settings
from bot.storage.db import SessionFactory

if TYPE_CHECKING:
    from bot.services.attempts import Attempts

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

    @functools.cached_property
    def attempts(self) -> Attempts:
        """Attempt counters shared by every process (sign-in limits, binding codes)."""
        from bot.services.attempts import Attempts

        return Attempts(self.session_factory, self.settings.redis_url, timeout=self.settings.db_timeout)

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
