"""A push's way through: store it, dispatch it under a deadline, keep the reply.

1. ``store`` inserts the push under its unique dedup key in its own transaction, so it is
   saved before any handler runs; a retry of the same push finds the row instead.
2. ``Pipeline.handle`` dispatches in a second transaction. If the handler beats the
   deadline its reply goes back as the passive reply (and is stored for retries);
   otherwise the webhook answers ``success`` and the reply is written to the outbox as a
   customer-service message in the same transaction as the handler's changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.routing import Ctx, Dispatcher, Reply, TextReply, reply_from_json
from bot.services.context import Services
from bot.services.knowledge import fill
from bot.services.outbox import enqueue, release_held
from bot.storage.models import ConversationState, InboundMessage, Villager, utcnow
from bot.wechat.messages import Incoming
from bot.wechat.xml import fit_text

log = logging.getLogger(__name__)

# Events through which a villager opens WeChat's 48-hour customer-service window.
INTERACTIVE_EVENTS = {"subscribe", "scan", "click", "location"}
# Events WeChat sends about the account itself: they are stored, but nobody is answered.
SYSTEM_EVENTS = {"templatesendjobfinish", "masssendjobfinish"}

# Handlers after which a numbered list shown earlier still applies (picking from it again).
KEEPS_MENU = frozenset({"help.pick", "none"})

CRASH_TEXT = "抱歉，系统开了个小差，没处理好您的消息。请稍后再发一次，或打{office_name}电话：{office_phone}。"


def opens_window(msg: Incoming) -> bool:
    return not msg.is_event or msg.event in INTERACTIVE_EVENTS


@dataclass
class Stored:
    id: int
    new: bool
    status: str
    reply: dict[str, Any] | None


_INBOUND_COLUMNS = (
    "dedup_key",
    "openid",
    "msg_type",
    "event",
    "event_key",
    "msg_id",
    "content",
    "media_id",
    "payload",
    "wechat_created_at",
    "received_at",
    "status",
)


@functools.cache
def _statements(dialect: str) -> dict[str, Any]:
    """The hot path's statements, built once with bind parameters (SQLAlchemy then reuses the compiled form)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    villager = insert(Villager).values(
        openid=bindparam("openid"), first_seen_at=bindparam("now"), last_inbound_at=bindparam("last_inbound_at")
    )
    return {
        "inbound": insert(InboundMessage)
        .values({c: bindparam(c) for c in _INBOUND_COLUMNS})
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(InboundMessage.id),
        "existing": select(InboundMessage.id, InboundMessage.status, InboundMessage.reply).where(
            InboundMessage.dedup_key == bindparam("dedup_key")
        ),
        # a villager's first push creates the row; an interaction moves the 48-hour window
        "villager_touch": villager.on_conflict_do_update(
            index_elements=["openid"], set_={"last_inbound_at": villager.excluded.last_inbound_at}
        ),
        "villager_seen": villager.on_conflict_do_nothing(index_elements=["openid"]),
        "villager_load": select(Villager).where(Villager.openid == bindparam("openid")),
        "conversation_load": select(ConversationState).where(ConversationState.openid == bindparam("openid")),
        "finish": update(InboundMessage)
        .where(InboundMessage.id == bindparam("inbound_id"))
        .values(
            status=bindparam("status"),
            handler=bindparam("handler"),
            reply=bindparam("reply", type_=InboundMessage.__table__.c.reply.type),
            replied_at=bindparam("replied_at"),
        )
        .execution_options(synchronize_session=False),
    }


async def store(services: Services, msg: Incoming) -> Stored:
    """Save the push (and touch the villager) before anything else happens."""
    now = utcnow()
    # Core on a plain connection, not an ORM session: this runs for every push and the ORM's
    # unit of work would triple its cost (bench/webhook_load.py).
    async with services.engine.begin() as session:
        sql = _statements(session.dialect.name)
        params = {
            "dedup_key": msg.dedup_key,
            "openid": msg.openid,
            "msg_type": msg.msg_type,
            "event": msg.event,
            "event_key": msg.event_key or None,
            "msg_id": msg.msg_id or None,
            "content": msg.content or None,
            "media_id": msg.media_id or None,
            "payload": msg.raw,
            "wechat_created_at": msg.created_at,
            "received_at": now,
            "status": "received",
        }
        new_id = (await session.execute(sql["inbound"], params)).scalar_one_or_none()
        if new_id is None:
            row = (await session.execute(sql["existing"], {"dedup_key": msg.dedup_key})).one()
            return Stored(row.id, False, row.status, row.reply)
        if msg.event not in SYSTEM_EVENTS:
            interactive = opens_window(msg)
            await session.execute(
                sql["villager_touch" if interactive else "villager_seen"],
                {"openid": msg.openid, "now": now, "last_inbound_at": now if interactive else None},
            )
            if interactive:
                await release_held(session, msg.openid)
        return Stored(new_id, True, "received", None)


@dataclass
class Job:
    outcome: Literal["pending", "passive", "deferred"] = "pending"


