"""create_app(settings) -> web.Application. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from bot.keys import CHECKPOINTER, CRYPTO, ENGINE, NONCES, PIPELINE, SERVICES
from bot.routing import Dispatcher
from bot.services.context import Services
from bot.services.inbound import Pipeline
from bot.services.knowledge import KnowledgeHolder
from bot.settings import Settings
from bot.storage.db import create_engine, create_session_factory, sqlite_file
from bot.storage.models import Village
from bot.storage.sqlite_checkpoint import WalCheckpointer
from bot.wechat.crypto import MessageCrypto
from bot.wechat.nonces import RedisNonces
from bot.wechat.webhook import setup_routes as setup_webhook

log = logging.getLogger(__name__)

# Web features that mount their own routes: (module, setup function).
FEATURE_SETUPS = (("bot.admin", "setup_admin"), ("bot.campaigns_public", "setup_public"))


async def sync_villages(services: Services) -> None:
    """Villages listed in site.yaml exist in the database (names are staff-editable afterwards)."""
    configured: dict[Any, Any] = services.knowledge.kb.site.get("villages") or {}
    async with services.session_factory() as session, session.begin():
        existing = set((await session.execute(select(Village.id))).scalars())
        missing = [{"id": int(vid), "name": str(name)} for vid, name in configured.items() if int(vid) not in existing]
        if missing:
            # two processes starting together may both find a village missing: the second insert is skipped
            insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
            await session.execute(insert(Village).values(missing).on_conflict_do_nothing(index_elements=["id"]))


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        async with asyncio.timeout(services.settings.db_timeout), services.session_factory() as session:
            await session.execute(select(Village.id).limit(1))  # reachable and migrated
    except Exception as exc:
        log.warning("health check: database unreachable or not migrated: %s", exc)
        return web.json_response({"ok": False, "database": "unreachable or not migrated"}, status=503)
    kb = services.knowledge.kb
    # only a count: the errors name server paths and file contents (they are in the log, and on
    # the back-office's knowledge page for staff)
    return web.json_response(
        {
            "ok": True,
            "database": "ok",
            "knowledge_entries": len(kb.entries),
            "knowledge_errors": len(services.knowledge_holder.errors),
            "knowledge_version": services.knowledge_holder.version,
        }
    )


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    checkpointer = app.get(CHECKPOINTER)
    if checkpointer is not None:
        checkpointer.start()
    try:
        try:
            await sync_villages(app[SERVICES])
        except Exception:  # a database that is down must not keep the webhook from telling villagers so
            log.exception("could not sync the villages of site.yaml into the database; continuing")
        yield
    finally:
        await app[ENGINE].dispose()
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    services = app[SERVICES]
    if services.background:
        # let in-flight deferred replies commit to the outbox before the database closes
        _done, pending = await asyncio.wait(list(services.background), timeout=5)
        for task in pending:
            task.cancel()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Close the Redis clients of the nonce store and the attempt counters (when they were made)."""
    yield
    nonces = app[NONCES]
    if nonces is not None:
        await nonces.close()
    if "attempts" in vars(app[SERVICES]):
        await app[SERVICES].attempts.close()


async def _sighup_ctx(app: web.Application) -> AsyncIterator[None]:
    """SIGHUP reloads the knowledge without a restart (a broken file keeps the old index)."""
    holder = app[SERVICES].knowledge_holder
    loop = asyncio.get_running_loop()
    installed = False
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: app[SERVICES].spawn(holder.reload(), name="kb-reload"))
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP here
        pass
    yield
    if installed:
        loop.remove_signal_handler(signal.SIGHUP)


async def _knowledge_ctx(app: web.Application) -> AsyncIterator[None]:
    """The township's published knowledge before the first push, then followed (bot/services/knowledge/sync.py)."""
    from bot.services.knowledge.sync import Follower, catch_up

    services = app[SERVICES]
    try:
        await catch_up(services.knowledge_holder, services.session_factory)
    except Exception as exc:  # not migrated yet, or the database is down: serve the shipped pack meanwhile
        log.warning("township knowledge not loaded at start (%s); following it from now on", exc)
    stop = asyncio.Event()
    task = services.spawn(
        Follower(services.knowledge_holder, services.session_factory, services.settings).run(stop, check_first=False),
        name="kb-follow",
    )
    yield
    stop.set()
    try:
        await asyncio.wait_for(task, 5)
    except TimeoutError:
        task.cancel()


def _worker_ctx(settings: Settings) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from bot.services.jobs import run_worker_and_jobs

        stop = asyncio.Event()
        # share the app's sessions: on SQLite one connection per process (see bot/storage/sqlite_inloop.py)
        task = app[SERVICES].spawn(
            run_worker_and_jobs(
                settings, stop, session_factory=app[SERVICES].session_factory, knowledge=app[SERVICES].knowledge_holder
            ),
            name="outbox-worker",
        )
        yield
        stop.set()
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            task.cancel()

    return ctx


def create_app(settings: Settings, *, knowledge: KnowledgeHolder | None = None) -> web.Application:
    """The application production runs and tests drive through aiohttp_client."""
    from bot.storage.all import load_all
    from handlers import ROUTERS

    load_all()  # every feature's tables are known to the ORM

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    holder = knowledge or KnowledgeHolder.load(Path(settings.knowledge_dir))
    app = web.Application(client_max_size=settings.max_body_bytes + 1024)
    database_file = sqlite_file(settings.database_url)
    # no connection is made until first use
    engine = create_engine(
        settings.database_url,
        background_checkpoint=database_file is not None,
        pool_size=settings.db_pool_size,
        timeout=settings.db_timeout,
    )
    services = Services(settings=settings, session_factory=create_session_factory(engine), knowledge_holder=holder)
    app[ENGINE] = engine
    if database_file is not None:
        app[CHECKPOINTER] = WalCheckpointer(database_file)
    app[SERVICES] = services
    app[PIPELINE] = Pipeline(services, Dispatcher(ROUTERS))
    app[CRYPTO] = (
        MessageCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
        if settings.wechat_aes_key
        else None
    )
    app[NONCES] = (
        RedisNonces(settings.redis_url, window=settings.timestamp_window, timeout=settings.db_timeout)
        if settings.redis_url
        else None
    )
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_background_ctx)
    app.cleanup_ctx.append(_sighup_ctx)
    app.cleanup_ctx.append(_knowledge_ctx)
    if settings.inprocess_worker:
        app.cleanup_ctx.append(_worker_ctx(settings))
    setup_webhook(app)
    app.router.add_get("/healthz", healthz, name="healthz")
    for module_name, function in FEATURE_SETUPS:
        if importlib.util.find_spec(module_name) is not None:
            setup = getattr(importlib.import_module(module_name), function, None)
            if setup is not None:
                setup(app)
    if not settings.production:
        from bot.simulator import setup_simulator

        setup_simulator(app)
    return app
