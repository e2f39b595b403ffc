"""A push's way through: store it, dispatch it under a deadline, keep the reply.

1. ``StoreQueue`` inserts the push under its unique dedup key and commits it, together
   with the other pushes that arrived meanwhile (group commit), so it is saved before any
   handler runs; a retry of the same push finds the row instead.
2. ``Pipeline.handle`` dispatches in a second transaction, one push of a villager at a
   time. If the handler beats the deadline its reply goes back as the passive reply (and
   is stored for retries); otherwise the webhook answers ``success`` and the reply is
   written to the outbox as a customer-service message in the same transaction as the
   handler's changes.

The store also remembers the push's (timestamp, nonce) in ``push_nonces`` in the same transaction
(``bot.wechat.nonces``: a pair that comes back with another push is refused), and waits for the
database at most LAWBOT_DB_TIMEOUT seconds, so a hung database still lets the webhook tell the
villager in time.

Everything here runs for every push, so it is written for speed: Core statements built
once, each transaction's statements run in one synchronous step (``run_sync``), no ORM
unit of work (bench/webhook_load.py and bench/pipeline.py measure it; README, Benchmarks).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import JSON, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import manager_of_class

from bot.routing import Ctx, Dispatcher, Reply, TextReply, reply_from_json
from bot.services.context import Services
from bot.services.knowledge import fill
from bot.services.outbox import RELEASE_HELD, enqueue
from bot.storage.models import ConversationState, InboundMessage, PushNonce, UTCDateTime, Villager, utcnow
from bot.wechat.messages import Incoming
from bot.wechat.nonces import NonceReused, Seal, retention
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
    status: str  # the row's status; "replayed": refused, its (timestamp, nonce) came with another push
    reply: dict[str, Any] | None


REPLAYED = Stored(0, False, "replayed", None)


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


M = TypeVar("M")

#: a statement (or the name of one of the pipeline's own) and its parameters
Write = tuple[Any, dict[str, Any]]

_VILLAGER = Villager.__table__
_CONV = ConversationState.__table__
_VILLAGER_FIELDS = tuple(_VILLAGER.c.keys())
_CONV_FIELDS = ("state", "data", "context", "expires_at")


@functools.cache
def _statements(dialect: str) -> dict[str, Any]:
    """The hot path's statements, built once with bind parameters (SQLAlchemy then reuses the compiled form)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    villager = insert(Villager).values(
        openid=bindparam("openid"), first_seen_at=bindparam("now"), last_inbound_at=bindparam("last_inbound_at")
    )
    conversation = insert(ConversationState).values(
        openid=bindparam("openid"),
        state=bindparam("state"),
        data=bindparam("data", type_=JSON()),
        context=bindparam("context", type_=JSON()),
        expires_at=bindparam("expires_at", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
    return {
        "inbound": insert(InboundMessage)
        .values({c: bindparam(c) for c in _INBOUND_COLUMNS})
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(InboundMessage.id),
        "existing": select(InboundMessage.id, InboundMessage.status, InboundMessage.reply).where(
            InboundMessage.dedup_key == bindparam("dedup_key")
        ),
        # a batch's pairs in one executemany; when some were there before, their digests are read back
        "nonces": insert(PushNonce)
        .values(timestamp=bindparam("timestamp"), nonce=bindparam("nonce"), digest=bindparam("digest"))
        .on_conflict_do_nothing(index_elements=["timestamp", "nonce"]),
        "nonces_seen": select(PushNonce.timestamp, PushNonce.nonce, PushNonce.digest).where(
            PushNonce.nonce.in_(bindparam("nonces", expanding=True))
        ),
        "nonce_sweep": delete(PushNonce).where(PushNonce.timestamp < bindparam("cutoff")),
        # a villager's first push creates the row; an interaction moves the 48-hour window
        "villager_touch": villager.on_conflict_do_update(
            index_elements=["openid"], set_={"last_inbound_at": villager.excluded.last_inbound_at}
        ),
        "villager_seen": villager.on_conflict_do_nothing(index_elements=["openid"]),
        # the villager and their conversation state in one round trip
        "load": select(*_VILLAGER.c, *(_CONV.c[c].label(f"conv_{c}") for c in ("openid", *_CONV_FIELDS)))
        .select_from(_VILLAGER.outerjoin(_CONV, _CONV.c.openid == _VILLAGER.c.openid))
        .where(_VILLAGER.c.openid == bindparam("openid")),
        "conversation_save": conversation.on_conflict_do_update(
            index_elements=["openid"],
            set_={c: getattr(conversation.excluded, c) for c in (*_CONV_FIELDS, "updated_at")},
        ),
        "finish": update(InboundMessage)
        .where(InboundMessage.id == bindparam("inbound_id"))
        .values(
            status=bindparam("status"),
            handler=bindparam("handler"),
            outcome=bindparam("outcome"),
            topic=bindparam("topic"),
            entry_id=bindparam("entry_id"),
            reply=bindparam("reply", type_=InboundMessage.__table__.c.reply.type),
            replied_at=bindparam("replied_at"),
        )
        .execution_options(synchronize_session=False),
    }


def _inbound_params(msg: Incoming, now: dt.datetime) -> dict[str, Any]:
    return {
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


def _claim_nonces(conn: Connection, sql: dict[str, Any], seals: Sequence[Seal | None]) -> set[int]:
    """Remember the batch's (timestamp, nonce) pairs; the positions of pushes whose pair came before
    with another push (a pair that comes back with the same digest is WeChat's retry: allowed)."""
    first: dict[tuple[int, str], Seal] = {}
    for seal in seals:
        if seal is not None:
            first.setdefault((seal.timestamp, seal.nonce), seal)
    if not first:
        return set()
    params = [{"timestamp": t, "nonce": n, "digest": first[t, n].digest} for t, n in sorted(first)]
    inserted = conn.execute(sql["nonces"], params).rowcount
    if inserted == len(params):  # every pair is new (the usual case: one statement, nothing read)
        kept = {pair: seal.digest for pair, seal in first.items()}
    else:  # some came before (a retry, or a captured URL): what was stored with them decides
        rows = conn.execute(sql["nonces_seen"], {"nonces": sorted({n for _, n in first})})
        kept = {(row.timestamp, row.nonce): row.digest for row in rows}
    return {
        i for i, seal in enumerate(seals) if seal is not None and kept.get((seal.timestamp, seal.nonce)) != seal.digest
    }


def _store_all(
    conn: Connection,
    msgs: Sequence[Incoming],
    now: dt.datetime,
    seals: Sequence[Seal | None] = (),
    sweep_before: int | None = None,
) -> list[Stored]:
    """Save pushes (and touch their villagers) in one transaction; one result per push, in order.

    ``seals`` (parallel to ``msgs``): each push's signed (timestamp, nonce), remembered here; a push
    whose pair came before with another push is not stored (:data:`REPLAYED`). ``sweep_before``:
    forget pairs with an older timestamp (they are outside the window).

    Runs as one synchronous unit (``AsyncConnection.run_sync``): a batch costs one greenlet
    switch and one commit, not one per statement (bench/webhook_load.py). Rows are written
    in key order, so two processes storing overlapping batches (PostgreSQL) wait for each
    other instead of deadlocking."""
    sql = _statements(conn.dialect.name)
    results: list[Stored | None] = [None] * len(msgs)
    by_key: dict[str, Stored] = {}
    touched: dict[str, dict[str, Any]] = {}
    seen: dict[str, dict[str, Any]] = {}
    with conn.begin():
        if sweep_before is not None:
            conn.execute(sql["nonce_sweep"], {"cutoff": sweep_before})
        replayed = _claim_nonces(conn, sql, seals) if seals else set()
        for i in sorted(range(len(msgs)), key=lambda i: msgs[i].dedup_key):  # stable: copies keep their order
            msg = msgs[i]
            if i in replayed:
                results[i] = REPLAYED
                continue
            first = by_key.get(msg.dedup_key)
            if first is not None:  # a copy of a push in the same batch: a retry of it (the stored reply, if any)
                results[i] = Stored(first.id, False, first.status, first.reply)
                continue
            new_id = conn.execute(sql["inbound"], _inbound_params(msg, now)).scalar_one_or_none()
            if new_id is None:
                row = conn.execute(sql["existing"], {"dedup_key": msg.dedup_key}).one()
                stored = Stored(row.id, False, row.status, row.reply)
            else:
                stored = Stored(new_id, True, "received", None)
                if msg.event not in SYSTEM_EVENTS:
                    if opens_window(msg):
                        touched[msg.openid] = {"openid": msg.openid, "now": now, "last_inbound_at": now}
                    else:
                        seen[msg.openid] = {"openid": msg.openid, "now": now, "last_inbound_at": None}
            by_key[msg.dedup_key] = stored
            results[i] = stored
        # a villager's first push creates the row; an interaction moves the 48-hour window and
        # re-queues messages held for it (after the window moved: see release_held)
        first_seen = [seen[o] for o in sorted(seen) if o not in touched]
        if first_seen:
            conn.execute(sql["villager_seen"], first_seen)
        if touched:
            openids = sorted(touched)
            conn.execute(sql["villager_touch"], [touched[o] for o in openids])
            conn.execute(RELEASE_HELD, [{"release_openid": o, "release_now": now} for o in openids])
    return [r for r in results if r is not None]


async def store(services: Services, msg: Incoming) -> Stored:
    """Save one push (and touch the villager) before anything else happens."""
    async with services.engine.connect() as conn:
        return (await conn.run_sync(_store_all, [msg], utcnow()))[0]


_Pending = tuple[Incoming, Seal | None, asyncio.Future[Stored]]


class StoreQueue:
    """Group commit: pushes that arrive while a batch is being written go into the next one.

    Under load one transaction stores many pushes (on SQLite a commit, not a statement, is
    what a write costs); a lone push is written at once. Every push is still stored, and its
    webhook request waits for that commit, before any handler runs — but no longer than
    ``within`` seconds: then it raises TimeoutError (the villager is asked to send it again)
    and the push is left out of the batch if that has not started yet."""

    MAX_BATCH = 256
    SWEEP_EVERY = 60.0  # seconds between forgetting nonces older than the window

    def __init__(self, services: Services) -> None:
        self.services = services
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._next_sweep = 0.0

    async def store(self, msg: Incoming, seal: Seal | None = None, *, within: float | None = None) -> Stored:
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, seal, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="inbound-store")
        if within is None:
            return await future
        return await asyncio.wait_for(future, within)  # a future, not a coroutine: no task is made

    def _sweep_before(self) -> int | None:
        now = time.monotonic()
        if now < self._next_sweep:
            return None
        self._next_sweep = now + self.SWEEP_EVERY
        return int(time.time()) - retention(self.services.settings.timestamp_window)

    async def _write(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                await self._write_batch(batch)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[_Pending]) -> None:
        # a push whose request gave up waiting (the villager was asked to send it again) is not stored
        batch = [item for item in batch if not item[2].done()]
        if not batch:
            return
        try:
            async with self.services.engine.connect() as conn:
                results = await conn.run_sync(
                    _store_all, [m for m, _, _ in batch], utcnow(), [s for _, s, _ in batch], self._sweep_before()
                )
        except Exception as exc:
            if len(batch) == 1:  # the webhook logs it and tells the villager to send it again
                if not batch[0][2].done():
                    batch[0][2].set_exception(exc)
                return
            # one bad push must not cost the others their answer: store them one by one
            for item in batch:
                await self._write_batch([item])
            return
        for (_msg, _seal, future), stored in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(stored)


@dataclass
class Job:
    outcome: Literal["pending", "passive", "deferred"] = "pending"


class Pipeline:
    def __init__(self, services: Services, dispatcher: Dispatcher) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self._inflight: dict[str, asyncio.Task[Reply | None]] = {}
        self.queue = StoreQueue(services)
        # one villager's pushes are handled one at a time, in the order they were stored
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    async def handle(self, msg: Incoming, seal: Seal | None = None) -> Reply | None:
        """Store, dispatch and return the passive reply (None: answer ``success``).

        Raises NonceReused when ``seal``'s (timestamp, nonce) came before with another push, and
        TimeoutError when the database did not store the push within LAWBOT_DB_TIMEOUT seconds.
        The reply deadline counts from the start, so storing and answering together stay inside it."""
        settings = self.services.settings
        loop = asyncio.get_running_loop()
        started = loop.time()
        stored = await self.queue.store(msg, seal, within=min(settings.db_timeout, settings.reply_deadline))
        if stored is REPLAYED:
            raise NonceReused(f"{seal}")
        deadline = max(0.05, settings.reply_deadline - (loop.time() - started))
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
        lock, waiting = self._turns.get(msg.openid) or (asyncio.Lock(), 0)
        self._turns[msg.openid] = (lock, waiting + 1)
        try:
            async with lock:  # a quick second message waits for the first one's state
                try:
                    return await self._dispatch(msg, inbound_id, job)
                except Exception:
                    log.exception("handler failed for inbound %s", inbound_id)
                    return await self._failed(msg, inbound_id, job)
        finally:
            lock, waiting = self._turns[msg.openid]
            if waiting == 1:
                del self._turns[msg.openid]
            else:
                self._turns[msg.openid] = (lock, waiting - 1)

    async def _dispatch(self, msg: Incoming, inbound_id: int, job: Job) -> Reply | None:
        services = self.services
        now = utcnow()
        # The pipeline's own reads and writes are Core statements (built once) run in two
        # synchronous steps on the session's connection: load, then write + commit. Handlers get
        # plain objects and the ORM session for their own work. Going through the ORM's unit of
        # work, or awaiting each statement, cost more than everything else in a push
        # (bench/webhook_load.py).
        session = services.session_factory()
        try:
            loaded = await session.run_sync(_load, msg)
            ctx = Ctx(
                msg=msg,
                session=session,
                villager=loaded.villager,
                conv=loaded.conv,
                services=services,
                inbound_id=inbound_id,
                now=now,
            )
            menu_before = (ctx.conv.context or {}).get("menu")
            handler_name, reply = await self.dispatcher.dispatch(ctx)
            if handler_name not in KEEPS_MENU and (ctx.conv.context or {}).get("menu") is menu_before and menu_before:
                # numbers refer to the last list shown: once something else was answered, forget it
                ctx.remember(menu=None)
            if isinstance(reply, TextReply):
                shown, rest = fit_text(reply.content)
                if rest:
                    ctx.remember(more=rest)
                reply = TextReply(shown)
            if job.outcome == "pending":
                job.outcome = "passive"
            keep_state = msg.event not in SYSTEM_EVENTS and not ctx.forgotten
            writes = [*ctx.writes, *(loaded.writes(now) if keep_state else ())]
            await _finish(
                session,
                msg,
                inbound_id,
                handler_name,
                reply,
                deferred=job.outcome == "deferred",
                writes=writes,
                outcome=ctx.outcome,
            )
        except BaseException:
            await session.close()  # rolls back whatever the handler did
            raise
        return reply

    async def give_up(self, msg: Incoming, inbound_id: int) -> Reply | None:
        """Stop trying to handle a stored push (its re-runs keep dying): record it as failed and
        send the villager the apology text through the outbox."""
        return await self._failed(msg, inbound_id, Job(outcome="deferred"))

    async def _failed(self, msg: Incoming, inbound_id: int, job: Job) -> Reply | None:
        reply: Reply | None = None
        if msg.event not in SYSTEM_EVENTS and (not msg.is_event or msg.event in INTERACTIVE_EVENTS):
            reply = TextReply(fill(self.services.texts.templates.get("crash", CRASH_TEXT), self.services.texts.site))
        if job.outcome == "pending":
            job.outcome = "passive"
        session = self.services.session_factory()
        try:
            await _finish(session, msg, inbound_id, "error", reply, deferred=job.outcome == "deferred", status="failed")
        except Exception:
            await session.close()
            log.exception("could not record the failure of inbound %s", inbound_id)
        return reply


def _load(session: Session, msg: Incoming) -> _Loaded:
    conn = session.connection()
    row = conn.execute(_statements(conn.dialect.name)["load"], {"openid": msg.openid}).first()
    return _Loaded.from_row(msg, row)


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class _Loaded:
    """The villager and conversation state a handler sees, and what they were when loaded.

    They are plain (transient) model objects: the pipeline writes back whatever a handler
    changed, in the handler's transaction, with one statement each."""

    villager: Villager
    conv: ConversationState
    villager_was: tuple[Any, ...] | None
    conv_was: tuple[Any, ...] | None

    @classmethod
    def from_row(cls, msg: Incoming, row: Any) -> _Loaded:
        if row is None:  # system events come from WeChat, not from a villager: nothing is saved
            villager, villager_was = Villager(openid=msg.openid), None
        else:
            values = row._mapping
            villager_was = tuple(values[c] for c in _VILLAGER_FIELDS)
            villager = _plain(Villager, dict(zip(_VILLAGER_FIELDS, villager_was, strict=True)))
        has_conv = row is not None and row.conv_openid is not None
        if not has_conv:
            conv_values: dict[str, Any] = {"state": None, "data": {}, "context": {}, "expires_at": None}
        else:
            conv_values = {
                "state": row.conv_state,
                "data": row.conv_data or {},
                "context": row.conv_context or {},
                "expires_at": row.conv_expires_at,
            }
        conv = _plain(ConversationState, {"openid": msg.openid, **conv_values})
        return cls(villager, conv, villager_was, _conv_key(conv) if has_conv else None)

    def writes(self, now: dt.datetime) -> list[Write]:
        """The statements that store what a handler changed (none if it changed nothing)."""
        writes: list[Write] = []
        if self.villager_was is not None:
            changed = {
                c: getattr(self.villager, c)
                for c, was in zip(_VILLAGER_FIELDS, self.villager_was, strict=True)
                if getattr(self.villager, c) != was
            }
            if changed:
                writes.append((update(Villager).where(Villager.id == self.villager.id).values(changed), {}))
        conv = self.conv
        if self.conv_was is None or _conv_key(conv) != self.conv_was:
            params = {
                "openid": conv.openid,
                "state": conv.state,
                "data": conv.data or {},
                "context": conv.context or {},
                "expires_at": conv.expires_at,
                "now": now,
            }
            writes.append(("conversation_save", params))
        return writes


def _plain(cls: type[M], values: dict[str, Any]) -> M:
    """A transient model object filled without attribute events, as the ORM's own loader fills one."""
    obj = manager_of_class(cls).new_instance()
    obj.__dict__.update(values)
    return obj


def _conv_key(conv: ConversationState) -> tuple[Any, ...]:
    return (conv.state, _json_key(conv.data or {}), _json_key(conv.context or {}), conv.expires_at)


async def _finish(
    session: AsyncSession,
    msg: Incoming,
    inbound_id: int,
    handler_name: str,
    reply: Reply | None,
    *,
    deferred: bool,
    status: str | None = None,
    writes: Sequence[Write] = (),
    outcome: tuple[str, str | None, str | None] | None = None,
) -> None:
    """Record the outcome and the handler's state changes in its transaction; commit; close."""
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
    finish = {
        "inbound_id": inbound_id,
        "status": status or ("deferred" if deferred else "replied"),
        "handler": handler_name,
        "outcome": outcome[0] if outcome else None,
        "topic": outcome[1] if outcome else None,
        "entry_id": outcome[2] if outcome else None,
        # a retry after a deferral must not get the answer twice: it gets `success`
        "reply": {"type": "none"} if deferred else reply_json,
        "replied_at": dt.datetime.now(dt.UTC),
    }
    await session.run_sync(_commit, [*writes, ("finish", finish)])


def _commit(session: Session, writes: Sequence[Write]) -> None:
    """Run the writes, flush the handler's ORM changes, commit and close: one greenlet switch."""
    conn = session.connection()
    sql = _statements(conn.dialect.name)
    for statement, params in writes:
        conn.execute(sql[statement] if isinstance(statement, str) else statement, params)
    session.commit()
    session.close()