class Pipeline:
    def __init__(self, services: Services, dispatcher: Dispatcher) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self._inflight: dict[str, asyncio.Task[Reply | None]] = {}

    async def handle(self, msg: Incoming) -> Reply | None:
        """Store, dispatch and return the passive reply (None: answer ``success``)."""
        deadline = self.services.settings.reply_deadline
        stored = await store(self.services, msg)
        if not stored.new:
            return await self._retry(msg, stored, deadline)
        job = Job()
        task = asyncio.create_task(self.run_job(msg, stored.id, job), name=f"inbound:{stored.id}")
        self._inflight[msg.dedup_key] = task
        task.add_done_callback(lambda _t: self._inflight.pop(msg.dedup_key, None))
        self.services.background.add(task)
        task.add_done_callback(self.services.background.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(task), deadline)
        except TimeoutError:
            if job.outcome == "pending":
                job.outcome = "deferred"
                log.warning(
                    "inbound %s missed the %.1fs deadline; its reply will go through the outbox", stored.id, deadline
                )
                return None
            return await task  # it is already committing its passive reply

    async def _retry(self, msg: Incoming, stored: Stored, deadline: float) -> Reply | None:
        """A WeChat retry: the stored reply if ready, else ``success``."""
        if stored.reply is not None:
            return reply_from_json(stored.reply)
        task = self._inflight.get(msg.dedup_key)
        if task is not None:  # the first copy is still being handled in this process
            try:
                return await asyncio.wait_for(asyncio.shield(task), deadline)
            except TimeoutError:
                return None
        return None

    async def run_job(self, msg: Incoming, inbound_id: int, job: Job) -> Reply | None:
        try:
            return await self._dispatch(msg, inbound_id, job)
        except Exception:
            log.exception("handler failed for inbound %s", inbound_id)
            return await self._failed(msg, inbound_id, job)

    async def _dispatch(self, msg: Incoming, inbound_id: int, job: Job) -> Reply | None:
        services = self.services
        now = utcnow()
        async with services.session_factory() as session, session.begin():
            sql = _statements(session.get_bind().dialect.name)
            villager = await _villager(session, msg)
            conv = (await session.execute(sql["conversation_load"], {"openid": msg.openid})).scalar_one_or_none()
            if conv is None:
                conv = ConversationState(openid=msg.openid, data={}, context={})
                if msg.event not in SYSTEM_EVENTS:
                    session.add(conv)
            ctx = Ctx(
                msg=msg,
                session=session,
                villager=villager,
                conv=conv,
                services=services,
                inbound_id=inbound_id,
                now=now,
            )
            menu_before = (conv.context or {}).get("menu")
            handler_name, reply = await self.dispatcher.dispatch(ctx)
            if handler_name not in KEEPS_MENU and (conv.context or {}).get("menu") is menu_before and menu_before:
                # numbers refer to the last list shown: once something else was answered, forget it
                ctx.remember(menu=None)
            if isinstance(reply, TextReply):
                shown, rest = fit_text(reply.content)
                if rest:
                    ctx.remember(more=rest)
                reply = TextReply(shown)
            if job.outcome == "pending":
                job.outcome = "passive"
            await _finish(session, msg, inbound_id, handler_name, reply, deferred=job.outcome == "deferred")
        return reply

    async def _failed(self, msg: Incoming, inbound_id: int, job: Job) -> Reply | None:
        reply: Reply | None = None
        if msg.event not in SYSTEM_EVENTS and (not msg.is_event or msg.event in INTERACTIVE_EVENTS):
            reply = TextReply(fill(self.services.texts.templates.get("crash", CRASH_TEXT), self.services.texts.site))
        if job.outcome == "pending":
            job.outcome = "passive"
        try:
            async with self.services.session_factory() as session, session.begin():
                await _finish(
                    session, msg, inbound_id, "error", reply, deferred=job.outcome == "deferred", status="failed"
                )
        except Exception:
            log.exception("could not record the failure of inbound %s", inbound_id)
        return reply


async def _villager(session: AsyncSession, msg: Incoming) -> Villager:
    if msg.event in SYSTEM_EVENTS:
        return Villager(openid=msg.openid)  # transient: system events are not from a villager
    sql = _statements(session.get_bind().dialect.name)
    villager: Villager = (await session.execute(sql["villager_load"], {"openid": msg.openid})).scalar_one()
    return villager


async def _finish(
    session: AsyncSession,
    msg: Incoming,
    inbound_id: int,
    handler_name: str,
    reply: Reply | None,
    *,
    deferred: bool,
    status: str | None = None,
) -> None:
    reply_json = reply.to_json() if reply is not None else {"type": "none"}
    if deferred and reply is not None:
        kind = "cs_text" if isinstance(reply, TextReply) else "cs_news"
        await enqueue(
            session,
            kind=kind,
            openid=msg.openid,
            payload=reply_json,
            idempotency_key=f"inbound-reply:{inbound_id}",
            source=f"inbound:{inbound_id}",
        )
    await session.execute(
        _statements(session.get_bind().dialect.name)["finish"],
        {
            "inbound_id": inbound_id,
            "status": status or ("deferred" if deferred else "replied"),
            "handler": handler_name,
            # a retry after a deferral must not get the answer twice: it gets `success`
            "reply": {"type": "none"} if deferred else reply_json,
            "replied_at": dt.datetime.now(dt.UTC),
        },
    )
